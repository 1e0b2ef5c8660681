"""The Assets DAGs hand to each other: one DAG's task updates it, another DAG is scheduled on it.

Asset URIs name data (a table of the stack's warehouse), not a connection. Build each one here, so
that every DAG names the same table with the same Asset.
"""

from __future__ import annotations

from airflow.sdk import Asset

from include.common.project import USERS_TABLE

WAREHOUSE = "postgres://warehouse:5432/warehouse"

# user_processing's store_user updates it; users_report (schedule=[USERS_ASSET]) runs after every load.
USERS_ASSET = Asset(name=USERS_TABLE, uri=f"{WAREHOUSE}/public/{USERS_TABLE}")


def warehouse_relation(schema: str, relation: str) -> Asset:
    """A table or view in the warehouse, e.g. a dbt model's: dbt_build updates one per model."""
    return Asset(name=f"{schema}.{relation}", uri=f"{WAREHOUSE}/{schema}/{relation}")
