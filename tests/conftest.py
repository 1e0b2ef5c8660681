"""Shared test fixtures: real services, started once per test session and only when a test needs them.

- ``postgres``: one throwaway PostgreSQL cluster (scripts/local_env.py) for the whole session.
- ``warehouse_uri``: its `warehouse` database, what the Airflow connection `postgres` points at.
- ``airflow``: one migrated Airflow home (metadata DB in the same cluster, the project's pools) and a
  CLI runner for it. The example's tests (tests/example/conftest.py) add the stand-in user API to it.
- ``dbt``: the dbt CLI of .venv-dbt, pointed at the warehouse through dbt_project/profiles.yml.
- ``serving_json(answer)``: a real HTTP server of a test's own, answering with the JSON it is given (an API
  of your own, in its tests).
- ``object_store``: one S3 server (`rclone serve s3`) for run folders on an object store; each test
  that uses it picks a prefix of its own (ThrowawayS3.airflow_settings).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath

import psycopg
import pytest
from psycopg import sql

from include.common.dbt_manifest import read_manifest
from include.common.project import DBT_SCHEMA, LOAD_SCHEMA
from scripts.local_env import (
    DBT_BIN,
    REPO_ROOT,
    PostgresNotInstalled,
    ThrowawayPostgres,
    ThrowawayS3,
    airflow_env,
    create_pools,
    dbt_env,
    isolated,
)

AIRFLOW_BIN = str(Path(sys.executable).parent / "airflow")


@functools.cache
def dbt_manifest() -> dict:
    """The dbt project as dbt reads it (its manifest, rebuilt first if the project changed): what the
    tests expect of the dbt part grows with the project. Built on first use, not when this file is
    imported, so the tests that need no dbt (tests/unit) run without dbt's virtualenv."""
    return read_manifest()


def dbt_project_name() -> str:
    """The dbt project's name (dbt_project.yml), the middle of its nodes' ids: model.<name>.<model>."""
    return dbt_manifest()["metadata"]["project_name"]


# Airflow reads its configuration on first import: give this process its own home, never ~/airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-pytest-")
atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], True)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["PYTHONPATH"] = str(REPO_ROOT)  # subprocesses import include/ as the DAGs do


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    try:
        server = ThrowawayPostgres()
    except PostgresNotInstalled as missing:
        pytest.fail(str(missing), pytrace=False)
    with server:
        yield server


@pytest.fixture(scope="session")
def warehouse_uri(postgres: ThrowawayPostgres) -> str:
    return postgres.create_database("warehouse", "warehouse", "warehouse-test-password")


@pytest.fixture
def warehouse(warehouse_uri: str) -> Iterator[psycopg.Connection]:
    """A connection to the warehouse, which starts every test empty: no dbt models, no loaded table."""
    with psycopg.connect(warehouse_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(DBT_SCHEMA)))
        loaded = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (LOAD_SCHEMA,))
        for (table,) in loaded.fetchall():
            conn.execute(sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(LOAD_SCHEMA, table)))
        yield conn


@contextmanager
def serving_json(answer: object) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering every GET with `answer` as JSON, until the block
    ends; yields its URL, http://127.0.0.1:<port>, which an AIRFLOW_CONN_<ID> takes as it is."""
    body = json.dumps(answer).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def object_store() -> Iterator[ThrowawayS3]:
    try:
        server = ThrowawayS3()
    except FileNotFoundError as missing:
        pytest.fail(str(missing), pytrace=False)
    with server:
        yield server


def run_folder_on(object_store: ThrowawayS3, prefix: str, dag_id: str, logical_date: str) -> str:
    """A run folder under `prefix` (ThrowawayS3.airflow_settings) as a client of the store names it."""
    from include.common.run_folder import folder_of  # Airflow: after AIRFLOW_HOME is set, below

    base = PurePosixPath(object_store.bucket, prefix)
    return str(folder_of(base, dag_id, datetime.fromisoformat(logical_date)))


def stored(store, folder: str) -> dict[str, bytes]:
    """Every object under `folder` (bucket/prefix) on an S3 filesystem, by its key below it."""
    return {key.removeprefix(f"{folder}/"): store.cat(key) for key in store.find(folder)}


