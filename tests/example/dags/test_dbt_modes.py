"""dbt for every DAG: the dbt tasks in each `[dbt] mode`, checked against the dbt manifest.

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
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import DAG, AssetAll

from include.common import dbt_selection, dbt_tasks
from include.common.assets import dbt_model_assets, dbt_node_asset
from include.common.dbt_build import DbtBuildOperator
from include.common.dbt_manifest import ensure_manifest
from include.common.pools import DBT_POOL
from include.common.project import DBT_PROJECT_DIR
from include.user_processing.settings import DBT_GROUP, DBT_SELECT
from include.users_report.settings import MARTS
from scripts.local_env import REPO_ROOT
from tests.conftest import dbt_manifest
from tests.example.conftest import SHIPPED_MODELS

GROUP = DBT_GROUP
MODES = dbt_tasks.MODES
LIST_TASKS = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="dags/user_processing.py")
assert not bag.import_errors, bag.import_errors
print(json.dumps(sorted(bag.dags["user_processing"].task_ids)))
"""
NODES = dbt_manifest()["nodes"]


def group_tasks(mode: str, select: str = DBT_SELECT) -> dict[str, object]:
    """The tasks of the dbt task group built, in `mode`, as a DAG builds it."""
    with DAG("modes", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        dbt_tasks.dbt_task_group(select, GROUP, mode=mode)
    return {task.task_id.removeprefix(f"{GROUP}."): task for task in dag.tasks}


def selected(select: str = DBT_SELECT) -> dict[str, dict]:
    return dbt_selection.select(select, ensure_manifest(), DBT_PROJECT_DIR)


def built_nodes(select: str = DBT_SELECT) -> list[dict]:
    return dbt_selection.built(selected(select))


def outlet_uris(tasks: dict) -> set[str]:
    return {asset.uri for task in tasks.values() for asset in task.outlets}


def test_the_shipped_models_are_in_the_manifest_and_user_processing_selects_them_all():
    shipped = {
        key
        for key, node in NODES.items()
        if node["resource_type"] == "model" and node["name"] in SHIPPED_MODELS
    }
    assert len(shipped) == len(SHIPPED_MODELS)
    users = {key for key, source in dbt_manifest()["sources"].items() if source["name"] == "users"}
    on_them = {
        key
        for key, node in NODES.items()
        if node["resource_type"] == "test" and set(parents(node)) <= shipped | users
    }
    assert on_them, "the shipped models have tests"
    assert set(selected()) >= shipped | on_them  # all of the shipped project feeds on `users`


def test_the_build_mode_is_one_task_in_the_dbt_pool_updating_an_asset_per_selected_model():
    tasks = group_tasks("build")
    assert list(tasks) == ["dbt_build"]
    assert isinstance(tasks["dbt_build"], DbtBuildOperator)
    assert tasks["dbt_build"].select == DBT_SELECT
    uris = outlet_uris(tasks)
    assert uris == {dbt_node_asset(node).uri for node in built_nodes()}
    for model in SHIPPED_MODELS:
        assert f"x-warehouse://analytics/{model}" in uris  # the data's name, not a host's
    assert tasks["dbt_build"].retries == 1
    assert tasks["dbt_build"].pool == DBT_POOL.name


def test_the_local_mode_has_a_task_per_node_each_building_only_it_and_updating_its_asset():
    tasks = group_tasks("local")
    selects = {task.select: name for name, task in tasks.items()}
    for node in built_nodes():
        name = selects.get(f"fqn:{'.'.join(node['fqn'])}")
        assert name, f"{node['unique_id']} has no task"
        assert tasks[name].base_cmd == ["build"], name  # the node and its tests, in one dbt call
        assert [asset.uri for asset in tasks[name].outlets] == [dbt_node_asset(node).uri], name
    assert {task.pool for task in tasks.values()} == {DBT_POOL.name}
    assert not any(task.emit_datasets for task in tasks.values())  # Cosmos' host-named Assets: off


def test_both_modes_update_the_same_assets():
    assert outlet_uris(group_tasks("local")) == outlet_uris(group_tasks("build"))


def test_users_report_runs_on_the_marts_assets_which_user_processing_updates_in_each_mode():
    bag = DagBag(dag_folder=REPO_ROOT / "dags" / "users_report.py")
    condition = bag.dags["users_report"].timetable.asset_condition
    assert isinstance(condition, AssetAll)  # once every mart was rebuilt, not after the first
    schedule = {asset.uri for asset in condition.objects}
    assert schedule == {asset.uri for asset in dbt_model_assets(*MARTS)}
    assert len(schedule) == 2
    for mode in MODES:
        assert schedule <= outlet_uris(group_tasks(mode)), mode


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
        if source["unique_id"] in selected()  # user_processing's; another DAG's sources are in its own tasks
        and any(
            source["unique_id"] in parents(node) for node in NODES.values() if node["resource_type"] == "test"
        )
    }
    assert "source:warehouse.users" in tested
    runs = {getattr(task, "select", None): task for task in tasks.values()}
    for source in tested:
        assert runs[source].base_cmd == ["test"], source


def parents(node: dict) -> list[str]:
    return node["depends_on"]["nodes"]


@pytest.mark.parametrize("mode", MODES)
def test_a_narrower_selection_builds_and_updates_only_what_it_selects(mode):
    tasks = group_tasks(mode, select="users_by_country+")
    assert outlet_uris(tasks) == {"x-warehouse://analytics/users_by_country"}
    if mode == "local":
        assert {name for name in tasks if name.endswith("_build")} == {"users_by_country_model_build"}


def test_a_selection_is_resolved_as_dbt_resolves_it():
    """The `@` operator, which Cosmos refuses before a method, and unions: dbt's own meaning.
    (tests/example/integration/test_dbt_selection.py compares many selections with `dbt ls`.)"""
    marts = {node["name"] for node in built_nodes("path:models/marts")}
    assert marts == {
        node["name"]
        for node in NODES.values()
        if node["resource_type"] == "model" and node["original_file_path"].startswith("models/marts/")
    }
    assert marts >= {"dim_users", "users_by_country", "users_by_registration_year"}
    ancestors = {node["name"] for node in built_nodes("@users_by_country")}
    assert ancestors == {"stg_users", "dim_users", "users_by_country"}
    union = {node["name"] for node in built_nodes("users_by_country users_by_registration_year")}
    assert union == {"users_by_country", "users_by_registration_year"}


@pytest.mark.parametrize(
    ("select", "error"),
    [
        ("state:modified+", r"'state:modified\+' is not one Cosmos' manifest selector resolves"),
        ("source:warehouse.nothing+", r"'source:warehouse.nothing\+' selects nothing"),
        ("stg_users no_such_model", r"'no_such_model' selects nothing"),
        ("  ", r"the dbt selection is empty"),
    ],
)
def test_a_selection_that_cannot_be_resolved_fails_the_dag_naming_it(select, error):
    with pytest.raises(dbt_selection.DbtSelectionError, match=error):
        group_tasks("build", select=select)


def test_an_unknown_mode_is_refused_with_the_modes_there_are():
    with pytest.raises(
        ValueError, match=r"\[dbt\] mode is 'fast' \(AIRFLOW__DBT__MODE\): use one of build, local"
    ):
        group_tasks("fast")


@pytest.mark.parametrize("mode", MODES)
def test_one_setting_switches_the_projects_mode(mode):
    env = {**os.environ, "AIRFLOW__DBT__MODE": mode}  # the one line, as in airflow.env
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
