"""Where things are, and the warehouse connection: the same for every pipeline of this project."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the repository; /opt/airflow in the Docker image

# The warehouse, never Airflow's metadata database (contract: override it with AIRFLOW_CONN_POSTGRES).
WAREHOUSE_CONN_ID = "postgres"
# The object store that run folders (and remote task logs) may live on: its endpoint and keys, named in
# URLs such as s3://object_store@my-bucket/run-folders. Set it with AIRFLOW_CONN_OBJECT_STORE
# (docs/deploying.md); nothing needs it while the run folder stays on a local disk, the default.
OBJECT_STORE_CONN_ID = "object_store"

# dbt: the project, and the dbt executable of its own virtualenv (see requirements/dbt.in).
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_EXECUTABLE = Path(os.environ.get("DBT_EXECUTABLE_PATH", PROJECT_ROOT / ".venv-dbt" / "bin" / "dbt"))
DBT_SCHEMA = "analytics"  # where the models are built
LOAD_SCHEMA = "public"  # where the DAGs load their tables (the default schema)
# dbt's threads (models or tests at once), here and in dbt_project/profiles.yml: 4 suits 2-4 cores.
DBT_THREADS = 4
