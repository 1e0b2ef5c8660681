"""`make shell`: a shell wired to a throwaway local Airflow, for trying things by hand.

Inside it, `airflow` uses a fresh Airflow home, the connection `postgres` points at a throwaway
PostgreSQL (and `user_api` at the example's stand-in API, while template/ holds it), and
$WAREHOUSE_URI is the warehouse for psql. Leaving
the shell (exit or Ctrl-D) stops and removes all of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scripts.local_env import DBT_BIN, DagsDoNotParse, dbt_env, local_airflow

BANNER = """
Local Airflow is ready (Airflow home: {home}), DAGs: {dags}. Try:
  airflow tasks test {dag} {task} 2024-01-01
  airflow dags test {dag} 2024-01-01
  dags-test {dag} 2024-01-01    (the same, then each failed task's error, if any)
  psql "$WAREHOUSE_URI" -c '\\dt'    (the warehouse's tables; then SELECT what you like)
  cd dbt_project && dbt build        (dbt reads the same warehouse through profiles.yml)
Leave with `exit`: everything started for this shell is then removed.
"""


def main() -> int:
    print("Starting a throwaway PostgreSQL; migrating Airflow's database ...")
    with local_airflow() as local:
        tools = Path(local.env["AIRFLOW_HOME"]) / "bin"
        tools.mkdir()
        dags_test = tools / "dags-test"
        dags_test.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m scripts.run_log dags-test "$@"\n')
        dags_test.chmod(0o755)
        env = {
            **local.env,
            "WAREHOUSE_URI": local.warehouse_uri,
            **dbt_env(local.warehouse_uri),
            # psql first; dbt comes from .venv-dbt, after .venv on PATH.
            "PATH": os.pathsep.join(
                [str(tools), str(local.postgres.bindir), local.env["PATH"], str(DBT_BIN)]
            ),
        }
        try:
            dags = local.dags()
        except DagsDoNotParse as error:  # the shell is where you find out why
            print(error)
            dags = {}
        dag, task = next(iter(dags.items()), ("<dag_id>", "<task_id>"))
        banner = BANNER.format(home=env["AIRFLOW_HOME"], dags=", ".join(dags), dag=dag, task=task)
        print(banner, local.settings.sources(), sep="", flush=True)
        subprocess.run([os.environ.get("SHELL", "/bin/bash")], env=env, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
