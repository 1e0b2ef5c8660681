"""Run folders on an object store: the session's S3 server (`rclone serve s3`) through the amazon
provider, its keys only in the connection `object_store`, the run folder URL in the Variable
`run_folder_url`: AIRFLOW_CONN_OBJECT_STORE and AIRFLOW_VAR_RUN_FOLDER_URL, as a user sets them in
airflow.env or the shell. Nothing mocked; what is stored is read back with a client of its own.

`make ui` with its run folders there: tests/example/integration/test_ui.py. The guarantees of a single file
(whole or nothing, a killed writer): tests/example/reliability/test_object_store.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime

import pytest

from include.common.run_folder import folder_of
from include.users_report.report import SUMMARY_FILE, read_marts
from scripts.local_env import REPO_ROOT, without_airflow_settings
from tests.conftest import run_folder_on, stored
from tests.example.conftest import DBT_BUILD_TASK, users_in
from tests.example.integration.expected import ROW, assert_succeeded, user_rows
from tests.example.reliability.invariants import warehouse_state

pytestmark = pytest.mark.e2e

LOGICAL_DATE = "2024-10-05"
USERS = 5003  # two pages
RUN_FILES = [f"dbt/{DBT_BUILD_TASK}/run_results.json", "raw/manifest.json", "raw/page-00001.json"]
RUN_FILES += ["raw/page-00002.json", "users.csv"]
REPORT_FILES = ["summary.md", "users_by_country.svg", "users_by_registration_year.svg"]


def test_a_run_on_s3_loads_the_served_users_reruns_change_nothing_and_a_missing_file_names_its_task(
    airflow, warehouse, object_store
):
    s3_settings = object_store.airflow_settings(prefix="dags-test")
    s3 = object_store.filesystem()
    run = run_folder_on(object_store, "dags-test", "user_processing", LOGICAL_DATE)

    assert_succeeded(airflow.dags_test(LOGICAL_DATE, conf={"users": USERS}, env=s3_settings))
    assert users_in(warehouse, ROW) == user_rows(LOGICAL_DATE, USERS)
    assert set(airflow.task_tries(LOGICAL_DATE).values()) == {1}
    files = stored(s3, run)
    assert sorted(files) == RUN_FILES
    assert json.loads(files["raw/manifest.json"])["pages"] == 2
    assert files["users.csv"].count(b"\n") == USERS + 1  # a header, then each user (none twice here)
    local = folder_of(airflow.home / "run-folders", "user_processing", datetime.fromisoformat(LOGICAL_DATE))
    assert not local.exists()  # nothing on the session's local run folders

    # users_report reads the marts and writes its report there too.
    assert_succeeded(airflow.dags_test(LOGICAL_DATE, dag_id="users_report", env=s3_settings))
    assert set(airflow.task_tries(LOGICAL_DATE, dag_id="users_report").values()) == {1}
    report = stored(s3, run_folder_on(object_store, "dags-test", "users_report", LOGICAL_DATE))
    assert sorted(report) == REPORT_FILES
    marts = read_marts(warehouse)
    assert f"{marts.users} users from {len(marts.by_country)} countries" in report[SUMMARY_FILE].decode()

    # A re-run of the date changes nothing: the same rows (loaded_at included), the same files.
    rows, checksums = users_in(warehouse, "*"), warehouse_state(warehouse)
    assert_succeeded(airflow.dags_test(LOGICAL_DATE, conf={"users": USERS}, skip_dbt=True, env=s3_settings))
    assert (users_in(warehouse, "*"), warehouse_state(warehouse)) == (rows, checksums)
    assert stored(s3, run) == files

    # store_user alone, its users.csv gone: it fails, naming the task to run first.
    s3.rm(f"{run}/users.csv")
    state, result = airflow.task_state("store_user", LOGICAL_DATE, env=s3_settings)
    assert state == "failed"
    url = s3_settings["AIRFLOW_VAR_RUN_FOLDER_URL"]
    expected = f"{url}/user_processing/logical_date=20241005T000000/users.csv not found: run process_user"
    assert expected in result.stdout
    assert warehouse_state(warehouse) == checksums


def test_make_demo_with_the_run_folder_on_s3(object_store):
    # As `AIRFLOW_CONN_OBJECT_STORE=... AIRFLOW_VAR_RUN_FOLDER_URL=... make demo` runs it.
    settings = object_store.airflow_settings(prefix="demo")
    result = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        cwd=REPO_ROOT,
        env={**without_airflow_settings(dict(os.environ)), **settings},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "From your shell: AIRFLOW_CONN_OBJECT_STORE, AIRFLOW_VAR_RUN_FOLDER_URL" in output
    url = settings["AIRFLOW_VAR_RUN_FOLDER_URL"]
    assert f"the run folders stay on your object store, under\n{url}/" in output
    assert object_store.secret_key not in output

    s3 = object_store.filesystem()
    assert sorted(stored(s3, run_folder_on(object_store, "demo", "user_processing", "2024-01-01"))) == [
        f"dbt/{DBT_BUILD_TASK}/run_results.json",
        "raw/manifest.json",
        "raw/page-00001.json",
        "users.csv",
    ]
    report = stored(s3, run_folder_on(object_store, "demo", "users_report", "2024-01-01"))
    assert sorted(report) == REPORT_FILES
    summary = report[SUMMARY_FILE].decode()
    assert re.search(r"^\d+ users from \d+ countries", summary, re.M)
