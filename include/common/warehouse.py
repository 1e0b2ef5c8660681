"""The warehouse connection, opened the same way by every task: `with connect() as conn:`.

A psycopg 3 connection from the Airflow connection `postgres` (WAREHOUSE_CONN_ID; override it with
AIRFLOW_CONN_POSTGRES). Leaving the `with` block commits, or rolls back on an error, and closes it.
Plain logic that needs a connection takes `connect` (or the connection) as an argument, so tests
hand it one to a throwaway PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.common.project import WAREHOUSE_CONN_ID

if TYPE_CHECKING:
    import psycopg


def connect() -> psycopg.Connection:
    from airflow.providers.postgres.hooks.postgres import PostgresHook  # psycopg: not at DAG parse

    return PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID).get_conn()
