"""`make ui` as a user runs it: start, log in with the printed password, trigger a run, Ctrl-C.

The runs of user_processing update the `users` Asset, and that starts users_report: the real
scheduler's data-aware scheduling, end to end.

The real scripts/ui.py (scheduler, dag-processor, triggerer and api-server) on its own throwaway
PostgreSQL and stand-in API (not the session's: `make ui` starts its own), driven through the REST
API the UI itself uses.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from include.user_processing.settings import DEFAULT_USERS_PER_RUN
from include.users_report.report import SUMMARY_FILE, read_marts
from scripts.local_env import LOCAL_DIR, REPO_ROOT, free_port
from tests.airflow_api import AirflowApi
from tests.integration.expected import api_users

pytestmark = pytest.mark.e2e

USERS = 150  # not the DAG's default, as a user would set it in the trigger form
LOGICAL_DATE = "2024-09-01"
BANNER = re.compile(r"user admin, password (\S+) .*?psql \"([^\"]+)\"", re.S)


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


def wait_for_report_of_marts(api: AirflowApi, warehouse_uri: str, timeout: float) -> tuple[list, str]:
    """users_report's runs once all are done and the newest one's summary holds the marts' numbers."""
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
            summary = (Path(report["folder"].removeprefix("file://")) / SUMMARY_FILE).read_text()
            if expected in summary:
                return runs, summary
        assert time.monotonic() < deadline, f"no report of {expected} after {timeout:.0f} s: {runs}"
        time.sleep(3)


def test_make_ui_serves_on_localhost_runs_the_dag_and_removes_everything_on_ctrl_c():
    port = free_port()
    homes_before = set(LOCAL_DIR.glob("airflow-home-*"))
    ui = subprocess.Popen(
        [sys.executable, "-m", "scripts.ui", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Ctrl-C goes to its process group, as in a terminal
    )
    output = Output(ui)
    try:
        password, warehouse_uri = output.wait_for(BANNER, ui, timeout=300).groups()
        api = AirflowApi(f"http://127.0.0.1:{port}").login("admin", password)
        api.wait_for_dag("user_processing", timeout=180)
        api.wait_for_dag("users_report", timeout=180)
        assert api.request("GET", "/api/v2/dags/user_processing")["is_paused"] is True
        api.request("PATCH", "/api/v2/dags/users_report", {"is_paused": False})
        api.request("PATCH", "/api/v2/dags/user_processing", {"is_paused": False})
        run_id = api.trigger("user_processing", f"{LOGICAL_DATE}T00:00:00Z", {"users": USERS})
        assert api.wait_for_run("user_processing", run_id, timeout=600) == "success", output.text[-6000:]

        states = {ti["task_id"]: ti["state"] for ti in api.task_instances("user_processing", run_id)}
        assert any(task.startswith("transform_users.") for task in states), states
        assert set(states.values()) == {"success"}, states
        # Unpausing also started the run of the latest daily interval (catchup is off): each run
        # loads its own date's users, with the default number of users unless the trigger set one.
        expected = set()
        for run in api.runs("user_processing"):
            assert api.wait_for_run("user_processing", run["dag_run_id"], timeout=600) == "success"
            users = (run["conf"] or {}).get("users", DEFAULT_USERS_PER_RUN)
            expected |= {user["login"]["uuid"] for user in api_users(run["logical_date"], users)}
        with psycopg.connect(warehouse_uri) as conn:
            loaded = {row[0] for row in conn.execute("SELECT user_id::text FROM users")}
        assert loaded == expected
        assert {u["login"]["uuid"] for u in api_users(LOGICAL_DATE, USERS)} <= loaded

        # Each load's Asset event started users_report, whose report holds the marts' numbers.
        report_runs, summary = wait_for_report_of_marts(api, warehouse_uri, timeout=300)
        assert {run["run_type"] for run in report_runs} == {"asset_triggered"}, report_runs
        assert {run["state"] for run in report_runs} == {"success"}, report_runs
        assert f"{len(loaded)} users from" in summary

        assert listening_addresses(ui.pid) == {"127.0.0.1"}
        assert output.text.count(password) == 1, "the password is printed once, in the banner"
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGINT)
        try:
            code = ui.wait(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            raise
    assert code == 0, output.text[-6000:]
    assert "Stopped; removing" in output.text
    assert set(LOCAL_DIR.glob("airflow-home-*")) <= homes_before, "the Airflow home was left behind"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(warehouse_uri, connect_timeout=3)
