"""What each test tier needs: the unit tests run from a checkout without dbt's virtualenv."""

from __future__ import annotations

import subprocess
import sys

from tests.checkout import copy_checkout


def test_the_unit_tests_need_no_dbt_virtualenv(tmp_path):
    """In a copy of the checkout with no .venv-dbt and no built manifest (a fresh clone's state for
    dbt), `pytest tests/unit` passes: nothing it imports builds the dbt manifest."""
    checkout = copy_checkout(tmp_path / "checkout")
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
