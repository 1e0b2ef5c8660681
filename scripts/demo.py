"""`make demo`: run user_processing end to end on this machine, without Docker, then clean up.

Starts a throwaway PostgreSQL and the stand-in user API, runs `airflow dags test` for one logical
date, prints the task states and the loaded users with the psql queries you would type yourself,
checks that every dbt test of the project ran, runs users_report on the result, and stops
everything. When a run fails, it prints each failed task's error and keeps the whole log.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

from include.common.dbt_manifest import ensure_manifest
from include.common.run_folder import folder_of
from scripts import dbt_coverage, run_log
from scripts.local_env import LocalAirflow, local_airflow

LOGICAL_DATE = "2024-01-01"
TASKS_QUERY = (  # Airflow's metadata database lives in the same throwaway server
    "SELECT task_id, state, round(duration::numeric, 1) AS seconds FROM task_instance"
    " WHERE dag_id = 'user_processing' ORDER BY start_date;"
)
USERS_QUERY = "SELECT firstname, lastname, country, email FROM users ORDER BY lastname, firstname LIMIT 10;"
COUNT_QUERY = "SELECT count(*) AS users, count(DISTINCT country) AS countries FROM users;"
MART_QUERY = (
    "SELECT country, users, share_pct FROM analytics.users_by_country ORDER BY users DESC, country LIMIT 5;"
)
FAILED_QUERY = "SELECT task_id FROM task_instance WHERE dag_id = %s AND state = 'failed' ORDER BY start_date"


def main() -> int | str:
    step("Starting a throwaway PostgreSQL and the stand-in user API; migrating Airflow's database")
    with local_airflow() as local:
        if local.settings.sources():
            print(local.settings.sources())
        step(f"airflow dags test user_processing {LOGICAL_DATE}")
        result = local.airflow("dags", "test", "user_processing", LOGICAL_DATE)
        print(local.postgres.psql(local.metadata_db_uri, "-c", TASKS_QUERY).stdout)
        if result.returncode != 0:
            return failed(local, "user_processing", result)
        missing = dbt_coverage.tests_not_run(result.stdout + result.stderr, manifest())
        if missing:
            log = run_log.save(result.stdout + result.stderr, f"user_processing-{LOGICAL_DATE}")
            return f"dbt tests that ran in no task: {', '.join(sorted(missing))} (the run's log: {log})"
        print(f"Every dbt test of the project ran ({len(dbt_coverage.tests_in(manifest()))}).")
        step(f'psql "{local.warehouse_uri}" -c "{USERS_QUERY}"')
        print(local.postgres.psql(local.warehouse_uri, "-c", USERS_QUERY).stdout)
        print(local.postgres.psql(local.warehouse_uri, "-c", COUNT_QUERY).stdout)
        step(f'psql "{local.warehouse_uri}" -c "{MART_QUERY}"   (a dbt mart)')
        print(local.postgres.psql(local.warehouse_uri, "-c", MART_QUERY).stdout)
        # Under a scheduler the load's Asset event starts users_report; `dags test` runs it by hand.
        step(f"airflow dags test users_report {LOGICAL_DATE}   (the second DAG: a report of the marts)")
        result = local.airflow("dags", "test", "users_report", LOGICAL_DATE)
        if result.returncode != 0:
            return failed(local, "users_report", result)
        # Read where the task wrote it: a run folder in that Airflow home, or on your object store.
        runs = local.run_folders()
        report = folder_of(runs, "users_report", datetime.fromisoformat(LOGICAL_DATE))
        print(f"{report}/summary.md, first lines:\n")
        print("\n".join((report / "summary.md").read_text(encoding="utf-8").splitlines()[:12]), "\n")
    print(NEXT_STEPS.format(cleanup=CLEANED_UP if runs.protocol == "file" else KEPT.format(runs=runs)))
    return 0


def failed(local: LocalAirflow, dag_id: str, result) -> str:
    """Each failed task's own error, and the whole output kept: its services are about to go."""
    output = result.stdout + result.stderr
    return run_log.report_failure(output, dag_id, local.metadata_db_uri, f"{dag_id}-{LOGICAL_DATE}")


def manifest() -> dict:
    return json.loads(ensure_manifest().read_text())


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


NEXT_STEPS = """Done: the users above were fetched from the bundled stand-in API, processed with pandas,
upserted into the `users` table of a throwaway PostgreSQL and transformed by dbt into the
`analytics` schema, and users_report summed the marts up. {cleanup}

Try next:
  make shell      a shell with Airflow and the same throwaway services: run the tasks one by one
                  with `airflow tasks test`, query `users` with psql (see README)
  make test       the whole test suite (unit, DAG integrity, end to end)
  dags/user_processing.py   the DAG; its logic lives in include/user_processing/
  dags/users_report.py      the second DAG, the one to copy when you add yours (README: Adding a DAG)
"""
CLEANED_UP = """That PostgreSQL and the
Airflow home, with the run folders and the report, have now been removed again."""
KEPT = """That PostgreSQL and the
Airflow home have now been removed again; the run folders stay on your object store, under
{runs}/ (a logical date's run folder is rewritten by its next run)."""

if __name__ == "__main__":
    sys.exit(main())
