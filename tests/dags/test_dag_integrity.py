"""DAG integrity: every file in dags/ is checked, so a DAG you add is covered without touching this file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from airflow.dag_processing.dagbag import DagBag

from include.common.pools import DEFAULT_POOL, POOLS
from scripts.local_env import REPO_ROOT

DAGS_FOLDER = REPO_ROOT / "dags"
DAG_FILES = sorted(DAGS_FOLDER.glob("*.py"))
# Parsing a DAG file, after `airflow.sdk` itself is imported, may take this much CPU time. The
# dag-processor re-parses every file every 30 s by default, so slow top-level code costs all the time.
# CPU time, not wall time: what the parse costs, whatever else the machine runs meanwhile.
PARSE_BUDGET_SECONDS = 2.0
# Import these inside tasks, never at the top of a DAG file: each costs the dag-processor on every parse.
HEAVY_MODULES = ("pandas", "numpy", "pyarrow", "psycopg", "psycopg2", "dbt")

MEASURE_PARSE = """
import json, runpy, sys, time
import airflow.sdk  # every DAG file pays this; the budget is for what comes after it
started = time.process_time()
runpy.run_path(sys.argv[1], run_name="dag_file")
print(json.dumps({"seconds": time.process_time() - started, "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=DAGS_FOLDER)


def dags_by_file(dagbag: DagBag) -> dict[str, list]:
    by_file: dict[str, list] = {}
    for dag in dagbag.dags.values():
        by_file.setdefault(dag.fileloc.rsplit("/", 1)[-1], []).append(dag)
    return by_file


def test_dags_folder_is_not_empty():
    assert DAG_FILES, f"no DAG files found in {DAGS_FOLDER}"


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_each_file_defines_a_dag(dagbag, dag_file):
    assert dags_by_file(dagbag).get(dag_file.name), (
        f"{dag_file.name} defines no DAG: keep helpers in include/"
    )


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_dags_are_tagged_owned_and_retried(dagbag, dag_file):
    for dag in dags_by_file(dagbag)[dag_file.name]:
        assert dag.tags, f"{dag.dag_id}: add tags so the DAG can be found in the UI"
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{dag.dag_id}.{task.task_id}: set an owner"
            assert task.retries >= 1, f"{dag.dag_id}.{task.task_id}: set retries (in default_args)"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_every_task_runs_in_a_pool_the_project_creates(dagbag, dag_file):
    # A task in a pool that does not exist never runs: the scheduler leaves it waiting for good.
    created = {pool.name for pool in POOLS} | {DEFAULT_POOL}
    for dag in dags_by_file(dagbag)[dag_file.name]:
        for task in dag.tasks:
            assert task.pool in created, (
                f"{dag.dag_id}.{task.task_id} runs in the pool {task.pool!r}, which no one creates: "
                "declare it in include/common/pools.py (POOLS)"
            )


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_parse_is_fast_and_imports_nothing_heavy(dag_file):
    # The cheapest of 3 fresh parses: the first one also writes bytecode caches.
    runs = [parse_in_fresh_process(dag_file) for _ in range(3)]
    heavy = sorted(name for name in runs[0]["modules"] if name.split(".")[0] in HEAVY_MODULES)
    assert not heavy, f"{dag_file.name} imports {heavy} at parse time: import them inside the task"
    cheapest = min(run["seconds"] for run in runs)
    assert cheapest < PARSE_BUDGET_SECONDS, f"{dag_file.name} took {cheapest:.2f} s of CPU to parse"


def parse_in_fresh_process(dag_file) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_PARSE, str(dag_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
