"""dbt for every DAG: the dbt models a DAG selects, built and tested as Airflow tasks.

    from include.common.dbt_tasks import dbt_task_group

    transform = dbt_task_group("source:shop.orders+", group_id="transform_orders")  # inside a @dag

The selection is dbt's own `--select` syntax (include/common/dbt_selection.py says what it takes),
resolved against the manifest when the DAG file is parsed: a DAG builds and tests what it selects,
nothing else, and only those models, seeds and snapshots are its Assets. Select what the DAG's load
feeds (its source table and everything downstream): a model that reads another table is built by
the DAG that loads that table, not after every load of this one.

How dbt runs is one option for the whole project, `[dbt] mode` (AIRFLOW__DBT__MODE=local in
airflow.env switches it); docs/dbt.md says what each costs, from 5 to 200 models, under a scheduler:

- "build" (the default): ONE task, `dbt_build`, runs `dbt build --select <the selection>`
  (include/common/dbt_build.py): as fast as dbt itself. Each model, seed and snapshot it selects is
  an Asset it updates; a failing test fails the task, naming it and its model, and dbt builds nothing
  downstream of it; a retry runs `dbt retry`, i.e. only what failed and what it held back.
- "local": Cosmos renders a task per selected model, seed and snapshot, each running `dbt build` of
  that node with its tests (TestBehavior.BUILD), and updating that node's Asset: every model alone in
  the grid, to retry or read, at about 2 s of dbt start-up each. A test on several models gets a task
  after all of them; a source's tests run in the source's task.
Cosmos' watcher mode (one `dbt build` watched by a sensor per model) was measured too, and is not
offered: slower than "build" at every size under a scheduler, and under `airflow dags test` a
sensor started before the build waits for it forever (docs/dbt.md).

In both modes a model's Asset is the same (include/common/assets.py), every dbt task runs in the pool
`dbt` of one slot (include/common/pools.py: one dbt process against the warehouse at a time, however
runs, backfills and DAGs overlap), the profile comes from the Airflow connection `postgres` (one source
of truth for the credentials), dbt runs from its own virtualenv (its pins never fight Airflow's), and
the tasks are rendered from the manifest, which include/common/dbt_manifest.py rebuilds (running `dbt
deps` once when packages changed) whenever a file dbt reads has changed: parsing a DAG never runs dbt
else.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from airflow.sdk import TaskGroup
from cosmos.config import ProfileConfig
from cosmos.profiles import PostgresUserPasswordProfileMapping

from include.common import dbt_selection
from include.common.assets import dbt_node_asset
from include.common.dbt_build import DbtBuildOperator
from include.common.dbt_manifest import ensure_manifest, project_config
from include.common.pools import DBT_POOL
from include.common.project import (
    DBT_EXECUTABLE,
    DBT_PROJECT_DIR,
    DBT_SCHEMA,
    DBT_THREADS,
    WAREHOUSE_CONN_ID,
)
from include.common.settings import text

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

MODES = ("build", "local")
# The project's dbt mode, [dbt] mode: the same for every DAG (one of MODES).
DBT_MODE = text("dbt", "mode", "build")

# A failed dbt test is bad data, which retrying cannot fix: retry once, soon, for a database blip or
# data fixed meanwhile only. Every dbt task waits for the one slot of the dbt pool.
TASK_ARGS = {"retries": 1, "retry_delay": timedelta(seconds=10), "pool": DBT_POOL.name}


def dbt_task_group(
    select: str, group_id: str = "dbt", project_dir: Path = DBT_PROJECT_DIR, mode: str = DBT_MODE
) -> TaskGroup:
    """The dbt tasks that build and test `select` (dbt's --select syntax), in `mode` (one of MODES)."""
    if mode not in MODES:
        raise ValueError(f"[dbt] mode is {mode!r} (AIRFLOW__DBT__MODE): use one of {', '.join(MODES)}")
    manifest = ensure_manifest(project_dir)
    nodes = dbt_selection.select(select, manifest, project_dir)
    assets = {node["unique_id"]: dbt_node_asset(node) for node in dbt_selection.built(nodes)}
    if mode == "build":
        with TaskGroup(group_id) as group:
            DbtBuildOperator(
                task_id="dbt_build",
                select=select,
                outlets=list(assets.values()),
                project_dir=project_dir,
                manifest=manifest,
                profile_config=profile_config(project_dir),
                dbt=DBT_EXECUTABLE,
                **TASK_ARGS,
            )
        return group
    from cosmos import DbtTaskGroup  # Cosmos renders the task-per-model mode

    group = DbtTaskGroup(group_id=group_id, **cosmos_task_group_args(project_dir, manifest, mode, nodes))
    # Each model's task updates that model's Asset, named as in the build mode (Cosmos' own would name
    # the profile's host, and only once the task ran).
    for task in group.iter_tasks():
        node = getattr(task, "extra_context", {}).get("dbt_node_config") or {}
        if node.get("unique_id") in assets:
            task.outlets = [assets[node["unique_id"]]]
    return group


def profile_config(project_dir: Path = DBT_PROJECT_DIR) -> ProfileConfig:
    """dbt's profile, built from the Airflow connection `postgres`, under the name dbt_project.yml gives."""
    return ProfileConfig(
        profile_name=project_config(project_dir)["profile"],
        target_name="airflow",
        profile_mapping=PostgresUserPasswordProfileMapping(
            conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": DBT_SCHEMA, "threads": DBT_THREADS}
        ),
    )


def cosmos_task_group_args(project_dir: Path, manifest: Path, mode: str, nodes: dict | None = None) -> dict:
    """DbtTaskGroup's arguments for the "local" mode (and Cosmos' other modes, which the benchmarks
    render), rendering `nodes` (dbt_selection.select's), or the whole project when None."""
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
        "profile_config": profile_config(project_dir),
        "execution_config": ExecutionConfig(execution_mode=execution_mode, **runner),
        "render_config": RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            select=[] if nodes is None else cosmos_select(nodes),
            test_behavior=test_behavior,
            source_rendering_behavior=SourceRenderingBehavior.WITH_TESTS_OR_FRESHNESS,
            # A test on several models (a relationships test between two of them, say) gets a task
            # of its own, after all of them: in no model's task it could run before the others exist.
            should_detach_multiple_parents_tests=True,
            node_converters=converters,
            # The Assets are the template's (dbt_task_group); Cosmos' own would be named after the host.
            emit_datasets=False,
            **runner,
        ),
        "operator_args": TASK_ARGS,
    }


def cosmos_select(nodes: dict[str, dict]) -> list[str]:
    """The selected nodes one by one, as Cosmos' select takes them: Cosmos renders exactly these (and
    their tests), whatever syntax the DAG's selection used (Cosmos refuses some that dbt takes)."""
    statements = []
    for node in nodes.values():
        if node["resource_type"] == "source":
            statements.append(f"source:{node['source_name']}.{node['name']}")
        elif node["resource_type"] != "test":
            statements.append(f"fqn:{'.'.join(node['fqn'])}")
    return statements


def source_tests(*, dag, task_group, node, task_id: str, task_args: dict, **_) -> BaseOperator | None:
    """A source's task in the local mode: `dbt test` of the tests declared on it (`dbt build` per
    model never runs them, and Cosmos' own source task only checks freshness, which here always
    passes: the DAG loaded the source a moment before)."""
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
