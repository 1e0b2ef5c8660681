"""One measured step per process: `python -m template.bench.steps STEP '{"arg": ...}'` prints one JSON line.

Each step runs in a fresh interpreter, so its peak memory is its own (`ru_maxrss` of this process)
and nothing is warm from an earlier step. Imports, and the first read through ObjectStoragePath
(which loads Airflow's plugins), happen before the clock starts: a DAG task pays them too, but once,
whatever N. What each step times:

- ``process``: the process_user task's body, process.write_run_csv: the project's own
  extract.read_pages_newest_first and process.write_users_csv, from the run's page files to
  users.csv (written atomically).
- ``process_baseline``: the classic naive pattern: load every page, pd.json_normalize, pick and
  rename the same columns, drop duplicate ids (keep last), to_csv.
- ``store``: the store_user task's body, store.store_run_csv: opens the run's users.csv (a fraction
  of a millisecond), then store.store_users_csv over a psycopg connection (COPY into a temporary
  table, checks, upsert, commit); the connection is opened before the clock starts.
- ``extract``: the extract_user task's body: extract.extract_users against the stand-in API over HTTP.

`run_dir` is a folder of this machine, or a run folder's URL (s3://object_store@bucket/...: the
connection comes from AIRFLOW_CONN_OBJECT_STORE). Reaching the store the first time in a process
(the connection, a client, one request) is done before the clock too, and reported as
``run_folder_warm_up_seconds``: like the plugins, a task pays it once, whatever N.
"""

from __future__ import annotations

import csv
import json
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import psutil

# The naive baseline's columns: json_normalize's dotted names -> the CSV's names.
BASELINE_COLUMNS = {
    "login.uuid": "user_id",
    "name.first": "firstname",
    "name.last": "lastname",
    "email": "email",
    "login.username": "username",
    "gender": "gender",
    "location.city": "city",
    "location.country": "country",
    "location.postcode": "postcode",
    "nat": "nationality",
    "registered.date": "registered_at",
}


@contextmanager
def measured() -> Iterator[dict]:
    """Wall and CPU seconds of the block, memory before it and this process's peak after it."""
    result: dict = {"rss_before_mb": psutil.Process().memory_info().rss / 2**20}
    cpu_started, started = time.process_time(), time.perf_counter()
    yield result
    result["seconds"] = time.perf_counter() - started
    result["cpu_seconds"] = time.process_time() - cpu_started
    result["peak_rss_mb"] = peak_rss_mb()


def peak_rss_mb() -> float:
    """This process's peak RSS. On Linux from /proc (VmHWM): `ru_maxrss` would also count the RSS
    of the parent that started us, which Linux carries over into a child across fork and exec."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def warm_up_object_storage() -> float:
    """Read one file through ObjectStoragePath once, before the clock; returns how long it took.

    The first such read in a process loads Airflow's plugins for hook lineage (Cosmos' among them):
    a fixed cost a task pays once, whatever N, so it is reported apart from the step's throughput.
    """
    from airflow.sdk import ObjectStoragePath

    started = time.perf_counter()
    with ObjectStoragePath(f"file://{Path(__file__).resolve()}").open("rb") as file:
        file.read(1)
    return time.perf_counter() - started


def run_folder_at(run_dir: str) -> tuple[object, float]:
    """The run folder `run_dir` names (a URL, or a local folder) and the seconds its first use took."""
    from airflow.sdk import ObjectStoragePath

    run = ObjectStoragePath(run_dir if "://" in run_dir else f"file://{Path(run_dir).resolve()}")
    started = time.perf_counter()
    run.exists()
    return run, time.perf_counter() - started


def process(run_dir: str) -> dict:
    from include.common import run_folder  # noqa: F401 - imported untimed
    from include.user_processing import extract, run_files  # noqa: F401
    from include.user_processing import process as process_module

    warm_up = warm_up_object_storage()
    run, reached = run_folder_at(run_dir)
    with measured() as result:  # the atomic rename (or upload) of users.csv included
        result["rows"] = process_module.write_run_csv(run)
    return {**result, "object_storage_warm_up_seconds": warm_up, "run_folder_warm_up_seconds": reached}


def process_baseline(run_dir: str, out_csv: str) -> dict:
    import airflow.sdk  # noqa: F401 - the same process floor as the project's step: both run in a task
    import pandas as pd

    from include.user_processing import run_files

    run = Path(run_dir)
    with measured() as result:
        pages = json.loads(run_files.manifest_path(run).read_text())["pages"]
        users = []
        for page in range(1, pages + 1):
            with open(run_files.page_path(run, page), "rb") as file:
                users.extend(json.load(file))
        frame = pd.json_normalize(users)
        frame = frame[list(BASELINE_COLUMNS)].rename(columns=BASELINE_COLUMNS)
        frame = frame.drop_duplicates("user_id", keep="last")
        frame.to_csv(out_csv, index=False, quoting=csv.QUOTE_NONNUMERIC)
        result["rows"] = len(frame)
    return result


def store(dsn: str, run_dir: str) -> dict:
    import psycopg

    from include.common import run_folder  # noqa: F401 - imported untimed
    from include.user_processing import run_files  # noqa: F401
    from include.user_processing import store as store_module

    warm_up = warm_up_object_storage()
    run, reached = run_folder_at(run_dir)
    with psycopg.connect(dsn) as conn, measured() as result:
        # Connected before the clock, and closed after it: store_run_csv only enters the connection.
        loaded = store_module.store_run_csv(run, lambda: nullcontext(conn))
    result.update(rows=loaded.rows, inserted=loaded.inserted, updated=loaded.updated)
    return {**result, "object_storage_warm_up_seconds": warm_up, "run_folder_warm_up_seconds": reached}


def extract(run_dir: str, seed: str, users: int, pages_in_flight: int) -> dict:
    from airflow.providers.http.hooks.http import HttpHook

    from include.user_processing import extract as extract_module
    from include.user_processing.settings import USER_API_CONN_ID

    hook = HttpHook(method="GET", http_conn_id=USER_API_CONN_ID)  # AIRFLOW_CONN_USER_API: the stand-in
    warm_up = warm_up_object_storage()
    run, reached = run_folder_at(run_dir)
    with measured() as result:
        manifest = extract_module.extract_users(
            hook, run, seed=seed, total_users=users, pages_in_flight=pages_in_flight
        )
    result["rows"] = manifest["users"]
    return {**result, "object_storage_warm_up_seconds": warm_up, "run_folder_warm_up_seconds": reached}


STEPS: dict[str, Callable[..., dict]] = {
    "process": process,
    "process_baseline": process_baseline,
    "store": store,
    "extract": extract,
}


def main() -> None:
    step, arguments = sys.argv[1], json.loads(sys.argv[2])
    result = STEPS[step](**arguments)
    print(json.dumps(result), flush=True)  # the caller reads the last line


if __name__ == "__main__":
    main()
