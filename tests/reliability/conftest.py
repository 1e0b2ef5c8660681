"""Fixtures of the fault-injection suite: fast retries, a baseline already in `users`, a run helper."""

from __future__ import annotations

import io
from collections.abc import Callable

import psycopg
import pytest

from include.user_processing.load import load_users_csv
from include.user_processing.settings import SQL_DIR
from include.user_processing.transform import write_users_csv
from tests.integration.expected import api_users
from tests.reliability.invariants import assert_no_duplicate_user_ids, warehouse_state

# Production waits minutes between retries; the faults here need the same logic, only sooner.
FAST_RETRIES = {
    "AIRFLOW__USER_PROCESSING__RETRY_DELAY": "1",
    "AIRFLOW__USER_PROCESSING__REQUEST_MAX_ATTEMPTS": "3",
    "AIRFLOW__USER_PROCESSING__REQUEST_FIRST_WAIT": "0.05",
}
BASELINE_DATE = "2023-12-31"
USERS = 30  # per run: enough for every quirk, small enough to keep the suite quick


@pytest.fixture
def run(airflow) -> Callable:
    """`airflow dags test` of one date with fast retries; dbt skipped unless asked for."""

    def run_dag(logical_date: str, skip_dbt: bool = True, env: dict | None = None, users: int = USERS):
        return airflow.dags_test(
            logical_date, conf={"users": users}, skip_dbt=skip_dbt, env={**FAST_RETRIES, **(env or {})}
        )

    return run_dag


@pytest.fixture
def baseline(warehouse: psycopg.Connection) -> dict:
    """Users of an earlier day already loaded (straight through the load code, no Airflow needed)."""
    warehouse.execute((SQL_DIR / "create_users_table.sql").read_text())
    text = io.StringIO()
    write_users_csv([api_users(BASELINE_DATE, USERS)], text)
    load_users_csv(warehouse, io.BytesIO(text.getvalue().encode()))
    return warehouse_state(warehouse)


@pytest.fixture
def unchanged(warehouse: psycopg.Connection, baseline: dict) -> Callable[[], None]:
    """Call after a failed run: invariants 1 and 2 against the baseline."""

    def check() -> None:
        assert_no_duplicate_user_ids(warehouse)
        assert warehouse_state(warehouse) == baseline

    return check
