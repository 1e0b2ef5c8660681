"""The README's recipe for a new DAG, followed word for word on a copy of the project, then run."""

from __future__ import annotations

import re
import subprocess

import pytest

from scripts.local_env import REPO_ROOT
from tests.conftest import copy_project
from tests.example.integration.expected import api_users, assert_succeeded

pytestmark = pytest.mark.e2e


def recipe() -> list[str]:
    """The shell lines of the README's "Adding a DAG" block, but `make` (this test runs the DAG instead)."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Adding a DAG") :]
    (block,) = re.findall(r"```bash\n(.*?)```", section[: section.index("\n## ", 3)], re.S)
    lines = [line for line in block.splitlines() if line.strip()]
    assert any(line.startswith("cp dags/users_report.py dags/my_report.py") for line in lines), lines
    return [line for line in lines if not line.startswith("make ")]


def test_a_copy_of_users_report_made_as_the_readme_says_runs(airflow, warehouse, tmp_path):
    env = copy_project(tmp_path)
    for line in recipe():
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{line}\n{done.stderr}"
    assert "from include.my_report.settings import DAG_ID" in (tmp_path / "dags" / "my_report.py").read_text()

    assert_succeeded(airflow.dags_test("2024-05-01", env=env))  # user_processing: the marts to report on
    assert_succeeded(airflow.dags_test("2024-05-01", dag_id="my_report", env=env))
    assert set(airflow.task_states("2024-05-01", dag_id="my_report").values()) == {"success"}
    summary = airflow.home / "run-folders" / "my_report" / "logical_date=20240501T000000" / "summary.md"
    assert f"{len(api_users('2024-05-01'))} users from" in summary.read_text()
