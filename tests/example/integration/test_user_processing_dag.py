"""End to end: the real DAG, run by the real Airflow CLI, against the stand-in API and a real PostgreSQL.

Nothing is mocked. Expected rows come from the stand-in's own generator with the seed the DAG
derives from each logical date, so every assertion is about exact rows, not just counts.
"""

from __future__ import annotations

import pytest

from tests.conftest import dbt_manifest
from tests.example.conftest import DAG_ID, DBT_BUILD_TASK, users_in
from tests.example.integration.expected import ROW, assert_succeeded, user_rows

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


DATA_TASKS = ("create_table", "is_api_available", "extract_user", "process_user", "store_user")


def test_tasks_test_run_one_by_one_loads_the_users_and_builds_the_models(airflow, warehouse):
    # How the course uses it: each task alone, in order, for the same date. XCom does not carry over
    # between `tasks test` calls, so this only works because tasks find their files by logical date.
    for task_id in (*DATA_TASKS, DBT_BUILD_TASK):
        assert_task_succeeds(airflow, task_id, "2024-02-01")
    assert users_in(warehouse, ROW) == user_rows("2024-02-01")
    assert warehouse.execute("SELECT count(*) FROM analytics.dim_users").fetchone()[0] == len(
        user_rows("2024-02-01")
    )


def test_tasks_test_runs_each_dbt_task_of_the_local_mode(airflow, warehouse):
    assert_succeeded(airflow.dags_test("2024-02-02", skip_dbt=True))
    local = {"AIRFLOW__DBT__MODE": "local"}
    listed = airflow.run("tasks", "list", DAG_ID, env=local).stdout.split()
    ordered = local_tasks_upstream_first()
    assert set(ordered) == {task for task in listed if task.startswith("transform_users.")}, listed
    for task_id in ordered:
        assert_task_succeeds(airflow, task_id, "2024-02-02", env=local)
    built = warehouse.execute("SELECT count(*) FROM analytics.dim_users").fetchone()[0]
    assert built == len(user_rows("2024-02-02"))


def local_tasks_upstream_first() -> list[str]:
    """The local mode's dbt tasks, from the manifest, each after the nodes it depends on."""
    nodes = {**dbt_manifest()["nodes"], **dbt_manifest()["sources"]}
    order: list[str] = []

    def visit(unique_id: str) -> None:
        if unique_id in order or unique_id not in nodes:
            return
        for parent in parents_of(nodes[unique_id]):
            visit(parent)
        order.append(unique_id)

    for unique_id in sorted(nodes):
        visit(unique_id)
    tested = {
        parent for node in nodes.values() if node["resource_type"] == "test" for parent in parents_of(node)
    }
    tasks = []
    for unique_id in order:
        node = nodes[unique_id]
        kind = node["resource_type"]
        if kind in ("model", "seed", "snapshot"):
            tasks.append(f"transform_users.{node['name']}_{kind}_build")
        elif kind == "source" and unique_id in tested:
            tasks.append(f"transform_users.{node['source_name']}_{node['name']}_source")
        elif kind == "test" and len(parents_of(node)) > 1:
            tasks.append(f"transform_users.{node['name']}_test")
    return tasks


def parents_of(node: dict) -> list[str]:
    return node.get("depends_on", {}).get("nodes", [])


def assert_task_succeeds(airflow, task_id: str, logical_date: str, **kwargs) -> None:
    state, result = airflow.task_state(task_id, logical_date, **kwargs)
    assert state == "success", f"{task_id} ended {state}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


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
