"""Airflow's own cost next to the pipeline's.

- Parse time of each file in dags/, next to a trivial one-task DAG (template/bench/dags/noop_dag.py) parsed
  the same way, in fresh processes, median of PARSE_RUNS. Two ways, both reported:
  "cold": a new interpreter imports airflow.sdk, then runs the file (what every CLI call, test and
  fresh parser process pays); "dag-processor": Airflow modules the file imports are loaded first,
  as the dag-processor does before it forks a parser (parsing_pre_import_modules), then the file
  runs: what each periodic re-parse costs.
- `airflow dags test` of user_processing, broken down by task from the metadata database, next to
  the no-op DAG with the same number of tasks run the same way: Airflow's floor for that many tasks.
  Optionally once more with a large `users` param, to show a big run end to end.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg

from scripts.local_env import REPO_ROOT, LocalAirflow, isolated, local_airflow
from template.bench.measure import run_json

PARSE_RUNS = 5
PARSE_TIMEOUT_SECONDS = 600  # each parse or task count, in its own interpreter
DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))
NOOP_DAG = Path(__file__).parent / "dags" / "noop_dag.py"

PARSE_COLD = """
import json, runpy, sys, time
started = time.perf_counter()
import airflow.sdk
imported = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="dag_file")
done = time.perf_counter()
print(json.dumps({"cold": done - started, "after_sdk": done - imported}))
"""
PARSE_LIKE_THE_DAG_PROCESSOR = """
import importlib, json, runpy, sys, time
import airflow.dag_processing.processor  # loaded in the dag-processor, which forks each parser
from airflow.utils.file import iter_airflow_imports
for module in iter_airflow_imports(sys.argv[1]):  # as processor._pre_import_airflow_modules
    try:
        importlib.import_module(module)
    except Exception:
        pass
started = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="dag_file")
print(json.dumps({"dag_processor": time.perf_counter() - started}))
"""
COUNT_TASKS = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
print(json.dumps({dag_id: len(dag.tasks) for dag_id, dag in bag.dags.items()}))
"""


def count_tasks(dag_file: Path) -> dict[str, int]:
    return run_json("-c", COUNT_TASKS, str(dag_file), timeout=PARSE_TIMEOUT_SECONDS)


def tasks_of(parse: list[dict], dag_id: str) -> int:
    """The number of tasks of `dag_id`, as bench_parse counted them."""
    return next(row["tasks"][dag_id] for row in parse if dag_id in row["tasks"])


def bench_parse(progress: Callable[[str], None]) -> list[dict]:
    files = [*DAG_FILES, NOOP_DAG]
    runs: dict[Path, list[dict]] = {path: [] for path in files}
    for attempt in range(PARSE_RUNS):
        progress(f"parse time: run {attempt + 1} of {PARSE_RUNS} for {len(files)} files")
        for path in files:  # interleaved, so a burst of load elsewhere hits every file alike
            runs[path].append(
                {
                    **run_json("-c", PARSE_COLD, str(path), timeout=PARSE_TIMEOUT_SECONDS),
                    **run_json("-c", PARSE_LIKE_THE_DAG_PROCESSOR, str(path), timeout=PARSE_TIMEOUT_SECONDS),
                }
            )
    floor = _median_times(runs[NOOP_DAG])
    results = []
    for path in DAG_FILES:
        times = _median_times(runs[path])
        results.append(
            {
                "file": str(path.relative_to(REPO_ROOT)),
                "tasks": count_tasks(path),
                "seconds": times,
                "floor_seconds": floor,
                "ratio": {way: times[way] / floor[way] for way in times},
                "runs": PARSE_RUNS,
            }
        )
    return results


def _median_times(runs: list[dict]) -> dict[str, float]:
    return {way: statistics.median(run[way] for run in runs) for way in runs[0]}


# --- airflow dags test -------------------------------------------------------------------------


