"""dbt after store_user, against real PostgreSQL, in each mode the template offers.

The default mode ("build"): one `dbt build` in one task, an Asset event per model, a failing test
failing the task by name with nothing downstream built, a retry that runs only what failed. The
"local" mode: a task per model, each updating the same Asset as the build mode. What is expected
comes from the dbt manifest.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections import Counter

import psycopg
import pytest

from include.common import dbt_selection
from include.common.assets import dbt_node_asset
from include.common.dbt_manifest import ensure_manifest
from include.common.project import DBT_PROJECT_DIR
from include.user_processing.fields import users_table_sql
from include.user_processing.settings import DBT_SELECT, USERS_ASSET
from scripts import dbt_coverage
from tests.conftest import AIRFLOW_BIN, dbt_manifest, dbt_project_name, relation_rows
from tests.example.conftest import DAG_ID, DBT_BUILD_TASK, SHIPPED_MODELS
from tests.example.integration.expected import api_users, assert_succeeded

pytestmark = pytest.mark.e2e

MODEL_RELATIONS = tuple(f"analytics.{model}" for model in SHIPPED_MODELS)
LOCAL = {"AIRFLOW__DBT__MODE": "local"}
PROJECT = dbt_project_name()
# A row no API would send: stg_users only accepts gender male or female.
BAD_USER_ID = "00000000-0000-4000-8000-0000000000fe"
BAD_ROW = (
    "INSERT INTO users (user_id, firstname, lastname, email, username, gender, country)"
    " VALUES (%s, 'Bad', 'Row', 'bad@x.org', 'bad', 'unknown', 'X')"
)
FAILING_TEST = "accepted_values_stg_users_gender__male__female"


def expected_countries(*logical_dates: str) -> list[tuple]:
    counts = Counter(user["location"]["country"] for date in logical_dates for user in api_users(date))
    return sorted(counts.items())


def model_asset_uris() -> set[str]:
    """The Assets of the models user_processing's selection builds, from the manifest."""
    selected = dbt_selection.select(DBT_SELECT, ensure_manifest(), DBT_PROJECT_DIR)
    return {dbt_node_asset(node).uri for node in dbt_selection.built(selected)}


def countries_in(warehouse) -> list[tuple]:
    return sorted(warehouse.execute("SELECT country, users FROM analytics.users_by_country").fetchall())


def dbt_results(metadata_uri: str, logical_date: str) -> dict[str, str]:
    """The dbt_build task's XCom `dbt_results` (every node it ran, with its status) for the date."""
    with psycopg.connect(metadata_uri) as conn:
        (value,) = conn.execute(
            "SELECT value FROM xcom WHERE dag_id = %s AND task_id = %s AND key = 'dbt_results' AND run_id = ("
            "   SELECT run_id FROM dag_run WHERE dag_id = %s AND logical_date = %s::timestamptz"
            "   ORDER BY id DESC LIMIT 1)",
            (DAG_ID, DBT_BUILD_TASK, DAG_ID, f"{logical_date}T00:00:00+00:00"),
        ).fetchone()
    return value if isinstance(value, dict) else json.loads(value)


def test_one_build_runs_every_model_and_test_updates_each_models_asset_and_reruns_change_nothing(
    airflow, warehouse
):
    result = airflow.dags_test("2024-07-01")
    assert_succeeded(result)
    assert airflow.task_states("2024-07-01")[DBT_BUILD_TASK] == "success"
    assert dbt_coverage.tests_not_run(result.stdout + result.stderr, dbt_manifest()) == set()
    assert airflow.asset_events("2024-07-01") == model_asset_uris() | {USERS_ASSET.uri}

    assert countries_in(warehouse) == expected_countries("2024-07-01")
    users = api_users("2024-07-01")
    emails = dict(warehouse.execute("SELECT user_id::text, email FROM analytics.dim_users").fetchall())
    assert emails == {user["login"]["uuid"]: user["email"].strip().lower() for user in users}

    before = {relation: relation_rows(warehouse, relation) for relation in MODEL_RELATIONS}
    assert_succeeded(airflow.dags_test("2024-07-01"))
    assert {relation: relation_rows(warehouse, relation) for relation in MODEL_RELATIONS} == before

    # dim_users is incremental: the next date's run merges only the new users into it.
    assert_succeeded(airflow.dags_test("2024-07-02"))
    assert countries_in(warehouse) == expected_countries("2024-07-01", "2024-07-02")
    total = warehouse.execute("SELECT count(*) FROM analytics.dim_users").fetchone()[0]
    assert total == len(users) + len(api_users("2024-07-02"))


