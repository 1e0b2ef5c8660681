"""When the dbt manifest must be rebuilt: a fingerprint of every file dbt reads (no dbt started here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from include.common.dbt_manifest import FINGERPRINT, MANIFEST, DbtProjectError, ensure_manifest, fingerprint
from scripts.local_env import REPO_ROOT


@pytest.fixture
def dbt(tmp_path) -> Path:
    """Where a dbt virtualenv's executable would be: the fingerprint reads the dbt version from the
    metadata beside it, and nothing here runs it (so dbt's own virtualenv is not needed)."""
    venv = tmp_path / "venv-dbt"
    (venv / "lib" / "python3.11" / "site-packages" / "dbt_core-1.11.16.dist-info").mkdir(parents=True)
    return venv / "bin" / "dbt"


@pytest.fixture
def project(tmp_path) -> Path:
    copy = tmp_path / "dbt_project"
    shutil.copytree(REPO_ROOT / "dbt_project", copy, ignore=shutil.ignore_patterns("target", "dbt_packages"))
    return copy


@pytest.mark.parametrize(
    "changed",
    [
        "models/staging/crm/deep/stg_accounts.sql",  # a model two folders deep
        "seeds/regions.csv",
        "snapshots/users_snapshot.sql",
        "macros/cents.sql",
        "tests/assert_something.sql",
        "analyses/explore.sql",
        "models/marts/users/_marts.yml",
        "packages.yml",
        "package-lock.yml",
        "dbt_project.yml",
        "profiles.yml",
        "selectors.yml",
    ],
)
def test_any_file_dbt_reads_changes_the_fingerprint(project, changed, dbt):
    before = fingerprint(project, dbt)
    path = project / changed
    path.parent.mkdir(parents=True, exist_ok=True)
    comment = "# changed" if path.suffix == ".yml" else "-- changed"
    path.write_text((path.read_text() if path.exists() else "") + f"\n{comment}\n")
    assert fingerprint(project, dbt) != before


def test_a_local_packages_files_change_it_too(project, dbt):
    (project / "packages.yml").write_text("packages:\n  - local: local_packages/text_tools\n")
    macro = project / "local_packages" / "text_tools" / "macros" / "digits_only.sql"
    macro.parent.mkdir(parents=True)
    macro.write_text("{% macro digits_only(c) %}{{ c }}{% endmacro %}\n")
    before = fingerprint(project, dbt)
    macro.write_text("{% macro digits_only(c) %}regexp_replace({{ c }}, '\\\\D', '', 'g'){% endmacro %}\n")
    assert fingerprint(project, dbt) != before


@pytest.mark.parametrize(
    "built", ["target/run_results.json", "logs/dbt.log", "dbt_packages/x/y.sql", ".user.yml"]
)
def test_what_dbt_writes_does_not(project, built, dbt):
    before = fingerprint(project, dbt)
    path = project / built
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("written by dbt\n")
    assert fingerprint(project, dbt) == before


def test_an_up_to_date_manifest_needs_no_dbt(project, dbt):
    (project / MANIFEST).parent.mkdir()
    (project / MANIFEST).write_text("{}")
    (project / FINGERPRINT).write_text(fingerprint(project, dbt))
    assert ensure_manifest(project, dbt=dbt) == project / MANIFEST
    # The fingerprint names the dbt version (from its virtualenv), so a stamp made with another dbt
    # is stale: without a dbt to rebuild it, that is a clear error, not a stale manifest.
    with pytest.raises(DbtProjectError, match=r"dbt is not installed at .*: run `make install`"):
        ensure_manifest(project, dbt=project / "no-venv" / "bin" / "dbt")
