"""The compose stack on a real Docker engine, used as a user would, in file order (conftest.py sets it up).

The tests share one stack and run in order: what is there after `up`, the first run on one worker,
then a second worker, then the faults (a worker killed, a graceful restart, the scheduler killed, the
warehouse stopped), five runs at once (two triggered, a backfill of three), a dbt model added to the
running stack, the README's own commands, the secret scan, the ports opened to the network (probed
from the second host, second_host.py); the last one takes the stack down.
Each fault test says which task was running when the fault hit.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path, PurePath

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from include.common.project import DBT_SCHEMA
from include.user_processing.extract import seed_for
from include.user_processing.settings import DBT_GROUP, DEFAULT_USERS_PER_RUN
from include.user_processing.user_api import page_sizes
from scripts.airflow_api import AirflowApi
from scripts.local_env import ThrowawayS3
from scripts.make_env import GENERATED
from template.standin_user_api import generate_page
from template.tests.docker.conftest import (
    OUTSIDE_FILE,
    PLANTED_LINK,
    USER_PASSWORD,
    USER_SETTINGS,
    WRITTEN_AS_THE_USER,
    say,
)
from template.tests.docker.images import recipe_digest, standin_label
from template.tests.docker.project import ComposeProject
from template.tests.docker.second_host import SecondHost
from template.tests.stack.compose import SECRETS_BY_SERVICE, secrets_in
from tests.overlap import overlapping

pytestmark = pytest.mark.docker

DAG_ID = "user_processing"
USERS = 300  # a few hundred users: more than one page would be slow here, and proves nothing more
LOAD_USERS = 10_000  # each of the five runs of the load test
PARSE_TIMEOUT = 180  # seconds until the dag-processor has the DAG in the database
RUN_TIMEOUT = 900  # seconds for one run, dbt tasks included (a fault adds retries)
TASK_TIMEOUT = 300  # seconds until a task reaches the state a fault test waits for
LOG_TIMEOUT = 60  # seconds for a finished try's last lines to reach the log the REST API serves
SECRET_NAMES = sorted(set(GENERATED) - {"AIRFLOW_UID"})
README = Path(__file__).resolve().parents[3] / "README.md"
# The first load run's run folder, as each worker sees it.
LOAD_RUN_FOLDER = "/opt/airflow/run-folders/user_processing/logical_date=20240201T000000"
# Logical dates: one per fault run, then the load test's five: two triggered, then a backfill of three.
KILL_DATE, GRACE_DATE, WAREHOUSE_DATE = (f"2024-01-0{day}T00:00:00+00:00" for day in (3, 4, 5))
LOAD_DATES = [f"2024-02-0{day}T00:00:00+00:00" for day in range(1, 6)]
TRIGGERED, BACKFILLED = LOAD_DATES[:2], LOAD_DATES[2:]
GROW_DATE = "2024-03-01T00:00:00+00:00"
DBT_TASKS = f"{DBT_GROUP}."  # every dbt task's id starts with it, whatever the dbt mode
DOCKER_STOP_TIMEOUT = 10  # seconds Docker waits on a stop before it kills, unless stop_grace_period says
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
)


def test_the_base_images_are_the_ones_the_files_name_pulled_or_stood_in(stack, base_images):
    names = {image.name for image in base_images}
    assert names == {"apache/airflow:3.3.2-python3.11", "postgres:16", "redis:7.2-bookworm"}
    ids = {}
    for image in base_images:
        info = json.loads(stack.engine.docker("image", "inspect", image.name).stdout)[0]
        ids[image.name] = info["Id"]
        label = standin_label(stack.engine, image.name)
        if image.origin == "pulled":
            assert info["RepoDigests"], f"{image.name}: said pulled, but no registry digest"
            assert label == "", f"{image.name}: said pulled, but it is a stand-in"
        elif image.origin.startswith("stand-in"):
            # Built from the recipe as it is now, not an older one.
            assert label == recipe_digest(stack.engine, image.name, stack.folder), image.name
        else:
            assert image.origin.startswith("present"), image
            assert label == "", f"{image.name}: said present, but it is a stand-in"
    # The stack runs on exactly these: the databases and Redis as they are, Airflow built on its base.
    for container in stack.containers():
        image_id = stack.engine.docker("inspect", "--format", "{{.Image}}", container["ID"]).stdout.strip()
        base = {"postgres": "postgres:16", "warehouse": "postgres:16", "redis": "redis:7.2-bookworm"}
        if container["Service"] in base:
            assert image_id == ids[base[container["Service"]]], container["Service"]
        else:
            layers = _layers(stack, image_id)
            base_layers = _layers(stack, ids["apache/airflow:3.3.2-python3.11"])
            assert layers[: len(base_layers)] == base_layers, f"{container['Service']} is not built on it"


def _layers(stack: ComposeProject, image: str) -> list[str]:
    return json.loads(
        stack.engine.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout
    )


def test_every_service_is_healthy_and_airflow_init_completed(stack: ComposeProject):
    containers = {c["Service"]: c for c in stack.containers()}
    assert set(containers) == set(SECRETS_BY_SERVICE) - {"airflow-cli"}  # every service of the profiles used
    init = containers.pop("airflow-init")
    assert (init["State"], init["ExitCode"]) == ("exited", 0)
    unhealthy = {
        name: (c["State"], c["Health"]) for name, c in containers.items() if c["Health"] != "healthy"
    }
    assert not unhealthy, unhealthy


def test_every_published_port_binds_127_0_0_1_only(stack: ComposeProject, second_host: SecondHost):
    published = published_ports(stack)
    say_ports = ", ".join(
        f"{service}:{port} on {host}" for (service, port), (host, _) in sorted(published.items())
    )
    assert set(published) == {
        ("airflow-apiserver", 8080),
        ("flower", 5555),
        ("warehouse", 5432),
        # What a worker on another machine needs besides: the result backend, the broker, the user API.
        ("postgres", 5432),
        ("redis", 6379),
        ("user-api", 8000),
    }, say_ports
    assert {host for host, _ in published.values()} == {"127.0.0.1"}, say_ports
    # From the second host, at this host's address on their network, nothing answers.
    address = second_host.first_address
    answering = [port for _, port in published.values() if second_host.inside(_connects, address, port)]
    assert not answering, f"ports {answering} answer the second host on {address}"


def published_ports(stack: ComposeProject) -> dict[tuple[str, int], tuple[str, int]]:
    """(service, container port) -> (host address, host port) of every port the stack publishes."""
    published = {}
    for container in stack.containers():
        mappings = stack.engine.docker("port", container["ID"]).stdout.splitlines()
        for mapping in mappings:  # e.g. "8080/tcp -> 127.0.0.1:8080"
            target, _, host = mapping.partition(" -> ")
            address, _, port = host.rpartition(":")
            published[(container["Service"], int(target.split("/")[0]))] = (address, int(port))
    return published


def _connects(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(5)
        return sock.connect_ex((address, port)) == 0


def test_each_service_gets_only_the_secrets_it_needs(stack: ComposeProject):
    generated = {name: stack.dotenv()[name] for name in SECRET_NAMES}
    seen = {}
    for container in stack.containers():
        environment = container_environment(stack, container["ID"])
        seen[container["Service"]] = secrets_in(environment, generated)
    expected = {service: set(SECRETS_BY_SERVICE[service]) for service in seen}
    assert seen == expected


def test_redis_asks_for_its_password_and_neither_docker_inspect_nor_ps_shows_it(stack: ComposeProject):
    password = stack.dotenv()["REDIS_PASSWORD"]
    # In its container, as the healthcheck asks: without the password, and with it (read from its file).
    ping = stack.compose("exec", "-T", "redis", "redis-cli", "ping").stdout.strip()
    assert ping == "NOAUTH Authentication required.", ping
    logged_in = 'REDISCLI_AUTH="$(cat /run/secrets/redis-password)" redis-cli ping'
    assert stack.compose("exec", "-T", "redis", "sh", "-c", logged_in).stdout.strip() == "PONG"
    # From this machine, at its published port.
    address, port = published_ports(stack)[("redis", 6379)]
    without, granted = _probe_redis(address, port, password)
    say(f"redis on {address}:{port}: without its password {without}; with it {granted}")
    # Not in what docker inspect shows of its container (environment, command, healthcheck, mounts) ...
    (redis_container,) = service_containers(stack, "redis")
    assert password not in stack.engine.docker("inspect", redis_container).stdout
    # ... nor on the command line of any process of this machine (every container's included).
    command_lines = [path.read_bytes() for path in Path("/proc").glob("[0-9]*/cmdline") if _readable(path)]
    assert command_lines
    assert not [line for line in command_lines if password.encode() in line]


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except OSError:  # the process ended meanwhile
        return False
    return True


def test_your_own_settings_reach_every_airflow_component_and_nothing_else(stack: ComposeProject):
    components = {*AIRFLOW_SERVICES, "airflow-init"}
    seen = {}
    for container in stack.containers():
        environment = container_environment(stack, container["ID"])
        seen[container["Service"]] = {key: environment.get(key) for key in USER_SETTINGS}
    for service, settings in seen.items():
        expected = USER_SETTINGS if service in components else dict.fromkeys(USER_SETTINGS)
        assert settings == expected, service
    # Airflow itself reads them: the variable, as a task would.
    greeting = stack.compose("exec", "-T", "airflow-worker", "airflow", "variables", "get", "greeting")
    # Its own line among the DEBUG log lines the CLI prints on stdout at that level.
    assert USER_SETTINGS["AIRFLOW_VAR_GREETING"] in greeting.stdout.splitlines(), greeting.stdout[-2000:]


def container_environment(stack: ComposeProject, container_id: str) -> dict[str, str]:
    lines = stack.engine.docker(
        "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", container_id
    ).stdout.splitlines()
    return dict(line.partition("=")[::2] for line in lines)


# Run by each Airflow container: can it write its project folders (it must not) and the folders it writes?
WRITE_PROBE = r"""
for folder in dags include dbt_project; do
    if touch "/opt/airflow/$folder/.write-probe" 2>/dev/null; then echo "wrote $folder"; fi
