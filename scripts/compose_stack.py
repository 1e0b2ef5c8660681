"""docker-compose.yaml, read as data and run as local processes: the compose stack without a Docker engine.

tests/stack uses it to prove the stack: the services, commands, environment, volumes, dependencies and
healthchecks all come from docker-compose.yaml itself (and ENV from the Dockerfile), so the proof and
the file cannot drift. Only what a container runtime would provide is mapped to local equivalents:

- hostnames and ports: a compose service name in a URL (`@postgres/`, `redis:6379`,
  `airflow-apiserver:8080`, `localhost:8080` in a healthcheck) becomes 127.0.0.1 and a free port;
  ports a process listens on are moved to free ports through the matching Airflow setting;
- paths: each process gets a private "container" folder standing for its /opt/airflow, holding links
  to what the service mounts (bind mounts of AIRFLOW_PROJ_DIR, named volumes) and to what the image
  adds there (.venv-dbt), plus a private TMPDIR and HOME. Every other file a process writes stays
  private to it, as in a container;
- images: `postgres:*` services become databases (with their POSTGRES_USER/PASSWORD/DB) in one
  throwaway PostgreSQL cluster, `redis:*` a throwaway Redis, and the project image runs this
  virtualenv's `airflow` (the image entrypoint's `_AIRFLOW_DB_MIGRATE` and `_AIRFLOW_WWW_USER_CREATE`
  steps for airflow-init).

One difference to know when reading logs: Airflow writes absolute paths (dags_folder, base_log_folder)
into the shared config/airflow.cfg, here from airflow-init's folder. In compose every container has the
same /opt/airflow; here the others reach those paths through airflow-init's links to the same mounts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scripts.local_env import LOCAL_DIR, REPO_ROOT, ThrowawayPostgres, ThrowawayRedis, free_port

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
# The official image's AIRFLOW_HOME and WORKDIR: where compose mounts the project.
IMAGE_PROJECT_ROOT = "/opt/airflow"
# ENV the official base image sets that our Dockerfile relies on without repeating it.
BASE_IMAGE_ENV = {"AIRFLOW_HOME": IMAGE_PROJECT_ROOT}
# What the Dockerfile builds under the project root, and its local counterpart (built by `make install`).
IMAGE_CONTENT = {".venv-dbt": REPO_ROOT / ".venv-dbt"}
# Ports a service listens on when its URL names none.
DEFAULT_PORTS = {"postgres": 5432, "redis": 6379}
VENV_BIN = Path(sys.executable).parent


# --- Interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR, $$ ----


class InterpolationError(ValueError):
    pass


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's variable substitution: what `docker compose config` does to each string value."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_substitute(text[i + 2 : end], variables))
            i = end + 1
        elif match := _NAME.match(text, i + 1):
            out.append(variables.get(match[0], ""))
            i = match.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for position in range(start, len(text)):
        if text.startswith("${", position):
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return position
    raise InterpolationError(f"unclosed '${{' in {text!r}")


def _substitute(expression: str, variables: Mapping[str, str]) -> str:
    name_match = _NAME.match(expression)
    if not name_match:
        raise InterpolationError(f"invalid variable name in '${{{expression}}}'")
    name, rest = name_match[0], expression[name_match.end() :]
    value = variables.get(name)
    if not rest:
        return value or ""
    for operator in (":-", "-", ":?", "?", ":+", "+"):
        if rest.startswith(operator):
            argument = interpolate(rest[len(operator) :], variables)  # defaults may hold ${...} too
            unset = value is None or (operator.startswith(":") and value == "")
            if operator in (":-", "-"):
                return argument if unset else value
            if operator in (":?", "?"):
                if unset:
                    raise InterpolationError(f"required variable {name} is missing a value: {argument}")
                return value
            return "" if unset else argument
    raise InterpolationError(f"invalid interpolation format '${{{expression}}}'")


def interpolate_all(node: Any, variables: Mapping[str, str]) -> Any:
    """Interpolate every string value of a parsed compose file (keys are left alone, as compose does)."""
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [interpolate_all(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_all(value, variables) for key, value in node.items()}
    return node


def variables_referenced(text: str) -> set[str]:
    """Names of the variables a compose file reads (not counting $$-escaped ones)."""
    unescaped = text.replace("$$", "")
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", unescaped)) | set(
        re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", unescaped)
    )


# --- Reading the files ----------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """A .env file as docker compose reads it: KEY=VALUE lines, `#` comments, quoted values.

    'single quotes' keep the value as written; "double quotes" allow \\n, \\" and \\\\; an unquoted
    value ends at ` #`. (Compose would also expand ${VAR} in unquoted and double-quoted values: the
    .env files here have none.)
    """
    env = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$", line)
        if not match:
            continue  # blank lines and comments
        key, value = match[1], match[2].strip()
        if value[:1] == "'" and value.count("'") >= 2:
            value = value[1 : value.index("'", 1)]
        elif value[:1] == '"' and (end := re.match(r'"((?:[^"\\]|\\.)*)"', value)):
            value = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], end[1])
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        env[key] = value
    return env


def raw_compose(path: Path = COMPOSE_FILE) -> dict:
    """The compose file as YAML data (anchors and `<<` merges resolved), before interpolation."""
    return yaml.safe_load(path.read_text())


def load_compose(variables: Mapping[str, str], path: Path = COMPOSE_FILE) -> dict:
    """The compose file with ${...} interpolated from `variables`, as `docker compose config` shows it."""
    return interpolate_all(raw_compose(path), variables)


def dockerfile_env(path: Path = DOCKERFILE) -> dict[str, str]:
    """ENV of the project image: the base image's AIRFLOW_HOME plus the Dockerfile's ENV instructions."""
    env = dict(BASE_IMAGE_ENV)
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        words = line.split(None, 1)
        if len(words) < 2 or words[0].upper() != "ENV":
            continue
        if "=" in words[1].split()[0]:
            for pair in shlex.split(words[1]):
                key, _, value = pair.partition("=")
                env[key] = value
        else:
            key, _, value = words[1].partition(" ")
            env[key] = value.strip()
    return env


def service_environment(service: Mapping, project_dir: Path) -> dict[str, str]:
    """A service's container environment: its env_file(s), overridden by its `environment`."""
    env: dict[str, str] = {}
    env_files = service.get("env_file") or []
    for env_file in [env_files] if isinstance(env_files, str) else env_files:
        path = Path(env_file if isinstance(env_file, str) else env_file["path"])
        env.update(read_env_file(path if path.is_absolute() else project_dir / path))
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    env.update({key: "" if value is None else str(value) for key, value in environment.items()})
    return env


