"""The dbt task group's cost as a dbt project grows, next to one `dbt build` of the same project.

For each size (generated projects, bench/dbt_projects.py) and each mode, on one throwaway PostgreSQL
holding the same users, with the models' schema dropped before every run so each does the same work:

- floor: `dbt build` of the project from the command line, once, with the template's profile
  (dbt_project/profiles.yml: the same threads as Airflow's);
- each mode: `airflow dags test` of bench/dbt_dag/dbt_scaling.py, the template's own DbtTaskGroup
  arguments for that project and mode, with a cold Cosmos cache (a fresh worker's first run);
- per-model overhead = (mode - floor) / models; parse time of the DAG file (median of fresh
  processes, as airflow_floor does for dags/); peak memory of the whole process tree.

The log of every run is kept in .local/bench/dbt/dbt-scaling.log; the cache lines Cosmos and dbt
print there are counted, to show whether partial parsing and the profile cache were really reused.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from bench import dbt_projects
from bench.airflow_floor import PARSE_COLD, PARSE_TIMEOUT_SECONDS, dags_test, stderr_to, watch_memory
from bench.measure import run_json, step_env
from bench.pipeline import USERS_DDL
from include.common.project import DBT_EXECUTABLE, DBT_SCHEMA, DBT_THREADS
from scripts.local_env import REPO_ROOT, LocalAirflow, dbt_env, isolated, local_airflow

SIZES = (5, 50, 200)
DAG_FILE = REPO_ROOT / "bench" / "dbt_dag" / "dbt_scaling.py"
PARSE_RUNS = 3
LOG = dbt_projects.PROJECTS_DIR / "dbt-scaling.log"  # every run's output, the cache lines counted from it
COSMOS_CACHE = dbt_projects.PROJECTS_DIR / "cosmos-cache"  # emptied before each run
USERS = 10_000  # rows of `users` every model reads from (spread over the staging models' buckets)

# Each benchmarked way: the mode (settings.DBT_MODE, or bench/dbt_dag's "virtualenv"), the Airflow
# options it runs with, and the largest project it runs on (the slow ways stop early: minutes each).
NO_CACHES = {
    "AIRFLOW__COSMOS__ENABLE_CACHE_PARTIAL_PARSE": "False",
    "AIRFLOW__COSMOS__ENABLE_CACHE_PROFILE": "False",
}
VIRTUALENV = {"BENCH_DBT_VIRTUALENV": str(dbt_projects.PROJECTS_DIR / "virtualenv")}
WAYS: dict[str, tuple[str, dict[str, str], int | None]] = {
    "local without caches": ("local", NO_CACHES, 50),
    "virtualenv": ("virtualenv", VIRTUALENV, 50),
    "local": ("local", {}, None),
    "watcher": ("watcher", {}, None),
}
DESCRIPTIONS = {
    "local without caches": "the default mode with Cosmos' partial-parse and profile caches switched off",
    "virtualenv": "ExecutionMode.VIRTUALENV: as local, but Cosmos prepares the dbt virtualenv "
    "(uv venv + uv pip install of requirements/dbt.txt, kept between tasks) before each task",
    "local": "the template's default: ExecutionMode.LOCAL, `dbt build` per model (TestBehavior.BUILD), "
    "Cosmos' partial-parse and profile caches on (its defaults)",
    "watcher": "ExecutionMode.WATCHER: one `dbt build`, a sensor per model and per model's tests "
    "(TestBehavior.AFTER_EACH), dbt in its own virtualenv (subprocess)",
}

# What the logs say about the caches, counted per run.
CACHE_LINES = {
    "dbt_invocations": re.compile(r"Running command: "),
    "partial_parse_missed": re.compile(r"Unable to do partial parsing"),
    "profile_cache_hits": re.compile(r"Profile found in cache"),
    "profile_cache_misses": re.compile(r"Profile not found in cache"),
}

# Fake but well-formed users: the staging models slice them by a hash of user_id.
SEED_USERS = """
INSERT INTO users (user_id, firstname, lastname, email, username, gender, country, registered_at)
SELECT md5('bench-user-' || n)::uuid, ' First ' || n, 'Last ' || n, 'User' || n || '@Example.com',
       'user' || n, CASE WHEN n %% 2 = 0 THEN 'female' ELSE 'male' END,
       (ARRAY['Norway', 'Brazil', 'India', 'Turkey', 'Canada', 'Iran', 'Germany'])[1 + n %% 7],
       timestamptz '2010-01-01' + n * interval '7 hours'
