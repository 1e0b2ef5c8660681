"""user_processing's names and limits, shared by the DAG, its tasks and the tests: one place for each.

What every pipeline shares (paths, the warehouse connection, dbt) is in include/common/project.py.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk.configuration import conf

# The user API's Airflow connection (contract: override it with AIRFLOW_CONN_USER_API).
USER_API_CONN_ID = "user_api"

# Pin the API version: /api/ serves "latest", and the schema changed between versions.
USER_API_ENDPOINT = "api/1.4/"
# The API serves at most 5000 users per request; bigger batches are fetched page by page.
MAX_USERS_PER_PAGE = 5000
DEFAULT_USERS_PER_RUN = 100

USERS_TABLE = "users"  # its Asset, updated by store_user, is include/common/assets.USERS_ASSET


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
# How Cosmos runs dbt: "local" (a `dbt build` per model) or "watcher" (one for the whole project);
# include/user_processing/dbt_transforms.py says what each keeps, docs/dbt.md what each costs.
DBT_MODE = conf.get("user_processing", "dbt_mode", fallback="local")