def dependencies(service: Mapping) -> dict[str, str]:
    """depends_on as {service: condition}; the short (list) form means service_started."""
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        return dict.fromkeys(depends_on, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in depends_on.items()}


def start_order(services: Mapping[str, Mapping], names: Iterable[str]) -> list[str]:
    """`names` and everything they depend on, dependencies first (as `docker compose up` starts them)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"dependency cycle through {name}")
        visiting.add(name)
        for dependency in dependencies(services[name]):
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in names:
        visit(name)
    return order


def default_services(compose: Mapping, profiles: Iterable[str] = ()) -> list[str]:
    """The services `docker compose [--profile P] up` starts: those without a profile, plus P's."""
    wanted = set(profiles)
    return [
        name
        for name, service in compose["services"].items()
        if not service.get("profiles") or wanted & set(service["profiles"])
    ]


# --- Mapping container names, ports and paths to local ones -----------------------------------------


def map_hosts(value: str, endpoints: Mapping[str, Mapping[int, int]], services: Iterable[str] = ()) -> str:
    """Point URLs at local endpoints: `scheme://[user[:password]@]service[:port]` -> 127.0.0.1:<port>.

    `endpoints` maps a compose service name (or `localhost`) to {container port: local port}. A URL
    without a port uses the service's only port. Other names (randomuser.me) stay, except names in
    `services` (compose services that are not running), which are an error: that URL would not resolve.
    """
    not_running = set(services) - set(endpoints)

    def replace(match: re.Match) -> str:
        ports = endpoints.get(match["host"])
        if match["host"] in not_running:
            raise ValueError(f"{match[0]}: service {match['host']} is not running")
        if not ports:
            return match[0]
        if match["port"]:
            local = ports.get(int(match["port"]))
            if local is None:
                raise ValueError(f"{match[0]}: {match['host']} does not listen on port {match['port']}")
        elif len(ports) == 1:
            local = next(iter(ports.values()))
        else:
            raise ValueError(f"{match[0]}: which port of {match['host']}?")
        return f"127.0.0.1:{local}"

    return re.sub(
        r"(?:(?<=://)|(?<=@))(?P<host>[A-Za-z0-9][A-Za-z0-9_.-]*)(?::(?P<port>\d+))?(?=[/?#'\"\s]|$)",
        replace,
        value,
    )


