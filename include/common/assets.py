"""The Assets DAGs hand to each other: one DAG's task updates it, another DAG is scheduled on it."""

from __future__ import annotations

from airflow.sdk import Asset

from include.common.project import USERS_TABLE

# The users table of the stack's warehouse. Asset URIs name data, not a connection.
# user_processing's store_user updates it; users_report (schedule=[USERS_ASSET]) runs after every load.
USERS_ASSET = Asset(name=USERS_TABLE, uri=f"postgres://warehouse:5432/warehouse/public/{USERS_TABLE}")
