"""The template's dbt task group over a generated dbt project, for `make bench` (../dbt_scaling.py).

Built by the very function dags/user_processing.py uses (dbt_tasks.dbt_task_group, selecting the
whole project), for the project in BENCH_DBT_PROJECT and the way in BENCH_DBT_MODE: a mode the
template offers ("build", "local"), or "watcher", Cosmos' ExecutionMode.WATCHER, measured though not
offered. Not in dags/,
so it never reaches a real deployment, nor the no-op DAG's folder (template/bench/dags/).

In the watcher mode the group's first tasks wait for Cosmos' producer (the one `dbt build`): under
`airflow dags test`, which runs one task at a time in any order, a sensor started before the
producer would wait for it forever, so the producer comes first here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import dag

from include.common import dbt_tasks
from include.common.dbt_manifest import ensure_manifest, project_config
from include.common.project import DBT_PROJECT_DIR

PROJECT = Path(os.environ.get("BENCH_DBT_PROJECT", DBT_PROJECT_DIR))
MODE = os.environ.get("BENCH_DBT_MODE", "build")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["bench"],
    default_args={"owner": "data-engineering", "retries": 1},
)
def bench_dbt():
    if MODE in dbt_tasks.MODES:
        dbt_tasks.dbt_task_group(f"package:{project_config(PROJECT)['name']}", "transform", PROJECT, MODE)
        return
    from cosmos import DbtTaskGroup

    args = dbt_tasks.cosmos_task_group_args(PROJECT, ensure_manifest(PROJECT), MODE)
    group = DbtTaskGroup(group_id="transform", **args)
    producer = group.children.get("transform.dbt_producer_watcher")
    if producer is not None:
        producer >> [task for task in group.roots if task is not producer]


bench_dbt()
