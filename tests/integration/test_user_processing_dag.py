"""End to end: the real DAG, run by the real Airflow CLI, against the stand-in API and a real PostgreSQL.

Nothing is mocked. Expected rows come from the stand-in's own generator with the seed the DAG
derives from each logical date, so every assertion is about exact rows, not just counts.
"""

from __future__ import annotations

import pytest

from tests.conftest import users_in
from tests.integration.expected import ROW, assert_succeeded, user_rows

pytestmark = pytest.mark.e2e


def test_a_run_loads_exactly_the_api_users_and_reruns_change_nothing(airflow, warehouse):
    # Two pages: 5003 users is one full page of 5000 plus a page of 3.
    assert_succeeded(airflow.dags_test("2024-01-01", conf={"users": 5003}))
    first_day = user_rows("2024-01-01", 5003)
    assert users_in(warehouse, ROW) == first_day

    snapshot = users_in(warehouse, "*")  # loaded_at included: an idempotent re-run rewrites nothing
    assert_succeeded(airflow.dags_test("2024-01-01", conf={"users": 5003}, skip_dbt=True))
    assert users_in(warehouse, "*") == snapshot

    assert_succeeded(airflow.dags_test("2024-01-02", skip_dbt=True))
    assert users_in(warehouse, ROW) == sorted(first_day + user_rows("2024-01-02"))


def test_awkward_values_load_verbatim(airflow, warehouse, user_api):
    # Quotes, commas, backslashes, newlines, CRLF, a literal \N, emoji, empty strings, spaces.
    user_api.control("POST", "edge-cases", {"enabled": True})
    assert_succeeded(airflow.dags_test("2024-01-15"))
    assert users_in(warehouse, ROW) == user_rows("2024-01-15", edge_cases=True)


def test_tasks_test_run_one_by_one_loads_the_users(airflow, warehouse):
    # How the course uses it: each task alone, in order, for the same date. XCom does not carry over
    # between `tasks test` calls, so this only works because tasks find their files by logical date.
    for task_id in ("create_table", "is_api_available", "extract_user", "process_user", "store_user"):
        state, result = airflow.task_state(task_id, "2024-02-01")
        assert state == "success", (
            f"{task_id} ended {state}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    assert users_in(warehouse, ROW) == user_rows("2024-02-01")


def test_api_errors_then_recovery_load_the_users_once(airflow, warehouse, user_api):
    # The sensor's probe gets through; then the first two page requests fail, the third succeeds.
    user_api.add_fault("status", status=500, times=2, after=1)
    assert_succeeded(airflow.dags_test("2024-03-01", skip_dbt=True))
    assert [r["status"] for r in user_api.requests()] == [200, 500, 500, 200]
    assert users_in(warehouse, ROW) == user_rows("2024-03-01")


def test_garbage_from_the_api_fails_the_run_clearly_and_leaves_users_unchanged(airflow, warehouse, user_api):
    assert_succeeded(airflow.dags_test("2024-04-01", skip_dbt=True))
    before = users_in(warehouse, "*")

    user_api.add_fault("drop_field", field="login", times=-1)
    result = airflow.dags_test("2024-04-02")
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert "user 0 on page 1: field 'login.uuid' is missing" in log
    assert users_in(warehouse, "*") == before
