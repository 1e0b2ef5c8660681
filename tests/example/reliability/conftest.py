"""Fixtures of the fault-injection suite: fast retries, a baseline already in `users`, a run helper."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import psycopg
import pytest

from include.user_processing.fields import users_table_sql
from include.user_processing.process import write_users_csv
from include.user_processing.store import store_users_csv
from tests.example.conftest import users_in
from tests.example.integration.expected import ROW, api_users, user_rows
from tests.example.reliability.invariants import (
    assert_no_duplicate_user_ids,
    assert_secrets_nowhere,
    login_secrets,
    run_folders,
    warehouse_state,
)

# Production waits minutes between retries; the faults here need the same logic, only sooner.
FAST_RETRIES = {
    "AIRFLOW__USER_PROCESSING__RETRY_DELAY": "1",
    "AIRFLOW__USER_PROCESSING__REQUEST_MAX_ATTEMPTS": "3",
    "AIRFLOW__USER_PROCESSING__REQUEST_FIRST_WAIT": "0.05",
}
BASELINE_DATE = "2023-12-31"
USERS = 30  # per run: enough for every quirk, small enough to keep the suite quick


@pytest.fixture
def run(airflow, warehouse: psycopg.Connection) -> Iterator[Callable]:
    """`airflow dags test` of one date with fast retries; dbt skipped unless asked for.

    After the test, whatever the fault: invariant 4 for every run it made (no salt or hash of the
    users the API served that date in the warehouse, XCom, run folders, task logs or output).
    """
    runs = []

    def run_dag(logical_date: str, skip_dbt: bool = True, env: dict | None = None, users: int = USERS):
        result = airflow.dags_test(
            logical_date, conf={"users": users}, skip_dbt=skip_dbt, env={**FAST_RETRIES, **(env or {})}
        )
        runs.append((logical_date, users, result))
        return result

    yield run_dag
    for logical_date, users, result in runs:
        salts_and_hashes, _ = login_secrets(api_users(logical_date, users))
        assert_secrets_nowhere(
            salts_and_hashes,
            warehouse=warehouse,
            metadata_uri=airflow.metadata_uri,
            folders=run_folders(airflow.home, logical_date),
            outputs=[result],
        )


@pytest.fixture
def baseline(warehouse: psycopg.Connection) -> dict:
    """Users of an earlier day already loaded (straight through the load code, no Airflow needed)."""
    for statement in users_table_sql():
        warehouse.execute(statement)
    text = io.StringIO()
    write_users_csv([api_users(BASELINE_DATE, USERS)], text)
    store_users_csv(warehouse, io.BytesIO(text.getvalue().encode()))
    return warehouse_state(warehouse)


def assert_baseline_and_users_of(warehouse: psycopg.Connection, logical_date: str) -> None:
    """Invariant 3: `users` holds the baseline plus that date's users, as after clean runs."""
    expected = sorted(user_rows(BASELINE_DATE, USERS) + user_rows(logical_date, USERS))
    assert users_in(warehouse, ROW) == expected


@pytest.fixture
def unchanged(warehouse: psycopg.Connection, baseline: dict) -> Callable[[], None]:
    """Call after a failed run: invariants 1 and 2 against the baseline."""

    def check() -> None:
        assert_no_duplicate_user_ids(warehouse)
        assert warehouse_state(warehouse) == baseline

    return check
