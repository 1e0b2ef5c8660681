"""The dbt task group Cosmos renders in each mode of `[user_processing] dbt_mode` (no server needed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pendulum
import pytest
from airflow.sdk import DAG
from cosmos import DbtTaskGroup

from include.user_processing import dbt_transforms
from scripts.local_env import REPO_ROOT
from tests.conftest import DBT_MODELS, DBT_TASKS

LIST_TASKS = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="dags/user_processing.py")
assert not bag.import_errors, bag.import_errors
print(json.dumps(sorted(bag.dags["user_processing"].task_ids)))
"""


def group_tasks(mode: str) -> dict[str, object]:
    """The tasks of a DbtTaskGroup built, in `mode`, from the arguments the DAG uses."""
    with DAG("modes", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        DbtTaskGroup(group_id="transform_users", **dbt_transforms.task_group_args(mode=mode))
    return {task.task_id.removeprefix("transform_users."): task for task in dag.tasks}


def test_the_local_mode_runs_one_task_per_model_each_building_only_its_model():
    tasks = group_tasks("local")
    assert {f"transform_users.{task_id}" for task_id in tasks} == set(DBT_TASKS)
    for model in DBT_MODELS:
        task = tasks[f"{model}_model_build"]
        assert task.base_cmd == ["build"]  # the model and its tests, in one dbt call
        assert re.fullmatch(rf"fqn:user_processing\.\w+\.{model}", task.select), task.select


def test_the_watcher_mode_runs_one_dbt_build_watched_by_a_run_and_a_test_task_per_model():
    tasks = group_tasks("watcher")
    per_model = {f"{model}.{kind}" for model in DBT_MODELS for kind in ("run", "test")}
    assert set(tasks) == {
        "dbt_producer_watcher",  # the one `dbt build`
        "dbt_producer_watcher_done",
        "warehouse_users.source",
        "warehouse_users.test",
        *per_model,
    }
    assert tasks["dbt_producer_watcher"].base_cmd == ["build"]


def test_an_unknown_mode_is_refused_with_the_modes_there_are():
    with pytest.raises(ValueError, match=r"dbt_mode is 'fast': use one of local, watcher"):
        dbt_transforms.task_group_args(mode="fast")


@pytest.mark.parametrize("mode", ["local", "watcher"])
def test_one_setting_switches_the_dags_mode(mode):
    env = {**os.environ, "AIRFLOW__USER_PROCESSING__DBT_MODE": mode}  # the one line, as in .env
    listed = subprocess.run(
        [sys.executable, "-c", LIST_TASKS],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    task_ids = json.loads(listed.stdout.strip().splitlines()[-1])
    producer = "transform_users.dbt_producer_watcher"
    assert (producer in task_ids) == (mode == "watcher"), task_ids
