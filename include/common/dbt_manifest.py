"""The dbt manifest follows the dbt project: rebuilt whenever anything dbt reads has changed.

The DAGs' dbt tasks and their Assets are rendered from dbt_project/target/manifest.json, so a stale
manifest means a new model silently gets no task and no Asset. `ensure_manifest` compares a
fingerprint of every file dbt reads (any depth under the project's model, seed, snapshot, macro,
test, analysis and docs paths, dbt_project.yml, profiles.yml, packages and their lock, local
packages, the dbt version) with the one the manifest was built from, and only when they differ runs:

- `dbt deps`, when the project declares packages (packages.yml or dependencies.yml) and they
  changed: packages are installed once, here, never by the dbt tasks. Local packages become
  relative links, so they work wherever the project is mounted (the Docker containers too).
- `dbt parse`, into target/ (written to a side folder, then moved in whole: a reader never sees
  half a manifest). dbt's warnings about the project are passed on, not hidden.

It runs in `make install` (and every make target that needs dbt), in airflow-init, in the project
image's build (Dockerfile), and each time a DAG with dbt tasks is parsed (include/common/dbt_tasks.py):
when nothing changed it only hashes the project's files (docs/dbt.md says what that costs). Where the
project is read-only (in the image) a stale manifest is an error, never a rebuild. Standard library
and PyYAML only, so a DAG file may call it.

    python -m include.common.dbt_manifest [PROJECT_DIR]    # what make dbt-parse and airflow-init run
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from include.common.project import DBT_EXECUTABLE, DBT_PROJECT_DIR

log = logging.getLogger(__name__)

# dbt's own defaults for the folders it reads (dbt_project.yml may name others).
DEFAULT_PATHS = {
    "model-paths": ["models"],
    "seed-paths": ["seeds"],
    "snapshot-paths": ["snapshots"],
    "macro-paths": ["macros"],
    "test-paths": ["tests"],
    "analysis-paths": ["analyses"],
}
PROJECT_FILES = (
    "dbt_project.yml",
    "profiles.yml",
    "packages.yml",
    "dependencies.yml",
    "package-lock.yml",
    "selectors.yml",
)
PACKAGE_FILES = ("packages.yml", "dependencies.yml", "package-lock.yml")
MANIFEST = Path("target") / "manifest.json"
FINGERPRINT = Path("target") / "manifest.inputs"  # the fingerprint the manifest was built from
PARSE_TARGET = Path("target") / "parse"  # dbt parse writes here (and keeps its partial-parse cache)
LOCK = Path("target") / ".manifest.lock"
DEPS_FINGERPRINT = ".template-deps"  # in the packages folder: what it was installed from
NETWORK_HINT = (
    "Hub and git packages are downloaded by `dbt deps`, which needs the network (hub.getdbt.com, "
    "github.com or your git host) when packages are installed: run it where the network is "
    "reachable, or use local packages (docs/dbt.md, 'Packages')."
)


class DbtProjectError(RuntimeError):
    """dbt could not install the project's packages or parse it; the message holds dbt's own error."""


def ensure_manifest(project_dir: Path = DBT_PROJECT_DIR, dbt: Path = DBT_EXECUTABLE) -> Path:
    """The project's manifest, rebuilt first if any file dbt reads has changed since it was built."""
    manifest = project_dir / MANIFEST
    if manifest.exists() and _read(project_dir / FINGERPRINT) == fingerprint(project_dir, dbt):
        return manifest
    target = project_dir / "target"
    if not os.access(target if target.exists() else project_dir, os.W_OK):
        # The project image's: its manifest is built with the image, and the project is read-only.
        raise DbtProjectError(
            f"{manifest} is missing or older than the dbt project, and {target} is read-only here, so "
            "it cannot be rebuilt: build it where the project is writable (make dbt-parse; the "
            "project image builds its own: rebuild it, make image)"
        )
    target.mkdir(exist_ok=True)
    with _locked(project_dir / LOCK):  # one rebuild at a time; the others find it done
        current = fingerprint(project_dir, dbt)
        if manifest.exists() and _read(project_dir / FINGERPRINT) == current:
            return manifest
        if not dbt.exists():
            raise DbtProjectError(
                f"{project_dir} changed since its manifest was built, and dbt is not installed at {dbt}: "
                "run `make install` (or set DBT_EXECUTABLE_PATH)"
            )
        install_packages(project_dir, dbt)
        _parse(project_dir, dbt)
        (project_dir / FINGERPRINT).write_text(fingerprint(project_dir, dbt))
    return manifest


def read_manifest(project_dir: Path = DBT_PROJECT_DIR) -> dict:
    """The project's manifest as dbt wrote it (rebuilt first if the project changed)."""
    return json.loads(ensure_manifest(project_dir).read_text())