done
for folder in dbt_project/target dbt_project/dbt_packages logs run-folders; do
    probe="/opt/airflow/$folder/.write-probe-$HOSTNAME"
    if touch "$probe" 2>/dev/null; then rm "$probe"; else echo "cannot write $folder"; fi
done
grep -E ' /opt/airflow/(dags|include|dbt_project) ' /proc/mounts | awk '{print $2, substr($4, 1, 2)}'
"""


def test_airflow_reads_the_project_read_only_and_writes_only_where_it_must(stack: ComposeProject):
    for service in AIRFLOW_SERVICES:
        result = stack.compose("exec", "-T", service, "bash", "-c", WRITE_PROBE)
        lines = result.stdout.splitlines()
        assert not [line for line in lines if line.startswith(("wrote", "cannot"))], (service, lines)
        mounts = dict(line.split() for line in lines if line.strip())
        expected = {f"/opt/airflow/{name}": "ro" for name in ("dags", "include", "dbt_project")}
        assert mounts == expected, (service, lines)
    # Nothing was left behind in the checkout.
    assert not list(stack.folder.glob("*/.write-probe*"))


def test_airflow_init_changes_a_planted_symlink_itself_never_what_it_points_to(stack: ComposeProject):
    uid = int(stack.dotenv()["AIRFLOW_UID"])
    link, outside = stack.folder / PLANTED_LINK, stack.folder.parent / OUTSIDE_FILE
    assert link.is_symlink()
    assert link.lstat().st_uid == uid, "airflow-init did not change the link's owner"
    if os.geteuid() == 0:  # planted by root: init gave it to the containers' user, group 0, and said so
        assert (link.lstat().st_uid, link.lstat().st_gid) == (uid, 0)
        init_log = stack.compose("logs", "--no-color", "airflow-init").stdout
        assert "changed ownership of '/opt/airflow/logs/planted-link'" in init_log, init_log[-2000:]
    # What it points to, outside the checkout, kept its owner and content.
    info = outside.stat()
    assert (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid()), "chown followed the symlink"
    assert outside.read_text() == "not airflow-init's to chown\n"


def test_a_triggered_run_loads_exactly_the_users_the_api_served(stack: ComposeProject, api: AirflowApi):
    api.wait_for_dag(DAG_ID, PARSE_TIMEOUT)
    # Today's midnight: the run the scheduler would create itself once the DAG is unpaused, so
    # unpausing adds no second run. Triggered while paused, it starts once unpaused.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    run_id = api.trigger(DAG_ID, today.isoformat(), {"users": USERS})
    api.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    assert_run_succeeds(stack, api, run_id)
    assert_warehouse_holds_exactly_the_served_users(stack, api)


def test_a_second_worker_joins_with_up_scale(stack: ComposeProject):
    """`docker compose up -d --scale airflow-worker=2`, as docs/docker.md says. The faults and the load
    test below run on both workers; the load test checks they share the run folders."""
    started = time.monotonic()
    stack.compose("up", "-d", "--scale", "airflow-worker=2", timeout=600)
    say(f"docker compose up -d --scale airflow-worker=2: {time.monotonic() - started:.0f} s")
    hostnames = set(workers(stack))
    assert len(hostnames) == 2
    wait_until_consuming(stack, hostnames)
    say(f"second worker consuming {time.monotonic() - started:.0f} s after up --scale")


# --- Faults ------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_load_and_mid_dbt_loses_and_duplicates_nothing(
    stack: ComposeProject, api: AirflowApi
):
    """`docker kill` of the worker running store_user (its COPY done, its UPDATE waiting), then of the
    worker running a dbt task: each task is found without a heartbeat, retried on the other worker,
    and the run succeeds. Docker counts `docker kill` as a stop of yours (`restart: always` does not
    start the container again), so each killed worker is started again as an operator would."""
    run_id = api.trigger(DAG_ID, KILL_DATE, {"users": USERS})
    wait_for_task(api, run_id, "create_table", {"success"})
    with dbt_lock(stack):  # taken first: the dbt task must not finish before it is killed
        with users_lock(stack):  # store_user blocks in its transaction, after its COPY
            blocked = wait_for_blocked_load(stack, api, run_id)
            store = kill_worker_running(stack, api, run_id, "store_user")
        say(f"docker kill: store_user was running (try {store['try_number']}), its load {blocked}")
        stack.compose("start", "airflow-worker", timeout=300)
        dbt = wait_for_blocked_dbt(stack, api, run_id)
        dbt = kill_worker_running(stack, api, run_id, dbt["task_id"])
    say(f"docker kill: {dbt['task_id']} was running (try {dbt['try_number']})")
    stack.compose("start", "airflow-worker", timeout=300)
    assert_run_succeeds(stack, api, run_id)
    for killed in (store, dbt):  # each finished through a retry, not in the try that was killed
        ti = task_instance(api, run_id, killed["task_id"])
        assert (ti["state"], ti["try_number"]) == ("success", killed["try_number"] + 1), ti
    assert_warehouse_holds_exactly_the_served_users(stack, api)
    assert_marts_match_the_served_users(stack, api)


def test_a_graceful_worker_restart_lets_the_running_task_finish_and_a_killed_scheduler_resumes(
    stack: ComposeProject, api: AirflowApi
):
    """`docker compose restart airflow-worker` while store_user runs: Celery's warm shutdown waits for
    it past Docker's default 10 s, and it succeeds in its first try. Then `docker kill` of the
    scheduler while a dbt task runs: the restarted scheduler carries the run on to success."""
    run_id = api.trigger(DAG_ID, GRACE_DATE, {"users": USERS})
    wait_for_task(api, run_id, "create_table", {"success"})
    with dbt_lock(stack):  # taken first: the dbt task stays running until the scheduler is back
        with users_lock(stack):
            blocked = wait_for_blocked_load(stack, api, run_id)
            store = task_instance(api, run_id, "store_user")
            busy = worker_container(stack, store["hostname"])
            since = _engine_time(stack)
            restart = stack.popen_compose("restart", "airflow-worker")
            wait_for_log(stack, busy, "Warm shutdown", since)
            store = assert_running(api, run_id, "store_user")
            say(
                "docker compose restart airflow-worker: SIGTERM while store_user ran (try 1),"
                f" its load {blocked}"
            )
            # The load stays blocked well past Docker's default stop timeout: the worker must wait.
            deadline = time.monotonic() + DOCKER_STOP_TIMEOUT + 5
            while time.monotonic() < deadline:
                assert _running(stack, busy), "the worker was stopped before its task finished"
                assert_running(api, run_id, "store_user")
                time.sleep(1)
        _, errors = restart.communicate(timeout=300)
        assert restart.returncode == 0, errors
        store = task_instance(api, run_id, "store_user")
        assert (store["state"], store["try_number"]) == ("success", 1), store
        wait_until_consuming(stack, set(workers(stack)))

        # The scheduler crashes: every process of its container SIGKILLed from inside (as the OOM
        # killer would), so its container exits on its own and `restart: always` brings it back.
        dbt = wait_for_blocked_dbt(stack, api, run_id)
        scheduler = service_containers(stack, "airflow-scheduler")[0]
        restarts = _restart_count(stack, scheduler)
        stack.compose("exec", "-T", "airflow-scheduler", "bash", "-c", "kill -KILL -1", check=False)
        say(f"airflow-scheduler SIGKILLed: {dbt['task_id']} was running (try {dbt['try_number']})")
        wait_for_restart(stack, scheduler, restarts)
        assert_running(api, run_id, dbt["task_id"])
    assert_run_succeeds(stack, api, run_id)
    assert_warehouse_holds_exactly_the_served_users(stack, api)


def test_the_warehouse_stopped_mid_load_leaves_its_rows_and_the_retry_loads_everything(
    stack: ComposeProject, api: AirflowApi
):
    before = warehouse_checksum(stack)
    run_id = api.trigger(DAG_ID, WAREHOUSE_DATE, {"users": USERS})
    wait_for_task(api, run_id, "create_table", {"success"})
    lock = users_lock(stack).__enter__()
    try:
        blocked = wait_for_blocked_load(stack, api, run_id)
        store = assert_running(api, run_id, "store_user")
        stack.compose("stop", "warehouse", timeout=120)
        try_number = store["try_number"]
        say(f"docker compose stop warehouse: store_user was running (try {try_number}), its load {blocked}")
    finally:
        lock.__exit__(None, None, None)  # its session went with the warehouse
    try:
        # The try that was loading fails, and so does the next one while the warehouse is away.
        failed = wait_for_task(api, run_id, "store_user", {"up_for_retry", "failed"}, try_number=2)
        assert failed["state"] == "up_for_retry", f"store_user ran out of retries: {failed}"
        errors = {attempt: attempt_error(api, run_id, "store_user", attempt) for attempt in (1, 2)}
        say(f"store_user's errors: try 1: {errors[1]!r}; try 2: {errors[2]!r}")
        assert errors[1].startswith("WarehouseUnavailable: the warehouse went away"), errors
        assert "warehouse" in errors[2], errors
    finally:  # whatever failed above, the tests after this one get their warehouse back
        started = time.monotonic()
        stack.compose("start", "warehouse", timeout=120)
        wait_for_warehouse(stack)
    # All or nothing: the table holds exactly what it held before this run (nothing loads it meanwhile:
    # the next try starts at least 10 s after the last one failed).
    after = warehouse_checksum(stack)
    store = task_instance(api, run_id, "store_user")
    assert store["try_number"] == 2, f"a later try ran before the check: {store}"
    assert after == before
    say(f"docker compose start warehouse: back in {time.monotonic() - started:.0f} s, users unchanged")
    assert_run_succeeds(stack, api, run_id)
    store = task_instance(api, run_id, "store_user")
    assert (store["state"], store["try_number"]) == ("success", 3), store
    assert_warehouse_holds_exactly_the_served_users(stack, api)


# --- Load --------------------------------------------------------------------------------------------


def test_five_runs_at_once_on_two_workers_all_succeed_without_a_deadlock_or_two_dbt_builds_at_once(
    stack: ComposeProject, api: AirflowApi
):
    """Two triggered runs and a backfill of three dates created through the REST API, at once: every
    task green (a data task may retry after an API timeout on a machine this busy, never because of a
    clash), each dbt task in one try, and no two dbt builds at the same time (the dbt pool)."""
    deadlocks = database_deadlocks(stack)
    started = time.monotonic()
    run_ids = [api.trigger(DAG_ID, date, {"users": LOAD_USERS}) for date in TRIGGERED]
    api.backfill(DAG_ID, BACKFILLED[0], BACKFILLED[-1], max_active_runs=3, conf={"users": LOAD_USERS})
    run_ids += backfill_runs(api, BACKFILLED)
    states = {run_id: api.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) for run_id in run_ids}
    wall = time.monotonic() - started
    assert set(states.values()) == {"success"}, states
    spans, task_spans, retried = {}, [], []
    for run_id in run_ids:
        task_instances = api.task_instances(DAG_ID, run_id)
        failed = {ti["task_id"]: ti["state"] for ti in task_instances if ti["state"] != "success"}
        assert not failed, f"{run_id}: {failed}\n{task_log_tails(stack, run_id, failed)}"
        # A try that failed on the way: never a clash between the runs (a retry on a machine this
        # busy may follow an API timeout, which the run is built to survive).
        for ti in task_instances:
            for attempt in range(1, ti["try_number"]):
                error = attempt_error(api, run_id, ti["task_id"], attempt, required=False)
                retried.append(f"{ti['task_id']} try {attempt}: {error or 'no error logged'}")
                assert not CLASH.search(error), f"{run_id}: {retried[-1]}"
        run = api.run(DAG_ID, run_id)
        spans[run_id] = (_time(run["start_date"]), _time(run["end_date"]))
        task_spans += [
            (run_id, _time(ti["start_date"]), _time(ti["end_date"]))
            for ti in task_instances
            if ti["task_id"] in ("extract_user", "process_user", "store_user")
        ]
    # At once: the five runs were active together, and tasks of different runs ran side by side.
    latest_start = max(start for start, _ in spans.values())
    assert all(end > latest_start for _, end in spans.values()), spans
    side_by_side = max(
        len({run for run, start, end in task_spans if start <= moment < end}) for _, moment, _ in task_spans
    )
    assert side_by_side >= 2, task_spans
    assert database_deadlocks(stack) == deadlocks, "a deadlock was detected (pg_stat_database)"
    # One dbt build at a time, each in one try, whatever run it belongs to.
    task_instances = [ti for run_id in run_ids for ti in api.task_instances(DAG_ID, run_id)]
    dbt = [ti for ti in task_instances if ti["task_id"].startswith(DBT_TASKS)]
    assert len(dbt) >= len(run_ids)
    assert {ti["pool"] for ti in dbt} == {"dbt"}
    assert {(ti["dag_run_id"], ti["try_number"]) for ti in dbt} == {(run_id, 1) for run_id in run_ids}
    assert overlapping(dbt) == []
    ran_on = {ti["hostname"] for run_id in run_ids for ti in api.task_instances(DAG_ID, run_id)}
    assert ran_on == set(workers(stack)), ran_on
    # Both workers see the same files in a run folder: one volume, not two disks.
    listings = [
        stack.compose(
            "exec", "-T", "--index", str(index), "airflow-worker", "ls", "-l", LOAD_RUN_FOLDER
        ).stdout
        for index in (1, 2)
    ]
    assert listings[0] == listings[1]
    assert "users.csv" in listings[0]
    durations = sorted(end - start for start, end in spans.values())
    say(f"retried tries: {retried or 'none'}")
    say(
        f"5 runs x {LOAD_USERS} users at once on 2 workers: all success in {wall:.0f} s (runs "
        f"{durations[0]:.0f}-{durations[-1]:.0f} s; up to {side_by_side} runs' data tasks side by side)"
    )
    assert_warehouse_holds_exactly_the_served_users(stack, api)
    assert_marts_match_the_served_users(stack, api)


def backfill_runs(api: AirflowApi, dates: list[str], timeout: float = 60) -> list[str]:
    """The run ids of the backfill's runs for `dates`, once the backfill has created them."""
    deadline = time.monotonic() + timeout
    while True:
        backfilled = [run for run in api.runs(DAG_ID) if run["run_type"] == "backfill"]
        runs = {_time(run["logical_date"]): run["dag_run_id"] for run in backfilled}
        if all(_time(date) in runs for date in dates):
            return [runs[_time(date)] for date in dates]
        assert time.monotonic() < deadline, f"the backfill created no runs for {dates}: {runs}"
        time.sleep(2)


