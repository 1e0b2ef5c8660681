"""`make ui`: the Airflow UI on this machine, without Docker, until Ctrl-C.

The services the Docker stack runs (scheduler, dag-processor, triggerer, api-server), with the
LocalExecutor instead of Celery, on the same throwaway PostgreSQL (and stand-in user API) as
`make demo`. Everything listens on 127.0.0.1 only. The admin's password is generated for this run
and printed once, with the URL. Ctrl-C stops every service, then removes the databases and the
Airflow home: nothing is left behind.

Why not `airflow standalone`, which starts the same four: its scheduler and triggerer also serve
their task logs on every interface (ports 8793 and 8794). Here every process shares one Airflow
home, so the api-server reads the log files directly and they are not started (--skip-serve-logs).

    python -m scripts.ui [--port 8080] [--unpause]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from scripts.local_env import DagsDoNotParse, LocalAirflow, local_airflow

ADMIN = "admin"
SERVICES = (
    ("scheduler", "--skip-serve-logs"),
    ("dag-processor",),
    ("triggerer", "--skip-serve-logs"),
    ("api-server", "--workers", "1"),
)

BANNER = """
==> The Airflow UI: http://127.0.0.1:{port}
    user {user}, password {password}   (generated for this run)
    DAGs {dags}: {paused}; trigger one from its page (the play button).
    The warehouse: psql "{warehouse}"{standin}
    Ctrl-C stops Airflow and removes everything this command started.
"""
STANDIN = """
    The stand-in user API: {url}  (faults on request: template/standin_user_api/server.py)"""


def main(argv: list[str]) -> int | str:
    parser = argparse.ArgumentParser(prog="python -m scripts.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="the api-server's port (default 8080)")
    parser.add_argument(
        "--unpause",
        action="store_true",
        help="unpause the DAGs: each runs on its schedule",
    )
    args = parser.parse_args(argv)
    if not port_is_free(args.port):
        return f"port {args.port} on 127.0.0.1 is in use: stop what holds it, or `make ui PORT=8081`"
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up as Ctrl-C does
    # Ctrl-C too, explicitly: started in the background by a shell (`make ui &`, a script) it would
    # inherit SIGINT ignored, and then neither Ctrl-C nor `kill -INT` could stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    print("Starting a throwaway PostgreSQL; migrating Airflow's database ...")
    try:
        with local_airflow() as local, airflow_services(local, args.port, unpause=args.unpause) as services:
            print(
                BANNER.format(
                    port=args.port,
                    user=ADMIN,
                    password=services.password,
                    dags=dag_list(local),
                    paused="unpaused" if args.unpause else "paused (`make ui UNPAUSE=1` unpauses them)",
                    warehouse=local.warehouse_uri,
                    standin=STANDIN.format(url=local.standin_api_url) if local.standin_api_url else "",
                ),
                local.settings.sources(),
                flush=True,
            )
            while services.running():
                time.sleep(1)
            return "an Airflow service stopped on its own: see its output above"
    except ServicesDidNotStart:
        return "the api-server did not come up: see the services' output above"
    except KeyboardInterrupt:
        print("\n==> Stopped; the throwaway databases and the Airflow home are removed.", flush=True)
        return 0


def dag_list(local: LocalAirflow) -> str:
    try:
        return ", ".join(local.dags())
    except DagsDoNotParse:  # the UI shows each import error
        return "(the DAG folder does not parse: see the UI's import errors)"


class ServicesDidNotStart(RuntimeError):
    pass


@dataclass
class Services:
    """The running Airflow services of a local Airflow, and how to reach them."""

    env: dict[str, str]
    port: int
    password: str  # of ADMIN
    processes: list[subprocess.Popen]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return all(process.poll() is None for process in self.processes)


@contextlib.contextmanager
def airflow_services(
    local: LocalAirflow,
    port: int,
    unpause: bool = False,
    extra_env: dict[str, str] | None = None,
    output: IO[str] | None = None,
) -> Iterator[Services]:
    """The Docker stack's services (LocalExecutor instead of Celery) on `local`, on 127.0.0.1:`port`,
    until the block ends; `extra_env` adds Airflow settings (the benchmarks set their DAG folder)."""
    home = Path(local.env["AIRFLOW_HOME"])
    passwords_file = home / "simple_auth_manager_passwords.json"
    password = secrets.token_urlsafe(12)
    passwords_file.write_text(json.dumps({ADMIN: password}))  # so Airflow generates no other one
    passwords_file.chmod(0o600)
    env = {
        **local.env,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # One secret for the api-server and the task runners, made for this run.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),  # 64+ bytes for its HS512
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(not unpause),
        **(extra_env or {}),
    }
    services = Services(env, port, password, [])
    try:
        _start(env, services.processes, output)
        if not _wait_until_serving(port, services.processes):
            raise ServicesDidNotStart(port)
        yield services
    finally:
        _stop(services.processes)


def _start(env: dict[str, str], services: list[subprocess.Popen], output: IO[str] | None) -> None:
    """The services, in one process group of their own: Ctrl-C reaches them through us, once."""
    airflow = str(Path(sys.executable).parent / "airflow")
    for command in SERVICES:
        group = services[0].pid if services else 0  # 0: a new group, led by the first service
        services.append(
            subprocess.Popen(
                [airflow, *command],
                env=env,
                process_group=group,
                stdout=output,
                stderr=output and subprocess.STDOUT,
            )
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def port_is_free(port: int) -> bool:
    """Whether the api-server could listen on 127.0.0.1:`port`. It binds with SO_REUSEADDR (uvicorn
    does), so a connection of an earlier server still in TIME_WAIT does not count as "in use"."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_until_serving(port: int, services: list[subprocess.Popen], timeout: float = 300) -> bool:
    """True once the api-server answers its health check; False if a service ended first."""
    deadline = time.monotonic() + timeout
    while all(service.poll() is None for service in services) and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5):
                return True
        except OSError:
            time.sleep(1)
    return False


def _stop(services: list[subprocess.Popen]) -> None:
    """SIGTERM to the group: each service shuts down cleanly; SIGKILL for what is left after 60 s."""
    if not services:
        return
    group = services[0].pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return  # already gone
    deadline = time.monotonic() + 60
    for service in services:
        try:
            service.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            break
    with contextlib.suppress(ProcessLookupError):  # task runners the services started, if any are left
        os.killpg(group, signal.SIGKILL)
    for service in services:
        service.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
