"""The pipeline's own steps at each N, side by side with their baselines.

- process: project vs the naive json_normalize + to_csv, on the same cached pages.
- store: project vs `psql \\copy` of the same CSV into an empty plain table (no primary key), on a
  PostgreSQL with fsync on, so commits cost what they cost in production. Also: into a `users`
  already holding N rows with 10% of the batch changed.
- extract: the stand-in API over HTTP on 127.0.0.1, pages of 5000, with 2 requests in flight (the
  default); at the middle N also 1 and 3, on localhost and with 1 s of response time a page.
- object store: extract, process and store at one N as the tasks run them, with the run folder on an
  S3 server (rclone serve s3 on 127.0.0.1) against the same on the local disk.

Repeats alternate project and baseline, so a burst of load from elsewhere hits both.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import psycopg
from psycopg import sql

from include.user_processing import run_files
from include.user_processing.extract import PAGES_IN_FLIGHT
from include.user_processing.fields import COLUMNS, users_table_sql
from include.user_processing.settings import MAX_USERS_PER_PAGE
from include.user_processing.store import CSV_COPY_OPTIONS
from include.user_processing.user_api import page_sizes
from scripts.local_env import ThrowawayPostgres, ThrowawayS3
from template.bench import inputs
from template.bench.measure import run_step, same_rows, step_env, summarise
from template.standin_user_api.process import StandInUserApi

USERS_DDL = ";\n".join(users_table_sql())
# load.py's COPY options (it adds ENCODING 'UTF8'; psql \copy reads the file in the client encoding).
COPY_OPTIONS = CSV_COPY_OPTIONS.as_string()
CHECK_ROWS_UP_TO = 100_000  # compare the project's and the baseline's rows one by one up to this N


LARGE = 1_000_000  # from this N on, steps take long enough that 3 runs do (1 for the naive baseline)


def repeats_for(users: int, repeats: int) -> int:
    return repeats if users < LARGE else min(repeats, 3)


# --- 1. process --------------------------------------------------------------------------------


def bench_process(sizes: list[int], repeats: int, progress: Callable[[str], None]) -> list[dict]:
    results = []
    for users in sizes:
        run = inputs.run_folder(users)
        project, baseline = [], []
        for attempt in range(repeats_for(users, repeats)):
            progress(f"process N={users:,}: project, run {attempt + 1}")
            project.append(run_step("process", run_dir=str(run)))
            if users >= LARGE and attempt > 0:
                continue  # one naive run at 1M: it needs a minute and gigabytes
            progress(f"process N={users:,}: json_normalize baseline, run {attempt + 1}")
            baseline.append(
                run_step("process_baseline", run_dir=str(run), out_csv=str(run / "users-baseline.csv"))
            )
        row = {"users": users, "project": summarise(project), "baseline": summarise(baseline)}
        row["ratio"] = row["project"]["rows_per_second"] / row["baseline"]["rows_per_second"]
        if users <= CHECK_ROWS_UP_TO:
            row["same_rows_as_baseline"] = same_rows(
                run_files.users_csv_path(run), run / "users-baseline.csv"
            )
        (run / "users-baseline.csv").unlink(missing_ok=True)
        results.append(row)
    return results


# --- 2. store ----------------------------------------------------------------------------------


class Warehouse:
    """A throwaway PostgreSQL with fsync on, and the table resets the store benchmark needs."""

    def __init__(self, postgres: ThrowawayPostgres) -> None:
        self.postgres = postgres
        self.uri = postgres.create_database("warehouse", "warehouse", "bench-warehouse-password")

    def sql(self, *statements: str, superuser: bool = False) -> None:
        uri = self.postgres.superuser_uri("warehouse") if superuser else self.uri
        with psycopg.connect(uri, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def settle(self) -> None:
        """Start every timed load from the same state: nothing left to flush from the last one."""
        self.sql("CHECKPOINT", superuser=True)

    def empty_users(self) -> None:
        self.sql("DROP TABLE IF EXISTS users", USERS_DDL)

    def users_checksum(self) -> tuple[int, str]:
        """(rows, md5 of them all in user_id order) of `users`: what was loaded, not when (no loaded_at)."""
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        query = sql.SQL(
            "SELECT count(*), md5(string_agg(ROW({columns})::text, E'\\n' ORDER BY user_id)) FROM users"
        ).format(columns=columns)
        with psycopg.connect(self.uri) as conn:
            rows, digest = conn.execute(query).fetchone()
        return rows, digest

    def psql_copy(self, csv_path: Path, table: str) -> dict:
        """`psql \\copy` into an empty `table` shaped like users; wall time of the psql process."""
        columns = ", ".join(COLUMNS)
        started = time.perf_counter()
        out = self.postgres.psql(
            self.uri, "-v", "ON_ERROR_STOP=1", "-c",
            f"\\copy {table} ({columns}) FROM '{csv_path}' WITH ({COPY_OPTIONS})",
        )  # fmt: skip
        seconds = time.perf_counter() - started
        return {"rows": int(out.stdout.split()[-1]), "seconds": seconds}


def bench_store(sizes: list[int], repeats: int, progress: Callable[[str], None]) -> dict:
    with ThrowawayPostgres(fsync=True) as postgres:
        warehouse = Warehouse(postgres)
        with psycopg.connect(warehouse.uri) as conn:
            server_version = conn.info.server_version
        rows = []
        for users in sizes:
            run = inputs.run_folder(users)  # its users.csv: written by the process benchmark
            csv_path = run_files.users_csv_path(run)
            project, plain_copy, keyed_copy = [], [], []
            for attempt in range(repeats_for(users, repeats)):
                progress(f"store N={users:,}: project into an empty users, run {attempt + 1}")
                warehouse.empty_users()
                warehouse.settle()
                project.append(run_step("store", dsn=warehouse.uri, run_dir=str(run)))
                progress(f"store N={users:,}: psql \\copy into an empty plain table, run {attempt + 1}")
                warehouse.sql(
                    "DROP TABLE IF EXISTS users_plain",
                    "CREATE TABLE users_plain (LIKE users INCLUDING DEFAULTS)",
                )
                warehouse.settle()
                plain_copy.append(warehouse.psql_copy(csv_path, "users_plain"))
                progress(
                    f"store N={users:,}: psql \\copy into an empty users (primary key), run {attempt + 1}"
                )
                warehouse.empty_users()
                warehouse.settle()
                keyed_copy.append(warehouse.psql_copy(csv_path, "users"))
            row = {
                "users": users,
                "project": summarise(project),
                "baseline": summarise(plain_copy),
                "copy_into_users_with_primary_key": summarise(keyed_copy),
            }
            row["ratio"] = row["project"]["rows_per_second"] / row["baseline"]["rows_per_second"]
            rows.append(row)
        changed = bench_store_changed(warehouse, max(sizes), repeats, progress)
        changed["ratio"] = changed["project"]["rows_per_second"] / rows[-1]["baseline"]["rows_per_second"]
    return {"empty": rows, "changed": changed, "server_version": server_version}


def bench_store_changed(warehouse: Warehouse, users: int, repeats: int, progress) -> dict:
    """The batch again into a users already holding it, with 10% of the rows changed."""
    original = inputs.run_folder(users)
    changed = inputs.BENCH_DIR / "runs" / f"users={users}-10pct-changed"  # a run folder: users.csv only
    changed.mkdir(parents=True, exist_ok=True)
    changed_rows = inputs.changed_copy(run_files.users_csv_path(original), run_files.users_csv_path(changed))
    runs = []
    for attempt in range(repeats_for(users, repeats)):
        progress(
            f"store N={users:,}: project into users holding {users:,} rows, 10% changed, run {attempt + 1}"
        )
        warehouse.empty_users()
        run_step("store", dsn=warehouse.uri, run_dir=str(original))  # the state to start from
        warehouse.sql("VACUUM ANALYZE users")  # a table that has been there a while is vacuumed
        warehouse.settle()
        runs.append(run_step("store", dsn=warehouse.uri, run_dir=str(changed)))
    shutil.rmtree(changed)
    return {
        "users": users,
        "rows_changed": changed_rows,
        "project": summarise(runs),
        "inserted": runs[0]["inserted"],
        "updated": runs[0]["updated"],
    }


# --- 4. extract --------------------------------------------------------------------------------


# A remote API answers a page after a while; the stand-in's "timeout" fault, on every request,
# stands in for that (it sleeps, then answers normally, without holding up other requests).
REMOTE_LATENCY_SECONDS = 1.0


def bench_extract(sizes: list[int], repeats: int, progress: Callable[[str], None]) -> list[dict]:
    """Extract at each N with the default requests in flight; at the middle N also 1 and 3, both
    on localhost and with REMOTE_LATENCY_SECONDS added to every page (once each: sleep-bound)."""
    middle = sizes[len(sizes) // 2]
    middle_runs = min(repeats, 3)  # ~10 s a run at 100k
    plans = {  # added latency -> (users, requests in flight, runs), in the order they run
        0.0: [(users, PAGES_IN_FLIGHT, middle_runs if users == middle else 1) for users in sizes]
        + [(middle, in_flight, middle_runs) for in_flight in (1, 3)],
        REMOTE_LATENCY_SECONDS: [(middle, in_flight, 1) for in_flight in (1, PAGES_IN_FLIGHT, 3)],
    }
    log = inputs.BENCH_DIR / "standin-api.log"
    log.unlink(missing_ok=True)
    results = []
    for latency, latency_plans in plans.items():
        faults = ("--fault", f"timeout={latency:g},times=-1") if latency else ()
        with log.open("a") as log_file, StandInUserApi(*faults, stderr=log_file) as api:
            env = step_env(AIRFLOW_CONN_USER_API=api.url)
            for users, in_flight, runs in latency_plans:
                run = inputs.BENCH_DIR / "extract" / f"users={users}-in-flight={in_flight}"
                measured = []
                for attempt in range(runs):
                    progress(
                        f"extract N={users:,}: {in_flight} request(s) in flight, "
                        f"{latency:g} s added latency, run {attempt + 1}"
                    )
                    measured.append(
                        run_step(
                            "extract",
                            env=env,
                            run_dir=str(run),
                            seed=inputs.SEED,
                            users=users,
                            pages_in_flight=in_flight,
                        )
                    )
                results.append(
                    {
                        "users": users,
                        "pages_in_flight": in_flight,
                        "added_latency_seconds": latency,
                        "project": summarise(measured),
                        "pages_identical_to_bench_input": pages_identical(run),
                    }
                )
                shutil.rmtree(run)
    return sorted(
        results, key=lambda row: (row["added_latency_seconds"], row["users"], row["pages_in_flight"])
    )


def pages_identical(run: Path) -> bool:
    """The extracted pages are byte for byte the cached input the other benchmarks read."""
    pages = sorted(run_files.raw_folder(run).glob("page-*.json"))
    cached = run_files.raw_folder(inputs.page_cache())
    return bool(pages) and all(page.read_bytes() == (cached / page.name).read_bytes() for page in pages)


# --- 6. the run folder on an object store ------------------------------------------------------


STEPS = ("extract", "process", "store")


def bench_object_store(users: int, repeats: int, progress: Callable[[str], None]) -> dict:
    """extract, process and store of `users` users, each as its task runs it, with the run folder on
    the local disk and on an S3 server (rclone serve s3 on 127.0.0.1, the connection `object_store`),
    one after the other in every repeat. Checked: the same pages, users.csv and loaded rows on both."""
    if users % MAX_USERS_PER_PAGE:
        raise ValueError(f"the object store's N must be whole pages of {MAX_USERS_PER_PAGE}, got {users}")
    inputs.ensure_pages(users)  # what the pages extracted must equal, byte for byte
    log = inputs.BENCH_DIR / "object-store.log"
    prefix = f"template/bench/users={users}"
    with (
        ThrowawayS3() as s3,
        log.open("w") as log_file,
        StandInUserApi(stderr=log_file) as api,
        ThrowawayPostgres(fsync=True) as postgres,
    ):
        warehouse = Warehouse(postgres)
        env = step_env(AIRFLOW_CONN_USER_API=api.url, **s3.airflow_settings(prefix))
        local = inputs.BENCH_DIR / "object-store" / f"users={users}"
        folders = {"local": str(local), "s3": s3.run_folder_url(prefix)}
        measured: dict[str, dict[str, list]] = {where: {step: [] for step in STEPS} for where in folders}
        loaded = {}
        for attempt in range(repeats):
            for where, run_dir in folders.items():
                progress(f"object store N={users:,}: extract, process, store on {where}, run {attempt + 1}")
                runs = measured[where]
                runs["extract"].append(
                    run_step(
                        "extract",
                        env=env,
                        run_dir=run_dir,
                        seed=inputs.SEED,
                        users=users,
                        pages_in_flight=PAGES_IN_FLIGHT,
                    )
                )
                runs["process"].append(run_step("process", env=env, run_dir=run_dir))
                warehouse.empty_users()
                warehouse.settle()
                runs["store"].append(run_step("store", env=env, dsn=warehouse.uri, run_dir=run_dir))
                loaded[where] = warehouse.users_checksum()
        stored, on_s3 = s3.filesystem(), PurePosixPath(s3.bucket, prefix)
        same_files = [(run_files.users_csv_path(local), run_files.users_csv_path(on_s3))] + [
            (inputs.cached_page(page), run_files.page_path(on_s3, page))
            for page in range(1, len(page_sizes(users)) + 1)
        ]
        result = {
            "users": users,
            "server": s3.version(),
            "local": {step: summarise(runs) for step, runs in measured["local"].items()},
            "s3": {step: summarise(runs) for step, runs in measured["s3"].items()},
            "pages_identical_to_bench_input": pages_identical(local),
            "s3_files_identical": all(path.read_bytes() == stored.cat(str(key)) for path, key in same_files),
            "same_rows_loaded": loaded["local"] == loaded["s3"] and loaded["s3"][0] == users,
        }
        shutil.rmtree(local)
    return result