# What two runs working on the same tables at once would fail with.
CLASH = re.compile(r"deadlock|already exists|concurrently|could not serialize|does not exist", re.I)


def database_deadlocks(stack: ComposeProject) -> dict[str, str]:
    """PostgreSQL's count of deadlocks detected, in the warehouse and in Airflow's metadata database."""
    query = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    return {
        "warehouse": warehouse(stack, query)[0][0],
        "airflow": psql(stack, "postgres", "airflow", query)[0][0],
    }


# --- Growing the dbt project -------------------------------------------------------------------------


def test_a_model_added_to_the_running_stack_is_built_by_its_next_run(stack: ComposeProject, api: AirflowApi):
    """As the README's "Adding dbt models" says: a SQL file under dbt_project/models/, nothing
    restarted. The dag-processor's next parse of the DAG rebuilds the manifest (dbt_project/ is
    read-only in the containers, its target/ writable): the model becomes an Asset of dbt_build,
    and the next run builds it and emits that Asset's event."""
    name = "users_per_gender_added_later"
    model = stack.folder / "dbt_project" / "models" / "marts" / "users" / f"{name}.sql"
    model.write_text("select gender, count(*) as users from {{ ref('stg_users') }} group by gender\n")
    try:
        started = time.monotonic()
        asset = wait_for_asset(api, f"{DBT_SCHEMA}.{name}", PARSE_TIMEOUT)
        say(f"{name}: an Asset of dbt_build {time.monotonic() - started:.0f} s after the file was written")
        run_id = api.trigger(DAG_ID, GROW_DATE, {"users": USERS})
        assert_run_succeeds(stack, api, run_id)
        events = api.request(
            "GET", f"/api/v2/assets/events?asset_id={asset['id']}&source_run_id={urllib.parse.quote(run_id)}"
        )["asset_events"]
        assert len(events) == 1, events
        built = sorted(warehouse(stack, f"SELECT gender, users FROM {DBT_SCHEMA}.{name}"))  # noqa: S608
        assert built, f"{DBT_SCHEMA}.{name} is empty"
        assert built == sorted(warehouse(stack, "SELECT gender, count(*) FROM users GROUP BY gender"))
    finally:
        model.unlink()


