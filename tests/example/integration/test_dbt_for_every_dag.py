"""dbt for every DAG: a second DAG with dbt models of its own, as a user adds one, on a copy of the project.

The copy gains a DAG `orders_processing` that loads a table `orders` and builds the dbt models that
read it (`dbt_task_group("source:shop.orders+")`), beside user_processing and its models. Run by the
real Airflow CLI on real PostgreSQL and dbt, in each dbt mode: the second DAG builds and tests its
models and nothing of user_processing's (their relations are not rebuilt, their tests not run, their
Assets not updated), and every dbt test of the manifest runs in some task of some DAG.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from include.common import dbt_selection
from include.common.assets import dbt_node_asset, warehouse_relation
from include.common.dbt_tasks import MODES
from include.user_processing.settings import USERS_ASSET
from scripts import dbt_coverage
from tests.conftest import copy_project
from tests.example.integration.expected import assert_succeeded

pytestmark = pytest.mark.e2e

DATE = "2024-10-01"
DAG_ID = "orders_processing"
SELECT = "source:shop.orders+"
USERS_MODELS = (
    "stg_users",
    "users_by_country",
    "users_by_registration_year",
)  # views and tables: rebuilt anew
ORDERS_BY_STATUS = [("placed", 10), ("returned", 10), ("shipped", 10)]
DAG_FILE = '''
"""orders_processing: loads `orders`, then builds and tests the dbt models that read it."""

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import chain, dag

from include.common.assets import warehouse_relation
from include.common.dag_defaults import default_args
from include.common.dbt_tasks import dbt_task_group
from include.common.project import WAREHOUSE_CONN_ID


@dag(
    dag_id="orders_processing",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["orders"],
    default_args=default_args("orders_processing"),
)
def orders_processing():
    load_orders = SQLExecuteQueryOperator(
        task_id="load_orders",
        conn_id=WAREHOUSE_CONN_ID,
        sql=[
            "CREATE TABLE IF NOT EXISTS orders (order_id integer PRIMARY KEY, status text NOT NULL)",
            "INSERT INTO orders SELECT i, (ARRAY['placed', 'shipped', 'returned'])[1 + i % 3]"
            " FROM generate_series(1, 30) AS i ON CONFLICT (order_id) DO NOTHING",
        ],
        outlets=[warehouse_relation("public", "orders")],
    )
    chain(load_orders, dbt_task_group("source:shop.orders+", group_id="transform_orders"))


orders_processing()
'''
DBT_FILES = {
    "models/staging/_shop.yml": """
version: 2
sources:
  - name: shop
    schema: public
    tables:
      - name: orders
        columns:
          - name: order_id
            data_tests: [unique, not_null]
models:
  - name: stg_orders
    columns:
      - name: order_id
        data_tests: [unique, not_null]
""",
    "models/staging/stg_orders.sql": "select order_id, status from {{ source('shop', 'orders') }}\n",
    "models/marts/orders_by_status.sql": (
        "select status, count(*) as orders from {{ ref('stg_orders') }} group by status\n"
    ),
    "models/marts/_orders.yml": """
version: 2
models:
  - name: orders_by_status
    columns:
      - name: status
        data_tests:
          - unique
          - accepted_values:
              arguments:
                values: [placed, shipped, returned]
""",
}


@pytest.fixture(scope="module")
def two_dags(airflow, warehouse_uri, tmp_path_factory) -> dict:
    """A copy with the second DAG and its models; user_processing has loaded and built DATE on it."""
    with psycopg.connect(warehouse_uri, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS analytics CASCADE")
        conn.execute("DROP TABLE IF EXISTS users, orders")
    project = tmp_path_factory.mktemp("two-dags")
    env = copy_project(project)
    (project / "dags" / f"{DAG_ID}.py").write_text(DAG_FILE.lstrip())
    for name, content in DBT_FILES.items():
        (project / "dbt_project" / name).write_text(content.lstrip())
    users_run = airflow.dags_test(DATE, env=env)  # user_processing, in the default mode
    assert_succeeded(users_run)
    dbt_project = project / "dbt_project"
    manifest_path = dbt_project / "target" / "manifest.json"
    return {
        "env": env,
        "users_log": users_run.stdout + users_run.stderr,
        "manifest": json.loads(manifest_path.read_text()),
        "selected": dbt_selection.select(SELECT, manifest_path, dbt_project),
    }


def relation_ids(warehouse_uri: str) -> dict[str, int]:
    """Each relation of the dbt schema and its oid: dbt builds a view or table anew, under a new oid."""
    with psycopg.connect(warehouse_uri) as conn:
        rows = conn.execute(
            "SELECT relname, oid::bigint FROM pg_class WHERE relnamespace = 'analytics'::regnamespace"
        ).fetchall()
    return dict(rows)


def test_user_processing_builds_none_of_the_second_dags_models(two_dags):
    own = {node["name"] for node in dbt_selection.built(two_dags["selected"])}
    assert own == {"stg_orders", "orders_by_status"}
    for model in own:
        assert model not in two_dags["users_log"], f"user_processing's run built {model}"
    own_tests = {node["name"] for node in two_dags["selected"].values() if node["resource_type"] == "test"}
    assert not dbt_coverage.tests_reported(two_dags["users_log"]) & own_tests


@pytest.mark.parametrize("mode", MODES)
def test_a_second_dag_builds_and_tests_its_own_models_and_none_of_user_processings(
    airflow, warehouse_uri, two_dags, mode
):
    before = relation_ids(warehouse_uri)
    result = airflow.dags_test(DATE, dag_id=DAG_ID, env={**two_dags["env"], "AIRFLOW__DBT__MODE": mode})
    assert_succeeded(result)
    log = result.stdout + result.stderr

    with psycopg.connect(warehouse_uri) as conn:
        built = conn.execute(
            "SELECT status, orders FROM analytics.orders_by_status ORDER BY status"
        ).fetchall()
    assert built == ORDERS_BY_STATUS
    own_tests = {node["name"] for node in two_dags["selected"].values() if node["resource_type"] == "test"}
    assert len(own_tests) == 6  # the source's two, stg_orders' two, the mart's two
    assert dbt_coverage.tests_reported(log) == own_tests  # its tests, and none of user_processing's

    after = relation_ids(warehouse_uri)
    assert {model: after[model] for model in USERS_MODELS} == {model: before[model] for model in USERS_MODELS}
    own_assets = {dbt_node_asset(node).uri for node in dbt_selection.built(two_dags["selected"])}
    orders = warehouse_relation("public", "orders").uri
    assert airflow.asset_events(DATE, dag_id=DAG_ID) == own_assets | {orders}
    assert USERS_ASSET.uri not in own_assets

    states = airflow.task_states(DATE, dag_id=DAG_ID)
    assert set(states.values()) == {"success"}, states
    assert all(task.startswith("transform_orders.") for task in states if task != "load_orders"), states

    # Every dbt test of the manifest ran in some task of some DAG: user_processing's or this one's.
    assert dbt_coverage.tests_not_run(two_dags["users_log"] + log, two_dags["manifest"]) == set()
