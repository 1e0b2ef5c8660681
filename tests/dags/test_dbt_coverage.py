"""Every dbt model and test of the project is some DAG's: built and run by a DAG's dbt task group.

What is expected is the dbt manifest (make dbt-parse keeps it current): models and tests you add are
checked without being named here. No server needed.
"""

from __future__ import annotations

from airflow.dag_processing.dagbag import DagBag

from include.common import dbt_selection
from include.common.dbt_build import DbtBuildOperator
from include.common.dbt_manifest import ensure_manifest
from include.common.project import DBT_PROJECT_DIR
from scripts.local_env import REPO_ROOT
from tests.conftest import dbt_manifest


def test_every_dbt_node_and_test_of_the_manifest_is_built_or_run_by_some_dag():
    """A model no DAG selects is never built, and its tests never run: say which, when dags/ is parsed."""
    bag = DagBag(dag_folder=REPO_ROOT / "dags")
    selections = [
        task.select for dag in bag.dags.values() for task in dag.tasks if isinstance(task, DbtBuildOperator)
    ]
    covered: set[str] = set()
    for select in selections:
        covered |= set(dbt_selection.select(select, ensure_manifest(), DBT_PROJECT_DIR))
    nodes = dbt_manifest()["nodes"].values()
    built = {node["unique_id"] for node in nodes if node["resource_type"] in dbt_selection.BUILT}
    tests = {node["unique_id"] for node in nodes if node["resource_type"] == "test"}
    assert built - covered == set(), "built by no DAG: select them in a DAG's dbt_task_group"
    assert tests - covered == set(), "run by no DAG: select what they test in a DAG's dbt_task_group"
