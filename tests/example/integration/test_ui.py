"""`make ui` as a user runs it: start, log in with the printed password, trigger runs, Ctrl-C.

One `make ui` for the module (its start-up is most of the cost), in this order:
- through the REST API the UI itself uses: the scheduled run, a triggered one and a backfill of
  three dates at once, every run green without a dbt retry and no two dbt builds at the same time
  (the dbt pool); the triggered run loads exactly the served users, and the marts' Asset events
  start users_report (the real scheduler's data-aware scheduling);
- in a real browser (Debian's Chromium, driven by Playwright), as a person clicks through it;
- Ctrl-C: everything it started is stopped and removed.

The real scripts/ui.py (scheduler, dag-processor, triggerer and api-server) on its own throwaway
PostgreSQL and stand-in API, not the session's: `make ui` starts its own. Its run folders are on the
session's S3 server, set in the shell as a user sets them (AIRFLOW_CONN_OBJECT_STORE,
AIRFLOW_VAR_RUN_FOLDER_URL): here each task runs in a process of its own, as on a real worker.
Every `airflow dags test` elsewhere runs on the default, a run folder on the local disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest

from include.common.assets import dbt_model_assets
from include.common.project import OBJECT_STORE_CONN_ID
from include.user_processing.settings import DEFAULT_USERS_PER_RUN, USERS_ASSET
from include.users_report.report import SUMMARY_FILE, read_marts
from include.users_report.settings import MARTS
from scripts.airflow_api import AirflowApi
from scripts.local_env import LOCAL_DIR, REPO_ROOT, free_port
from template.browser import expand_all_task_groups, logged_in_page
from tests.conftest import run_folder_on, stored
from tests.example.conftest import DBT_BUILD_TASK
from tests.example.integration.expected import api_users
from tests.example.integration.ui_pages import (
    asset_event_runs,
    grid_colours,
    hue,
    run_state_colour,
    saved_on_failure,
    standin_control,
)
from tests.overlap import most_at_once, overlapping, span

pytestmark = pytest.mark.e2e

USERS = 150  # not the DAG's default, as a user would set it in the trigger form
LOGICAL_DATE = "2024-09-01"
RUN_FOLDERS = "ui"  # their prefix in the S3 server's bucket
BACKFILL = ("2024-10-01T00:00:00Z", "2024-10-03T00:00:00Z")  # three dates, all at once
RUNS = 5  # the scheduled run (unpausing starts it), the triggered one, the backfill's three
BROWSER_USERS = 120  # set in the browser's trigger form
BROWSER_RUN = "browser_trigger"
FAILING_RUN = "browser_garbage_from_the_api"
BANNER = re.compile(r"user admin, password (\S+) .*?psql \"([^\"]+)\".*?user API: (\S+)", re.S)


class Output:
    """The lines a process prints, collected as it goes."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._reader.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: re.Pattern, process: subprocess.Popen, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while not (match := pattern.search(self.text)):
            assert process.poll() is None, f"make ui ended early:\n{self.text[-6000:]}"
            assert time.monotonic() < deadline, f"no banner after {timeout:.0f} s:\n{self.text[-6000:]}"
            time.sleep(1)
        return match


def listening_addresses(pid: int) -> set[str]:
    """The addresses every process of the tree under pid listens on (TCP)."""
    root = psutil.Process(pid)
    addresses = set()
    for process in [root, *root.children(recursive=True)]:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        addresses |= {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN}
    return addresses


def airflow_home_of(pid: int, port: int) -> Path:
    """The AIRFLOW_HOME of the Airflow services under pid, those serving on `port` (one, shared)."""
    homes = set()
    for process in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            environ = process.environ()
            if environ.get("AIRFLOW__API__PORT") == str(port):
                homes.add(environ.get("AIRFLOW_HOME"))
    assert len(homes) == 1, f"the services run with AIRFLOW_HOME {homes}"
    return Path(homes.pop())