@dataclass
class AirflowCli:
    """Runs the real `airflow` CLI against the session's Airflow home.

    Its helpers run `dag_id` unless given another (dag_id=); skip_dbt= marks the tasks of the DAG's
    dbt task group `dbt_group` successful unrun (for tests about loading).
    """

    env: dict[str, str]
    metadata_uri: str
    dag_id: str = ""
    dbt_group: str = ""

    def _dag(self, dag_id: str | None) -> str:
        assert dag_id or self.dag_id, "which DAG? pass dag_id="
        return dag_id or self.dag_id

    def _test_args(self, conf: dict | None, skip_dbt: bool) -> list[str]:
        """Options of `airflow dags test`."""
        args = ["--conf", json.dumps(conf)] if conf else []
        if skip_dbt:
            assert self.dbt_group, "skip_dbt needs the DAG's dbt task group: AirflowCli(dbt_group=)"
            args += ["--mark-success-pattern", rf"{re.escape(self.dbt_group)}\..*"]
        return args

    @property
    def home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: int = 600
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [AIRFLOW_BIN, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def dags_test(
        self,
        logical_date: str,
        conf: dict | None = None,
        skip_dbt: bool = False,
        dag_id: str | None = None,
        **kwargs,
    ) -> subprocess.CompletedProcess:
        """`airflow dags test`."""
        args = self._test_args(conf, skip_dbt)
        return self.run("dags", "test", self._dag(dag_id), logical_date, *args, **kwargs)

    def dags_test_many(
        self,
        dates: list[str],
        conf: dict | None = None,
        skip_dbt: bool = False,
        env: dict | None = None,
        dag_id: str | None = None,
    ) -> dict[str, str]:
        """Several `dags test` runs in one process (tests/dags_test_many.py): {date: final state}."""
        result = subprocess.run(
            [
                sys.executable,
                str(REPO_ROOT / "tests" / "dags_test_many.py"),
                self._dag(dag_id),
                *dates,
                "--",
                *self._test_args(conf, skip_dbt),
            ],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def task_states(self, logical_date: str, dag_id: str | None = None) -> dict[str, str]:
        """Final state of every task in the latest run for `logical_date`, from the metadata DB."""
        return self._of_latest_run("state", logical_date, dag_id)

    def task_tries(self, logical_date: str, dag_id: str | None = None) -> dict[str, int]:
        """How many times each task of the latest run for `logical_date` ran (its try_number)."""
        return self._of_latest_run("try_number", logical_date, dag_id)

    def asset_events(self, logical_date: str, dag_id: str | None = None) -> set[str]:
        """The URIs of the Asset events the latest run for `logical_date` emitted."""
        with psycopg.connect(self.metadata_uri) as conn:
            rows = conn.execute(
                "SELECT asset.uri FROM asset_event JOIN asset ON asset.id = asset_event.asset_id"
                " WHERE asset_event.source_dag_id = %s AND asset_event.source_run_id = ("
                "   SELECT run_id FROM dag_run WHERE dag_id = %s AND logical_date = %s::timestamptz"
                "   ORDER BY id DESC LIMIT 1)",
                (self._dag(dag_id), self._dag(dag_id), f"{logical_date}T00:00:00+00:00"),
            ).fetchall()
        return {row[0] for row in rows}

    def _of_latest_run(self, column: str, logical_date: str, dag_id: str | None) -> dict:
        dag_id = self._dag(dag_id)
        query = sql.SQL(
            """
            SELECT ti.task_id, ti.{} FROM task_instance ti
            WHERE ti.dag_id = %s AND ti.run_id = (
                SELECT run_id FROM dag_run WHERE dag_id = %s
                AND logical_date = %s::timestamptz ORDER BY id DESC LIMIT 1)
            """
        ).format(sql.Identifier(column))
        with psycopg.connect(self.metadata_uri) as conn:
            rows = conn.execute(query, (dag_id, dag_id, f"{logical_date}T00:00:00+00:00")).fetchall()
        return dict(rows)

    def task_state(
        self, task_id: str, logical_date: str, dag_id: str | None = None, **kwargs
    ) -> tuple[str, subprocess.CompletedProcess]:
        """Run `airflow tasks test` and return the task's final state, read from its log.

        `airflow tasks test` exits 0 even when the task fails, so its exit code proves nothing.
        """
        result = self.run("tasks", "test", self._dag(dag_id), task_id, logical_date, **kwargs)
        states = re.findall(r"new_state=(\w+)|Marking task as (\w+)", result.stdout + result.stderr)
        final = [state for pair in states for state in pair if state]
        return (final[-1].lower() if final else "unknown"), result


@pytest.fixture(scope="session")
def airflow(postgres: ThrowawayPostgres, warehouse_uri: str, tmp_path_factory) -> AirflowCli:
    metadata_uri = postgres.create_database("airflow", "airflow", "airflow-test-password")
    home = tmp_path_factory.mktemp("airflow-home")
    settings = airflow_env(home, metadata_uri, warehouse_uri, **isolated())
    cli = AirflowCli(settings.env, metadata_uri)
    migrated = cli.run("db", "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    create_pools(cli.env)
    return cli


@dataclass
class DbtCli:
    """The dbt CLI from .venv-dbt, run in dbt_project/ with a private target folder."""

    env: dict[str, str]
    target_path: Path

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(DBT_BIN / "dbt"), *args, "--target-path", str(self.target_path)],
            cwd=REPO_ROOT / "dbt_project",
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


@pytest.fixture
def dbt(warehouse_uri: str, tmp_path: Path) -> DbtCli:
    return DbtCli({**os.environ, **dbt_env(warehouse_uri)}, tmp_path / "dbt-target")


def copy_project(destination: Path) -> dict[str, str]:
    """A copy of the project as a user grows it (dags/, include/, dbt_project/ without what is built
    from it), and the environment that points Airflow at the copy instead of this checkout."""
    built = shutil.ignore_patterns("__pycache__", "target", "logs", "dbt_packages", ".user.yml")
    for folder in ("dags", "include", "dbt_project"):
        shutil.copytree(REPO_ROOT / folder, destination / folder, ignore=built)
    return {
        "AIRFLOW__CORE__DAGS_FOLDER": str(destination / "dags"),
        "PYTHONPATH": str(destination),
        "DBT_EXECUTABLE_PATH": str(DBT_BIN / "dbt"),  # the copy has no .venv-dbt of its own
    }


def relation_rows(conn: psycopg.Connection, relation: str) -> list[tuple]:
    """Every row of a table or view, sorted, for before/after comparisons of the data."""
    return sorted(conn.execute(f"SELECT * FROM {relation}").fetchall(), key=repr)  # noqa: S608 - test-only