def test_a_failing_test_fails_the_build_naming_it_and_its_model_and_nothing_downstream_is_built(
    airflow, warehouse
):
    assert_succeeded(airflow.dags_test("2024-07-03", skip_dbt=False))
    marts_before = {relation: relation_rows(warehouse, relation) for relation in MODEL_RELATIONS[1:]}
    warehouse.execute(BAD_ROW, (BAD_USER_ID,))
    result = airflow.dags_test("2024-07-04")
    assert result.returncode != 0
    assert airflow.task_states("2024-07-04")[DBT_BUILD_TASK] == "failed"
    log = result.stdout + result.stderr
    assert re.search(rf"test\.{PROJECT}\.{FAILING_TEST}\.\w+ \(on stg_users\): fail: Got 1 result", log)
    assert "not built because of them" in log
    # The last try's results: its `dbt retry` ran the failing test again, and held back the same.
    results = dbt_results(airflow.metadata_uri, "2024-07-04")
    assert [status for node, status in results.items() if FAILING_TEST in node] == ["fail"]
    for model in SHIPPED_MODELS[1:]:
        assert results[f"model.{PROJECT}.{model}"] == "skipped", model
    assert f"model.{PROJECT}.stg_users" not in results  # built by the first try, not again
    assert {relation: relation_rows(warehouse, relation) for relation in MODEL_RELATIONS[1:]} == marts_before


def test_a_retry_runs_dbt_retry_only_what_failed_and_what_it_held_back(airflow, warehouse):
    """The failing test fails the first try; the row is deleted while the task waits for its retry
    (10 s), whose `dbt retry` runs the failed test and the nodes it held back, nothing else."""
    for statement in users_table_sql():
        warehouse.execute(statement)  # every test starts empty
    warehouse.execute(BAD_ROW, (BAD_USER_ID,))
    run = subprocess.Popen(
        [AIRFLOW_BIN, "dags", "test", DAG_ID, "2024-07-05"],
        env=airflow.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(run.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    while airflow.task_states("2024-07-05").get(DBT_BUILD_TASK) != "up_for_retry":
        assert run.poll() is None, "dags test ended before the task failed:\n" + "".join(output)[-6000:]
        assert time.monotonic() < deadline, "the task never failed"
        time.sleep(0.5)
    first = dbt_results(airflow.metadata_uri, "2024-07-05")
    warehouse.execute("DELETE FROM users WHERE user_id = %s", (BAD_USER_ID,))
    assert run.wait(timeout=600) == 0, "".join(output)[-6000:]
    reader.join(timeout=10)

    assert airflow.task_tries("2024-07-05")[DBT_BUILD_TASK] == 2
    assert "Try 2: `dbt retry`" in "".join(output)
    held_back = {node for node, status in first.items() if status not in ("success", "pass")}
    assert any(FAILING_TEST in node for node in held_back)
    assert f"model.{PROJECT}.dim_users" in held_back
    retried = dbt_results(airflow.metadata_uri, "2024-07-05")
    assert set(retried) == held_back  # stg_users and its passing tests did not run again
    assert set(retried.values()) <= {"success", "pass"}


def test_dbt_build_on_its_own_passes_after_a_pipeline_run(airflow, warehouse, dbt):
    assert_succeeded(airflow.dags_test("2024-07-10", skip_dbt=True))

    built = dbt.run("build")
    assert built.returncode == 0, built.stdout[-6000:]
    assert "WARN=0 ERROR=0" in built.stdout
    assert "stg_users_trims_names_and_lowercases_email" in built.stdout  # the unit test ran
    assert countries_in(warehouse) == expected_countries("2024-07-10")

    freshness = dbt.run("source", "freshness")
    assert freshness.returncode == 0, freshness.stdout[-4000:]
    assert "PASS freshness of warehouse.users" in freshness.stdout

    docs = dbt.run("docs", "generate")
    assert docs.returncode == 0, docs.stdout[-4000:]
    catalog = json.loads((dbt.target_path / "catalog.json").read_text())
    assert {f"model.{PROJECT}.{model}" for model in SHIPPED_MODELS} <= set(catalog["nodes"])
    assert (dbt.target_path / "index.html").exists()


def test_the_local_mode_runs_a_task_per_model_each_updating_its_asset_and_stops_below_a_failing_test(
    airflow, warehouse
):
    result = airflow.dags_test("2024-07-20", env=LOCAL)
    assert_succeeded(result)
    dbt_tasks = {
        task: state for task, state in airflow.task_states("2024-07-20").items() if "transform" in task
    }
    assert len(dbt_tasks) > len(SHIPPED_MODELS)
    assert set(dbt_tasks.values()) == {"success"}
    assert dbt_coverage.tests_not_run(result.stdout + result.stderr, dbt_manifest()) == set()
    # Each model's task updated the model's Asset: the one the build mode updates, not a host's.
    assert airflow.asset_events("2024-07-20") == model_asset_uris() | {USERS_ASSET.uri}

    warehouse.execute(BAD_ROW, (BAD_USER_ID,))
    result = airflow.dags_test("2024-07-21", env=LOCAL)
    assert result.returncode != 0
    states = airflow.task_states("2024-07-21")
    assert states["transform_users.stg_users_model_build"] == "failed"
    for model in SHIPPED_MODELS[1:]:
        assert states[f"transform_users.{model}_model_build"] == "upstream_failed", model
    assert f"Failure in test {FAILING_TEST}" in result.stdout + result.stderr
