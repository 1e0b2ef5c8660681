"""How Cosmos runs the dbt project (dbt_project/) as Airflow tasks: one task per model, with its tests.

- Profile: built from the Airflow connection `postgres`, so credentials have one source of truth.
- Execution: dbt runs from its own virtualenv (a subprocess), so its pins never fight Airflow's.
- Rendering: from the manifest, which include/common/dbt_manifest.py rebuilds whenever a file dbt
  reads has changed (a new model gets its task at the next parse); otherwise parsing never runs dbt.
- Packages: installed once by that same step (`dbt deps`), never by the tasks.
- Mode, `[user_processing] dbt_mode` (settings.DBT_MODE; docs/dbt.md compares them on 5 to 200 models):
  - "local" (the default): each model's task runs `dbt build` for that model (TestBehavior.BUILD):
    a failing test fails that model's task and the models downstream of it do not run; a retry
    re-runs that model only. About 4 s of dbt start-up and parsing per model here.
  - "watcher": one `dbt build` of the whole project (Cosmos' experimental ExecutionMode.WATCHER),
    watched by a task per model and one per model's tests (TestBehavior.AFTER_EACH: it has no
    BUILD); a retried task runs its own model, or its tests, alone. Far faster on big projects,
    but it needs a scheduler and a triggerer (`make ui`, Docker): `airflow dags test` runs one task
    at a time in any order, and a watching task started before the build waits for it forever.
  The `users` source gets a freshness-check task first in both.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cosmos import ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import (
    DbtResourceType,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    SourceRenderingBehavior,
    TestBehavior,
)
from cosmos.profiles import PostgresUserPasswordProfileMapping

from include.common.dbt_manifest import ensure_manifest
from include.common.project import (
    DBT_EXECUTABLE,
    DBT_PROJECT_DIR,
    DBT_SCHEMA,
    DBT_THREADS,
    WAREHOUSE_CONN_ID,
)
from include.user_processing.settings import DBT_MODE

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

# Each mode: how Cosmos runs dbt, and where the tests run (see the module's docstring).
MODES = {
    "local": (ExecutionMode.LOCAL, TestBehavior.BUILD),
    "watcher": (ExecutionMode.WATCHER, TestBehavior.AFTER_EACH),
}

PROFILE = ProfileConfig(
    profile_name="user_processing",
    target_name="airflow",
    profile_mapping=PostgresUserPasswordProfileMapping(
        conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": DBT_SCHEMA, "threads": DBT_THREADS}
    ),
)

# Cosmos requires the same executable and invocation mode on both configs: one dict serves both.
DBT_RUNNER = {"dbt_executable_path": DBT_EXECUTABLE, "invocation_mode": InvocationMode.SUBPROCESS}

# A failed dbt test is bad data, which retrying cannot fix: retry once, soon, for a database blip only.
OPERATOR_ARGS = {"retries": 1, "retry_delay": timedelta(seconds=10)}


def source_tests(*, dag, task_group, node, task_id: str, task_args: dict, **_) -> BaseOperator | None:
    """A source's task in the local mode: `dbt test` of the tests declared on it (`dbt build` per
    model never runs them, and Cosmos' own source task only checks freshness, which here always
    passes: store_user loaded the source a moment before)."""
    if not node.has_test:
        return None
    from cosmos.operators.local import DbtTestLocalOperator

    return DbtTestLocalOperator(
        task_id=task_id,
        dag=dag,
        task_group=task_group,
        select=f"source:{node.resource_name}",
        **task_args,
    )


# How each mode renders some dbt nodes differently from Cosmos' default.
NODE_CONVERTERS = {"local": {DbtResourceType.SOURCE: source_tests}, "watcher": {}}


def task_group_args(project_dir: Path = DBT_PROJECT_DIR, mode: str = DBT_MODE) -> dict:
    """DbtTaskGroup's arguments for the dbt project in `project_dir`, run in `mode` (a key of MODES)."""
    if mode not in MODES:
        raise ValueError(f"[user_processing] dbt_mode is {mode!r}: use one of {', '.join(MODES)}")
    execution_mode, test_behavior = MODES[mode]
    return {
        "project_config": ProjectConfig(
            dbt_project_path=project_dir,
            manifest_path=ensure_manifest(project_dir),
            install_dbt_deps=False,  # ensure_manifest installed them, once for all tasks
        ),
        "profile_config": PROFILE,
        "execution_config": ExecutionConfig(execution_mode=execution_mode, **DBT_RUNNER),
        "render_config": RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=test_behavior,
            source_rendering_behavior=SourceRenderingBehavior.WITH_TESTS_OR_FRESHNESS,
            # A test on several models (a relationships test between two of them, say) gets a task
            # of its own, after all of them: in no model's task it could run before the others exist.
            should_detach_multiple_parents_tests=True,
            node_converters=NODE_CONVERTERS[mode],
            **DBT_RUNNER,
        ),
        "operator_args": OPERATOR_ARGS,
    }
