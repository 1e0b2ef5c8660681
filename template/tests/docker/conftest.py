"""`make test-docker`: the unmodified docker-compose.yaml and Dockerfile, on a real Docker engine.

One stack per session, in this order: an engine (template/tests/docker/engine.py), the base images pulled or
stood in (images.py), a scratch copy of the checkout with its own `make env` (project.py), then
`docker compose build` and `docker compose up -d --wait`. The tests in test_compose_stack.py then use it
as a user would, in file order, with those of test_worker_elsewhere.py (a worker on the second host)
before its README, secret and exposure tests; then test_image.py checks the image alone. `make image`
runs once in the same copy, for the first test that needs its image. The whole session logs tasks to
an object store of its own (remote logging). At the end the stack is taken down with its volumes and
a private engine is stopped, pass or fail. On a failure, the end of every service's log is shown.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from include.common.project import OBJECT_STORE_CONN_ID
from scripts.airflow_api import AirflowApi
from scripts.local_env import ThrowawayS3
from template.tests.docker.engine import DockerEngine, EngineNotAvailable
from template.tests.docker.images import BaseImage, StandInError, provide
from template.tests.docker.project import ComposeError, ComposeProject, remove_leftovers
from template.tests.docker.second_host import SecondHost, SecondHostNotAvailable
from template.tests.stack.compose import ComposeNotInstalled, compose_command

# What the test writes into the generated .env, as a user would: the stand-in API and its profile,
# flower too.
SETTINGS = {
    "AIRFLOW_CONN_USER_API": "http://user-api:8000",
    "COMPOSE_PROFILES": "standin,flower",
}
# And into airflow.env: a connection, a variable and an option of the user's own; the option is the
# most verbose log level, to prove that even it leaves no secret in a log (the connection's password
# included).
# A throwaway password of the user's own connection (not one of the stack's).
USER_PASSWORD = "Reader2Secret9Pw"  # pragma: allowlist secret
USER_SETTINGS = {
    "AIRFLOW_CONN_WAREHOUSE2": f"postgresql://reader:{USER_PASSWORD}@warehouse:5432/warehouse",
    "AIRFLOW_VAR_GREETING": "hello from airflow.env",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
    # Options a user may set too, for the fault and load tests: runs may overlap (five at once), a
    # failed task is retried within seconds (5-10 s, then 10-20 s, ...), and the task of a killed
    # worker is found after 30 s without a heartbeat instead of Airflow's 5 minutes.
    "AIRFLOW__USER_PROCESSING__MAX_ACTIVE_RUNS": "5",
    "AIRFLOW__USER_PROCESSING__RETRY_DELAY": "5",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
}
# Task logs on the object store (docs/deploying.md), for the whole session: every task's log is uploaded
# there when the task ends, and the api-server reads a finished task's log from there. The connection
# (AIRFLOW_CONN_OBJECT_STORE) is the object_store fixture's, added beside these.
REMOTE_LOGGING = {
    "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
    "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": OBJECT_STORE_CONN_ID,
}
LOG_PREFIX = "logs"  # in the object store's bucket
# What a local run leaves in the checkout, planted before `make image`: none of it may reach the build.
PLANTED = {
    "include/__pycache__/planted.cpython-311.pyc": b"\0",
    "dbt_project/.user.yml": b"id: planted\n",
    "dbt_project/logs/dbt.log": b"planted\n",
    "dbt_project/target/run_results.json": b"{}\n",
    ".venv/pyvenv.cfg": b"home = /usr/bin\n",
}

# What the tests themselves write into the checkout as its user, not the stack: what a local run leaves
# (planted before `make image`) and the worker's environment (docs/deploying.md). The down test leaves
# them out of its owner check.
WRITTEN_AS_THE_USER = (*PLANTED, "worker.env")

# A symlink planted in logs/ before `up`, pointing outside the checkout: airflow-init's chown must
# change the link itself, never the file it points to (test_compose_stack.py checks both).
PLANTED_LINK = "logs/planted-link"
OUTSIDE_FILE = "outside-the-checkout.txt"  # beside the scratch checkout, not in it
UP_TIMEOUT = 600  # seconds for `up --wait`: first start, migrations, every healthcheck

STARTED = time.monotonic()
REPORT: list[str] = []  # printed at the end of the session: images, versions, timings


def pytest_configure(config: pytest.Config) -> None:
    global CONFIG
    CONFIG = config


CONFIG: pytest.Config | None = None


def say(line: str) -> None:
    """Progress, shown as the run goes (the steps take minutes) and again in the summary."""
    line = f"{line}  (at {time.monotonic() - STARTED:.0f} s)"
    REPORT.append(line)
    capture = CONFIG.pluginmanager.get_plugin("capturemanager") if CONFIG else None
    if capture is None:
        print(f"[docker] {line}", flush=True)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n[docker] {line}", flush=True)


README_TEST = "test_the_readme_course_commands_work_as_written"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_worker_elsewhere.py runs on test_compose_stack.py's stack, which that file's last test takes
    down: its tests go right before the README's commands there, so that the secret scan after them
    reads what its worker wrote to the object store too."""
    elsewhere = [item for item in items if item.path.name == "test_worker_elsewhere.py"]
    rest = [item for item in items if item not in elsewhere]
    before = [i for i, item in enumerate(rest) if item.name == README_TEST]
    if elsewhere and before:
        items[:] = rest[: before[0]] + elsewhere + rest[before[0] :]


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORT:
        terminalreporter.section("make test-docker")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    try:
        compose_command()
        docker = DockerEngine.start(say)
    except (EngineNotAvailable, ComposeNotInstalled) as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        compose = subprocess.run([*compose_command(), "version"], capture_output=True, text=True, check=False)
        say(
            f"engine: {docker.description}; {compose.stdout.strip()} ({' '.join(compose_command())})",
        )
        yield docker
    finally:
        docker.stop()


