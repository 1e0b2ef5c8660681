"""The template's dbt task group over a generated dbt project, for `make bench` (bench/dbt_scaling.py).

Rendered with the very arguments dags/user_processing.py uses (dbt_transforms.task_group_args), for
the project in BENCH_DBT_PROJECT and the mode in BENCH_DBT_MODE. Not in dags/, so it never reaches a
real deployment, nor into the no-op DAG's folder (bench/dags/).

In the watcher mode the group's first tasks wait for Cosmos' producer (the one `dbt build`): `airflow
dags test` runs one task at a time, in any order, and a sensor it starts before the producer would
wait for it forever. Run one at a time, the build must come first anyway, so this costs nothing.

BENCH_DBT_MODE=virtualenv is the one way the template does not offer: Cosmos' ExecutionMode.VIRTUALENV,
which prepares a virtualenv (uv venv + uv pip install of requirements/dbt.txt) before each task,
here in a folder kept between tasks (BENCH_DBT_VIRTUALENV).
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import dag
from cosmos import DbtTaskGroup, ExecutionConfig
from cosmos.constants import ExecutionMode, InvocationMode

from include.common.project import PROJECT_ROOT
from include.user_processing import dbt_transforms

PROJECT = Path(os.environ.get("BENCH_DBT_PROJECT", dbt_transforms.DBT_PROJECT_DIR))
MODE = os.environ.get("BENCH_DBT_MODE", "local")


def task_group_args() -> dict:
    if MODE != "virtualenv":
        return dbt_transforms.task_group_args(project_dir=PROJECT, mode=MODE)
    args = dbt_transforms.task_group_args(project_dir=PROJECT, mode="local")
    virtualenv = Path(os.environ["BENCH_DBT_VIRTUALENV"])
    args["execution_config"] = ExecutionConfig(
        execution_mode=ExecutionMode.VIRTUALENV,
        invocation_mode=InvocationMode.SUBPROCESS,
        virtualenv_dir=virtualenv,
        dbt_executable_path=dbt_transforms.DBT_EXECUTABLE,  # as RenderConfig's; the task runs the venv's
    )
    lock = (PROJECT_ROOT / "requirements" / "dbt.txt").read_text().splitlines()
    requirements = [line.strip() for line in lock if line[:1].isalnum()]  # pins, with their markers
    args["operator_args"] = {**args["operator_args"], "py_requirements": requirements}
    return args


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bench"],
    default_args={"owner": "data-engineering", "retries": 1},
)
def bench_dbt():
    group = DbtTaskGroup(group_id="transform", **task_group_args())
    producer = group.children.get("transform.dbt_producer_watcher")
    if producer is not None:
        producer >> [task for task in group.roots if task is not producer]


bench_dbt()
