"""Load faults: a missing or empty file, a load killed or cut off mid-way, the warehouse down,
concurrent loads, a backfill run twice. `users` only ever holds whole batches."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest

from include.user_processing.errors import LoadError
from include.user_processing.fields import COLUMNS
from include.user_processing.store import store_users_csv
from scripts.local_env import ThrowawayPostgres
from tests.example.integration.expected import assert_succeeded
from tests.example.reliability.conftest import FAST_RETRIES, USERS
from tests.example.reliability.invariants import assert_no_duplicate_user_ids, checksum, warehouse_state

pytestmark = pytest.mark.e2e


def synthetic_csv(rows: int, name: str = "Ada", start: int = 0) -> bytes:
    """A CSV in process_user's format, fast to make at any size (ids are deterministic)."""
    header = ",".join(f'"{column}"' for column in COLUMNS)
    lines = [header]
    for number in range(start, start + rows):
        user_id = uuid.UUID(int=number, version=4)
        lines.append(
            f'"{user_id}","{name}","Lovelace","ada{number}@example.com","ada{number}","female",'
            '"London","United Kingdom","0150","GB","2014-08-30T05:19:44.274Z"'
        )
    return ("\n".join(lines) + "\n").encode()


def test_a_missing_run_file_fails_the_load_loudly(airflow, run, warehouse, baseline):
    # store_user alone, after a run whose users.csv is gone (e.g. written to another worker's disk).
    assert_succeeded(run("2024-10-01"))
    before = warehouse_state(warehouse)
    (airflow.home / "run-folders/user_processing/logical_date=20241001T000000/users.csv").unlink()
    state, result = airflow.task_state("store_user", "2024-10-01")
    assert state == "failed"
    assert "users.csv not found: run process_user for this logical date first" in result.stdout
    assert warehouse_state(warehouse) == before


def test_an_empty_csv_fails_the_load_loudly(warehouse, unchanged):
    with pytest.raises(LoadError, match="the CSV file is empty"):
        store_users_csv(warehouse, io.BytesIO(b""))
    unchanged()


def test_the_classic_copy_expert_pattern_would_have_gone_green_with_nothing_loaded(
    warehouse_uri, warehouse, tmp_path, monkeypatch
):
    # Why the checks above exist: the 2022 course DAG's load, on a file that is not there.
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    monkeypatch.setenv("AIRFLOW_CONN_CLASSIC", warehouse_uri)
    warehouse.execute("CREATE TABLE users (firstname text, lastname text)")
    missing = tmp_path / "processed_user.csv"
    PostgresHook(postgres_conn_id="classic").copy_expert(
        "COPY users FROM stdin WITH DELIMITER as ','", str(missing)
    )  # no error...
    assert warehouse.execute("SELECT count(*) FROM users").fetchone()[0] == 0  # ...and no rows


@pytest.mark.parametrize("how", ["process killed", "connection dropped"])
def test_a_load_cut_off_mid_way_leaves_users_unchanged_and_a_rerun_completes(
    warehouse_uri, warehouse, unchanged, tmp_path, how
):
    big = tmp_path / "users.csv"
    big.write_bytes(synthetic_csv(400_000))
    loader = subprocess.Popen(
        [sys.executable, "-c", LOAD_IN_A_PROCESS, warehouse_uri, str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    backend = wait_for_copy(warehouse, loader)
    if how == "process killed":
        loader.kill()
    else:
        warehouse.execute("SELECT pg_terminate_backend(%s)", (backend,))
    _, stderr = loader.communicate(timeout=60)
    assert loader.returncode != 0
    if how == "connection dropped":
        assert "WarehouseUnavailable: the warehouse went away during the load, which rolled back" in stderr
    time.sleep(0.5)  # the server notices the dead client and rolls back
    unchanged()

    with psycopg.connect(warehouse_uri) as conn, big.open("rb") as file:
        assert store_users_csv(conn, file).inserted == 400_000
    assert_no_duplicate_user_ids(warehouse)


LOAD_IN_A_PROCESS = """
import sys, psycopg
from include.user_processing.errors import LoadError
from include.user_processing.store import store_users_csv
with psycopg.connect(sys.argv[1]) as conn, open(sys.argv[2], "rb") as file:
    store_users_csv(conn, file)
"""


def wait_for_copy(warehouse: psycopg.Connection, loader: subprocess.Popen) -> int:
    """The backend pid of the loader once its COPY is running."""
    for _ in range(400):
        row = warehouse.execute(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY%%users_incoming%%' AND state = 'active'"
        ).fetchone()
        if row:
            return row[0]
        assert loader.poll() is None, loader.communicate()
        time.sleep(0.025)
    raise AssertionError("the COPY never started")


def test_concurrent_loads_of_overlapping_users_neither_duplicate_nor_deadlock(
    warehouse_uri, warehouse, baseline
):
    first, second = synthetic_csv(20_000, name="first"), synthetic_csv(20_000, name="second", start=10_000)
    errors = []

    def load(data: bytes) -> None:
        try:
            with psycopg.connect(warehouse_uri) as conn:
                store_users_csv(conn, io.BytesIO(data))
        except Exception as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=load, args=(data,)) for data in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert_no_duplicate_user_ids(warehouse)
    by_name = dict(
        warehouse.execute(
            "SELECT firstname, count(*) FROM users WHERE firstname IN ('first', 'second') GROUP BY firstname"
        ).fetchall()
    )
    assert sum(by_name.values()) == 30_000  # ids 0-19999 from the first load, 10000-29999 from the second
    # The overlap holds the rows of whichever load committed last, all of them: loads never interleave.
    assert by_name in ({"first": 20_000, "second": 10_000}, {"first": 10_000, "second": 20_000})


def test_the_warehouse_down_then_back(airflow, tmp_path):
    # A warehouse of its own: stopping the session's server would stop Airflow's metadata DB too.
    with ThrowawayPostgres(parent=tmp_path) as server:
        uri = server.create_database("warehouse", "warehouse", "down-then-back-test-password")
        env = {**FAST_RETRIES, "AIRFLOW_CONN_POSTGRES": uri}
        server.stop_server()
        # Not the `run` fixture: its checks after the test read the session's warehouse, not this one.
        down = airflow.dags_test("2024-10-02", conf={"users": USERS}, skip_dbt=True, env=env)
        assert down.returncode != 0
        assert "Connection refused" in down.stdout + down.stderr
        assert "ALERT user_processing.create_table failed" in down.stdout + down.stderr

        server.start_server()
        assert_succeeded(airflow.dags_test("2024-10-02", conf={"users": USERS}, skip_dbt=True, env=env))
        with psycopg.connect(uri) as conn:
            assert conn.execute("SELECT count(*), count(DISTINCT user_id) FROM users").fetchone() == (
                USERS,
                USERS,
            )


def test_a_backfill_of_seven_days_run_twice_gives_identical_totals(airflow, warehouse):
    dates = [f"2024-11-0{day}" for day in range(1, 8)]

    def backfill() -> dict[str, str]:
        return airflow.dags_test_many(dates, conf={"users": 20}, skip_dbt=True, env=FAST_RETRIES)

    first = backfill()
    assert first == dict.fromkeys(dates, "success")
    after_first = checksum(warehouse, "users")
    assert after_first[0] == 7 * 20

    second = backfill()
    assert second == dict.fromkeys(dates, "success")
    assert checksum(warehouse, "users") == after_first
    assert_no_duplicate_user_ids(warehouse)
