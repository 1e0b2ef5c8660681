"""
### users_report

Once dbt has rebuilt the marts, a report of them: `summary.md` (users by country and by registration
year) and two bar charts, written to this run's folder:

    <run folder url>/users_report/logical_date=<YYYYMMDDTHHMMSS>/

- Scheduled on the Assets of the two dbt marts it reads (`users_by_country` and
  `users_by_registration_year`, from the dbt manifest): it runs when dbt has rebuilt both, in either
  dbt mode, whichever DAG built them. No cron, no sensor: the Asset events say the marts are ready.
  Several builds in a row make one report.
- `write_report` reads both marts in one snapshot and writes the files.

The logic lives in include/users_report/report.py; this file only wires the tasks.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from include.common.assets import dbt_model_assets
from include.common.dag_defaults import default_args
from include.users_report.settings import DAG_ID, MARTS


@dag(
    dag_id=DAG_ID,
    schedule=dbt_model_assets(*MARTS),  # a list: once every one of them was updated
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["example", "users", "report"],
    doc_md=__doc__,
    default_args=default_args(DAG_ID),
)
def users_report():
    @task
    def write_report(**context) -> dict:
        """Read the marts, write summary.md and the charts into this run's folder."""
        from include.common import run_folder, warehouse
        from include.users_report import report

        with warehouse.connect() as conn:
            marts = report.read_marts(conn)
        return report.write_report(run_folder.folder_for(context), marts)

    write_report()


users_report()
