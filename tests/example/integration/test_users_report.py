"""users_report after user_processing: the report it writes of the marts, against real PostgreSQL and
dbt. That the marts' Asset events from user_processing start it is tested under a real scheduler, in
test_ui.py (and its schedule against each dbt mode's Assets in tests/example/dags/test_dbt_modes.py).
"""

from __future__ import annotations

import re

import pytest

from include.users_report.report import read_marts
from tests.example.integration.expected import assert_succeeded

pytestmark = pytest.mark.e2e

DAG_ID = "users_report"


def test_the_report_holds_the_numbers_of_the_marts(airflow, warehouse):
    assert_succeeded(airflow.dags_test("2024-08-01"))

    assert_succeeded(airflow.dags_test("2024-08-01", dag_id=DAG_ID))
    assert airflow.task_states("2024-08-01", dag_id=DAG_ID) == {"write_report": "success"}
    folder = airflow.home / "run-folders" / DAG_ID / "logical_date=20240801T000000"
    assert sorted(path.name for path in folder.iterdir()) == [
        "summary.md",
        "users_by_country.svg",
        "users_by_registration_year.svg",
    ]
    marts = read_marts(warehouse)
    summary = (folder / "summary.md").read_text(encoding="utf-8")
    assert f"{marts.users} users from {len(marts.by_country)} countries" in summary
    for country, users, share in marts.by_country[:10]:
        assert f"| {country} | {users} | {share:.2f}% |" in summary
    assert re.findall(r"^\| (\d{4}) \| (\d+) \|$", summary, re.M) == [
        (str(year), str(users)) for year, users in marts.by_year
    ]
    chart = (folder / "users_by_country.svg").read_text(encoding="utf-8")
    assert all(f">{country}</text>" in chart for country, _, _ in marts.by_country if "&" not in country)
