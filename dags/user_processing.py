"""
### user_processing

Fetches users from a randomuser.me-style API and upserts them into the warehouse table `users`.

```
create_table >> is_api_available >> extract_user >> process_user >> store_user >> transform_users
 (Postgres DDL)   (HttpSensor)       (API -> JSON)   (JSON -> CSV)   (CSV -> users)  (dbt)
```

- Connections: `postgres` (the warehouse) and `user_api` (HTTP).
- Each logical date fetches its own, reproducible set of users (the API's `seed`); re-running a date
  changes nothing. Param `users` sets how many users a run fetches.
- `transform_users` builds and tests the dbt models that `users` feeds (settings.DBT_SELECT: the
  staging and marts models, their tests): one `dbt build`, each model an Asset it updates (or a
  Cosmos task per model: `[dbt] mode`, include/common/dbt_tasks.py).
- Tasks hand files over through the run folder (include/common/run_folder.py), never
  through a worker's local disk; so each task can also be run alone with `airflow tasks test`.

The logic lives in include/user_processing/ (one module per task: extract, process, store), the
pieces every DAG shares (dbt's tasks among them) in include/common/; this file only wires the tasks.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import ExceptionRetryPolicy, Param, RetryAction, RetryRule, chain, dag, task

from include.common.dag_defaults import default_args
from include.common.dbt_tasks import dbt_task_group
from include.common.project import WAREHOUSE_CONN_ID
from include.user_processing.errors import FAIL_FAST_ERRORS
from include.user_processing.fields import users_table_sql
from include.user_processing.settings import (
    DAG_ID,
    DBT_GROUP,
    DBT_SELECT,
    DEFAULT_USERS_PER_RUN,
    MAX_ACTIVE_RUNS,
    SENSOR_POKE_INTERVAL,
    SENSOR_TIMEOUT,
    USER_API_CONN_ID,
    USER_API_ENDPOINT,
    USERS_ASSET,
)
from include.user_processing.user_api import api_is_serving_users


@dag(
    dag_id=DAG_ID,
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=MAX_ACTIVE_RUNS,  # [user_processing] max_active_runs, 1 by default
    tags=["example", "users", "etl"],
    doc_md=__doc__,
    params={
        "users": Param(
            DEFAULT_USERS_PER_RUN,
            type="integer",
            minimum=1,
            maximum=1_000_000,
            description="How many users this run fetches (pages of up to 5000).",
        ),
    },
    default_args=default_args(
        DAG_ID,
        # Bad input stays bad: fail at once instead of retrying (see include/user_processing/errors.py).
        retry_policy=ExceptionRetryPolicy(
            rules=[RetryRule(exception=list(FAIL_FAST_ERRORS), action=RetryAction.FAIL)]
        ),
    ),
)
def user_processing():
    # The table, and any column include/user_processing/fields.py has that it lacks.
    create_table = SQLExecuteQueryOperator(
        task_id="create_table",
        conn_id=WAREHOUSE_CONN_ID,
        sql=users_table_sql(),
    )

    is_api_available = HttpSensor(
        task_id="is_api_available",
        http_conn_id=USER_API_CONN_ID,
        endpoint=USER_API_ENDPOINT,
        request_params={"results": 1, "inc": "nat"},  # the smallest answer that proves users are served
        response_check=api_is_serving_users,
        extra_options={"check_response": False, "timeout": 30},  # the check reads the status itself
        mode="reschedule",  # frees the worker slot between pokes
        poke_interval=SENSOR_POKE_INTERVAL,
        timeout=SENSOR_TIMEOUT,
    )

    @task
    def extract_user(**context) -> dict:
        """Fetch this run's users, page by page, into its run folder (passwords dropped)."""
        from airflow.providers.http.hooks.http import HttpHook

        from include.common import run_folder
        from include.user_processing import extract

        hook = HttpHook(method="GET", http_conn_id=USER_API_CONN_ID)
        seed = extract.seed_for(context["dag"].dag_id, run_folder.logical_date_of(context))
        return extract.extract_users(
            hook, run_folder.folder_for(context), seed=seed, total_users=context["params"]["users"]
        )

    @task
    def process_user(**context) -> dict:
        """Turn the extracted pages into users.csv."""
        from include.common import run_folder
        from include.user_processing import process

        return {"rows": process.write_run_csv(run_folder.folder_for(context))}

    @task(outlets=[USERS_ASSET])
    def store_user(**context) -> dict:
        """Upsert users.csv into the users table, all or nothing."""
        from dataclasses import asdict

        from include.common import run_folder, warehouse
        from include.user_processing import store

        return asdict(store.store_run_csv(run_folder.folder_for(context), warehouse.connect))

    # The dbt models users feeds, run the way [dbt] mode says: one `dbt build` by default.
    transform_users = dbt_task_group(DBT_SELECT, group_id=DBT_GROUP)

    chain(create_table, is_api_available, extract_user(), process_user(), store_user(), transform_users)


user_processing()