def wait_for_report_of_marts(api: AirflowApi, warehouse_uri: str, s3, timeout: float) -> tuple[list, str]:
    """users_report's runs once all are done and the newest one's summary, read from the object store
    (`s3`, a client of its own), holds the marts' numbers."""
    with psycopg.connect(warehouse_uri) as conn:
        marts = read_marts(conn)
    expected = f"{marts.users} users from {len(marts.by_country)} countries"
    deadline = time.monotonic() + timeout
    while True:
        runs = api.runs("users_report")
        if runs and all(run["state"] in ("success", "failed") for run in runs):
            newest = max(runs, key=lambda run: run["run_after"])
            states = api.task_instances("users_report", newest["dag_run_id"])
            assert newest["state"] == "success", [(ti["task_id"], ti["state"]) for ti in states]
            report = api.return_value("users_report", newest["dag_run_id"], "write_report")
            folder = report["folder"].removeprefix(f"s3://{OBJECT_STORE_CONN_ID}@")
            summary = s3.cat(f"{folder}/{SUMMARY_FILE}").decode()
            if expected in summary:
                return runs, summary
        assert time.monotonic() < deadline, f"no report of {expected} after {timeout:.0f} s: {runs}"
        time.sleep(3)


@dataclass
class UiSession:
    process: subprocess.Popen
    output: Output
    url: str
    password: str
    warehouse_uri: str
    user_api_url: str
    api: AirflowApi
    home: Path  # the AIRFLOW_HOME its services run with


@pytest.fixture(scope="module")
def ui(object_store) -> Iterator[UiSession]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.ui", "--port", str(port)],
        cwd=REPO_ROOT,
        env={**os.environ, **object_store.airflow_settings(prefix=RUN_FOLDERS)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Ctrl-C goes to its process group, as in a terminal
    )
    output = Output(process)
    try:
        password, warehouse_uri, user_api_url = output.wait_for(BANNER, process, timeout=300).groups()
        url = f"http://127.0.0.1:{port}"
        api = AirflowApi(url).login("admin", password)
        api.wait_for_dag("user_processing", timeout=180)
        api.wait_for_dag("users_report", timeout=180)
        home = airflow_home_of(process.pid, port)
        yield UiSession(process, output, url, password, warehouse_uri, user_api_url, api, home)
    finally:
        if process.poll() is None:  # the Ctrl-C test did not get to run
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=180)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def wait_for_runs(api: AirflowApi, dag_id: str, count: int, timeout: float) -> list[dict]:
    """The DAG's runs, once there are `count` and every one has ended."""
    deadline = time.monotonic() + timeout
    while True:
        runs = api.runs(dag_id)
        if len(runs) >= count and all(run["state"] in ("success", "failed") for run in runs):
            return runs
        assert time.monotonic() < deadline, (
            f"after {timeout:.0f} s: {[(r['run_id'], r['state']) for r in runs]}"
        )
        time.sleep(3)


