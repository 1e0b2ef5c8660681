"""dbt after store_user: the models Cosmos runs in the DAG, and dbt on its own, against real PostgreSQL."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections import Counter

import pytest

from include.user_processing.fields import users_table_sql
from tests.conftest import AIRFLOW_BIN, DAG_ID, DBT_MODELS, DBT_TASKS, relation_rows
from tests.integration.expected import api_users, assert_succeeded

pytestmark = pytest.mark.e2e

MODEL_RELATIONS = tuple(f"analytics.{model}" for model in DBT_MODELS)


def expected_countries(*logical_dates: str) -> list[tuple]:
    counts = Counter(user["location"]["country"] for date in logical_dates for user in api_users(date))
    return sorted(counts.items())


def countries_in(warehouse) -> list[tuple]:
    return sorted(warehouse.execute("SELECT country, users FROM analytics.users_by_country").fetchall())


def test_the_dag_runs_every_model_with_its_tests_reruns_change_nothing_and_new_dates_add_up(
    airflow, warehouse
):
    assert_succeeded(airflow.dags_test("2024-07-01"))
    states = airflow.task_states("2024-07-01")
    assert {task: states.get(task) for task in DBT_TASKS} == dict.fromkeys(DBT_TASKS, "success")

    assert countries_in(warehouse) == expected_countries("2024-07-01")
    users = api_users("2024-07-01")
    assert warehouse.execute(
        "SELECT count(*), count(DISTINCT user_id) FROM analytics.dim_users"
    ).fetchone() == (
        len(users),
        len(users),
    )
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
    assert {f"model.user_processing.{model}" for model in DBT_MODELS} <= set(catalog["nodes"])
    assert (dbt.target_path / "index.html").exists()


def test_a_failing_dbt_test_fails_its_task_and_stops_the_downstream_models(airflow, warehouse):
    assert_succeeded(airflow.dags_test("2024-07-03"))
    marts_before = {relation: relation_rows(warehouse, relation) for relation in MODEL_RELATIONS[1:]}

    # A row no API would send: stg_users only accepts gender male or female.
    warehouse.execute(
        "INSERT INTO users (user_id, firstname, lastname, email, username, gender, country)"
        " VALUES ('00000000-0000-4000-8000-0000000000ff', 'Bad', 'Row', 'bad@x.org', 'bad', 'unknown', 'X')"
    )
    result = airflow.dags_test("2024-07-04")
    assert result.returncode != 0

    states = airflow.task_states("2024-07-04")
    assert states["store_user"] == "success"
    assert states["transform_users.stg_users_model_build"] == "failed"
    for model in DBT_MODELS[1:]:
        assert states[f"transform_users.{model}_model_build"] == "upstream_failed"
    log = result.stdout + result.stderr
    assert "Failure in test accepted_values_stg_users_gender__male__female" in log
    assert "Got 1 result, configured to fail if != 0" in log
    assert {relation: relation_rows(warehouse, relation) for relation in MODEL_RELATIONS[1:]} == marts_before


BAD_ROW = (
    "INSERT INTO users (user_id, firstname, lastname, email, username, gender, country)"
    " VALUES ('00000000-0000-4000-8000-0000000000fe', 'Bad', 'Row', 'bad@x.org', 'bad', 'unknown', 'X')"
)


def test_a_retry_reruns_only_the_failed_model(airflow, warehouse):
    """A failing test fails stg_users' task; once the data is fixed, its automatic retry runs that
    model's `dbt build` again, and nothing else runs twice."""
    for statement in users_table_sql():
        warehouse.execute(statement)  # every test starts empty
    warehouse.execute(BAD_ROW)  # stg_users' accepted_values test fails on it, until it is deleted
    failed_task = "transform_users.stg_users_model_build"
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
    # The first attempt fails; the row goes while the task waits for its retry (10 s).
    deadline = time.monotonic() + 600
    while airflow.task_states("2024-07-05").get(failed_task) != "up_for_retry":
        assert run.poll() is None, "dags test ended before the task failed:\n" + "".join(output)[-6000:]
        assert time.monotonic() < deadline, "the task never failed"
        time.sleep(0.5)
    warehouse.execute("DELETE FROM users WHERE user_id = '00000000-0000-4000-8000-0000000000fe'")
    assert run.wait(timeout=600) == 0, "".join(output)[-6000:]
    reader.join(timeout=10)
    log = "".join(output)

    tries = airflow.task_tries("2024-07-05")
    assert tries == {**dict.fromkeys(tries, 1), failed_task: 2}, tries  # every other task ran once
    assert set(airflow.task_states("2024-07-05").values()) == {"success"}
    # Each dbt call selects one model: stg_users' twice (the failed try and the retry), the others once.
    calls = [line for line in log.splitlines() if "Running command: " in line]
    selected = Counter(re.findall(r"'--select', 'fqn:user_processing\.\w+\.(\w+)'", "\n".join(calls)))
    assert selected == {model: 2 if model == "stg_users" else 1 for model in DBT_MODELS}, selected