# --- The README, secrets, exposure -------------------------------------------------------------------


def test_the_readme_course_commands_work_as_written(stack: ComposeProject):
    commands = readme_commands("docker compose exec ")
    assert any("airflow tasks test" in c for c in commands), commands
    # Else the scheduler also runs the rest of the temporary run that `tasks test` creates, and
    # can deadlock with its deletion (seen here: `deadlock detected` deleting from dag_run).
    assert "dags pause" in commands[0], commands
    assert any("psql" in c for c in commands), commands
    for command in commands:
        result = stack.shell(command)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command}\n{output[-3000:]}"
        if "airflow tasks test" in command:
            # `airflow tasks test` exits 0 even when the task fails: its final state says.
            states = re.findall(r"new_state=(\w+)", output)
            assert states[-1:] == ["success"], f"{command}\n{output[-3000:]}"
        if "psql" in command:
            assert re.search(r"^\(\d+ rows?\)$", result.stdout, re.M), f"{command}\n{output}"


def test_no_log_or_file_the_stack_wrote_holds_a_secret_even_at_debug_level(
    stack: ComposeProject, api: AirflowApi, object_store: ThrowawayS3
):
    """Every service's output, every file under logs/ (the tasks', the dag-processor's), the airflow.cfg
    airflow-init rendered, and every object on the object store (the task logs uploaded there, by the
    worker on the second host too, and the run folders of the runs there)."""
    files = sorted(
        path for path in (stack.folder / "logs").rglob("*") if path.is_file() and not path.is_symlink()
    )
    task_logs = [path for path in files if f"dag_id={DAG_ID}" in str(path)]
    assert task_logs, "no task logs were written"
    dag_processor = [path for path in files if "dag_processor" in str(path.relative_to(stack.folder))]
    assert dag_processor, f"no dag-processor log under logs/: {[str(p) for p in files[:20]]}"
    config = stack.folder / "config" / "airflow.cfg"
    assert config.stat().st_size > 0, "airflow-init rendered no airflow.cfg"
    sources = {
        str(path.relative_to(stack.folder)): path.read_text(errors="replace") for path in [*files, config]
    }
    assert '"level":"debug"' in "".join(sources[str(p.relative_to(stack.folder))] for p in task_logs).replace(
        " ", ""
    ), "the task logs are not at DEBUG level"
    stored = sorted(path for path in object_store.buckets.rglob("*") if path.is_file())
    uploaded = [path for path in stored if f"dag_id={DAG_ID}" in str(path) and path.suffix == ".log"]
    assert uploaded, f"no task log on the object store: {[str(p) for p in stored[:20]]}"
    for path in stored:
        sources[f"object store: {path.relative_to(object_store.buckets)}"] = path.read_text(errors="replace")
    for container in stack.containers():
        output = stack.compose("logs", "--no-color", container["Service"]).stdout
        assert output.strip(), f"no output from {container['Service']}"
        sources[f"docker compose logs {container['Service']}"] = output
    generated = stack.dotenv()
    secrets = {name: generated[name] for name in SECRET_NAMES}
    # The password of the connection in airflow.env: the user's own secrets stay out as well.
    secrets["USER_PASSWORD"] = USER_PASSWORD
    secrets["the object store's secret key"] = object_store.secret_key
    leaks = [
        f"{name} in {source}: {_context(text, value)}"
        for source, text in sources.items()
        for name, value in secrets.items()
        if value in text
    ]
    assert not leaks, "\n".join(leaks)
    # No served user's salt or password hash, in any of them (whole words: there are many users).
    logins = served_logins(api)
    hidden = {login[field] for login in logins for field in ("salt", "sha256")}
    for source, text in sources.items():
        found = hidden & set(re.findall(r"[A-Za-z0-9]+", text))
        assert not found, f"{source}: {_context(text, found.pop())}"
    say(f"secret scan: {len(sources)} logs and files, {len(secrets)} secrets, {len(logins)} users")


