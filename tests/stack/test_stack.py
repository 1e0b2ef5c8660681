"""The docker compose stack, proven without Docker: docker-compose.yaml's own services as local processes.

One stack per module (scripts/compose_stack.py): a throwaway PostgreSQL holding the metadata and
warehouse databases, a throwaway Redis, airflow-init's migration and admin user, the api-server,
scheduler, dag-processor, triggerer, the stand-in user API (profile `standin`) and TWO Celery workers,
each process in a private folder standing for its container. The test logs in through the REST API,
unpauses and triggers user_processing, and checks every task instance and the loaded rows. A task
that handed data to the next through its worker's local disk fails here, as it would in Docker.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.standin_user_api import generate_page
from include.user_processing.extract import seed_for
from include.user_processing.user_api import page_sizes
from scripts.compose_stack import LocalComposeStack, StackFailed, read_env_file
from scripts.local_env import REPO_ROOT, PostgresNotInstalled, RedisNotInstalled
from scripts.make_env import GENERATED, write_env
from tests.stack.conftest import ApiClient, ApiError

pytestmark = pytest.mark.stack

DAG_ID = "user_processing"
USERS = 25  # one small page: the point is the stack, not the volume
WORKERS = 2
# What the test writes into the generated .env, as a user would: the stand-in API instead of randomuser.me.
SETTINGS = {"AIRFLOW_CONN_USER_API": "http://user-api:8000"}
# Secrets make env generates (every generated value but the uid): none may appear in a task log,
# even at DEBUG level.
SECRET_VARIABLES = sorted(set(GENERATED) - {"AIRFLOW_UID"})
PARSE_TIMEOUT = 120  # seconds until the dag-processor has the DAG in the database
RUN_TIMEOUT = 420  # seconds for the whole run, dbt tasks included


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalComposeStack]:
    with tempfile.TemporaryDirectory(prefix="compose-env-") as folder:
        env_file = Path(folder) / ".env"
        write_env(env_file, REPO_ROOT / ".env.example", SETTINGS)  # what `make env` writes, plus SETTINGS
        with env_file.open("a") as env:  # the most verbose logs, to prove they leak no secret
            env.write("AIRFLOW__LOGGING__LOGGING_LEVEL=DEBUG\n")
        stack = LocalComposeStack(env_file, profiles=("standin",), scale={"airflow-worker": WORKERS})
        try:  # stop() exactly once, whatever happens from start() on (Ctrl-C included)
            stack.start()
        except (PostgresNotInstalled, RedisNotInstalled) as missing:
            pytest.fail(str(missing), pytrace=False)
        except Exception as error:
            pytest.fail(f"the stack did not start: {error}\n{stack.diagnostics(60)}", pytrace=False)
        else:
            yield stack
        finally:
            stack.stop()


@pytest.fixture(scope="module")
def api(stack: LocalComposeStack) -> ApiClient:
    """Logged in as the admin airflow-init created, with the credentials from the generated .env."""
    init = stack.service_env("airflow-init")
    client = ApiClient(stack.url("airflow-apiserver", 8080))
    return client.login(init["_AIRFLOW_WWW_USER_USERNAME"], init["_AIRFLOW_WWW_USER_PASSWORD"])


def test_every_service_is_running_and_passes_its_own_healthcheck(stack, api):
    stack.check_alive()
    deadline = time.monotonic() + 90
    while True:  # scheduler, triggerer and dag-processor report in by heartbeat: give them a moment
        health = api.request("GET", "/api/v2/monitor/health")
        unhealthy = {
            name: part.get("status") for name, part in health.items() if part.get("status") != "healthy"
        }
        if not unhealthy or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert not unhealthy, f"not healthy: {unhealthy} (full answer: {health})"
    assert {"metadatabase", "scheduler", "triggerer", "dag_processor"} <= health.keys()
    # The healthcheck commands of docker-compose.yaml itself (`airflow jobs check`, `celery inspect
    # ping`, curl, pg_isready, redis ping), run in each service's own environment.
    results = stack.run_healthchecks()
    assert {"postgres", "warehouse", "redis", "airflow-scheduler", "airflow-worker-2"} <= results.keys()
    failed = {name: why for name, why in results.items() if why}
    assert not failed, failed


def test_a_triggered_run_succeeds_on_two_workers_and_loads_the_users(stack, api):
    wait_for_dag(api)
    # Today's midnight: the run the scheduler would create itself once the DAG is unpaused, so
    # unpausing adds no second run.
    logical_date = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    run = api.request(
        "POST",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        {"logical_date": logical_date.isoformat(), "conf": {"users": USERS}},
    )
    api.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    state = wait_for_run(api, run["dag_run_id"], stack)

    task_instances = api.request(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances?limit=1000"
    )["task_instances"]
    # Whatever tasks the DAG has (the dbt tasks included): every one of them must have succeeded.
    not_successful = {_label(ti): ti["state"] for ti in task_instances if ti["state"] != "success"}
    assert task_instances, "the run has no task instances"
    assert not not_successful, f"tasks not successful: {not_successful}\n" + task_log_tails(
        stack, run["dag_run_id"], not_successful
    )
    assert state == "success"

    # The rows, read the way a user would: psql against the warehouse database.
    rows = stack.postgres.psql(
        stack.database_uri("warehouse"),
        *("--no-align", "--tuples-only", "--field-separator=\t"),
        *("-c", "SELECT user_id, firstname, lastname, country FROM users ORDER BY user_id"),
    ).stdout.splitlines()
    assert rows == expected_rows(logical_date, USERS)

    # Both workers took tasks, so files really went from one worker to the other through staging.
    received = {p.name: tasks_received(p.log) for p in stack.instances("airflow-worker")}
    assert len(received) == WORKERS
    assert all(received.values()), f"tasks per worker: {received}"

    assert_task_logs_hold_no_secret(stack, run["dag_run_id"], logical_date)


def assert_task_logs_hold_no_secret(stack: LocalComposeStack, run_id: str, logical_date: datetime) -> None:
    """The real workers' task logs, written at DEBUG level: no stack secret, no API password or hash.

    (`airflow dags test` at DEBUG does print the secrets it masks: tests/reliability/test_security.py.)
    """
    logs = sorted(task_log_folder(stack, run_id).rglob("*.log"))
    assert logs, "no task logs were written"
    text = "\n".join(log.read_text(errors="replace") for log in logs)
    assert '"level":"debug"' in text.replace(" ", ""), "the task logs are not at DEBUG level"
    generated = read_env_file(stack.env_file)
    leaked = [name for name in SECRET_VARIABLES if generated[name] in text]
    assert not leaked, f"in the task logs: {leaked}"
    seed = seed_for(DAG_ID, logical_date)
    for user in generate_page(seed, 1, USERS)["results"]:
        login = user["login"]
        assert login["salt"] not in text
        assert login["sha256"] not in text


def test_every_process_of_the_stack_listens_on_localhost_only(stack):
    import psutil

    pids = set()
    for process in stack.processes.values():
        if process.alive():
            leader = psutil.Process(process.popen.pid)
            pids |= {leader.pid, *(child.pid for child in leader.children(recursive=True))}
    listening = {
        (connection.laddr.ip, connection.laddr.port, connection.pid)
        for connection in psutil.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN and connection.pid in pids
    }
    assert listening, "no process of the stack is listening?"
    assert {ip for ip, _, _ in listening} == {"127.0.0.1"}, sorted(listening)


def wait_for_dag(api: ApiClient) -> None:
    """Until the dag-processor has put the DAG in the database; fails at once on an import error."""
    deadline = time.monotonic() + PARSE_TIMEOUT
    while True:
        errors = api.request("GET", "/api/v2/importErrors")["import_errors"]
        if errors:
            pytest.fail(
                "import errors:\n" + "\n".join(e["filename"] + "\n" + e["stack_trace"] for e in errors)
            )
        try:
            api.request("GET", f"/api/v2/dags/{DAG_ID}")
            return
        except ApiError as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(2)


def wait_for_run(api: ApiClient, run_id: str, stack: LocalComposeStack) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        state = api.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            return state
        if time.monotonic() > deadline:
            raise StackFailed(f"run {run_id} still {state} after {RUN_TIMEOUT} s")
        stack.check_alive()
        time.sleep(3)


def expected_rows(logical_date: datetime, total: int) -> list[str]:
    """What the stand-in API serves for this date's seed, as psql prints the loaded rows."""
    seed = seed_for(DAG_ID, logical_date)
    users = [
        user
        for page, size in enumerate(page_sizes(total), start=1)
        for user in generate_page(seed, page, size)["results"]
    ]
    rows = [
        (u["login"]["uuid"], u["name"]["first"], u["name"]["last"], u["location"]["country"]) for u in users
    ]
    return ["\t".join(row) for row in sorted(rows)]


def tasks_received(worker_log: Path) -> int:
    """How many Airflow workloads a Celery worker received, from its own output."""
    return len(
        re.findall(r"Task \S*execute_workload\[[^\]]+\] received", worker_log.read_text(errors="replace"))
    )


def task_log_folder(stack: LocalComposeStack, run_id: str) -> Path:
    """Where Airflow writes the run's task logs: logs/ in AIRFLOW_PROJ_DIR, shared by every service."""
    return stack.project_dir / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"


def task_log_tails(stack: LocalComposeStack, run_id: str, task_ids: dict, lines: int = 30) -> str:
    """The end of the Airflow task log of each task that did not succeed (logs/ is shared, as in compose)."""
    logs = task_log_folder(stack, run_id)
    parts = []
    for label in task_ids:
        task_id = label.split("[")[0]
        for log in sorted(logs.glob(f"task_id={task_id}/**/attempt=*.log")):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            parts.append(f"----- {log.relative_to(logs)} -----\n{tail}")
    return "\n".join(parts)


def _label(task_instance: dict) -> str:
    index = task_instance.get("map_index", -1)
    return task_instance["task_id"] + (f"[{index}]" if index not in (-1, None) else "")
