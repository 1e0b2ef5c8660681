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

import pendulum
from airflow.sdk import dag, task

from include.common.assets import USERS_ASSET
from include.common.dag_defaults import default_args
from include.users_report.settings import DAG_ID, MARTS_POKE_INTERVAL, MARTS_TIMEOUT


@dag(
    dag_id=DAG_ID,
    schedule=[USERS_ASSET],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["example", "users", "report"],
    doc_md=__doc__,
    default_args=default_args(DAG_ID),
)
def users_report():
    @task.sensor(poke_interval=MARTS_POKE_INTERVAL, timeout=MARTS_TIMEOUT, mode="reschedule")
    def wait_for_marts() -> bool:
        """Done once both marts were built after the last change to `users`."""
        from include.common import warehouse
        from include.users_report import report

        with warehouse.connect() as conn:
            return report.marts_are_fresh(conn)

    @task
    def write_report(**context) -> dict:
        """Read the marts, write summary.md and the charts into this run's folder."""
        from include.common import run_folder, warehouse
        from include.users_report import report

        with warehouse.connect() as conn:
            marts = report.read_marts(conn)
        return report.write_report(run_folder.folder_for(context), marts)

    wait_for_marts() >> write_report()


users_report()
