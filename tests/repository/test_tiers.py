"""What each test tier needs: the unit tests run from a checkout without dbt's virtualenv."""

from __future__ import annotations

import shutil
import subprocess
import sys

from scripts.local_env import REPO_ROOT
from tests.checkout import tracked_files


def test_the_unit_tests_need_no_dbt_virtualenv(tmp_path):
    """In a copy of the checkout with no .venv-dbt and no built manifest (a fresh clone's state for
    dbt), `pytest tests/unit` passes: nothing it imports builds the dbt manifest."""
    checkout = tmp_path / "checkout"
    for name in tracked_files():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, checkout / name)
    assert not (checkout / ".venv-dbt").exists()
    assert not (checkout / "dbt_project" / "target").exists()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
