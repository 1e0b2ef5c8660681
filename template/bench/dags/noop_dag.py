"""Airflow's own floor for `make bench`: a DAG of no-op tasks, parsed and run like user_processing.

Not in dags/, so it never reaches a real deployment. BENCH_NOOP_TASKS sets how many tasks it has:
1 by default (the trivial one-task DAG that each real DAG file's parse time is compared with), and
user_processing's own task count for the `airflow dags test` comparison (template/bench/airflow_floor.py).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import chain, dag, task

TASKS = int(os.environ.get("BENCH_NOOP_TASKS", "1"))


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bench"],
    default_args={"owner": "data-engineering", "retries": 1},
)
def bench_noop():
    @task
    def noop() -> None:
        """Does nothing: what is left is Airflow's own cost of running a task."""

    chain(*[noop.override(task_id=f"noop_{number:02d}")() for number in range(1, TASKS + 1)])


bench_noop()
