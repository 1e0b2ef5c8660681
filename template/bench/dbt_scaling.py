"""The dbt part's cost as a dbt project grows, next to one `dbt build` of the same project.

For each size (generated projects, template/bench/dbt_projects.py) and each way, on one throwaway PostgreSQL
holding the same users, with the models' schema dropped before every run so each does the same work:

- floor: `dbt build` of the project from the command line, once, with dbt_project/profiles.yml
  (the same threads as Airflow's profile);
- each way, under a real scheduler: the services `make ui` runs (scheduler, dag-processor,
  triggerer, api-server; LocalExecutor, Airflow's default parallelism; scripts/ui.py), started for
  the run, the bench DAG (template/bench/dbt_dag/dbt_scaling.py: the template's own dbt task group for that
  project and way) triggered through the REST API. The figure, `wall_seconds`, is the dbt task
  group's wall time read from its task instances: the first one's start to the last one's end.
  Meanwhile every Airflow process and what it started (dbt, task runners) is sampled each second:
  the peak of their summed PSS (shared pages counted once), and the dbt processes seen;
- each way, under `airflow dags test` too (tasks one at a time, in one process): its wall time,
  the second column, and the DAG file's parse time.

Every run's output goes to .local/bench/dbt/dbt-scaling.log.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from include.common.project import DBT_EXECUTABLE, DBT_SCHEMA, DBT_THREADS
from scripts.airflow_api import AirflowApi
from scripts.local_env import LocalAirflow, dbt_env, free_port, isolated, local_airflow
from scripts.ui import ADMIN, airflow_services
from template.bench import dbt_projects
from template.bench.airflow_floor import PARSE_COLD, PARSE_TIMEOUT_SECONDS, dags_test, stderr_to, watch_memory
from template.bench.measure import run_json, step_env
from template.bench.pipeline import USERS_DDL

SIZES = (5, 50, 200)
DAG_FILE = Path(__file__).parent / "dbt_dag" / "dbt_scaling.py"
DAG_ID = "bench_dbt"
GROUP = "transform"
PARSE_RUNS = 3
LOG = dbt_projects.PROJECTS_DIR / "dbt-scaling.log"
COSMOS_CACHE = dbt_projects.PROJECTS_DIR / "cosmos-cache"  # emptied before each run: a fresh worker
USERS = 10_000  # rows of `users` every model reads from (spread over the staging models' buckets)
RUN_TIMEOUT_SECONDS = 3600

# Each way: what it is, and the largest project it runs on (the slow ones stop early: minutes each).
WAYS: dict[str, tuple[str, int | None]] = {
    "build": (
        "the template's default: one task, one `dbt build` of the whole project "
        "(include/common/dbt_build.py), an Asset per model, `dbt retry` as its retry",
        None,
    ),
    "local": (
        "the template's other mode: Cosmos' ExecutionMode.LOCAL, a task per model running `dbt build` "
        "of that model and its tests (TestBehavior.BUILD), Cosmos' partial-parse and profile caches on",
        50,
    ),
    "watcher": (
        "not offered by the template: Cosmos' ExecutionMode.WATCHER, one `dbt build` watched by a "
        "deferrable sensor per model and per model's tests (TestBehavior.AFTER_EACH)",
        None,
    ),
}
MEASURED = {
    "wall_seconds": "under a real scheduler (make ui's services, LocalExecutor), the run triggered "
    "through the REST API: the dbt task group's first task start to its last task end",
    "peak_pss_mb": "the peak, sampled every second, of the summed PSS of every Airflow process "
    "(scheduler, dag-processor, triggerer, api-server) and all they started, during the run",
    "idle_pss_mb": "the same sum just before the run was triggered: Airflow's services at rest",
    "dags_test.wall_seconds": "`airflow dags test` of the same DAG: wall time of the CLI process",
    "floor.wall_seconds": "`dbt build` of the project from the command line, wall time",
}
DBT_PROCESS = re.compile(r"/dbt$")

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
            progress(f"dbt scaling, {models} models: generating the project and its manifest")
            project = dbt_projects.generate(models)
            progress(f"dbt scaling, {models} models: floor, one `dbt build` from the command line")
            drop_models(local.warehouse_uri)
            row = {
                "models": models,
                "shape": vars(dbt_projects.Shape.of(models)),
                "floor": dbt_build(project, env, LOG),
                "ways": {},
            }
            for way in ways:
                largest = WAYS[way][1]
                if largest is not None and models > largest:
                    continue
                progress(f"dbt scaling, {models} models: {way} under a scheduler (make ui's services)")
                result = under_scheduler(local, project, way, progress)
                progress(f"dbt scaling, {models} models: {way} under `airflow dags test`")
                result["dags_test"] = under_dags_test(local, project, way)
                row["ways"][way] = result
            rows.append(row)
            progress(f"dbt scaling, {models} models: " + summary_line(row))
    return {
        "threads": DBT_THREADS,
        "users": USERS,
        "descriptions": {way: WAYS[way][0] for way in ways},
        "measured": MEASURED,
        "rows": rows,
    }


def seed_users(warehouse_uri: str) -> None:
    with psycopg.connect(warehouse_uri, autocommit=True) as conn:
        conn.execute(USERS_DDL)
        conn.execute(SEED_USERS, (USERS,))


def drop_models(warehouse_uri: str) -> None:
    """Every run builds all models from nothing: the same work for the floor and each way."""
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


def bench_env(project: Path, way: str) -> dict[str, str]:
    return {
        "BENCH_DBT_PROJECT": str(project),
        "BENCH_DBT_MODE": way,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
        "AIRFLOW__COSMOS__CACHE_DIR": str(COSMOS_CACHE),
    }


def under_scheduler(local: LocalAirflow, project: Path, way: str, progress: Callable[[str], None]) -> dict:
    """One run of the bench DAG, triggered through the REST API of freshly started services."""
    shutil.rmtree(COSMOS_CACHE, ignore_errors=True)
    drop_models(local.warehouse_uri)
    with (
        LOG.open("a") as out,
        airflow_services(
            local, free_port(), unpause=True, extra_env=bench_env(project, way), output=out
        ) as services,
    ):
        api = AirflowApi(services.url).login(ADMIN, services.password)
        api.wait_for_dag(DAG_ID, timeout=600)
        time.sleep(5)  # the services settle after parsing: the idle sample is taken at rest
        sampler = Sampler(services.processes)
        sampler.start()
        run_id = api.trigger(DAG_ID, None, {})
        try:
            state = api.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT_SECONDS)
        finally:
            memory = sampler.finish()
    if state != "success":
        raise RuntimeError(f"{way}: the run of {project.name} ended {state}: see {LOG}")
    return {"state": state, **group_timing(local.metadata_db_uri, run_id), **memory}


def group_timing(metadata_uri: str, run_id: str) -> dict:
    with psycopg.connect(metadata_uri) as conn:
        tasks = conn.execute(
            "SELECT task_id, state, start_date, end_date FROM task_instance"
            " WHERE dag_id = %s AND run_id = %s AND task_id LIKE %s ORDER BY start_date",
            (DAG_ID, run_id, f"{GROUP}.%"),
        ).fetchall()
    ran = [task for task in tasks if task[2] and task[3]]
    return {
        "wall_seconds": (max(task[3] for task in ran) - min(task[2] for task in ran)).total_seconds(),
        "task_count": len(tasks),
        "tasks": [{"task_id": task[0], "state": task[1]} for task in tasks],
    }


class Sampler(threading.Thread):
    """Every second: the summed PSS of the services' process trees, and the dbt processes among them."""

    def __init__(self, services: list[subprocess.Popen], every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.roots = [psutil.Process(service.pid) for service in services]
        self.every = every
        self.done = threading.Event()
        self.dbt_pids: set[int] = set()
        self.idle = self.peak = self._sample()

    def _sample(self) -> int:
        total = 0
        for root in self.roots:
            try:
                members = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for member in members:
                try:
                    total += member.memory_full_info().pss
                    if any(DBT_PROCESS.search(part) for part in member.cmdline()[:2]):
                        self.dbt_pids.add(member.pid)
                except psutil.Error:  # it ended meanwhile
                    continue
        return total

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.peak = max(self.peak, self._sample())

    def finish(self) -> dict:
        self.done.set()
        self.join()
        return {
            "peak_pss_mb": self.peak / 2**20,
            "idle_pss_mb": self.idle / 2**20,
            "dbt_processes": len(self.dbt_pids),
        }


def under_dags_test(local: LocalAirflow, project: Path, way: str) -> dict:
    shutil.rmtree(COSMOS_CACHE, ignore_errors=True)
    env = step_env(**bench_env(project, way))
    parse = statistics.median(
        run_json("-c", PARSE_COLD, str(DAG_FILE), env=env, timeout=PARSE_TIMEOUT_SECONDS)["cold"]
        for _ in range(PARSE_RUNS)
    )
    drop_models(local.warehouse_uri)
    result = dags_test(local, DAG_ID, "2024-01-01", LOG, env={**local.env, **bench_env(project, way)})
    return {
        "wall_seconds": result["wall_seconds"],
        "peak_rss_tree_mb": result["peak_rss_tree_mb"],
        "parse_seconds": parse,
        "task_count": len(result["tasks"]),
    }


def summary_line(row: dict) -> str:
    floor = row["floor"]["wall_seconds"]
    ways = ", ".join(
        f"{way} {result['wall_seconds']:.0f} s ({times_floor(row, way):.1f}x)"
        for way, result in row["ways"].items()
    )
    return f"floor {floor:.1f} s; under a scheduler: {ways}"


def times_floor(row: dict, way: str, figure: str = "scheduler") -> float:
    result = row["ways"][way]
    seconds = result["wall_seconds"] if figure == "scheduler" else result["dags_test"]["wall_seconds"]
    return seconds / row["floor"]["wall_seconds"]


def overhead_per_model(row: dict, way: str) -> float:
    return (row["ways"][way]["wall_seconds"] - row["floor"]["wall_seconds"]) / row["models"]