def test_opened_to_the_network_every_published_port_but_the_stand_in_api_asks_for_credentials(
    stack: ComposeProject, api: AirflowApi, second_host: SecondHost
):
    """PUBLISH_ADDRESS=0.0.0.0 in .env, as docs/docker.md says, probed from the second host at this host's
    address on their network (what "open to the network" means): the api-server, the warehouse, the
    metadata database and Redis refuse a request without credentials (and with wrong ones) and answer
    one with them. The stand-in user API serves made-up users to anyone, as randomuser.me does. Flower
    stays on 127.0.0.1 (its /metrics and /healthcheck need no login), where its pages ask for one."""
    stack.set_dotenv({"PUBLISH_ADDRESS": "0.0.0.0"})  # noqa: S104 - what the test is about
    started = time.monotonic()
    services = sorted({service for service, _ in published_ports(stack)})
    stack.compose("up", "-d", "--wait", "--no-deps", *services, timeout=600)
    took = time.monotonic() - started
    say(f"PUBLISH_ADDRESS=0.0.0.0, docker compose up -d {' '.join(services)}: {took:.0f} s")
    published = published_ports(stack)
    opened = {key for key, (host, _) in published.items() if host == "0.0.0.0"}  # noqa: S104
    assert {key: host for key, (host, _) in published.items() if key not in opened} == {
        ("flower", 5555): "127.0.0.1"
    }, published
    address = second_host.first_address
    flower_port = published[("flower", 5555)][1]
    assert not second_host.inside(_connects, address, flower_port), "Flower answers the second host"
    env = stack.dotenv()
    probes = {
        ("airflow-apiserver", 8080): lambda address, port: _probe_api(address, port, api.token),
        ("flower", 5555): lambda address, port: _probe_flower(
            address, port, env["FLOWER_USERNAME"], env["FLOWER_PASSWORD"]
        ),
        ("warehouse", 5432): lambda address, port: _probe_postgres(
            address, port, "warehouse", env["WAREHOUSE_PASSWORD"], "SELECT count(*) FROM users", "users"
        ),
        ("postgres", 5432): lambda address, port: _probe_postgres(
            address, port, "airflow", env["AIRFLOW_DB_PASSWORD"], "SELECT count(*) FROM dag", "DAGs"
        ),
        ("redis", 6379): lambda address, port: _probe_redis(address, port, env["REDIS_PASSWORD"]),
        ("user-api", 8000): _probe_user_api,
    }
    assert set(published) == set(probes), f"a published port without a probe: {set(published) - set(probes)}"
    for key, (host, port) in sorted(published.items()):
        if key in opened:
            without, granted = second_host.inside(probes[key], address, port)
            where = f"from the second host on {address}:{port}"
        else:
            without, granted = probes[key](host, port)
            where = f"on {host}:{port}"
        say(f"{key[0]} {where}: without credentials {without}; with them {granted}")


