"""How Cosmos runs the dbt project (dbt_project/) as Airflow tasks: one task per model, with its tests.

- Profile: built from the Airflow connection `postgres`, so credentials have one source of truth.
- Execution: dbt runs from its own virtualenv (a subprocess), so its pins never fight Airflow's.
- Rendering: from the manifest `dbt parse` writes, so parsing the DAG never runs dbt.
- Tests: `dbt build` per model (TestBehavior.BUILD): a failing test fails that model's task and the
  models downstream of it do not run. The `users` source gets a freshness-check task first.
"""

from __future__ import annotations

from datetime import timedelta

from cosmos import ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import (
    InvocationMode,
    LoadMode,
    SourceRenderingBehavior,
    TestBehavior,
    TestIndirectSelection,
)
from cosmos.profiles import PostgresUserPasswordProfileMapping

from include.common.project import (
    DBT_EXECUTABLE,
    DBT_MANIFEST,
    DBT_PROJECT_DIR,
    DBT_SCHEMA,
    WAREHOUSE_CONN_ID,
)

PROJECT = ProjectConfig(dbt_project_path=DBT_PROJECT_DIR, manifest_path=DBT_MANIFEST)

PROFILE = ProfileConfig(
    profile_name="user_processing",
    target_name="airflow",
    profile_mapping=PostgresUserPasswordProfileMapping(
        conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": DBT_SCHEMA}
    ),
)

# Cosmos requires the same executable and invocation mode on both configs: one dict serves both.
DBT_RUNNER = {"dbt_executable_path": DBT_EXECUTABLE, "invocation_mode": InvocationMode.SUBPROCESS}

# BUILDABLE: a test that reads several models runs with the last of them, not with the first (whose
# siblings are not built yet).
EXECUTION = ExecutionConfig(
    **DBT_RUNNER,
    test_indirect_selection=TestIndirectSelection.BUILDABLE,
)

# A failed dbt test is bad data, which retrying cannot fix: retry once, soon, for a database blip only.
OPERATOR_ARGS = {"retries": 1, "retry_delay": timedelta(seconds=10)}

RENDER = RenderConfig(
    load_method=LoadMode.DBT_MANIFEST,
    test_behavior=TestBehavior.BUILD,
    source_rendering_behavior=SourceRenderingBehavior.WITH_TESTS_OR_FRESHNESS,
    **DBT_RUNNER,
)