def fingerprint(project_dir: Path, dbt: Path = DBT_EXECUTABLE) -> str:
    """A digest of every file dbt reads in the project, with the dbt version."""
    digest = hashlib.sha256(_dbt_version(dbt).encode())
    for path in sorted(_inputs(project_dir)):
        digest.update(str(path.relative_to(project_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def install_packages(project_dir: Path, dbt: Path = DBT_EXECUTABLE) -> None:
    """`dbt deps`, when the project declares packages and they changed since the last install."""
    declared = [project_dir / name for name in PACKAGE_FILES if (project_dir / name).exists()]
    if not any(path.name != "package-lock.yml" for path in declared):
        return
    folder = project_dir / project_config(project_dir).get("packages-install-path", "dbt_packages")
    if _read(folder / DEPS_FINGERPRINT) == _packages_digest(project_dir):
        return
    result = _dbt(dbt, "deps", project_dir)
    if result.returncode != 0:
        hint = f"\n{NETWORK_HINT}" if _has_remote_packages(project_dir) else ""
        raise DbtProjectError(f"dbt deps failed in {project_dir}:\n{_tail(result)}{hint}")
    _relative_local_links(folder, project_dir)
    (folder / DEPS_FINGERPRINT).write_text(_packages_digest(project_dir))  # with the lock dbt wrote


def _packages_digest(project_dir: Path) -> str:
    files = [project_dir / name for name in PACKAGE_FILES if (project_dir / name).exists()]
    return hashlib.sha256(b"\0".join(path.read_bytes() for path in files)).hexdigest()


def _parse(project_dir: Path, dbt: Path) -> None:
    result = _dbt(dbt, "parse", project_dir, "--target-path", str(project_dir / PARSE_TARGET))
    warnings = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0:
        raise DbtProjectError(f"dbt parse failed in {project_dir}:\n{_tail(result)}")
    for line in warnings:  # --log-level warn: what dbt says about the project is worth reading
        log.warning("dbt parse: %s", line)
    built = project_dir / PARSE_TARGET
    # Cosmos seeds its partial-parse cache from target/partial_parse.msgpack.
    for name in ("partial_parse.msgpack", "manifest.json"):
        if (built / name).exists():
            shutil.copyfile(built / name, built / f"{name}.copy")
            os.replace(built / f"{name}.copy", project_dir / "target" / name)


def _dbt(dbt: Path, command: str, project_dir: Path, *args: str) -> subprocess.CompletedProcess:
    # The project's own profiles.yml, if it has one; else where dbt looks (DBT_PROFILES_DIR, ~/.dbt).
    profiles = ["--profiles-dir", str(project_dir)] if (project_dir / "profiles.yml").exists() else []
    return subprocess.run(
        [
            str(dbt),
            "--no-use-colors",
            "--log-level",
            "warn",
            command,
            "--project-dir",
            str(project_dir),
            *profiles,
            *args,
        ],
        # dbt's own log file goes to target/, so nothing else is written into the project.
        env={
            **os.environ,
            "DBT_LOG_PATH": str(project_dir / "target"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "0",
        },
        capture_output=True,
        text=True,
        check=False,
    )


def _inputs(project_dir: Path) -> Iterator[Path]:
    for name in PROJECT_FILES:
        if (project_dir / name).is_file():
            yield project_dir / name
    config = project_config(project_dir)
    folders = {
        folder for key, default in DEFAULT_PATHS.items() for folder in (config.get(key) or default)
    } | set(config.get("docs-paths") or ())
    folders |= set(_local_packages(project_dir))
    skip = {
        config.get("target-path", "target"),
        config.get("log-path", "logs"),
        "dbt_packages",
        "__pycache__",
    }
    for folder in sorted(folders):
        root = (project_dir / folder).resolve()
        if root.is_dir():
            for parent, directories, files in os.walk(root):
                directories[:] = sorted(d for d in directories if d not in skip and not d.startswith("."))
                yield from (Path(parent) / name for name in files if not name.startswith("."))


def project_config(project_dir: Path) -> dict:
    """dbt_project.yml as a mapping ({} when it is missing or broken: dbt then says what is wrong)."""
    return _yaml(project_dir / "dbt_project.yml")


def _package_entries(project_dir: Path) -> list[dict]:
    entries = []
    for name in ("packages.yml", "dependencies.yml"):
        entries += _yaml(project_dir / name).get("packages") or []
    return [entry for entry in entries if isinstance(entry, dict)]


def _yaml(path: Path) -> dict:
    """A YAML file's mapping; {} when it is missing or broken (dbt then says what is wrong with it)."""
    try:
        data = yaml.safe_load(path.read_text()) if path.exists() else {}
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _local_packages(project_dir: Path) -> list[str]:
    return [str(entry["local"]) for entry in _package_entries(project_dir) if "local" in entry]


def _has_remote_packages(project_dir: Path) -> bool:
    return any("package" in entry or "git" in entry for entry in _package_entries(project_dir))


def _relative_local_links(folder: Path, project_dir: Path) -> None:
    """dbt links local packages by absolute path, which exists on this machine only: link them
    relative to the packages folder instead, so the project works wherever it is mounted."""
    if not folder.is_dir():
        return
    for link in folder.iterdir():
        if link.is_symlink() and os.path.isabs(os.readlink(link)):
            target = Path(os.readlink(link))
            if not target.is_relative_to(project_dir.resolve()):
                log.warning(
                    "local package %s is outside %s: the Docker containers mount only that folder",
                    target,
                    project_dir,
                )
                continue
            link.unlink()
            link.symlink_to(os.path.relpath(target, folder.resolve()))


def _dbt_version(dbt: Path) -> str:
    """dbt-core's installed version, from its virtualenv's metadata (no dbt process started)."""
    site = sorted(dbt.parent.parent.glob("lib/python*/site-packages/dbt_core-*.dist-info"))
    return site[-1].name if site else "unknown"


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def _tail(result: subprocess.CompletedProcess, limit: int = 6000) -> str:
    return (result.stdout + result.stderr).strip()[-limit:]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    project_dir = Path(argv[0]).resolve() if argv else DBT_PROJECT_DIR
    try:
        print(f"dbt manifest up to date: {ensure_manifest(project_dir)}")
    except DbtProjectError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