def _http(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - http:// to our own stack
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - as above
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _probe_api(address: str, port: int, token: str) -> tuple[str, str]:
    """The REST API's data (and the UI reads nothing else) needs a token; the login page is public."""
    paths = (
        "/api/v2/dags",
        "/api/v2/connections",
        "/api/v2/variables",
        "/api/v2/config",
        "/api/v2/importErrors",
    )
    refused = {path: _http(f"http://{address}:{port}{path}") for path in paths}
    assert set(refused.values()) <= {401, 403}, refused
    granted = _http(f"http://{address}:{port}/api/v2/dags", {"Authorization": f"Bearer {token}"})
    assert granted == 200
    return f"{sorted(set(refused.values()))} on {', '.join(paths)}", f"{granted} on /api/v2/dags"


def _probe_flower(address: str, port: int, username: str, password: str) -> tuple[str, str]:
    paths = ("/", "/workers", "/tasks", "/broker", "/api/workers", "/api/tasks")
    refused = {path: _http(f"http://{address}:{port}{path}") for path in paths}
    assert set(refused.values()) == {401}, refused
    # What Flower serves to anyone, and why it stays on 127.0.0.1.
    assert {path: _http(f"http://{address}:{port}{path}") for path in ("/metrics", "/healthcheck")} == {
        "/metrics": 200,
        "/healthcheck": 200,
    }
    login = b64encode(f"{username}:{password}".encode()).decode()
    wrong = b64encode(f"{username}:not-{password}".encode()).decode()
    assert _http(f"http://{address}:{port}/", {"Authorization": f"Basic {wrong}"}) == 401
    granted = _http(f"http://{address}:{port}/", {"Authorization": f"Basic {login}"})
    assert granted == 200
    return f"401 on {', '.join(paths)} (and with a wrong password)", f"{granted} on /"


def _probe_postgres(
    address: str, port: int, user: str, password: str, count: str, what: str
) -> tuple[str, str]:
    """A database (user and database `user`): no login without its password or with a wrong one."""
    refused = []
    for attempt in (None, f"not-{password}"):
        with pytest.raises(psycopg.OperationalError) as error:
            # passfile: a ~/.pgpass or PGPASSWORD of this machine must not log in for the probe.
            psycopg.connect(
                host=address,
                port=port,
                user=user,
                dbname=user,
                password=attempt,
                passfile="/nonexistent/pgpass",
                connect_timeout=10,
            ).close()
        refused.append(str(error.value).strip().splitlines()[-1])
    with psycopg.connect(
        host=address, port=port, user=user, dbname=user, password=password, connect_timeout=10
    ) as conn:
        rows = conn.execute(count).fetchone()[0]
    return " / ".join(refused), f"logged in, {rows} {what}"


def _probe_redis(address: str, port: int, password: str) -> tuple[str, str]:
    """Redis: no command without its password (PING included) or with a wrong one."""

    def ping(attempt: str | None) -> bool:
        # One try: redis-py retries a refused login (an AuthenticationError is a ConnectionError), 3 s more.
        once = Retry(NoBackoff(), 0)
        with redis.Redis(
            host=address, port=port, password=attempt, protocol=2, socket_timeout=10, retry=once
        ) as client:
            return client.ping()

    refused = []
    for attempt in (None, f"not-{password}"):
        with pytest.raises(redis.AuthenticationError) as error:
            ping(attempt)
        refused.append(str(error.value))
    assert ping(password)
    return " / ".join(refused), "PONG"


def _probe_user_api(address: str, port: int) -> tuple[str, str]:
    """The stand-in of randomuser.me, a public API: made-up users for anyone, nothing else to ask for."""
    url = f"http://{address}:{port}/api/1.4/?results=1"
    with urllib.request.urlopen(url, timeout=30) as response:
        users = json.load(response)["results"]
    assert len(users) == 1
    return "200, one made-up user (public by design, as randomuser.me)", "no credentials to give"


def test_a_failing_dbt_parse_fails_airflow_init_with_a_clear_message(stack: ComposeProject):
    broken = stack.folder / "dbt_project" / "models" / "staging" / "broken.sql"
    broken.write_text("select * from {{ ref('no_such_model') }}\n")
    try:
        # The real init script; only its migration and user creation are skipped (both done already).
        skip = ("-e", "_AIRFLOW_DB_MIGRATE=", "-e", "_AIRFLOW_WWW_USER_CREATE=")
        result = stack.compose("run", "--rm", *skip, "airflow-init", check=False, timeout=600)
    finally:
        broken.unlink()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "ERROR!!!: dbt deps or dbt parse failed" in output, output[-3000:]
    assert "no_such_model" in output, output[-3000:]


def test_an_admin_password_starting_with_a_dash_fails_airflow_init_with_a_clear_message(
    stack: ComposeProject,
):
    # The entrypoint would pass it to `airflow users create --password` as an option and create no admin.
    password = ("-e", "_AIRFLOW_WWW_USER_PASSWORD=-starts-with-a-dash")
    result = stack.compose("run", "--rm", *password, "airflow-init", check=False, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert 'ERROR!!!: _AIRFLOW_WWW_USER_PASSWORD in .env starts with "-"' in output, output[-3000:]
    assert "Airflow version" not in output, "airflow-init went on after the bad password"


def test_down_leaves_nothing_and_no_file_of_the_checkout_changed_owner(stack: ComposeProject):
    (command,) = readme_commands("docker compose down --volumes")
    result = stack.shell(command)
    assert result.returncode == 0, result.stderr
    assert stack.project_resources() == {"containers": [], "volumes": [], "networks": []}
    before, after = stack.owners_before, stack.owners()
    after.pop(PLANTED_LINK)  # planted after the owners were read: its own test
    assert before, "the owners were not recorded before the run"
    changed = {
        path: (before[path], owner) for path, owner in after.items() if before.get(path, owner) != owner
    }
    assert not changed, f"owner changed (before, after): {changed}"
    uid = int(stack.dotenv()["AIRFLOW_UID"])
    written_as_the_user = {
        str(path) for name in WRITTEN_AS_THE_USER for path in (PurePath(name), *PurePath(name).parents)
    }
    new = {
        path: owner for path, owner in after.items() if path not in before and path not in written_as_the_user
    }
    assert new, "the stack wrote nothing into the checkout (logs/?)"
    foreign = {path: owner for path, owner in new.items() if owner != (uid, 0)}
    assert not foreign, f"new files not owned by AIRFLOW_UID={uid}:0: {foreign}"
    # Nothing was written where Airflow only reads: dags/, include/, dbt_project/ (but for target/ and
    # dbt_packages/).
    written = [
        path
        for path in new
        if path.startswith(("dags/", "include/", "dbt_project/"))
        and not path.startswith(("dbt_project/target", "dbt_project/dbt_packages"))
    ]
    assert not written, f"written into read-only folders: {written}"


# --- helpers ------------------------------------------------------------------------------------------


def assert_run_succeeds(stack: ComposeProject, api: AirflowApi, run_id: str) -> list[dict]:
    """Wait for the run; every task instance (the dbt ones included) must have succeeded."""
    state = api.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT)
    run = api.run(DAG_ID, run_id)
    took = (_time(run["end_date"]) - _time(run["start_date"])) if run["end_date"] else float("nan")
    say(f"run {run['logical_date']}, {run['conf'].get('users')} users: {state} in {took:.0f} s")
    task_instances = api.task_instances(DAG_ID, run_id)
    failed = {ti["task_id"]: ti["state"] for ti in task_instances if ti["state"] != "success"}
    assert task_instances, "the run has no task instances"
    assert not failed, (
        f"run {run_id}: tasks not successful: {failed}\n{task_log_tails(stack, run_id, failed)}"
    )
    assert state == "success"
    assert any(ti["task_id"].startswith(DBT_TASKS) for ti in task_instances)
    return task_instances


def _time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def wait_for_asset(api: AirflowApi, name: str, timeout: float) -> dict:
    """The Asset named `name`, once a DAG declares it (polled through the REST API)."""
    deadline = time.monotonic() + timeout
    while True:
        found = api.request("GET", f"/api/v2/assets?name_pattern={urllib.parse.quote(name)}")["assets"]
        if matches := [asset for asset in found if asset["name"] == name]:
            return matches[0]
        assert time.monotonic() < deadline, f"no Asset {name} after {timeout:.0f} s"
        time.sleep(2)


def task_instance(api: AirflowApi, run_id: str, task_id: str) -> dict:
    (ti,) = [ti for ti in api.task_instances(DAG_ID, run_id) if ti["task_id"] == task_id]
    return ti


def wait_for_task(
    api: AirflowApi,
    run_id: str,
    task: str,
    states: set[str],
    try_number: int = 1,
    timeout: float = TASK_TIMEOUT,
) -> dict:
    """The first task instance of the run whose id is `task` (or starts with it, when it ends with a dot)
    in one of `states`, at `try_number` or later. Polled through the REST API, a few times a second."""
    deadline = time.monotonic() + timeout
    while True:
        task_instances = api.task_instances(DAG_ID, run_id)
        for ti in task_instances:
            matches = ti["task_id"].startswith(task) if task.endswith(".") else ti["task_id"] == task
            if matches and ti["state"] in states and ti["try_number"] >= try_number:
                return ti
        if time.monotonic() > deadline:
            seen = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in task_instances}
            raise AssertionError(f"no {task} {states} (try >= {try_number}) after {timeout:.0f} s: {seen}")
        time.sleep(0.3)


