"""A DAG's dbt selection, resolved from the manifest without dbt, selects what `dbt ls` selects.

include/common/dbt_selection.py resolves a selection at parse time (Cosmos' manifest selector, `@`
on top of it) for the DAG's Assets and the local mode's tasks, while the build mode hands the same
selection to `dbt build`: the two must agree. Checked against the real `dbt ls` on a copy of the
project grown with a seed that a mart of `users` joins and a second source with models of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from include.common import dbt_selection
from include.common.dbt_manifest import ensure_manifest
from scripts.local_env import DBT_BIN, REPO_ROOT

pytestmark = pytest.mark.e2e

FILES = {
    "seeds/regions.csv": "country,region\nBrazil,Americas\nNorway,Europe\n",
    "models/marts/users_by_region.sql": (
        "select regions.region, count(*) as users from {{ ref('dim_users') }} as dim_users\n"
        "inner join {{ ref('regions') }} as regions on dim_users.country = regions.country\n"
        "group by regions.region\n"
    ),
    "models/staging/_shop.yml": (
        "version: 2\nsources:\n  - name: shop\n    tables:\n      - name: orders\n"
        "        columns:\n          - name: order_id\n            data_tests: [unique]\n"
    ),
    "models/staging/stg_orders.sql": "select order_id, status from {{ source('shop', 'orders') }}\n",
    "models/marts/orders_by_status.sql": (
        "{{ config(tags=['orders']) }}\n"
        "select status, count(*) as orders from {{ ref('stg_orders') }} group by status\n"
    ),
}
SELECTIONS = [
    "@source:warehouse.users",  # user_processing's: its load's models and what they need (the seed)
    "source:shop.orders+",
    "path:models/marts",
    "tag:orders",
    "users_by_country stg_orders",  # a union
    "stg_users+,config.materialized:table",  # an intersection
]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    copy = tmp_path_factory.mktemp("selection") / "dbt_project"
    shutil.copytree(REPO_ROOT / "dbt_project", copy, ignore=shutil.ignore_patterns("target", "dbt_packages"))
    for name, content in FILES.items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text(content)
    ensure_manifest(copy)
    return copy


def dbt_ls(project, selection: str) -> set[str]:
    """What dbt itself selects (tests by its default, eager, indirect selection); no database needed."""
    listed = subprocess.run(
        [
            *(str(DBT_BIN / "dbt"), "--quiet", "ls", "--select", *selection.split()),
            *(
                "--output",
                "json",
                "--output-keys",
                "unique_id",
                "--target-path",
                str(project / "target" / "ls"),
            ),
            *("--project-dir", str(project), "--profiles-dir", str(project)),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    ids = {json.loads(line)["unique_id"] for line in listed.stdout.splitlines() if line.startswith("{")}
    return {unique_id for unique_id in ids if not unique_id.startswith("unit_test.")}


@pytest.mark.parametrize("selection", SELECTIONS)
def test_the_selection_resolves_to_what_dbt_ls_selects(project, selection):
    resolved = dbt_selection.select(selection, project / "target" / "manifest.json", project)
    assert resolved, selection
    assert set(resolved) == dbt_ls(project, selection)


def test_user_processings_selection_takes_the_seed_its_marts_join_and_leaves_the_other_source(project):
    resolved = dbt_selection.select("@source:warehouse.users", project / "target" / "manifest.json", project)
    names = {node["name"] for node in dbt_selection.built(resolved)}
    assert {"regions", "users_by_region", "stg_users", "dim_users"} <= names
    assert not names & {"stg_orders", "orders_by_status"}
