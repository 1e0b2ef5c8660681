"""
### users_report

After every load of `users`, a report of the dbt marts: `summary.md` (users by country and by
registration year) and two bar charts, written to this run's folder:

    <run folder url>/users_report/logical_date=<YYYYMMDDTHHMMSS>/

- Scheduled on the `users` Asset that user_processing's `store_user` updates: no cron, it runs when
  there is new data. Several loads in a row make one report.
- `wait_for_marts` waits until dbt has rebuilt the marts after that load (store_user runs before
  dbt), then `write_report` reads them.

The logic lives in include/users_report/report.py; this file only wires the tasks.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from include.common.alerts import FailureAlert
from include.common.assets import USERS_ASSET
from include.common.project import WAREHOUSE_CONN_ID


@dag(
    schedule=[USERS_ASSET],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["example", "users", "report"],
    doc_md=__doc__,
    default_args={
        "owner": "data-engineering",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": FailureAlert(),
    },
)
def users_report():
    # dbt builds the marts a few minutes after store_user; an hour without them means dbt failed.
    @task.sensor(poke_interval=30, timeout=60 * 60, mode="reschedule")
    def wait_for_marts() -> bool:
        """Done once both marts were built after the last change to `users`."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from include.users_report import report

        with PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID).get_conn() as conn:
            return report.marts_are_fresh(conn)

    @task
    def write_report(**context) -> dict:
        """Read the marts, write summary.md and the charts into this run's folder."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from include.common import run_folder
        from include.users_report import report

        with PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID).get_conn() as conn:
            marts = report.read_marts(conn)
        return report.write_report(run_folder.folder_for(context), marts)

    wait_for_marts() >> write_report()


users_report()