def assert_running(api: AirflowApi, run_id: str, task_id: str) -> dict:
    """The task instance as it is now: it must be running (what a fault test says it hit)."""
    ti = task_instance(api, run_id, task_id)
    assert ti["state"] == "running", f"{task_id} is {ti['state']}, not running: {ti}"
    return ti


class WarehouseLock:
    """A psql session in the warehouse container that holds locks until it ends, to keep a task
    running, blocked at a known point, for as long as a fault test needs."""

    APPLICATION = "fault-test-lock"

    def __init__(self, stack: ComposeProject, lock: str) -> None:
        self.stack = stack
        self.lock = lock
        self.session: subprocess.Popen | None = None

    def __enter__(self) -> WarehouseLock:
        self.session = self.stack.popen_compose(
            "exec",
            "-T",
            "-e",
            f"PGAPPNAME={self.APPLICATION}",
            "warehouse",
            "psql",
            "-U",
            "warehouse",
            "-v",
            "ON_ERROR_STOP=1",
            "--quiet",
            stdin=subprocess.PIPE,
        )
        self.session.stdin.write(f"BEGIN;\n{self.lock}\n")
        self.session.stdin.flush()
        deadline = time.monotonic() + 60
        while not self.held():
            assert self.session.poll() is None, f"psql ended: {self.session.stderr.read()}"
            assert time.monotonic() < deadline, f"not granted: {self.lock}"
            time.sleep(0.2)
        return self

    def held(self) -> list[tuple[str, ...]]:
        """The relations this session holds a lock on (empty until the lock statement ran)."""
        return warehouse(
            self.stack,
            "SELECT pg_locks.relation::regclass, pg_locks.mode FROM pg_locks"  # noqa: S608 (constants)
            " JOIN pg_stat_activity USING (pid) JOIN pg_class ON pg_class.oid = pg_locks.relation"
            f" WHERE application_name = '{self.APPLICATION}' AND pg_locks.granted"
            " AND pg_class.relnamespace <> 'pg_catalog'::regnamespace",
        )

    def __exit__(self, *exc_info) -> None:
        if self.session is None:
            return
        try:
            self.session.stdin.write("ROLLBACK;\n\\q\n")
            self.session.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the session is gone already (the warehouse was stopped)
        try:
            self.session.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.session.kill()
            self.session.wait()
        self.session = None


def users_lock(stack: ComposeProject) -> WarehouseLock:
    """A SHARE lock on `users`. Readers (dbt) pass; a load waits at its first write: store_user's
    transaction has taken the load's advisory lock and copied the whole CSV into its temporary table,
    and waits at the UPDATE of `users`."""
    return WarehouseLock(stack, "LOCK TABLE users IN SHARE MODE;")


def dbt_lock(stack: ComposeProject) -> WarehouseLock:
    """An ACCESS SHARE lock on every relation of the dbt schema (a reader's lock): dbt builds each
    model beside its relation, then waits to swap it in (the swap renames the old relation, which
    needs the relation to itself). Earlier runs built them; at least one must exist."""
    return WarehouseLock(
        stack,
        "DO $$ DECLARE relation regclass; BEGIN"  # noqa: S608 (constants)
        " FOR relation IN SELECT oid FROM pg_class"
        f" WHERE relnamespace = '{DBT_SCHEMA}'::regnamespace AND relkind IN ('r', 'v', 'm')"
        " LOOP EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE', relation); END LOOP; END $$;",
    )


def wait_for_blocked_dbt(stack: ComposeProject, api: AirflowApi, run_id: str) -> dict:
    """Until a dbt task is running and its SQL waits for dbt_lock; the task instance, running."""
    dbt = wait_for_task(api, run_id, DBT_TASKS, {"running"})
    statement = wait_for_lock_wait(
        stack,
        f"application_name <> '{WarehouseLock.APPLICATION}'",
        f"{dbt['task_id']} never reached a dbt relation's swap",
    )
    say(f"{dbt['task_id']} waits at: {statement} ...")
    return assert_running(api, run_id, dbt["task_id"])


def wait_for_blocked_load(stack: ComposeProject, api: AirflowApi, run_id: str) -> str:
    """Until store_user is running and its load waits at the UPDATE of `users`; what it waits at."""
    wait_for_task(api, run_id, "store_user", {"running"})
    statement = wait_for_lock_wait(
        stack, "query ~* '^\\s*UPDATE \"users\"'", "store_user's load never reached its UPDATE"
    )
    return f"copied into its temporary table, waiting at: {statement} ..."


def wait_for_lock_wait(stack: ComposeProject, condition: str, never: str) -> str:
    """Until a warehouse session that meets `condition` (SQL on pg_stat_activity) waits for a lock;
    the start of its statement, comments left out. Fails with `never` after TASK_TIMEOUT."""
    waiting = (
        "SELECT left(regexp_replace(regexp_replace(query, '/\\*.*?\\*/', '', 'g'), '\\s+', ' ', 'g'), 60)"  # noqa: S608
        f" FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND {condition}"
    )
    deadline = time.monotonic() + TASK_TIMEOUT
    while not (rows := warehouse(stack, waiting)):
        assert time.monotonic() < deadline, never
        time.sleep(0.3)
    return rows[0][0].strip()


def workers(stack: ComposeProject) -> dict[str, str]:
    """Each Celery worker's hostname (what a task instance's `hostname` says) -> its container id."""
    return {
        stack.engine.docker(
            "inspect", "--format", "{{.Config.Hostname}}", container
        ).stdout.strip(): container
        for container in service_containers(stack, "airflow-worker")
    }


def worker_container(stack: ComposeProject, hostname: str) -> str:
    found = workers(stack)
    assert hostname in found, f"no worker container has hostname {hostname}: {found}"
    return found[hostname]


def service_containers(stack: ComposeProject, service: str) -> list[str]:
    return [c["ID"] for c in stack.containers() if c["Service"] == service]


def kill_worker_running(stack: ComposeProject, api: AirflowApi, run_id: str, task_id: str) -> dict:
    """`docker kill` (SIGKILL) of the worker container running task_id, which must be running then.
    Returns the task instance as it was when killed."""
    ti = assert_running(api, run_id, task_id)
    container = worker_container(stack, ti["hostname"])
    stack.engine.docker("kill", container)
    assert not _running(stack, container)
    return ti


def _restart_count(stack: ComposeProject, container: str) -> int:
    return int(stack.engine.docker("inspect", "--format", "{{.RestartCount}}", container).stdout)


def _running(stack: ComposeProject, container: str) -> bool:
    return (
        stack.engine.docker("inspect", "--format", "{{.State.Running}}", container).stdout.strip() == "true"
    )