@pytest.fixture(scope="session")
def second_host(engine: DockerEngine) -> Iterator[SecondHost]:
    """A second machine beside this one (second_host.py): a network namespace with a Docker engine in
    it, reaching this host only at `first_address`. Stopped at the end, pass or fail."""
    started = time.monotonic()
    try:
        host = SecondHost.start(say)
    except SecondHostNotAvailable as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        say(f"second host: {host.engine.description}; started in {time.monotonic() - started:.1f} s")
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="session")
def object_store(second_host: SecondHost) -> Iterator[ThrowawayS3]:
    """An S3 server (rclone serve s3, scripts/local_env.py) on this host's address on the veth: the only
    address both this host's containers and the second host's reach. Stopped at the end."""
    try:
        server = ThrowawayS3(address=second_host.first_address).start()
    except FileNotFoundError as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        say(f"object store: {server.version()} at {server.endpoint_url}, bucket {server.bucket}")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def project(
    engine: DockerEngine, second_host: SecondHost, object_store: ThrowawayS3
) -> Iterator[ComposeProject]:
    """The scratch checkout after `make env` and the SETTINGS edits; taken down and removed at the end.
    The second host is started before it and stopped after it: while the second host is there, what
    the stack sends toward it goes nowhere else (second_host.py)."""
    # First: a run killed before its teardown leaves containers that the engine restarts
    # (`restart: always`), holding the very ports this run publishes.
    remove_leftovers(engine, say)
    scratch = ComposeProject.copy_of_checkout(engine)
    try:
        made = subprocess.run(
            ["make", "env"], cwd=scratch.folder, capture_output=True, text=True, check=False
        )
        assert made.returncode == 0, f"make env failed:\n{made.stdout}{made.stderr}"
        scratch.set_dotenv(SETTINGS)
        busy = [port for port in published_host_ports(scratch) if _in_use(port)]
        if busy:
            pytest.fail(
                f"ports {busy} on 127.0.0.1 are in use (another stack?): the run publishes the stack's "
                "default ports. Stop what holds them, e.g. `docker compose down`, and run it again.",
                pytrace=False,
            )
        scratch.set_user_settings(
            {
                **USER_SETTINGS,
                **REMOTE_LOGGING,
                "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"s3://{object_store.bucket}/{LOG_PREFIX}",
                f"AIRFLOW_CONN_{OBJECT_STORE_CONN_ID.upper()}": object_store.connection(),
            }
        )
        scratch.owners_before = scratch.owners()
        plant_link(scratch)
        yield scratch
    finally:
        scratch.remove()


