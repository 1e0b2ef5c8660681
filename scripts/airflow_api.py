"""Airflow's public REST API v2, as a user or a script calls it: log in, trigger, wait, read."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class AirflowApi:
    """Logged in with a JWT from POST /auth/token (the FAB and the simple auth manager alike)."""

    base_url: str
    token: str = ""

    def login(self, username: str, password: str) -> AirflowApi:
        answer = self.request("POST", "/auth/token", {"username": username, "password": password})
        self.token = answer["access_token"]
        return self

    def request(self, method: str, path: str, body: object | None = None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(  # noqa: S310 - http:// to the test's own api-server
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - as above
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:2000]
            raise ApiError(error.code, f"{method} {path} -> {error.code}: {detail}") from None
        return json.loads(payload) if payload else None

    def wait_for_dag(self, dag_id: str, timeout: float) -> None:
        """Until the dag-processor has put the DAG in the database; fails at once on an import error."""
        deadline = time.monotonic() + timeout
        while True:
            errors = self.request("GET", "/api/v2/importErrors")["import_errors"]
            if errors:
                raise AssertionError(
                    "import errors:\n" + "\n".join(e["filename"] + "\n" + e["stack_trace"] for e in errors)
                )
            try:
                self.request("GET", f"/api/v2/dags/{dag_id}")
                return
            except ApiError as error:
                if error.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(2)

    def trigger(self, dag_id: str, logical_date: str | None, conf: dict) -> str:
        """A new run of dag_id for logical_date (ISO 8601); returns its run id."""
        run = self.request(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": conf}
        )
        return run["dag_run_id"]

    def backfill(
        self, dag_id: str, from_date: str, to_date: str, max_active_runs: int, conf: dict | None = None
    ) -> dict:
        """A backfill of dag_id's logical dates from from_date to to_date (ISO 8601), as the UI's
        backfill form creates it: a run per date, max_active_runs of them at once, each with conf."""
        dates = {"from_date": from_date, "to_date": to_date}
        body = {"dag_id": dag_id, **dates, "max_active_runs": max_active_runs, "dag_run_conf": conf or {}}
        return self.request("POST", "/api/v2/backfills", body)

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}")

    def runs(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances?limit=1000"
        return self.request("GET", path)["task_instances"]

    def return_value(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """What the task returned (its return_value XCom)."""
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/{task_id}"
            "/xcomEntries/return_value?deserialize=true"
        )
        return self.request("GET", path)["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[dict]:
        """A try's log lines as the UI shows them (from wherever the log is): dicts with `event` and
        whatever else the line holds (`error_detail`, ...)."""
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/{task_id}"
            f"/logs/{try_number}?full_content=true"
        )
        return self.request("GET", path)["content"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """The run's final state (success or failed); AssertionError if it is still going after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run(dag_id, run_id)["state"]
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {state} after {timeout:.0f} s")
            time.sleep(3)