FROM generate_series(1, %s) AS n
ON CONFLICT (user_id) DO NOTHING
"""


def bench_dbt(sizes: list[int], ways: list[str], progress: Callable[[str], None]) -> dict:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    LOG.unlink(missing_ok=True)
    progress(f"dbt scaling: starting a throwaway PostgreSQL, the stand-in API and Airflow (log: {LOG})")
    rows = []
    with stderr_to(LOG), local_airflow(**isolated()) as local:
        seed_users(local.warehouse_uri)
        env = {**step_env(), **dbt_env(local.warehouse_uri)}
        for models in sizes:
            progress(f"dbt scaling, {models} models: generating and parsing the project")
            project = dbt_projects.generate(models, env)
            progress(f"dbt scaling, {models} models: floor, one `dbt build` from the command line")
            drop_models(local.warehouse_uri)
            row = {
                "models": models,
                "shape": vars(dbt_projects.Shape.of(models)),
                "floor": dbt_build(project, env, LOG),
                "ways": {},
            }
            for way in ways:
                largest = WAYS[way][2]
                if largest is not None and models > largest:
                    continue
                progress(f"dbt scaling, {models} models: {way}: parse time, then airflow dags test")
                row["ways"][way] = run_way(local, project, way, LOG)
            rows.append(row)
            progress(f"dbt scaling, {models} models: " + summary_line(row))
    return {"threads": DBT_THREADS, "users": USERS, "descriptions": DESCRIPTIONS, "rows": rows}


def seed_users(warehouse_uri: str) -> None:
    with psycopg.connect(warehouse_uri, autocommit=True) as conn:
        conn.execute(USERS_DDL)
        conn.execute(SEED_USERS, (USERS,))


def drop_models(warehouse_uri: str) -> None:
    """Every run builds all models from nothing: the same work for the floor and each mode."""
    with psycopg.connect(warehouse_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(DBT_SCHEMA)))


def dbt_build(project: Path, env: dict[str, str], log: Path) -> dict:
    started = time.perf_counter()
    with log.open("a") as out:  # a file, not a pipe: 200 models print more than a pipe holds
        out.write(f"\n===== dbt build --project-dir {project}\n")
        out.flush()
        process = subprocess.Popen(
            [str(DBT_EXECUTABLE), "build", "--project-dir", str(project)], env=env, stdout=out, stderr=out
        )
        largest_mb, total_mb = watch_memory(process)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"dbt build of {project} failed (exit {process.returncode}): see {log}")
    return {"wall_seconds": seconds, "peak_rss_tree_mb": total_mb, "peak_rss_mb": largest_mb}


def run_way(local: LocalAirflow, project: Path, way: str, log: Path) -> dict:
    mode, options, _ = WAYS[way]
    bench_env = {"BENCH_DBT_PROJECT": str(project), "BENCH_DBT_MODE": mode, **options}
    parse_env = step_env(**bench_env)
    parse = statistics.median(
        run_json("-c", PARSE_COLD, str(DAG_FILE), env=parse_env, timeout=PARSE_TIMEOUT_SECONDS)["cold"]
        for _ in range(PARSE_RUNS)
    )
    shutil.rmtree(COSMOS_CACHE, ignore_errors=True)  # a cold cache: a fresh worker's first run
    env = {
        **local.env,
        **bench_env,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
        "AIRFLOW__COSMOS__CACHE_DIR": str(COSMOS_CACHE),
    }
    drop_models(local.warehouse_uri)
    logged_before = log.stat().st_size if log.exists() else 0
    result = dags_test(local, "bench_dbt", "2024-01-01", log, env=env)
    with log.open(errors="replace") as file:
        file.seek(logged_before)
        logged = file.read()
    return {
        **result,
        "parse_seconds": parse,
        "task_count": len(result["tasks"]),
        "cache": {name: len(pattern.findall(logged)) for name, pattern in CACHE_LINES.items()},
    }


def summary_line(row: dict) -> str:
    floor = row["floor"]["wall_seconds"]
    ways = ", ".join(
        f"{way} {result['wall_seconds']:.0f} s ({times_floor(row, way):.1f}x)"
        for way, result in row["ways"].items()
    )
    return f"floor {floor:.1f} s; {ways}"


def times_floor(row: dict, way: str) -> float:
    return row["ways"][way]["wall_seconds"] / row["floor"]["wall_seconds"]


def overhead_per_model(row: dict, way: str) -> float:
    return (row["ways"][way]["wall_seconds"] - row["floor"]["wall_seconds"]) / row["models"]
