"""The dbt task group in each mode of `[user_processing] dbt_mode`, checked against the dbt manifest.

What is expected is derived from the manifest (make dbt-parse keeps it current), so models, seeds,
snapshots and tests you add never break these tests; the shipped models are checked by name too.
No server needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pendulum
import pytest
from airflow.sdk import DAG

from include.common.dbt_build import model_assets
from include.user_processing import dbt_transforms
from scripts.local_env import REPO_ROOT
from tests.conftest import SHIPPED_MODELS, dbt_manifest

GROUP = "transform_users"
LIST_TASKS = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="dags/user_processing.py")
assert not bag.import_errors, bag.import_errors
print(json.dumps(sorted(bag.dags["user_processing"].task_ids)))
"""
NODES = dbt_manifest()["nodes"]


def group_tasks(mode: str) -> dict[str, object]:
    """The tasks of the dbt task group built, in `mode`, as the DAG builds it."""
    with DAG("modes", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        dbt_transforms.transform_users(GROUP, mode=mode)
    return {task.task_id.removeprefix(f"{GROUP}."): task for task in dag.tasks}


def built_nodes() -> list[dict]:
    return [node for node in NODES.values() if node["resource_type"] in ("model", "seed", "snapshot")]


def test_the_shipped_models_are_in_the_manifest():
    models = {node["name"] for node in built_nodes() if node["resource_type"] == "model"}
    assert set(SHIPPED_MODELS) <= models


def test_the_build_mode_is_one_task_updating_an_asset_per_model():
    tasks = group_tasks("build")
    assert list(tasks) == ["dbt_build"]
    uris = {asset.uri for asset in tasks["dbt_build"].outlets}
    assert uris == {asset.uri for asset in model_assets(dbt_manifest())}
    assert len(uris) == len(built_nodes())
    for model in SHIPPED_MODELS:
        assert f"postgres://warehouse:5432/warehouse/analytics/{model}" in uris
    assert tasks["dbt_build"].retries == 1


def test_the_local_mode_has_a_task_per_node_each_building_only_it():
    tasks = group_tasks("local")
    selects = {task.select: name for name, task in tasks.items()}
    for node in built_nodes():
        name = selects.get(f"fqn:{'.'.join(node['fqn'])}")
        assert name, f"{node['unique_id']} has no task"
        assert tasks[name].base_cmd == ["build"], name  # the node and its tests, in one dbt call


def task_of_each_node(tasks: dict) -> dict[str, str]:
    """In the local mode: the full id of the task that builds each model, seed and snapshot."""
    by_select = {getattr(task, "select", None): task.task_id for task in tasks.values()}
    return {node["unique_id"]: by_select.get(f"fqn:{'.'.join(node['fqn'])}") for node in built_nodes()}


def test_the_local_mode_runs_a_test_on_several_models_after_all_of_them():
    tasks = group_tasks("local")
    builder = task_of_each_node(tasks)
    by_select = {getattr(task, "select", None): task for task in tasks.values()}
    several = [node for node in NODES.values() if node["resource_type"] == "test" and len(parents(node)) > 1]
    assert several, "the shipped project has two (a relationships test and a singular test)"
    for test in several:
        task = by_select.get(test["name"])
        assert task is not None, f"{test['name']} runs in no task"
        built_first = {builder[parent] for parent in parents(test)}
        assert built_first <= task.upstream_task_ids, f"{test['name']} may run before {built_first}"


def test_the_local_mode_runs_a_sources_tests_in_its_task():
    tasks = group_tasks("local")
    tested = {
        f"source:{source['source_name']}.{source['name']}"
        for source in dbt_manifest()["sources"].values()
        if any(
            source["unique_id"] in parents(node) for node in NODES.values() if node["resource_type"] == "test"
        )
    }
    assert "source:warehouse.users" in tested
    runs = {getattr(task, "select", None): task for task in tasks.values()}
    for source in tested:
        assert runs[source].base_cmd == ["test"], source


def parents(node: dict) -> list[str]:
    return node["depends_on"]["nodes"]


def test_an_unknown_mode_is_refused_with_the_modes_there_are():
    with pytest.raises(ValueError, match=r"dbt_mode is 'fast': use one of build, local"):
        dbt_transforms.transform_users(GROUP, mode="fast")


@pytest.mark.parametrize("mode", ["build", "local"])
def test_one_setting_switches_the_dags_mode(mode):
    env = {**os.environ, "AIRFLOW__USER_PROCESSING__DBT_MODE": mode}  # the one line, as in airflow.env
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
    assert (f"{GROUP}.dbt_build" in task_ids) == (mode == "build"), task_ids