def test_overlapping_runs_and_a_backfill_all_succeed_with_one_dbt_build_at_a_time(
    ui: UiSession, object_store
):
    """As a user would: unpause (the scheduled run starts), trigger a run with its own `users`, and
    create a backfill of three dates through the REST API at once; then users_report runs on the
    marts' Asset events."""
    api = ui.api
    assert api.request("GET", "/api/v2/dags/user_processing")["is_paused"] is True
    api.request("PATCH", "/api/v2/dags/users_report", {"is_paused": False})
    api.request("PATCH", "/api/v2/dags/user_processing", {"is_paused": False})
    run_id = api.trigger("user_processing", f"{LOGICAL_DATE}T00:00:00Z", {"users": USERS})
    api.backfill("user_processing", *BACKFILL, max_active_runs=3)

    runs = wait_for_runs(api, "user_processing", RUNS, timeout=1200)
    assert {run["run_type"] for run in runs} == {"scheduled", "manual", "backfill"}, runs
    task_instances = [ti for run in runs for ti in api.task_instances("user_processing", run["dag_run_id"])]
    failed = {
        (ti["dag_run_id"], ti["task_id"]): ti["state"] for ti in task_instances if ti["state"] != "success"
    }
    assert not failed, f"{failed}\n{ui.output.text[-6000:]}"
    assert {run["state"] for run in runs} == {"success"}, runs
    # The runs overlapped, and their dbt builds did not: each in one try, one at a time.
    assert most_at_once([span(run) for run in runs]) >= 3, [
        (run["start_date"], run["end_date"]) for run in runs
    ]
    dbt = [ti for ti in task_instances if ti["task_id"].startswith("transform_users.")]
    assert len(dbt) >= RUNS
    assert {ti["pool"] for ti in dbt} == {"dbt"}
    retried = {(ti["dag_run_id"], ti["task_id"]): ti["try_number"] for ti in dbt if ti["try_number"] != 1}
    assert not retried, retried
    assert overlapping(dbt) == []

    # Each run loaded its own date's users, with the default number of users unless the trigger set one.
    expected = set()
    for run in runs:
        users = (run["conf"] or {}).get("users", DEFAULT_USERS_PER_RUN)
        expected |= {user["login"]["uuid"] for user in api_users(run["logical_date"], users)}
    with psycopg.connect(ui.warehouse_uri) as conn:
        loaded = {row[0] for row in conn.execute("SELECT user_id::text FROM users")}
    assert loaded == expected
    assert {u["login"]["uuid"] for u in api_users(LOGICAL_DATE, USERS)} <= loaded
    assert api.run("user_processing", run_id)["state"] == "success"

    # Each task handed its files over on the object store.
    s3 = object_store.filesystem()
    run_folder = run_folder_on(object_store, RUN_FOLDERS, "user_processing", LOGICAL_DATE)
    assert sorted(stored(s3, run_folder)) == [
        f"dbt/{DBT_BUILD_TASK}/run_results.json",
        "raw/manifest.json",
        "raw/page-00001.json",
        "users.csv",
    ]
    assert stored(s3, run_folder)["users.csv"].count(b"\n") == USERS + 1

    # The marts' Asset events started users_report, whose report holds the marts' numbers.
    report_runs, summary = wait_for_report_of_marts(api, ui.warehouse_uri, s3, timeout=300)
    assert {run["run_type"] for run in report_runs} == {"asset_triggered"}, report_runs
    assert {run["state"] for run in report_runs} == {"success"}, report_runs
    assert f"{len(loaded)} users from" in summary
    marts = {asset.uri for asset in dbt_model_assets(*MARTS)}
    for run in report_runs:
        path = f"/api/v2/dags/users_report/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
        events = api.request("GET", path)["asset_events"]
        assert {event["uri"] for event in events} == marts, events