def wait_for_restart(stack: ComposeProject, container: str, restarts: int, timeout: float = 120) -> None:
    """Until the engine has restarted the killed container (its restart policy)."""
    deadline = time.monotonic() + timeout
    while not (_restart_count(stack, container) > restarts and _running(stack, container)):
        assert time.monotonic() < deadline, f"container {container[:12]} was not restarted"
        time.sleep(0.5)


def _engine_time(stack: ComposeProject) -> str:
    """Now, as `docker logs --since` takes it (the engine runs on this machine)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wait_for_log(stack: ComposeProject, container: str, text: str, since: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        logs = stack.engine.docker("logs", "--since", since, container)
        if text in logs.stdout + logs.stderr:
            return
        assert time.monotonic() < deadline, f"{container[:12]} did not log {text!r}"
        time.sleep(0.5)


def wait_until_consuming(stack: ComposeProject, hostnames: set[str], timeout: float = 300) -> None:
    """Until every worker answers Celery's ping (their healthcheck's question, without its 30 s interval)."""
    ping = ("celery", "--app", "airflow.providers.celery.executors.celery_executor.app", "inspect", "ping")
    deadline = time.monotonic() + timeout
    for hostname in hostnames:
        destination = ("-d", f"celery@{hostname}")
        while stack.compose("exec", "-T", "airflow-worker", *ping, *destination, check=False).returncode:
            assert time.monotonic() < deadline, f"worker {hostname} does not answer after {timeout:.0f} s"
            time.sleep(2)


def wait_for_warehouse(stack: ComposeProject, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    ready = ("exec", "-T", "warehouse", "pg_isready", "-U", "warehouse", "-d", "warehouse")
    while stack.compose(*ready, check=False).returncode:
        assert time.monotonic() < deadline, "the warehouse did not come back"
        time.sleep(0.5)


def attempt_error(api: AirflowApi, run_id: str, task_id: str, attempt: int, required: bool = True) -> str:
    """The exception a try of a task failed with, from its log as the REST API serves it (what the UI
    shows, wherever the log is: the object store, the worker): "Type: message", then "(from Type:
    message)" for each of its causes ("" when none was logged and not required: a try killed with its
    worker logs none). A required error is waited for: the try's state can be set before its last
    lines are written."""
    deadline = time.monotonic() + LOG_TIMEOUT
    while True:
        lines = api.task_log(DAG_ID, run_id, task_id, attempt)
        errors = []
        for entry in lines:
            if chain := entry.get("error_detail"):  # the exception raised, then its causes
                raised, *causes = (f"{e.get('exc_type')}: {e.get('exc_value')}" for e in chain)
                errors.append(raised + "".join(f" (from {cause})" for cause in causes))
        if errors or not required:
            return " ".join(errors[-1].split()) if errors else ""
        tail = "\n".join(str(entry.get("event")) for entry in lines[-30:])
        assert time.monotonic() < deadline, (
            f"no error in {task_id}'s try {attempt} after {LOG_TIMEOUT} s:\n{tail}"
        )
        time.sleep(2)


def psql(stack: ComposeProject, service: str, user: str, sql: str) -> list[tuple[str, ...]]:
    """Rows of a query, run with psql in a database container, as the README does."""
    command = ("psql", "-U", user, "--no-align", "--tuples-only", "--field-separator=\t", "-c", sql)
    output = stack.compose("exec", "-T", service, *command).stdout
    return [tuple(line.split("\t")) for line in output.splitlines()]


def warehouse(stack: ComposeProject, sql: str) -> list[tuple[str, ...]]:
    return psql(stack, "warehouse", "warehouse", sql)


def warehouse_users(stack: ComposeProject) -> list[tuple[str, ...]]:
    return sorted(warehouse(stack, "SELECT user_id, firstname, lastname, country FROM users"))


def warehouse_checksum(stack: ComposeProject) -> tuple[str, ...]:
    """Every row of `users`, loaded_at included, as one digest: equal means the table did not change."""
    return warehouse(
        stack, "SELECT count(*), md5(string_agg(u::text, '|' ORDER BY user_id)) FROM users AS u"
    )[0]


def assert_warehouse_holds_exactly_the_served_users(stack: ComposeProject, api: AirflowApi) -> None:
    """The users table holds one row per user the API served the DAG's runs, with its values: no user
    lost, none twice, none that was not served (compared with the API's answer, row by row)."""
    loaded, served = warehouse_users(stack), served_users(api)
    assert len(loaded) == len(served), f"{len(loaded)} rows for {len(served)} served users"
    assert loaded == served


def assert_marts_match_the_served_users(stack: ComposeProject, api: AirflowApi) -> None:
    """dbt's marts hold the same users: dim_users one row per served user, users_by_country their counts."""
    served = served_users(api)
    dim_users = sorted(warehouse(stack, "SELECT user_id, country FROM analytics.dim_users"))
    assert dim_users == sorted((user[0], user[3]) for user in served)
    by_country = dict(warehouse(stack, "SELECT country, users FROM analytics.users_by_country"))
    assert by_country == {country: str(n) for country, n in Counter(user[3] for user in served).items()}


def loaded_runs(api: AirflowApi) -> list[dict]:
    """The DAG's real runs, backfilled ones too (not the temporary ones of `airflow tasks test`)."""
    return [run for run in api.runs(DAG_ID) if run["run_type"] in ("manual", "scheduled", "backfill")]


def served_pages(api: AirflowApi):
    """Every page the stand-in served the DAG's runs: same seed, same users."""
    for run in loaded_runs(api):
        # As the tasks do: a run triggered without a logical date uses the time it was queued for.
        when = run["logical_date"] or run["run_after"]
        logical_date = datetime.fromisoformat(when.replace("Z", "+00:00"))
        seed = seed_for(DAG_ID, logical_date)
        total = (run.get("conf") or {}).get("users", DEFAULT_USERS_PER_RUN)
        for page, size in enumerate(page_sizes(total), start=1):
            yield generate_page(seed, page, size)["results"]


def served_users(api: AirflowApi) -> list[tuple[str, ...]]:
    users = {
        u["login"]["uuid"]: (
            u["login"]["uuid"],
            u["name"]["first"],
            u["name"]["last"],
            u["location"]["country"],
        )
        for page in served_pages(api)
        for u in page
    }
    return sorted(users.values())


def served_logins(api: AirflowApi) -> list[dict]:
    return [user["login"] for page in served_pages(api) for user in page]


def readme_commands(prefix: str) -> list[str]:
    """The lines of README.md's code blocks that start with prefix, without their trailing comments."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(), re.M | re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(prefix)]


def _context(text: str, secret: str) -> str:
    """Where a secret showed up, with the secret itself masked."""
    index = text.index(secret)
    return (
        text[max(0, index - 300) : index].rsplit("\n", 1)[-1] + "<SECRET>" + text[index + len(secret) :][:200]
    )


def task_log_tails(stack: ComposeProject, run_id: str, task_ids, lines: int = 30) -> str:
    """The end of the Airflow log of each task that did not succeed (logs/ is the checkout's)."""
    folder = stack.folder / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    parts = []
    for task_id in task_ids:
        for log in sorted(folder.glob(f"task_id={task_id}/**/attempt=*.log")):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            parts.append(f"----- {log.relative_to(folder)} -----\n{tail}")
    return "\n".join(parts)