def map_paths(value: str, container_root: Path) -> str:
    """/opt/airflow (the image's project root) -> this process's container folder."""
    return re.sub(rf"(?<![\w.-]){re.escape(IMAGE_PROJECT_ROOT)}(?![\w.-])", str(container_root), value)


def parse_volume(spec: str) -> tuple[str, str, bool]:
    """A short-syntax volume `source:target[:mode]` -> (source, target, is_bind_mount)."""
    source, target = spec.split(":")[:2]
    return source, target, source.startswith((".", "/", "~"))


# --- Running it --------------------------------------------------------------------------------------


@dataclass
class Process:
    """One service instance as a local process, in its own process group, output to one log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    popen: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends its children too
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def signal(self, sig: int) -> None:
        """Send `sig` to the whole process group, even after its leader exited."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (a warm shutdown), SIGKILL after `timeout`; then whatever is left of the group."""
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout=10)
        self.signal(signal.SIGKILL)  # children a finished leader left behind (task runners, workers)

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no output)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class StackFailed(RuntimeError):
    pass


@dataclass
class LocalComposeStack:
    """`docker compose up` of docker-compose.yaml, as local processes: start(), and stop() in a finally.

    env_file: the .env compose would read (e.g. written by scripts/make_env.py).
    profiles, scale: as `docker compose --profile P up --scale SERVICE=N`.
    """

    env_file: Path
    profiles: tuple[str, ...] = ()
    scale: Mapping[str, int] = field(default_factory=dict)
    compose_file: Path = COMPOSE_FILE
    startup_timeout: float = 240
    workdir: Path = field(init=False)
    project_dir: Path = field(init=False)  # AIRFLOW_PROJ_DIR
    image_env: dict[str, str] = field(init=False)  # ENV of the project image
    compose: dict = field(init=False)
    variables: dict[str, str] = field(init=False)
    processes: dict[str, Process] = field(default_factory=dict, init=False)
    endpoints: dict[str, dict[int, int]] = field(default_factory=dict, init=False)
    postgres: ThrowawayPostgres | None = field(default=None, init=False)
    redis: dict[str, ThrowawayRedis] = field(default_factory=dict, init=False)

    # -- lifecycle --

    def start(self) -> None:
        LOCAL_DIR.mkdir(exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="compose-stack-", dir=LOCAL_DIR))
        (self.workdir / "process-logs").mkdir()
        # AIRFLOW_PROJ_DIR: the code, linked from the repository. The state folders compose mounts
        # (logs, config, ...) are made by _container, as it makes every bind mount's source.
        self.project_dir = self.workdir / "project"
        self.project_dir.mkdir()
        for code in ("dags", "include", "dbt_project", "plugins"):
            if (REPO_ROOT / code).exists():
                (self.project_dir / code).symlink_to(REPO_ROOT / code)
        self.image_env = dockerfile_env()
        # What compose interpolates from: the shell (here: only where the project lives) and .env.
        self.variables = {**read_env_file(self.env_file), "AIRFLOW_PROJ_DIR": str(self.project_dir)}
        self.variables.setdefault("ENV_FILE_PATH", str(self.env_file))
        self.compose = load_compose(self.variables, self.compose_file)
        services = self.compose["services"]
        order = start_order(services, default_services(self.compose, self.profiles))
        # Every service name resolves from the start in compose: know every endpoint before any process
        # starts, so the database and broker servers go first and every listening port is chosen now.
        for name in order:
            if "build" in services[name]:
                self.endpoints[name] = self._listening_ports(services[name])
        for name in sorted(order, key=lambda name: "build" in services[name]):  # stable: servers first
            self._wait_for_dependencies(name)
            self._start_service(name)

    def stop(self) -> None:
        """Stop every process (all at once, then each waited for), then the servers; remove every folder."""
        processes = list(self.processes.values())
        for process in processes:
            process.signal(signal.SIGTERM)
        for process in processes:
            process.stop()
        for redis in self.redis.values():
            redis.stop()
        if self.postgres:
            self.postgres.stop()
        if getattr(self, "workdir", None):
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- what tests need --

    def url(self, service: str, container_port: int) -> str:
        return f"http://127.0.0.1:{self.endpoints[service][container_port]}"

    def service_env(self, name: str) -> dict[str, str]:
        """The environment the service's container would get, before any local mapping."""
        return service_environment(self.compose["services"][name], self.project_dir)

    def database_uri(self, service: str) -> str:
        """postgresql:// URI of a postgres service's database, as its POSTGRES_* variables define it."""
        return self.postgres.uri(*self._database(service))

    def instances(self, service: str) -> list[Process]:
        return [p for name, p in self.processes.items() if name == service or name.startswith(f"{service}-")]

    def diagnostics(self, lines: int = 40) -> str:
        """The tail of every process's output: what to read when something failed."""
        parts = [f"===== {name} ({p.log.name}) =====\n{p.tail(lines)}" for name, p in self.processes.items()]
        return "\n".join(parts)

    def check_alive(self) -> None:
        dead = [name for name, p in self.processes.items() if name != "airflow-init" and not p.alive()]
        if dead:
            raise StackFailed(f"stopped unexpectedly: {', '.join(dead)}")

    # -- starting services --

    def _start_service(self, name: str) -> None:
        service = self.compose["services"][name]
        image = service.get("image", "")
        if image.startswith("postgres:"):
            self._start_postgres(name)
        elif image.startswith("redis:"):
            self.redis[name] = ThrowawayRedis(parent=self.workdir)
            self.redis[name].start()
            self.endpoints[name] = {DEFAULT_PORTS["redis"]: self.redis[name].port}
        elif "build" in service:
            replicas = self.scale.get(name, 1)
            for index in range(1, replicas + 1):
                instance = name if replicas == 1 else f"{name}-{index}"
                self._start_project_container(name, instance, service)
        else:
            raise StackFailed(f"{name}: no local stand-in for image {image!r}")

    def _start_postgres(self, name: str) -> None:
        if self.postgres is None:
            self.postgres = ThrowawayPostgres(
                parent=self.workdir
            )  # set first: stop() cleans up after a failure
            self.postgres.start()
        self.postgres.create_database(*self._database(name))
        self.endpoints[name] = {DEFAULT_PORTS["postgres"]: self.postgres.port}

    def _database(self, service: str) -> tuple[str, str, str]:
        """(database, user, password) of a postgres service, from its POSTGRES_* as the image reads them."""
        env = self.service_env(service)
        user = env.get("POSTGRES_USER", "postgres")
        return env.get("POSTGRES_DB", user), user, env["POSTGRES_PASSWORD"]

    def _container(self, instance: str, service: Mapping) -> Path:
        """This instance's /opt/airflow: links to its mounts and the image's content; the rest is its own."""
        container = self.workdir / "containers" / instance
        root = container / IMAGE_PROJECT_ROOT.lstrip("/")
        for folder in (root, container / "tmp", container / "home"):
            folder.mkdir(parents=True)
        for relative, local in IMAGE_CONTENT.items():
            (root / relative).symlink_to(local)
        for spec in service.get("volumes") or []:
            source, target, is_bind = parse_volume(spec)
            if not target.startswith(IMAGE_PROJECT_ROOT + "/"):
                raise StackFailed(f"{instance}: no local place for {target} (outside {IMAGE_PROJECT_ROOT})")
            # A bind mount is the host folder itself; a named volume, one folder every service shares.
            local = Path(source).expanduser().resolve() if is_bind else self.workdir / "volumes" / source
            local.mkdir(parents=True, exist_ok=True)
            link = root / target.removeprefix(IMAGE_PROJECT_ROOT + "/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                link.unlink()
            link.symlink_to(local)
        return container

    def _start_project_container(self, name: str, instance: str, service: Mapping) -> None:
        container = self._container(instance, service)
        root = container / IMAGE_PROJECT_ROOT.lstrip("/")
        command = service.get("command") or []
        command = shlex.split(command) if isinstance(command, str) else list(command)
        entrypoint = service.get("entrypoint")
        entrypoint = shlex.split(entrypoint) if isinstance(entrypoint, str) else list(entrypoint or [])

        ports = self.endpoints[name]
        env = self._process_env(instance, service, container, root, command)
        env.update(self._port_settings(command, ports))

        log = self.workdir / "process-logs" / f"{instance}.log"
        if entrypoint[:1] == ["/bin/bash"]:
            # airflow-init: its script only checks the host and fixes ownership; the image entrypoint
            # does the work its environment asks for. Run those steps, then the script's project commands.
            process = Process(instance, [], env, root, log)
            self.processes[instance] = process
            self._run_init(process, "\n".join(command))
            return
        if entrypoint:
            argv = [self._local_executable(entrypoint[0]), *entrypoint[1:], *command]
            argv = self._map_args(argv, ports)
        else:
            argv = [str(VENV_BIN / "airflow"), *command]  # the image entrypoint runs `airflow <command>`
            if command[:2] == ["celery", "worker"]:
                argv += ["--celery-hostname", f"celery@{instance}"]  # the container's own hostname
            if command[:2] == ["celery", "worker"] or command[:1] == ["triggerer"]:
                # Their log servers listen on every interface (not configurable in Airflow 3.3.2): fine
                # inside a container, not on a test machine. The api-server reads the shared logs/ instead.
                argv += ["--skip-serve-logs"]
        self.processes[instance] = Process(instance, argv, env, root, log).start()

    @staticmethod
    def _listening_ports(service: Mapping) -> dict[int, int]:
        """{container port: free local port} for each port the service publishes or exposes."""
        ports = {}
        for spec in [*(service.get("ports") or []), *(service.get("expose") or [])]:
            ports[int(str(spec).rsplit(":", 1)[-1].split("/")[0])] = free_port()
        return ports

    def _process_env(
        self, instance: str, service: Mapping, container: Path, root: Path, command: list[str]
    ) -> dict[str, str]:
        env = {**self.image_env, **service_environment(service, self.project_dir)}
        services = self.compose["services"]
        env = {key: map_paths(map_hosts(value, self.endpoints, services), root) for key, value in env.items()}
        env.update(
            {
                # What the container runtime provides: a hostname, a home, a temp folder, a PATH.
                # Celery workers need a node name each (compose gives each container its own hostname);
                # the rest use this host's name, which Airflow records for their jobs (`jobs check`).
                "HOSTNAME": instance if command[:2] == ["celery", "worker"] else _airflow_hostname(),
                "HOME": str(container / "home"),
                "TMPDIR": str(container / "tmp"),
                "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
                "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    @staticmethod
    def _port_settings(command: list[str], ports: Mapping[int, int]) -> dict[str, str]:
        """Ports the Airflow components listen on, moved to free local ones (they all share one host)."""
        settings = {
            # The scheduler's /health server (ENABLE_HEALTH_CHECK) and the log servers of workers and
            # the triggerer: one per container in compose, so the same fixed port in each.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
        if command[:1] == ["api-server"] and 8080 in ports:
            settings.update({"AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(ports[8080])})
        return settings

    @staticmethod
    def _local_executable(program: str) -> str:
        if program in ("python", "python3"):
            return sys.executable
        return shutil.which(program) or program

    @staticmethod
    def _map_args(argv: list[str], ports: Mapping[int, int]) -> list[str]:
        """--host 0.0.0.0 -> 127.0.0.1, --port <container port> -> its local port."""
        mapped = list(argv)
        for index, arg in enumerate(mapped[:-1]):
            value = mapped[index + 1]
            if arg == "--host" and value == "0.0.0.0":  # noqa: S104 - the container address we replace
                mapped[index + 1] = "127.0.0.1"
            elif arg == "--port" and value.isdigit() and int(value) in ports:
                mapped[index + 1] = str(ports[int(value)])
        return mapped

    def _run_init(self, process: Process, script: str) -> None:
        airflow = str(VENV_BIN / "airflow")
        steps = []
        if process.env.get("_AIRFLOW_DB_MIGRATE", "").lower() == "true":
            steps.append([airflow, "db", "migrate"])
        if process.env.get("_AIRFLOW_WWW_USER_CREATE", "").lower() == "true":
            steps.append(
                [
                    airflow,
                    *("users", "create", "--role", "Admin", "--firstname", "Airflow", "--lastname", "Admin"),
                    *("--email", "airflowadmin@example.com"),
                    *("--username", process.env.get("_AIRFLOW_WWW_USER_USERNAME", "admin")),
                    *("--password", process.env["_AIRFLOW_WWW_USER_PASSWORD"]),
                ]
            )
        # Commands of the script that run the project's own tools from the image (dbt parse).
        root = str(process.cwd)
        for line in script.splitlines():
            if line.strip().startswith(IMAGE_PROJECT_ROOT + "/"):
                steps.append(shlex.split(map_paths(line.strip(), Path(root))))
        for argv in steps:
            process.argv = argv
            process.start()
            code = process.wait(timeout=self.startup_timeout)
            if code != 0:
                shown = " ".join(argv[:3])
                raise StackFailed(f"airflow-init: `{shown} ...` exited {code}:\n{process.tail(60)}")

    # -- dependencies and healthchecks --

    def _wait_for_dependencies(self, name: str) -> None:
        for dependency, condition in dependencies(self.compose["services"][name]).items():
            if condition == "service_completed_successfully":
                continue  # airflow-init runs to completion in _start_service, or raises
            if condition == "service_healthy":
                self.wait_healthy(dependency)

    def wait_healthy(self, name: str) -> None:
        """Wait until the service's own healthcheck passes (its test, mapped), or fail with its output."""
        deadline = time.monotonic() + self.startup_timeout
        probe = self._probe(name)
        while not probe():
            for process in self.instances(name):
                if not process.alive():
                    raise StackFailed(f"{process.name} exited while starting:\n{process.tail(60)}")
            if time.monotonic() > deadline:
                raise StackFailed(f"{name} still unhealthy after {self.startup_timeout:.0f} s")
            time.sleep(1)

    def run_healthchecks(self) -> dict[str, str]:
        """Run every started service's healthcheck once, all at once: {instance: "" or what failed}."""
        checks = {name: self._probe(name) for name in self.services_started() if self._has_healthcheck(name)}
        with ThreadPoolExecutor(max_workers=len(checks) or 1) as pool:
            results = dict(
                zip(checks, pool.map(lambda probe: probe(explain=True), checks.values()), strict=True)
            )
        return results

    def services_started(self) -> list[str]:
        """Servers started (each gets its endpoint as it starts), then every instance but airflow-init's."""
        services = self.compose["services"]
        servers = [name for name in self.endpoints if "build" not in services[name]]
        return servers + [p.name for p in self.processes.values() if p.name != "airflow-init"]

    def _has_healthcheck(self, name: str) -> bool:
        return bool(self._service_of(name).get("healthcheck"))

    def _service_of(self, name: str) -> Mapping:
        services = self.compose["services"]
        return services.get(name) or services[name.rsplit("-", 1)[0]]  # airflow-worker-2 -> airflow-worker

    def _probe(self, name: str):
        """A callable running the healthcheck of a service (all its instances) or of one instance.

        Called plainly it answers True/False; with explain=True, "" when healthy, else why not.
        """
        if name in self.redis:
            return _explained(self.redis[name].ping, f"{name}: no PONG")
        if self.postgres is not None and name in self.endpoints and not self.instances(name):
            return self._pg_isready(name)
        test = self._service_of(name)["healthcheck"]["test"]
        processes = self.instances(name) if name in self.compose["services"] else [self.processes[name]]
        if test[:2] == ["CMD", "curl"]:
            return self._http_probe(name.rsplit("-", 1)[0] if name not in self.endpoints else name, test)
        if test[0] in ("CMD", "CMD-SHELL"):
            # Inside the container: its environment (HOSTNAME included), its folder, its PATH.
            argv = ["bash", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]

            def run(explain: bool = False) -> bool | str:
                failures = []
                for process in processes:
                    result = subprocess.run(
                        argv, env=process.env, cwd=process.cwd, capture_output=True, text=True, timeout=180
                    )
                    if result.returncode != 0:
                        failures.append(f"{process.name}: {(result.stdout + result.stderr)[-1500:]}")
                return "\n".join(failures) if explain else not failures

            return run
        raise StackFailed(f"{name}: no local runner for healthcheck {test}")

    def _pg_isready(self, name: str):
        test = self.compose["services"][name]["healthcheck"]["test"]
        args = [str(self.postgres.bindir / "pg_isready"), *test[2:]]
        args += ["-h", "127.0.0.1", "-p", str(self.postgres.port)]
        if "-d" not in test:
            database, _, _ = self._database(name)
            args += ["-d", database]
        ready = lambda: subprocess.run(args, capture_output=True, check=False).returncode == 0  # noqa: E731
        return _explained(ready, f"{name}: pg_isready failed")

    def _http_probe(self, service: str, test: list[str]):
        url = map_hosts(test[-1], {"localhost": self.endpoints[service]})

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our local server
                    return 200 <= response.status < 300
            except (urllib.error.URLError, OSError):
                return False

        return _explained(healthy, f"{service}: {url} did not answer 2xx")


def _airflow_hostname() -> str:
    """The name Airflow's default hostname_callable gives this host (its own getfqdn, not socket's)."""
    from airflow.utils.net import getfqdn

    return getfqdn()


def _explained(check, failure: str):
    def run(explain: bool = False) -> bool | str:
        ok = check()
        return ("" if ok else failure) if explain else ok

    return run
