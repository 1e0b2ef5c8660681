"""Names and limits shared by the DAG, its tasks and the tests: one place to change each."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import Asset
from airflow.sdk.configuration import conf

# Airflow connection ids (contract: override them with AIRFLOW_CONN_POSTGRES / AIRFLOW_CONN_USER_API).
POSTGRES_CONN_ID = "postgres"
USER_API_CONN_ID = "user_api"

# Pin the API version: /api/ serves "latest", and the schema changed between versions.
USER_API_ENDPOINT = "api/1.4/"
# The API serves at most 5000 users per request; bigger batches are fetched page by page.
MAX_USERS_PER_PAGE = 5000
DEFAULT_USERS_PER_RUN = 100

# Where tasks hand files to each other. An Airflow Variable (or AIRFLOW_VAR_USER_PROCESSING_STAGING_URL)
# overrides it: e.g. s3://aws_default@my-bucket/staging with the amazon provider installed.
STAGING_URL_VARIABLE = "user_processing_staging_url"

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the repository; /opt/airflow in the Docker image
SQL_DIR = PROJECT_ROOT / "include" / "sql"

USERS_TABLE = "users"
# Asset URIs name data, not a connection: this one is the users table of the stack's warehouse.
USERS_ASSET = Asset(name="users", uri="postgres://warehouse:5432/warehouse/public/users")

# dbt: the project, and the dbt executable of its own virtualenv (see requirements/dbt.in).
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"  # built by `make install` / airflow-init
DBT_EXECUTABLE = Path(os.environ.get("DBT_EXECUTABLE_PATH", PROJECT_ROOT / ".venv-dbt" / "bin" / "dbt"))
DBT_SCHEMA = "analytics"  # where the models are built; the loaded `users` table stays in public


def _seconds(name: str, default: float) -> timedelta:
    return timedelta(seconds=conf.getfloat("user_processing", name, fallback=default))


# Operational limits. Each can be overridden like any Airflow option, from the environment
# (AIRFLOW__USER_PROCESSING__SENSOR_TIMEOUT=900) or an [user_processing] section in airflow.cfg.
SENSOR_POKE_INTERVAL = _seconds("sensor_poke_interval", 30)
SENSOR_TIMEOUT = _seconds("sensor_timeout", 10 * 60)  # then the run fails: the API is down
TASK_TIMEOUT = _seconds("task_timeout", 60 * 60)  # execution_timeout of extract/process/store
RETRY_DELAY = _seconds("retry_delay", 60)  # first task retry; doubles each time
# Retries of one page request inside extract_user (user_api.RequestRetries), before the task fails.
REQUEST_MAX_ATTEMPTS = conf.getint("user_processing", "request_max_attempts", fallback=5)
REQUEST_FIRST_WAIT = _seconds("request_first_wait", 2)  # then doubling, at most 60 s apart
