"""transform_users: how the dbt project (dbt_project/) runs as Airflow tasks, in the mode you choose.

`[user_processing] dbt_mode` (settings.DBT_MODE; AIRFLOW__USER_PROCESSING__DBT_MODE=local in
airflow.env switches it). docs/dbt.md says what each costs, from 5 to 200 models, under a scheduler:

- "build" (the default): ONE task, `dbt_build`, runs one `dbt build` of the whole project
  (include/common/dbt_build.py): as fast as dbt itself. Each model, seed and snapshot is an Asset it
  updates; a failing test fails the task, naming it and its model, and dbt builds nothing
  downstream of it; a retry runs `dbt retry`, i.e. only what failed and what it held back.
- "local": a Cosmos task per model, seed and snapshot, each running `dbt build` of that node with
  its tests (TestBehavior.BUILD): every model alone in the grid, to retry or read, at about 2 s of
  dbt start-up each. A test on several models gets a task after all of them; a source's tests run
  in the source's task.
Cosmos' watcher mode (one `dbt build` watched by a sensor per model) was measured too, and is not
offered: slower than "build" at every size under a scheduler, and under `airflow dags test` a
sensor started before the build waits for it forever (docs/dbt.md).

In every mode the profile comes from the Airflow connection `postgres` (one source of truth for the
credentials), dbt runs from its own virtualenv (its pins never fight Airflow's), and the tasks are
rendered from the manifest, which include/common/dbt_manifest.py rebuilds (running `dbt deps` once
when packages changed) whenever a file dbt reads has changed: parsing the DAG never runs dbt else.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from airflow.sdk import TaskGroup
from cosmos.config import ProfileConfig
from cosmos.profiles import PostgresUserPasswordProfileMapping

from include.common.dbt_build import DbtBuildOperator
from include.common.dbt_manifest import ensure_manifest
from include.common.project import (
    DBT_EXECUTABLE,
    DBT_PROJECT_DIR,
    DBT_SCHEMA,
    DBT_THREADS,
    WAREHOUSE_CONN_ID,
)
from include.user_processing.settings import DBT_MODE, MAX_ACTIVE_RUNS

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

MODES = ("build", "local")

PROFILE = ProfileConfig(
    profile_name="user_processing",
    target_name="airflow",
    profile_mapping=PostgresUserPasswordProfileMapping(
        conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": DBT_SCHEMA, "threads": DBT_THREADS}
    ),
)

# A failed dbt test is bad data, which retrying cannot fix: retry once, soon, for a database blip or
# data fixed meanwhile only.
RETRY = {"retries": 1, "retry_delay": timedelta(seconds=10)}


def transform_users(
    group_id: str = "transform_users", project_dir: Path = DBT_PROJECT_DIR, mode: str = DBT_MODE
):
    """The dbt task group of user_processing, in `mode` (one of MODES)."""
    if mode not in MODES:
        raise ValueError(f"[user_processing] dbt_mode is {mode!r}: use one of {', '.join(MODES)}")
    manifest = ensure_manifest(project_dir)
    # When runs may overlap, each dbt task waits for its own and its downstream tasks of the previous
    # logical date: one run's dbt never builds or tests tables another run's dbt is changing.
    overlap = {"default_args": {"wait_for_downstream": True}} if MAX_ACTIVE_RUNS > 1 else {}
    if mode == "build":
        with TaskGroup(group_id, **overlap) as group:
            DbtBuildOperator(
                task_id="dbt_build",
                project_dir=project_dir,
                manifest=manifest,
                profile_config=PROFILE,
                dbt=DBT_EXECUTABLE,
                **RETRY,
            )
        return group
    from cosmos import DbtTaskGroup  # Cosmos renders the task-per-model modes

    return DbtTaskGroup(group_id=group_id, **overlap, **cosmos_task_group_args(project_dir, manifest, mode))


def cosmos_task_group_args(project_dir: Path, manifest: Path, mode: str) -> dict:
    """DbtTaskGroup's arguments for the "local" mode (and other Cosmos modes: bench/dbt_dag/)."""
    from cosmos import ExecutionConfig, ProjectConfig, RenderConfig
    from cosmos.constants import (
        DbtResourceType,
        ExecutionMode,
        InvocationMode,
        LoadMode,
        SourceRenderingBehavior,
        TestBehavior,
    )

    execution_mode, test_behavior, converters = {
        "local": (ExecutionMode.LOCAL, TestBehavior.BUILD, {DbtResourceType.SOURCE: source_tests}),
        "watcher": (ExecutionMode.WATCHER, TestBehavior.AFTER_EACH, {}),
    }[mode]
    # Cosmos requires the same executable and invocation mode on both configs.
    runner = {"dbt_executable_path": DBT_EXECUTABLE, "invocation_mode": InvocationMode.SUBPROCESS}
    return {
        "project_config": ProjectConfig(
            dbt_project_path=project_dir,
            manifest_path=manifest,
            install_dbt_deps=False,  # ensure_manifest installed them, once for all tasks
        ),
        "profile_config": PROFILE,
        "execution_config": ExecutionConfig(execution_mode=execution_mode, **runner),
        "render_config": RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=test_behavior,
            source_rendering_behavior=SourceRenderingBehavior.WITH_TESTS_OR_FRESHNESS,
            # A test on several models (a relationships test between two of them, say) gets a task
            # of its own, after all of them: in no model's task it could run before the others exist.
            should_detach_multiple_parents_tests=True,
            node_converters=converters,
            **runner,
        ),
        "operator_args": RETRY,
    }


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
