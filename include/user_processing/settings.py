"""user_processing's names and limits, shared by the DAG, its tasks and the tests: one place for each.

Options come from the [user_processing] section (include/common/settings.py): override one from the
environment or airflow.env, e.g. AIRFLOW__USER_PROCESSING__SENSOR_TIMEOUT=900. The options every DAG
has (retries, retry_delay, task_timeout) are read by include/common/dag_defaults.py.
What every pipeline shares (paths, the warehouse connection, dbt and its mode) is in include/common/.
"""

from __future__ import annotations

from include.common.assets import warehouse_relation
from include.common.project import LOAD_SCHEMA
from include.common.settings import integer, seconds
from include.user_processing.fields import USERS_TABLE

DAG_ID = "user_processing"
# The Asset of the table this DAG loads, which store_user updates and other DAGs read.
USERS_ASSET = warehouse_relation(LOAD_SCHEMA, USERS_TABLE)

# The user API's Airflow connection (contract: override it with AIRFLOW_CONN_USER_API).
USER_API_CONN_ID = "user_api"

# Pin the API version: /api/ serves "latest", and the schema changed between versions.
USER_API_ENDPOINT = "api/1.4/"
# The API serves at most 5000 users per request; bigger batches are fetched page by page.
MAX_USERS_PER_PAGE = 5000
DEFAULT_USERS_PER_RUN = 100

# How many runs may be active at once (the DAG's max_active_runs): 1, one logical date after the
# other. Above 1, runs extract, process and load side by side (loads queue on an advisory lock, store.py);
# their dbt tasks take turns in the dbt pool (include/common/pools.py), as a backfill's do.
MAX_ACTIVE_RUNS = integer(DAG_ID, "max_active_runs", 1)

SENSOR_POKE_INTERVAL = seconds(DAG_ID, "sensor_poke_interval", 30)
SENSOR_TIMEOUT = seconds(DAG_ID, "sensor_timeout", 10 * 60)  # then the run fails: the API is down
# Retries of one page request inside extract_user (user_api.RequestRetries), before the task fails.
REQUEST_MAX_ATTEMPTS = integer(DAG_ID, "request_max_attempts", 5)
REQUEST_FIRST_WAIT = seconds(DAG_ID, "request_first_wait", 2)  # then doubling, at most 60 s apart
# The dbt models this DAG builds and tests, in dbt's --select syntax: what its load feeds (the
# source table `users` and everything downstream of it) and what those models need (`@`: seeds, other
# tables they join). A model that reads only another table is built by the DAG that loads it.
DBT_SELECT = "@source:warehouse.users"
DBT_GROUP = "transform_users"  # the task group of the dbt tasks: transform_users.dbt_build, ...
