"""`make demo`: run the project's DAGs end to end on this machine, without Docker, then clean up.

Starts a throwaway PostgreSQL (and, while template/ holds it, the example's stand-in user API), runs
`airflow dags test` of each DAG in dags/ for one logical date, the DAGs scheduled on Assets after
the others, and prints each run's task states. Then what the runs updated in the warehouse (their
Asset events' tables and views), with the `psql` queries you would type yourself, checks that every
dbt test of the project ran, and stops everything. When a run fails, it prints each failed task's
error and keeps the whole log.
"""

from __future__ import annotations

import json
import re
import sys

from include.common.assets import SCHEME
from include.common.dbt_manifest import ensure_manifest
from include.common.project import LOAD_SCHEMA
from scripts import dbt_coverage, run_log
from scripts.local_env import DagsDoNotParse, LocalAirflow, local_airflow

LOGICAL_DATE = "2024-01-01"
TASKS_QUERY = (  # Airflow's metadata database lives in the same throwaway server
    "SELECT task_id, state, round(duration::numeric, 1) AS seconds FROM task_instance"
    " WHERE dag_id = '{dag_id}' ORDER BY start_date;"
)
# The warehouse tables and views the runs updated: their Assets are named <schema>.<relation>
# (include/common/assets.py).
UPDATED_QUERY = (
    "SELECT DISTINCT asset.name FROM asset_event JOIN asset ON asset.id = asset_event.asset_id"  # noqa: S608
    f" WHERE asset.uri LIKE '{SCHEME}://%' ORDER BY 1"
)
SAMPLE_ROWS = 5
PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*")


def main() -> int | str:
    step("Starting a throwaway PostgreSQL; migrating Airflow's database")
    with local_airflow() as local:
        if local.settings.sources():
            print(local.settings.sources())
        try:
            dags = local.dags()
        except DagsDoNotParse as error:
            return str(error)
        output = ""
        for dag_id in dags:
            step(f"airflow dags test {dag_id} {LOGICAL_DATE}")
            result = local.airflow("dags", "test", dag_id, LOGICAL_DATE)
            print(local.postgres.psql(local.metadata_db_uri, "-c", TASKS_QUERY.format(dag_id=dag_id)).stdout)
            if result.returncode != 0:
                return failed(local, dag_id, result)
            output += result.stdout + result.stderr
        missing = dbt_coverage.tests_not_run(output, manifest())
        if missing:
            log = run_log.save(output, f"demo-{LOGICAL_DATE}")
            return f"dbt tests that ran in no task: {', '.join(sorted(missing))} (the runs' log: {log})"
        print(f"Every dbt test of the project ran ({len(dbt_coverage.tests_in(manifest()))}).")
        show_updated(local)
        runs = local.run_folders()  # in that Airflow home, or on your object store
    print(NEXT_STEPS.format(cleanup=CLEANED_UP if runs.protocol == "file" else KEPT.format(runs=runs)))
    return 0


def show_updated(local: LocalAirflow) -> None:
    """Each table and view the runs updated, with its rows counted; the first rows of the loaded ones."""
    names = local.postgres.psql(local.metadata_db_uri, "-At", "-c", UPDATED_QUERY).stdout.split()
    updated = [name for name in names if PLAIN_NAME.fullmatch(name)]  # typed as is, no quoting needed
    if not updated:
        return
    count = "SELECT '{0}' AS relation, count(*) AS rows FROM {0}"
    queries = [" UNION ALL ".join(map(count.format, updated))]
    loaded = [name for name in updated if name.startswith(f"{LOAD_SCHEMA}.")]
    queries += [f"SELECT * FROM {name} LIMIT {SAMPLE_ROWS}" for name in loaded]  # noqa: S608 - PLAIN_NAME
    for query in queries:
        step(f'psql "{local.warehouse_uri}" -c "{query};"')
        print(local.postgres.psql(local.warehouse_uri, "-c", query).stdout)


def failed(local: LocalAirflow, dag_id: str, result) -> str:
    """Each failed task's own error, and the whole output kept: its services are about to go."""
    output = result.stdout + result.stderr
    return run_log.report_failure(output, dag_id, local.metadata_db_uri, f"{dag_id}-{LOGICAL_DATE}")


def manifest() -> dict:
    return json.loads(ensure_manifest().read_text())


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


NEXT_STEPS = """Done: each DAG of dags/ ran once, against a throwaway PostgreSQL. {cleanup}

Try next:
  make shell      a shell with Airflow and the same throwaway services: run the tasks one by one
                  with `airflow tasks test`, query the warehouse with psql (see README)
  make ui         the Airflow UI on the same throwaway services
  make test       the whole test suite (unit, DAG integrity, end to end)
"""
CLEANED_UP = """That PostgreSQL and the
Airflow home, with the run folders, have now been removed again."""
KEPT = """That PostgreSQL and the
Airflow home have now been removed again; the run folders stay on your object store, under
{runs}/ (a logical date's run folder is rewritten by its next run)."""

if __name__ == "__main__":
    sys.exit(main())