@contextmanager
def stderr_to(log: Path) -> Iterator[None]:
    """Send this process's stderr, and that of the services it starts, to `log` (the stand-in API
    logs every request); progress goes to stdout."""
    sys.stderr.flush()
    saved = os.dup(2)
    with log.open("a") as file:
        os.dup2(file.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def dags_test(
    local: LocalAirflow, dag_id: str, logical_date: str, log: Path, env: dict | None = None, conf=None
) -> dict:
    """`airflow dags test`: wall time, peak memory of its process tree, and each task's timing."""
    args = ["dags", "test", dag_id, logical_date]
    if conf:
        args += ["--conf", json.dumps(conf)]
    with log.open("a") as out:
        out.write(f"\n===== airflow {' '.join(args)}\n")
        out.flush()
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=env or local.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        largest_mb, total_mb = watch_memory(process)
        seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed (exit {process.returncode}): see {log}")
    return {
        "dag_id": dag_id,
        "conf": conf or {},
        "wall_seconds": seconds,
        "peak_rss_mb": largest_mb,  # the largest process (tasks run inside `dags test` itself)
        "peak_rss_tree_mb": total_mb,  # the CLI and every process it started (dbt), added up
        **task_breakdown(local.metadata_db_uri, dag_id, logical_date),
    }


def watch_memory(process: subprocess.Popen, every_seconds: float = 0.2) -> tuple[float, float]:
    """Wait for `process`, sampling its process tree's RSS; returns the peaks (largest process, sum)."""
    largest = total = 0.0
    root = psutil.Process(process.pid)
    while process.poll() is None:
        sizes = []
        try:
            members = [root, *root.children(recursive=True)]
        except psutil.Error:  # it has just ended
            members = []
        for member in members:
            try:
                sizes.append(member.memory_info().rss)
            except psutil.Error:  # it ended between listing and reading
                continue
        largest, total = max(largest, max(sizes, default=0)), max(total, sum(sizes))
        time.sleep(every_seconds)
    return largest / 2**20, total / 2**20


def task_breakdown(metadata_uri: str, dag_id: str, logical_date: str) -> dict:
    with psycopg.connect(metadata_uri) as conn:
        (run_id,) = conn.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = %s AND logical_date = %s::timestamptz"
            " ORDER BY id DESC LIMIT 1",
            (dag_id, f"{logical_date}T00:00:00+00:00"),
        ).fetchone()
        tasks = conn.execute(
            "SELECT task_id, state, start_date, end_date, duration FROM task_instance"
            " WHERE dag_id = %s AND run_id = %s ORDER BY start_date, task_id",
            (dag_id, run_id),
        ).fetchall()
    # `dags test` leaves the run's own start_date at its logical date: time it by its tasks instead.
    run_seconds = (max(task[3] for task in tasks) - min(task[2] for task in tasks)).total_seconds()
    task_seconds = sum(task[4] or 0 for task in tasks)
    return {
        "run_seconds": run_seconds,  # first task's start to last task's end
        "task_seconds": task_seconds,  # the tasks' own durations, summed
        "between_tasks_seconds": run_seconds - task_seconds,  # Airflow's scheduling between them
        "tasks": [{"task_id": task[0], "state": task[1], "seconds": task[4]} for task in tasks],
    }


def bench_dags_test(tasks: int, scale_users: int, log: Path, progress: Callable[[str], None]) -> dict:
    """`airflow dags test` of user_processing, then of a no-op DAG with as many (`tasks`) tasks."""
    progress("airflow dags test: starting a throwaway PostgreSQL, the stand-in API and Airflow")
    with stderr_to(log), local_airflow(**isolated()) as local:
        progress("airflow dags test user_processing 2024-01-01 (default users)")
        real = dags_test(local, "user_processing", "2024-01-01", log)
        progress(f"airflow dags test bench_noop 2024-01-01 ({tasks} no-op tasks)")
        noop_env = {
            **local.env,
            "AIRFLOW__CORE__DAGS_FOLDER": str(NOOP_DAG.parent),
            "BENCH_NOOP_TASKS": str(tasks),
        }
        noop = dags_test(local, "bench_noop", "2024-01-01", log, env=noop_env)
        scale = None
        if scale_users:
            progress(f"airflow dags test user_processing 2024-01-02 with users={scale_users:,}")
            scale = dags_test(local, "user_processing", "2024-01-02", log, conf={"users": scale_users})
    return {
        "tasks": tasks,
        "real": real,
        "noop": noop,
        "scale": scale,
        "ratio": real["wall_seconds"] / noop["wall_seconds"],
    }
