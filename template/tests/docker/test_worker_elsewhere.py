"""A Celery worker on the second host (second_host.py), from make image's image alone, joined to the
compose stack only through what the stack publishes; task logs and run folders on the object store.

Run on test_compose_stack.py's stack, before its README, secret and exposure tests (conftest.py orders
them), with the commands of docs/deploying.md's "A worker on another machine", read from that file:
PUBLISH_ADDRESS set to this host's address on the veth, `docker compose config | python3 -m
scripts.worker_env`, then `docker run` on the second host's engine, the image brought there by
`docker save | docker load`. No bind mount, no volume: the worker reaches the broker, the result
backend, the execution API, the warehouse and the user API at their published ports, the object
store at its address, nothing else. The first host's own workers are stopped meanwhile, so every
task of a run is the second host's (each task instance's `hostname` says so).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from include.common.run_folder import RUN_FOLDER_URL_VARIABLE
from scripts import worker_env
from scripts.airflow_api import AirflowApi
from scripts.local_env import ThrowawayS3
from template.tests.docker.conftest import LOG_PREFIX, say
from template.tests.docker.engine import DockerEngine
from template.tests.docker.project import ComposeProject
from template.tests.docker.second_host import SecondHost
from template.tests.docker.test_compose_stack import (
    DAG_ID,
    LOG_TIMEOUT,
    PARSE_TIMEOUT,
    USERS,
    assert_marts_match_the_served_users,
    assert_run_succeeds,
    assert_running,
    assert_warehouse_holds_exactly_the_served_users,
    attempt_error,
    published_ports,
    task_instance,
    users_lock,
    wait_for_blocked_load,
    wait_for_task,
    workers,
)

pytestmark = pytest.mark.docker

DEPLOYING = Path(__file__).resolve().parents[3] / "docs" / "deploying.md"
SECTION = "## A worker on another machine"
ELSEWHERE_DATE, CUT_OFF_DATE = (f"2024-04-0{day}T00:00:00+00:00" for day in (1, 2))
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"


def deploying_commands(prefix: str) -> list[str]:
    """The lines of the section's bash blocks in docs/deploying.md that start with prefix."""
    text = DEPLOYING.read_text()
    start = text.index(SECTION)
    section = text[start : text.find("\n## ", start + len(SECTION))]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, re.M | re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    found = [line for line in lines if line.startswith(prefix)]
    assert found, f"no `{prefix} ...` line in {DEPLOYING.name}, section {SECTION!r}"
    return found


@pytest.fixture(scope="module")
def elsewhere(
    stack: ComposeProject, api: AirflowApi, second_host: SecondHost, object_store: ThrowawayS3, image: str
):
    """The stack published on this host's veth address, the run folders on the object store (a
    Variable, for these runs only), worker.env written and the image on the second host; the first
    host's workers stopped. Undone at the end: the Variable, the first host's workers, the second
    host's power."""
    if not second_host.running:
        second_host.power_on()
    started = time.monotonic()
    stack.set_dotenv({"PUBLISH_ADDRESS": second_host.first_address})
    # Every service that publishes a port, from the configuration: a stopped one is republished too.
    config = json.loads(stack.compose("config", "--format", "json").stdout)
    services = sorted(set(worker_env.published(config)) - {"flower"})
    stack.compose("up", "-d", "--wait", "--no-deps", *services, timeout=600)
    say(
        f"PUBLISH_ADDRESS={second_host.first_address}, docker compose up -d {' '.join(services)}:"
        f" {time.monotonic() - started:.0f} s"
    )
    # The api-server is no longer on 127.0.0.1: the session's client follows it (0.0.0.0, which the
    # exposure test publishes on later, includes this address).
    address, port = published_ports(stack)[("airflow-apiserver", 8080)]
    api.base_url = f"http://{address}:{port}"
    (command,) = deploying_commands("docker compose config")
    made = stack.shell(command)
    assert made.returncode == 0, f"{command}\n{made.stdout}{made.stderr}"
    say(f"{command}: {made.stdout.strip()}")
    say(second_host.load(stack.engine, image))
    api.wait_for_dag(DAG_ID, PARSE_TIMEOUT)
    variable = {"key": RUN_FOLDER_URL_VARIABLE, "value": object_store.run_folder_url()}
    api.request("POST", "/api/v2/variables", variable)
    stack.compose("stop", "airflow-worker", timeout=300)
    try:
        yield image
    finally:
        api.request("DELETE", f"/api/v2/variables/{RUN_FOLDER_URL_VARIABLE}")
        second_host.power_on()
        stack.compose("start", "airflow-worker", timeout=300)


