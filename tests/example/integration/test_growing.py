"""The template grown as a user grows it, on a copy of the project, over a warehouse it already loaded.

The copy gains a column (one line of the field table, one in the staging model) and a bigger dbt
project: a model two folders deep, a seed, a local package whose macro a model calls, and a
relationships test between two sibling models. Then the DAG runs on real PostgreSQL, Airflow and
dbt, for a date the shipped project loaded before: every user keeps their row and gains the new
value, every dbt node is built and every dbt test of the manifest runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import dbt_coverage
from tests.conftest import copy_project
from tests.example.conftest import users_in
from tests.example.integration.expected import ROW, api_users, assert_succeeded, user_rows

pytestmark = pytest.mark.e2e

DATE = "2024-08-01"

NEW_FIELD = '    Field("phone", "phone", required=False),\n'
FILES = {
    # Two folders deep, reading the new column through a macro of a local package.
    "models/staging/contact/phones/stg_phones.sql": """
select
    user_id,
    phone,
    {{ text_tools.digits_only('phone') }} as phone_digits
from {{ source('warehouse', 'users') }}
where phone is not null
""",
    "models/staging/contact/phones/stg_phones.yml": """
version: 2
models:
  - name: stg_phones
    columns:
      - name: user_id
        data_tests:
          - unique
          # stg_users is a sibling: neither is upstream of the other.
          - relationships:
              arguments:
                to: ref('stg_users')
                field: user_id
      - name: phone_digits
        data_tests: [not_null]
""",
    "seeds/regions.csv": "country,region\nBrazil,Americas\nNorway,Europe\nIran,Asia\n",
    "seeds/regions.yml": """
version: 2
seeds:
  - name: regions
    columns:
      - name: country
        data_tests: [unique, not_null]
""",
    "models/marts/users_by_region.sql": """
select
    regions.region,
    count(*) as users
from {{ ref('dim_users') }} as dim_users
inner join {{ ref('regions') }} as regions on dim_users.country = regions.country
group by regions.region
""",
    "packages.yml": "packages:\n  - local: local_packages/text_tools\n",
    "local_packages/text_tools/dbt_project.yml": 'name: text_tools\nversion: "1.0.0"\nconfig-version: 2\n',
    "local_packages/text_tools/macros/digits_only.sql": """
{% macro digits_only(column) -%}
    regexp_replace({{ column }}, '[^0-9]', '', 'g')
{%- endmacro %}
""",
}


def grow(project: Path) -> None:
    fields = project / "include" / "user_processing" / "fields.py"
    text = fields.read_text()
    end = text.index("\n)\nPRIMARY_KEY")
    fields.write_text(text[: end + 1] + NEW_FIELD + text[end + 1 :])
    staging = project / "dbt_project" / "models" / "staging" / "users" / "stg_users.sql"
    staging.write_text(
        staging.read_text().replace("        loaded_at\n", "        phone,\n        loaded_at\n")
    )
    for name, content in FILES.items():
        path = project / "dbt_project" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content.lstrip())


@pytest.fixture(scope="module")
def grown_run(airflow, warehouse_uri, tmp_path_factory) -> dict:
    """The shipped DAG loads DATE; then the grown copy runs the same date over that warehouse."""
    import psycopg

    with psycopg.connect(warehouse_uri, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS analytics CASCADE")
        conn.execute("DROP TABLE IF EXISTS users")
    assert_succeeded(airflow.dags_test(DATE))
    with psycopg.connect(warehouse_uri) as conn:
        shipped = users_in(conn, ROW)

    project = tmp_path_factory.mktemp("grown")
    env = copy_project(project)
    grow(project)
    result = airflow.dags_test(DATE, env=env)
    assert_succeeded(result)
    manifest = json.loads((project / "dbt_project" / "target" / "manifest.json").read_text())
    return {"shipped": shipped, "result": result, "manifest": manifest, "project": project}


@pytest.fixture
def warehouse(grown_run, warehouse_uri):
    """The warehouse as the grown run left it (conftest's `warehouse` would empty it first)."""
    import psycopg

    with psycopg.connect(warehouse_uri, autocommit=True) as conn:
        yield conn


def test_an_existing_warehouse_gains_the_column_and_loses_no_row(grown_run, warehouse):
    assert grown_run["shipped"] == user_rows(DATE)  # what the shipped project had loaded
    assert users_in(warehouse, ROW) == user_rows(DATE)  # every row still there, values unchanged
    phones = dict(warehouse.execute("SELECT user_id::text, phone FROM users").fetchall())
    assert phones == {user["login"]["uuid"]: user["phone"] for user in api_users(DATE)}


def test_the_staging_model_exposes_the_new_column(grown_run, warehouse):
    staged = dict(warehouse.execute("SELECT user_id::text, phone FROM analytics.stg_users").fetchall())
    assert staged == {user["login"]["uuid"]: user["phone"] for user in api_users(DATE)}
    digits = warehouse.execute("SELECT phone, phone_digits FROM analytics.stg_phones").fetchall()
    assert len(digits) == len(api_users(DATE))
    assert all(digits_only == "".join(c for c in phone if c.isdigit()) for phone, digits_only in digits)


def test_every_node_of_the_grown_project_was_built(grown_run, warehouse):
    manifest = grown_run["manifest"]
    expected = {
        node["alias"]
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "seed")
        and node["package_name"] == manifest["metadata"]["project_name"]
    }
    assert {"stg_phones", "regions", "users_by_region", "stg_users", "dim_users"} <= expected
    built = {
        row[0]
        for row in warehouse.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics'"
        ).fetchall()
    }
    assert expected <= built, f"never built: {sorted(expected - built)}"
    assert warehouse.execute("SELECT count(*) FROM analytics.regions").fetchone()[0] == 3


def test_every_dbt_test_of_the_grown_project_ran(grown_run):
    result, manifest = grown_run["result"], grown_run["manifest"]
    tests = dbt_coverage.tests_in(manifest)
    sibling = [name for name in tests if name.startswith("relationships_stg_phones_user_id")]
    assert sibling, sorted(tests)
    assert dbt_coverage.tests_not_run(result.stdout + result.stderr, manifest) == set()


def test_the_local_package_is_linked_so_it_works_wherever_the_project_is_mounted(grown_run):
    link = grown_run["project"] / "dbt_project" / "dbt_packages" / "text_tools"
    assert link.is_symlink()
    assert link.readlink() == Path("../local_packages/text_tools")  # relative: valid in the containers too