@pytest.fixture(scope="session")
def base_images(engine: DockerEngine, project: ComposeProject) -> list[BaseImage]:
    names = base_image_names(project)
    started = time.monotonic()
    try:
        images = provide(engine, names, project.folder, say)
    except StandInError as error:
        pytest.fail(str(error), pytrace=False)
    for image in images:
        say(f"base image {image.name}: {image.origin}")
    say(f"base images ready in {time.monotonic() - started:.0f} s")
    return images


def base_image_names(project: ComposeProject) -> list[str]:
    """The images the Dockerfile builds FROM, and those the compose file runs without building."""
    names = re.findall(r"^FROM\s+(?:--\S+\s+)?(\S+)", (project.folder / "Dockerfile").read_text(), re.M)
    config = json.loads(project.compose("--profile", "*", "config", "--format", "json").stdout)
    for service in config["services"].values():
        if "build" not in service and service["image"] not in names:
            names.append(service["image"])
    return names


@pytest.fixture(scope="session")
def stack(project: ComposeProject, base_images) -> ComposeProject:
    """`docker compose build`, then `docker compose up -d --wait`: every service healthy."""
    for step, args, timeout in (
        ("docker compose build", ("build",), 1800),
        (
            "docker compose up -d --wait",
            ("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT)),
            UP_TIMEOUT + 60,
        ),
    ):
        started = time.monotonic()
        try:
            project.compose(*args, timeout=timeout)
        except (ComposeError, subprocess.TimeoutExpired) as error:
            pytest.fail(f"{step} failed: {error}\n{project.logs(60)}", pytrace=False)
        say(f"{step}: {time.monotonic() - started:.0f} s")
    return project


@pytest.fixture(scope="session")
def image(project: ComposeProject, base_images) -> Iterator[str]:
    """`make image` in the scratch copy, with what a local run leaves behind planted first (none of it
    may reach the build: test_image.py); the image is removed at the end. The image test_image.py
    checks, and the one the worker on the second host runs (test_worker_elsewhere.py)."""
    for name, content in PLANTED.items():
        path = project.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    started = time.monotonic()
    made = subprocess.run(
        ["make", "image"],
        cwd=project.folder,
        env=project.engine.env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = made.stdout + made.stderr
    assert made.returncode == 0, f"make image failed:\n{output[-6000:]}"
    printed = re.search(r"^image: (\S+)$", made.stdout, re.M)
    assert printed, f"make image printed no `image: <name>:<tag>` line:\n{made.stdout[-3000:]}"
    reference = printed[1]
    size = int(project.engine.docker("image", "inspect", "--format", "{{.Size}}", reference).stdout)
    say(f"make image: {reference}, {size / 1e9:.2f} GB, in {time.monotonic() - started:.0f} s")
    try:
        yield reference
    finally:
        project.engine.docker("image", "rm", reference, check=False)


@pytest.fixture(scope="session")
def api(stack: ComposeProject) -> AirflowApi:
    """Logged in at the api-server's published port with the admin that make env generated."""
    address = stack.compose("port", "airflow-apiserver", "8080").stdout.strip()
    env = stack.dotenv()
    return AirflowApi(f"http://{address}").login(
        env["_AIRFLOW_WWW_USER_USERNAME"], env["_AIRFLOW_WWW_USER_PASSWORD"]
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failed test, show the end of every service's log under the failure."""
    outcome = yield
    report = outcome.get_result()
    project = getattr(item, "funcargs", {}).get("stack")
    if report.when == "call" and report.failed and isinstance(project, ComposeProject):
        try:
            report.sections.append(("docker compose logs (last lines of each service)", project.logs()))
        except (ComposeError, subprocess.SubprocessError, OSError) as error:
            report.sections.append(("docker compose logs", f"could not be read: {error}"))


def plant_link(project: ComposeProject) -> None:
    """logs/planted-link -> ../../outside-the-checkout.txt, a file of this test's user outside the
    checkout."""
    outside = project.folder.parent / OUTSIDE_FILE
    outside.write_text("not airflow-init's to chown\n")
    link = project.folder / PLANTED_LINK
    link.symlink_to(os.path.relpath(outside, link.parent))


def published_host_ports(project: ComposeProject) -> list[int]:
    """The host ports the stack publishes, as `docker compose config` renders its .env (every profile)."""
    config = json.loads(project.compose("--profile", "*", "config", "--format", "json").stdout)
    return sorted(int(port["published"]) for s in config["services"].values() for port in s.get("ports", []))


def _in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
