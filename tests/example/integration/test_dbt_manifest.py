"""The manifest follows the project, with the real dbt: a new model at any depth, packages installed once."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from include.common.dbt_manifest import NETWORK_HINT, DbtProjectError, ensure_manifest
from scripts.local_env import REPO_ROOT

pytestmark = pytest.mark.e2e

DBT = REPO_ROOT / ".venv-dbt" / "bin" / "dbt"


@pytest.fixture
def project(tmp_path):
    copy = tmp_path / "dbt_project"
    shutil.copytree(REPO_ROOT / "dbt_project", copy, ignore=shutil.ignore_patterns("target", "dbt_packages"))
    return copy


def models_in(manifest_path) -> set[str]:
    nodes = json.loads(manifest_path.read_text())["nodes"].values()
    return {node["name"] for node in nodes if node["resource_type"] == "model"}


def test_a_model_two_folders_deep_is_in_the_next_manifest_and_an_unchanged_project_costs_no_dbt(project):
    manifest = ensure_manifest(project, DBT)
    assert "stg_users" in models_in(manifest)
    deep = project / "models" / "staging" / "crm" / "accounts" / "stg_accounts.sql"
    deep.parent.mkdir(parents=True)
    deep.write_text("select 1 as account_id\n")
    assert "stg_accounts" in models_in(ensure_manifest(project, DBT))

    started = time.perf_counter()
    ensure_manifest(project, DBT)  # nothing changed: only the files are hashed
    assert time.perf_counter() - started < 1.0


def test_a_local_package_is_installed_once_with_a_relative_link(project):
    (project / "packages.yml").write_text("packages:\n  - local: local_packages/text_tools\n")
    package = project / "local_packages" / "text_tools"
    (package / "macros").mkdir(parents=True)
    (package / "dbt_project.yml").write_text('name: text_tools\nversion: "1.0.0"\nconfig-version: 2\n')
    (package / "macros" / "digits_only.sql").write_text("{% macro digits_only(c) %}{{ c }}{% endmacro %}\n")
    manifest = json.loads(ensure_manifest(project, DBT).read_text())
    assert "macro.text_tools.digits_only" in manifest["macros"]
    link = project / "dbt_packages" / "text_tools"
    assert str(link.readlink()) == "../local_packages/text_tools"
    assert (project / "package-lock.yml").exists()  # dbt deps' lock: commit it with packages.yml
    installed = link.lstat().st_mtime_ns
    (project / "models" / "staging" / "users" / "stg_users.sql").write_text(
        (project / "models" / "staging" / "users" / "stg_users.sql").read_text() + "\n"
    )
    ensure_manifest(project, DBT)  # a model changed, not the packages: no new dbt deps
    assert link.lstat().st_mtime_ns == installed


def test_a_hub_package_without_the_network_fails_saying_why(project, monkeypatch):
    # A hub no name server knows (.invalid never resolves): as the real one behind a strict proxy.
    monkeypatch.setenv("DBT_PACKAGE_HUB_URL", "https://hub.invalid/")
    (project / "packages.yml").write_text("packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n")
    with pytest.raises(DbtProjectError) as failed:
        ensure_manifest(project, DBT)
    message = str(failed.value)
    assert message.startswith(f"dbt deps failed in {project}")
    assert "hub.invalid" in message  # dbt's own error
    assert message.endswith(NETWORK_HINT)


def test_a_broken_project_fails_with_dbts_error(project):
    (project / "models" / "staging" / "broken.sql").write_text("select * from {{ ref('no_such_model') }}\n")
    with pytest.raises(DbtProjectError, match="dbt parse failed") as failed:
        ensure_manifest(project, DBT)
    assert "no_such_model" in str(failed.value)
