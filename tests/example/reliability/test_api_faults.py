"""API faults, run through the real DAG: what recovers loads exactly once; what cannot fails loudly."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from include.user_processing.user_api import RequestRetries, fetch_users_page, request_timeout
from template.standin_user_api import generate_page, make_server
from tests.example.conftest import users_in
from tests.example.integration.expected import ROW, api_users, assert_succeeded, user_rows
from tests.example.reliability.conftest import USERS, assert_baseline_and_users_of
from tests.example.reliability.invariants import assert_no_duplicate_user_ids, assert_visible_failure

pytestmark = pytest.mark.e2e

# A flaky API: the page request meets each of these in turn (the sensor's probe goes through), and
# every one is retried inside extract_user until the API answers properly.
TRANSIENT = [
    {"mode": "status", "status": 503},
    {"mode": "status", "status": 502},
    {"mode": "status", "status": 500},
    {"mode": "status", "status": 429},  # without Retry-After, as the real API sends it
    {"mode": "empty_results"},  # HTTP 200 with "results": [], as during the 2026 outages
    {"mode": "error_object"},
    {"mode": "truncated"},
    {"mode": "not_json"},
]


def test_every_transient_fault_is_retried_and_the_users_load_once(run, user_api, warehouse, baseline):
    for number, fault in enumerate(TRANSIENT):
        user_api.add_fault(**fault, after=1 if number == 0 else 0, times=1)
    attempts = {"AIRFLOW__USER_PROCESSING__REQUEST_MAX_ATTEMPTS": str(len(TRANSIENT) + 1)}
    assert_succeeded(run("2024-09-01", env=attempts))
    served = [request["fault"] for request in user_api.requests()]
    assert served == [None, *(fault["mode"] for fault in TRANSIENT), None]  # probe, 8 faults, success
    assert_no_duplicate_user_ids(warehouse)
    assert_baseline_and_users_of(warehouse, "2024-09-01")  # the same table as a clean run


@pytest.mark.parametrize("drift", ["street_as_string", "extra_field"])
def test_schema_drift_in_fields_the_pipeline_does_not_read_is_harmless(run, user_api, warehouse, drift):
    user_api.add_fault(drift, times=-1)
    assert_succeeded(run("2024-09-07"))
    assert users_in(warehouse, ROW) == user_rows("2024-09-07", USERS)


def test_read_timeout_is_retried(run, user_api, warehouse, baseline):
    # The connection's "timeout" extra sets requests' timeout; the stand-in answers after 4 s once.
    connection = json.dumps({"conn_type": "http", "host": user_api.url, "extra": {"timeout": 1.5}})
    user_api.add_fault("timeout", seconds=4, after=1, times=1)
    result = run("2024-09-02", env={"AIRFLOW_CONN_USER_API": connection})
    assert_succeeded(result)
    assert "ReadTimeout" in result.stdout + result.stderr
    assert_baseline_and_users_of(warehouse, "2024-09-02")


FATAL = {
    # fault, failing task, what the log must say
    "results silently 1": (
        {"mode": "results_one"},
        "extract_user",
        f"asked for {USERS} users on page 1, got 1",
    ),
    "outage that never ends": ({"mode": "empty_results"}, "extract_user", "empty 'results' list"),
    "404 from a wrong endpoint": (
        {"mode": "status", "status": 404, "after": 0},
        "is_api_available",
        "HTTP 404",
    ),
}


@pytest.mark.parametrize(("fault", "task_id", "cause"), FATAL.values(), ids=FATAL.keys())
def test_unrecoverable_faults_fail_visibly_and_change_nothing(
    run, user_api, unchanged, fault, task_id, cause
):
    user_api.add_fault(**{"after": 1, "times": -1, **fault})
    result = run("2024-09-03")
    assert_visible_failure(result, task_id, cause, api_users("2024-09-03", USERS))
    unchanged()


def test_a_missing_field_fails_the_run_and_the_rerun_after_the_fix_gives_the_clean_result(
    run, user_api, warehouse, unchanged
):
    user_api.add_fault("drop_field", field="login", after=1, times=-1)
    failed = run("2024-09-04")
    assert_visible_failure(failed, "extract_user", "user 0 on page 1: field 'login.uuid' is missing")
    unchanged()
    user_api.reset()
    assert_succeeded(run("2024-09-04"))
    assert_baseline_and_users_of(warehouse, "2024-09-04")


def test_duplicate_ids_keep_the_last_user_and_duplicate_emails_and_usernames_load(
    run, user_api, warehouse, airflow
):
    user_api.add_fault("duplicate_uuids", after=1)
    assert_succeeded(run("2024-09-05", users=500))
    served = json.loads(
        (
            airflow.home / "run-folders/user_processing/logical_date=20240905T000000/raw/page-00001.json"
        ).read_text()
    )
    last_by_id = {user["login"]["uuid"]: user for user in served}  # later users overwrite earlier ones
    assert len(last_by_id) < len(served), "the fault should have served duplicate ids"
    assert_no_duplicate_user_ids(warehouse)
    loaded = dict(warehouse.execute("SELECT user_id::text, firstname FROM users").fetchall())
    assert loaded == {user_id: user["name"]["first"] for user_id, user in last_by_id.items()}

    total, emails, usernames = warehouse.execute(
        "SELECT count(*), count(DISTINCT email), count(DISTINCT username) FROM users"
    ).fetchone()
    assert emails < total  # the API repeats emails and usernames: neither may be a key
    assert usernames < total


def test_connect_timeouts_are_retried_until_the_api_answers(monkeypatch, caplog):
    # A port whose accept queue is full: connecting there times out, as to an overloaded API. After
    # the first attempt the stand-in API takes the port over, and the retry gets the users.
    from airflow.providers.http.hooks.http import HttpHook

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = [socket.create_connection(("127.0.0.1", port))]  # fills the queue of one
    monkeypatch.setenv(
        "AIRFLOW_CONN_USER_API",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port, "extra": {"timeout": [1, 10]}}),
    )
    hook = HttpHook(method="GET", http_conn_id="user_api")

    def api_comes_back() -> None:
        time.sleep(1.5)  # after the first connect timed out (1 s), before the retry (1 s later)
        for sock in [*queued, listener]:
            sock.close()
        server = make_server(port=port)
        servers.append(server)
        server.serve_forever()

    servers: list = []
    threading.Thread(target=api_comes_back, daemon=True).start()
    try:
        users = fetch_users_page(
            hook, seed="s", page=1, results=5, timeout=request_timeout(hook),
            retries=RequestRetries(max_attempts=3, first_wait_seconds=1.0),
        )  # fmt: skip
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert "attempt 1 of 3 failed (request failed: ConnectTimeout)" in caplog.text
    assert [user["login"]["uuid"] for user in users] == [
        user["login"]["uuid"] for user in generate_page("s", 1, 5)["results"]
    ]
