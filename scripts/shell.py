"""`make shell`: a shell wired to a throwaway local Airflow, for trying things by hand.

Inside it, `airflow` uses a fresh Airflow home, the connections `postgres` and `user_api` point at a
throwaway PostgreSQL and the stand-in API, and $WAREHOUSE_URI is the warehouse for psql. Leaving
the shell (exit or Ctrl-D) stops and removes all of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse

from scripts.local_env import REPO_ROOT, local_airflow

BANNER = """
Local Airflow is ready (Airflow home: {home}). Try:
  airflow tasks test user_processing create_table 2024-01-01
  airflow dags test user_processing 2024-01-01
  psql "$WAREHOUSE_URI" -c 'SELECT firstname, lastname, country, email FROM users LIMIT 10'
  cd dbt_project && dbt build        (dbt reads the same warehouse through profiles.yml)
Leave with `exit`: everything started for this shell is then removed.
"""


def main() -> int:
    print("Starting a throwaway PostgreSQL and the stand-in user API; migrating Airflow's database ...")
    with local_airflow() as local:
        warehouse = urllib.parse.urlsplit(local.warehouse_uri)
        env = {
            **local.env,
            "WAREHOUSE_URI": local.warehouse_uri,
            # dbt_project/profiles.yml reads these; dbt itself comes from .venv-dbt (after .venv on PATH).
            "DBT_PROFILES_DIR": str(REPO_ROOT / "dbt_project"),
            "DBT_HOST": warehouse.hostname,
            "DBT_PORT": str(warehouse.port),
            "DBT_USER": warehouse.username,
            "DBT_PASSWORD": warehouse.password,
            "DBT_DBNAME": warehouse.path.lstrip("/"),
            "PATH": os.pathsep.join(
                [str(local.postgres.bindir), local.env["PATH"], str(REPO_ROOT / ".venv-dbt" / "bin")]
            ),
        }
        print(BANNER.format(home=env["AIRFLOW_HOME"]), flush=True)
        subprocess.run([os.environ.get("SHELL", "/bin/bash")], env=env, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