def test_in_a_browser_a_person_triggers_watches_and_reads_the_logs(ui: UiSession):
    with logged_in_page(ui.url, "admin", ui.password) as page, saved_on_failure(page, "browser"):
        # The DAG list shows its tags; the owner is on the DAG's page (3.3's list has no owner column).
        page.goto(ui.url + "/dags")
        page.get_by_role("link", name="user_processing", exact=True).wait_for()
        assert re.search(
            r"user_processing\s+etl, example, users", page.get_by_test_id("main-content").inner_text()
        ), "no tags"
        page.get_by_role("link", name="user_processing", exact=True).click()
        page.get_by_text("data-engineering").first.wait_for()
        assert re.search(r"Owner\s+data-engineering", page.get_by_test_id("main-content").inner_text()), (
            "no owner"
        )

        # The trigger form, with `users` set to another value than the default, and a run id to find it by.
        page.get_by_role("button", name="Trigger").first.click()
        form = page.get_by_role("dialog")
        assert form.get_by_role("spinbutton").input_value() == str(DEFAULT_USERS_PER_RUN)
        form.get_by_role("spinbutton").fill(str(BROWSER_USERS))
        form.get_by_role("button", name="Advanced Options").click()
        form.locator("input[name=dagRunId]").fill(BROWSER_RUN)
        form.get_by_test_id("trigger-dag-submit").click()
        form.wait_for(state="hidden")

        # The grid turns green: every task, the dbt group's too, within a bounded wait.
        assert ui.api.wait_for_run("user_processing", BROWSER_RUN, timeout=600) == "success"
        page.goto(f"{ui.url}/dags/user_processing/runs/{BROWSER_RUN}")
        expand_all_task_groups(page)
        tasks = [ti["task_id"] for ti in ui.api.task_instances("user_processing", BROWSER_RUN)]
        assert any(task.startswith("transform_users.") for task in tasks), tasks
        for task in tasks:
            page.get_by_test_id(f"grid-{BROWSER_RUN}-{task}").wait_for()
        state, colour = run_state_colour(page)
        assert state == "success"
        assert abs(hue(colour) - 149) < 30, f"{colour} is not green"
        colours = grid_colours(page, BROWSER_RUN)
        assert set(tasks) <= set(colours), colours
        assert set(colours.values()) == {colour}, colours

        # The graph shows the dbt task group and its task.
        page.get_by_role("button", name="Show Graph (Press g)").click()
        page.locator(".react-flow__node").first.wait_for()
        expand_all_task_groups(page)
        nodes = page.locator(".react-flow__node")
        for task in tasks:
            nodes.filter(has_text=task.removeprefix("transform_users.")).first.wait_for()

        # Each dbt model is an Asset that run updated: its own events, one per build.
        for model in ("stg_users", "users_by_country"):
            page.goto(ui.url + "/assets")
            page.get_by_role("link", name=f"analytics.{model}", exact=True).click()
            page.get_by_text("Asset Events").first.wait_for()
            page.locator(f'a[href^="/dags/user_processing/runs/{BROWSER_RUN}/"]').first.wait_for()
            assert BROWSER_RUN in asset_event_runs(page, "user_processing"), model

        # A task's log: the extract summary, and no password or salt of any user served.
        page.goto(f"{ui.url}/dags/user_processing/runs/{BROWSER_RUN}/tasks/extract_user")
        page.get_by_text(f"'users': {BROWSER_USERS}").wait_for()
        log = page.inner_text("body")
        logical_date = ui.api.run("user_processing", BROWSER_RUN)["logical_date"]
        served = [user["login"] for user in api_users(logical_date, BROWSER_USERS)]
        leaked = [login["username"] for login in served if login["password"] in log or login["salt"] in log]
        assert not leaked, f"the log page shows the password or salt of {leaked}"

        # The `users` Asset: an event from this run.
        page.goto(ui.url + "/assets")
        page.get_by_role("link", name=USERS_ASSET.name, exact=True).click()
        page.get_by_text("Asset Events").first.wait_for()
        page.locator(f'a[href^="/dags/user_processing/runs/{BROWSER_RUN}/"]').first.wait_for()
        assert BROWSER_RUN in asset_event_runs(page, "user_processing")

        # A run fed garbage by the API goes red, its cause readable in the failed task's log.
        fault = {"mode": "drop_field", "field": "login.uuid", "after": 1, "times": -1}  # after the probe
        standin_control(ui.user_api_url, "POST", fault)
        try:
            page.goto(ui.url + "/dags/user_processing")
            page.get_by_role("button", name="Trigger").first.click()
            form = page.get_by_role("dialog")
            form.get_by_role("button", name="Advanced Options").click()
            form.locator("input[name=dagRunId]").fill(FAILING_RUN)
            form.get_by_test_id("trigger-dag-submit").click()
            form.wait_for(state="hidden")
            assert ui.api.wait_for_run("user_processing", FAILING_RUN, timeout=600) == "failed"
        finally:
            standin_control(ui.user_api_url, "DELETE")
        page.goto(f"{ui.url}/dags/user_processing/runs/{FAILING_RUN}")
        page.get_by_role("button", name="Show Grid (Press g)").click()  # the UI remembers the graph view
        page.get_by_test_id(f"grid-{FAILING_RUN}-extract_user").wait_for()
        state, colour = run_state_colour(page)
        assert state == "failed"
        assert hue(colour) < 60 or hue(colour) > 330, f"{colour} is not red"
        assert grid_colours(page, FAILING_RUN)["extract_user"] == colour
        page.goto(f"{ui.url}/dags/user_processing/runs/{FAILING_RUN}/tasks/extract_user")
        page.get_by_text("field 'login.uuid' is missing").first.wait_for()


def test_ctrl_c_stops_everything_and_removes_it(ui: UiSession):
    assert listening_addresses(ui.process.pid) == {"127.0.0.1"}
    assert ui.output.text.count(ui.password) == 1, "the password is printed once, in the banner"
    os.killpg(ui.process.pid, signal.SIGINT)
    try:
        code = ui.process.wait(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(ui.process.pid, signal.SIGKILL)
        raise
    assert code == 0, ui.output.text[-6000:]
    assert "Stopped; the throwaway databases and the Airflow home are removed." in ui.output.text
    # Its own home, read from its services: other test processes make homes of their own meanwhile.
    assert ui.home.parent == LOCAL_DIR, ui.home
    assert not ui.home.exists(), f"the Airflow home {ui.home} was left behind"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(ui.warehouse_uri, connect_timeout=3)
