"""End to end: the real DAG, run by the real Airflow CLI, against the stand-in API and a real PostgreSQL.

Nothing is mocked. Expected rows come from the stand-in's own generator with the seed the DAG
derives from each logical date, so every assertion is about exact rows, not just counts.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.standin_user_api import generate_page
from include.user_processing.extract import seed_for
from include.user_processing.settings import DEFAULT_USERS_PER_RUN
from include.user_processing.user_api import page_sizes
from tests.conftest import users_in

pytestmark = pytest.mark.e2e

ROW = "user_id::text, firstname, lastname, email, username, country"


def expected_users(
    logical_date: str, total: int = DEFAULT_USERS_PER_RUN, edge_cases: bool = False
) -> list[tuple]:
    """The rows the DAG must load for one logical date: what the API serves for that date's seed."""
    seed = seed_for("user_processing", datetime.fromisoformat(logical_date).replace(tzinfo=UTC))
    rows = []
    for page, size in enumerate(page_sizes(total), start=1):
        for user in generate_page(seed, page, size, edge_cases=edge_cases)["results"]:
            login, name = user["login"], user["name"]
            rows.append(
                (
                    login["uuid"],
                    name["first"],
                    name["last"],
                    user["email"],
                    login["username"],
                    user["location"]["country"],
                )
            )
    return sorted(rows)


def assert_succeeded(result) -> None:
    assert result.returncode == 0, f"dags test failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"


def test_a_run_loads_exactly_the_api_users_and_reruns_change_nothing(airflow, warehouse):
    # Two pages: 5003 users is one full page of 5000 plus a page of 3.
    assert_succeeded(airflow.dags_test("2024-01-01", conf={"users": 5003}))
    first_day = expected_users("2024-01-01", 5003)
    assert users_in(warehouse, ROW) == first_day

    snapshot = users_in(warehouse, "*")  # loaded_at included: an idempotent re-run rewrites nothing
    assert_succeeded(airflow.dags_test("2024-01-01", conf={"users": 5003}))
    assert users_in(warehouse, "*") == snapshot

    assert_succeeded(airflow.dags_test("2024-01-02"))
    assert users_in(warehouse, ROW) == sorted(first_day + expected_users("2024-01-02"))


def test_awkward_values_load_verbatim(airflow, warehouse, user_api):
    # Quotes, commas, backslashes, newlines, CRLF, a literal \N, emoji, empty strings, spaces.
    user_api.control("POST", "edge-cases", {"enabled": True})
    assert_succeeded(airflow.dags_test("2024-01-15"))
    assert users_in(warehouse, ROW) == expected_users("2024-01-15", edge_cases=True)


def test_tasks_test_run_one_by_one_loads_the_users(airflow, warehouse):
    # How the course uses it: each task alone, in order, for the same date. XCom does not carry over
    # between `tasks test` calls, so this only works because tasks find their files by logical date.
    for task_id in ("create_table", "is_api_available", "extract_user", "process_user", "store_user"):
        state, result = airflow.task_state(task_id, "2024-02-01")
        assert state == "success", (
            f"{task_id} ended {state}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    assert users_in(warehouse, ROW) == expected_users("2024-02-01")


def test_api_errors_then_recovery_load_the_users_once(airflow, warehouse, user_api):
    # The sensor's probe gets through; then the first two page requests fail, the third succeeds.
    user_api.add_fault("status", status=500, times=2, after=1)
    assert_succeeded(airflow.dags_test("2024-03-01"))
    assert [r["status"] for r in user_api.requests()] == [200, 500, 500, 200]
    assert users_in(warehouse, ROW) == expected_users("2024-03-01")


def test_garbage_from_the_api_fails_the_run_clearly_and_leaves_users_unchanged(airflow, warehouse, user_api):
    assert_succeeded(airflow.dags_test("2024-04-01"))
    before = users_in(warehouse, "*")

    user_api.add_fault("drop_field", field="login", times=-1)
    result = airflow.dags_test("2024-04-02")
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert "user 0 on page 1: field 'login.uuid' is missing" in log
    assert users_in(warehouse, "*") == before
