"""`make env`: write .env for `docker compose`, with secrets generated on this machine. Never overwrites.

.env is .env.example with the empty secrets filled in (a Fernet key, a JWT secret, database, Redis,
admin and Flower passwords) and AIRFLOW_UID set to the current user. It also copies airflow.env.example to
airflow.env, the file of your own Airflow connections, variables and options (read_user_settings
reads it, and refuses what belongs to the stack). Standard library only: it runs before any
virtualenv exists.

    python3 -m scripts.make_env [--output .env] [--template .env.example]
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import string
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The official image's default user: used where the host user is root or has no numeric id.
IMAGE_UID = 50000


def fernet_key() -> str:
    """What cryptography.fernet.Fernet.generate_key() returns: 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def airflow_uid() -> str:
    """The host user's id, so files the containers write to logs/ belong to them (as the docs say)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return str(uid) if uid != 0 else str(IMAGE_UID)


# Letters and digits only: passwords go into connection URIs and onto command lines, where a leading
# "-" reads as an option (the image's entrypoint runs `airflow users create --password <it>`).
PASSWORD_ALPHABET = string.ascii_letters + string.digits


def password(length: int = 24) -> str:
    """A random password of `length` letters and digits (24 of them: about 143 bits)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


# Every value make env generates. All other lines of .env.example are copied as they are.
GENERATED: dict[str, Callable[[], str]] = {
    "AIRFLOW_UID": airflow_uid,
    "FERNET_KEY": fernet_key,
    "AIRFLOW__API_AUTH__JWT_SECRET": lambda: secrets.token_urlsafe(48),  # 48 random bytes, 64 characters
    "AIRFLOW_DB_PASSWORD": password,
    "WAREHOUSE_PASSWORD": password,
    "REDIS_PASSWORD": password,  # Celery's broker
    "_AIRFLOW_WWW_USER_PASSWORD": password,
    "FLOWER_PASSWORD": password,  # Flower's login (AIRFLOW__CELERY__FLOWER_BASIC_AUTH)
}

ASSIGNMENT = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def render(template: str, values: Mapping[str, str]) -> str:
    """The template with the value of each key in `values` replaced; every key must be in the template."""
    missing = set(values)
    lines = []
    for line in template.splitlines():
        match = ASSIGNMENT.match(line)
        if match and match["key"] in values:
            line = f"{match['key']}={values[match['key']]}"
            missing.discard(match["key"])
        lines.append(line)
    if missing:
        raise ValueError(f"not in the template: {', '.join(sorted(missing))}")
    return "\n".join(lines) + "\n"


def generated_values() -> dict[str, str]:
    return {key: generate() for key, generate in GENERATED.items()}


def write_env(output: Path, template: Path, settings: Mapping[str, str] | None = None) -> bool:
    """Write `output` from `template` with fresh secrets (plus `settings`); False if it already exists."""
    text = render(template.read_text(), {**generated_values(), **(settings or {})})
    try:
        # Created only if absent (O_EXCL), readable by its owner only: it holds the stack's secrets.
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return True


def add_missing_secrets(output: Path) -> list[str]:
    """Append to an existing .env the generated values it lacks (a secret that a newer docker-compose.yaml
    requires); every line already there stays as it is. Returns their names."""
    text = output.read_text()
    present = {match["key"] for line in text.splitlines() if (match := ASSIGNMENT.match(line))}
    missing = {key: value for key, value in generated_values().items() if key not in present}
    if missing:
        with output.open("a") as file:
            file.write("" if text.endswith("\n") or not text else "\n")
            file.write("".join(f"{key}={value}\n" for key, value in missing.items()))
    return sorted(missing)


# What the containers write into the checkout (docker-compose.yaml's bind mounts); nothing else.
WRITABLE_FOLDERS = ("logs", "config", "plugins", "dbt_project/target", "dbt_project/dbt_packages")


def make_writable_folders(project: Path) -> None:
    """Create the folders the containers write to, owned by the containers' user: yours, or when you
    are root the image's (50000, group 0), so that airflow-init has nothing of yours to chown."""
    for name in WRITABLE_FOLDERS:
        folder = project / name
        if folder.exists():
            continue
        folder.mkdir(parents=True)
        if hasattr(os, "getuid") and os.getuid() == 0:
            os.chown(folder, IMAGE_UID, 0)


# --- airflow.env: your own Airflow settings -----------------------------------------------------------

USER_SETTINGS = "airflow.env"  # beside .env; docker-compose.yaml's env_file, make demo/shell/ui
USER_SETTING = re.compile(
    r"^(AIRFLOW_CONN_[A-Z0-9_]+|AIRFLOW_VAR_[A-Z0-9_]+|AIRFLOW__[A-Z0-9_]+__[A-Z0-9_]+)$"
)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as docker compose reads an env_file: `export ` allowed, surrounding quotes
    removed, ` # comment` after an unquoted value dropped, blank and # lines skipped."""
    entries = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.removeprefix("export ").partition("=")
        if not equals:
            raise ValueError(f"{path}:{number}: expected KEY=value, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0]
        entries[key.strip()] = value
    return entries


def stack_settings(compose_file: Path = REPO_ROOT / "docker-compose.yaml") -> set[str]:
    """The Airflow variables docker-compose.yaml sets itself: in a container they win over airflow.env."""
    return set(re.findall(r"^\s+(AIRFLOW[A-Z0-9_]*|_AIRFLOW[A-Z0-9_]*):", compose_file.read_text(), re.M))


def read_user_settings(path: Path, reserved: set[str]) -> dict[str, str]:
    """airflow.env's entries, or ValueError naming every line that is not a connection, variable or
    option of yours (`reserved`: what the stack or the local run sets itself)."""
    entries = read_env_file(path)
    problems = [
        f"{key}: not an AIRFLOW_CONN_*, AIRFLOW_VAR_* or AIRFLOW__SECTION__KEY setting"
        for key in entries
        if not USER_SETTING.match(key)
    ]
    problems += [f"{key}: set by the template itself (see .env)" for key in entries if key in reserved]
    if problems:
        raise ValueError(f"{path} has lines the template cannot take:\n  " + "\n  ".join(problems))
    return entries


def write_user_settings(output: Path, template: Path) -> bool:
    """airflow.env from its example, only if absent; readable by its owner only (it may hold passwords)."""
    try:
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as file:
        file.write(template.read_text())
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m scripts.make_env", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / ".env")
    parser.add_argument("--template", type=Path, default=REPO_ROOT / ".env.example")
    args = parser.parse_args(argv)
    make_writable_folders(args.output.parent)
    settings = args.output.parent / USER_SETTINGS
    if write_user_settings(settings, REPO_ROOT / "airflow.env.example"):
        print(f"wrote {settings}: your own connections, variables and Airflow options go there.")
    if not write_env(args.output, args.template):
        if added := add_missing_secrets(args.output):
            print(f"{args.output} exists: added what it lacked ({', '.join(added)}); nothing else changed.")
            return 0
        print(
            f"{args.output} exists: left unchanged. To start over with new secrets: "
            "`docker compose down --volumes` (the databases keep the old passwords), then delete it."
        )
        return 0
    print(f"wrote {args.output} with generated secrets (AIRFLOW_UID={airflow_uid()}); never commit it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