def start_worker(stack: ComposeProject, engine: DockerEngine, image: str) -> str:
    """docs/deploying.md's `docker run` of the worker on the second host's engine, in the folder that
    holds worker.env; its hostname once it answers Celery's ping."""
    engine.docker("rm", "--force", "airflow-worker", check=False)  # a worker of the test before
    (run,) = deploying_commands("docker run")
    started = subprocess.run(
        ["bash", "-c", run],
        cwd=stack.folder,
        env={**engine.env, "IMAGE": image},
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, f"{run}\n{started.stderr}"
    container = started.stdout.strip()
    hostname = engine.docker("inspect", "--format", "{{.Config.Hostname}}", container).stdout.strip()
    ping = ("celery", "--app", CELERY_APP, "inspect", "ping", "-d", f"celery@{hostname}")
    deadline = time.monotonic() + 300
    while engine.docker("exec", container, *ping, check=False).returncode:
        logs = engine.docker("logs", "--tail", "30", container, check=False)
        assert time.monotonic() < deadline, f"the second host's worker does not answer:\n{logs.stderr}"
        time.sleep(3)
    return hostname


def test_a_worker_on_the_second_host_runs_a_whole_run_and_its_logs_outlive_it(
    stack: ComposeProject,
    api: AirflowApi,
    second_host: SecondHost,
    object_store: ThrowawayS3,
    elsewhere: str,
):
    started = time.monotonic()
    hostname = start_worker(stack, second_host.engine, elsewhere)
    say(f"worker {hostname} on the second host consuming {time.monotonic() - started:.0f} s after docker run")
    mounts = second_host.engine.docker("inspect", "--format", "{{json .Mounts}}", "airflow-worker").stdout
    assert mounts.strip() == "[]", f"the worker has mounts: {mounts}"
    api.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    run_id = api.trigger(DAG_ID, ELSEWHERE_DATE, {"users": USERS})
    task_instances = assert_run_succeeds(stack, api, run_id)
    ran = {ti["task_id"]: (ti["hostname"], ti["try_number"]) for ti in task_instances}
    retried = {
        task_id: [attempt_error(api, run_id, task_id, attempt, required=False) for attempt in range(1, tries)]
        for task_id, (_, tries) in ran.items()
        if tries > 1
    }
    assert not retried, f"tries that failed: {retried}"
    assert set(ran.values()) == {(hostname, 1)}, ran
    assert_warehouse_holds_exactly_the_served_users(stack, api)
    assert_marts_match_the_served_users(stack, api)
    # The run folder was the object store's.
    folder = object_store.buckets / object_store.bucket / "run-folders" / DAG_ID
    assert list(folder.glob("logical_date=20240401T000000/users.csv")), sorted(map(str, folder.rglob("*")))
    # The worker gone, each task's log is read through the REST API, from the object store.
    second_host.engine.docker("rm", "--force", "airflow-worker")
    for task_id in ran:
        stored = wait_for_stored_log(object_store, run_id, task_id, 1)
        sources, events = task_log(api, run_id, task_id, 1)
        key = stored.relative_to(object_store.buckets)
        assert sources == [f"s3://{key}"], sources
        # What the worker uploaded is what the API serves: every line of it, in order.
        uploaded = [json.loads(line)["event"] for line in stored.read_text().splitlines() if line.strip()]
        assert len(uploaded) > 3, stored.read_text()
        assert [event for event in events if event in uploaded] == uploaded, (uploaded, events)
    say(f"{len(ran)} task logs read through the REST API from the object store, the worker removed")


def test_the_second_host_cut_off_mid_load_and_the_run_still_loads_exactly_the_served_users(
    stack: ComposeProject, api: AirflowApi, second_host: SecondHost, elsewhere: str
):
    """Its engine and every process of it SIGKILLed, its network card dead, while store_user's
    transaction has copied the users and waits at its UPDATE: the warehouse drops the dead client's
    connection (its TCP keepalives, docker-compose.yaml), the task is found without a heartbeat and
    retried on the first host's worker, started again meanwhile."""
    hostname = start_worker(stack, second_host.engine, elsewhere)
    run_id = api.trigger(DAG_ID, CUT_OFF_DATE, {"users": USERS})
    wait_for_task(api, run_id, "create_table", {"success"})
    with users_lock(stack):
        blocked = wait_for_blocked_load(stack, api, run_id)
        store = assert_running(api, run_id, "store_user")
        assert store["hostname"] == hostname, store
        second_host.cut_off()
        cut_off = time.monotonic()
    say(f"second host cut off: store_user was running there (try {store['try_number']}), its load {blocked}")
    stack.compose("start", "airflow-worker", timeout=300)
    assert_run_succeeds(stack, api, run_id)
    retried = task_instance(api, run_id, "store_user")
    assert (retried["state"], retried["try_number"]) == ("success", store["try_number"] + 1), retried
    assert retried["hostname"] in workers(stack), retried
    took = time.monotonic() - cut_off
    say(f"store_user retried on {retried['hostname']}; the run ended {took:.0f} s after the cut off")
    assert_warehouse_holds_exactly_the_served_users(stack, api)
    assert_marts_match_the_served_users(stack, api)


def stored_log(object_store: ThrowawayS3, run_id: str, task_id: str, attempt: int) -> Path:
    """Where a try's log lands on the object store (on the server's disk)."""
    return (
        object_store.buckets
        / object_store.bucket
        / LOG_PREFIX
        / f"dag_id={DAG_ID}"
        / f"run_id={run_id}"
        / f"task_id={task_id}"
        / f"attempt={attempt}.log"
    )


def wait_for_stored_log(object_store: ThrowawayS3, run_id: str, task_id: str, attempt: int) -> Path:
    """The task's log on the object store, once its worker has uploaded it (when the task ended)."""
    path = stored_log(object_store, run_id, task_id, attempt)
    deadline = time.monotonic() + LOG_TIMEOUT
    while not path.is_file():
        found = sorted(str(p) for p in path.parent.parent.rglob("*")) if path.parent.parent.exists() else []
        assert time.monotonic() < deadline, f"no {path} after {LOG_TIMEOUT} s: {found}"
        time.sleep(1)
    return path


def task_log(api: AirflowApi, run_id: str, task_id: str, attempt: int) -> tuple[list[str], list[str]]:
    """The try's log as the REST API serves it (what the UI shows): where it was read from (the
    lines of its "Log message source details" group), and its lines' messages after that group."""
    events = [line.get("event") for line in api.task_log(DAG_ID, run_id, task_id, attempt)]
    assert events[:1] == ["::group::Log message source details"], events[:10]
    end = events.index("::endgroup::")
    return events[1:end], events[end + 1 :]
