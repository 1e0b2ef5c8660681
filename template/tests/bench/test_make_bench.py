"""`make bench` still runs: the whole harness at one small N, so it cannot rot between releases.

Its numbers are not asserted (speed is judged by `make bench` itself on a quiet machine, not by
timed tests); what is asserted is that every measure ran, on the project's own code, with the
same rows as its baseline, and that the report files were written.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scripts.local_env import REPO_ROOT

pytestmark = pytest.mark.bench

USERS = 5000  # one API page
DBT_MODELS = 3  # the smallest generated dbt project: one staging, one mart, one incremental model


def test_bench_runs_every_measure_and_writes_the_report(tmp_path):
    command = [sys.executable, "-m", "template.bench.run", "--sizes", str(USERS), "--repeats", "1"]
    command += ["--object-store-users", str(USERS)]
    result = subprocess.run(
        [
            *command,
            "--skip-dags-test",
            "--dbt-sizes",
            str(DBT_MODELS),
            "--dbt-ways",
            "build",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    report = json.loads((tmp_path / "benchmarks.json").read_text())
    [process] = report["process"]
    assert process["project"]["rows"] == USERS
    assert process["same_rows_as_baseline"] is True
    assert process["project"]["peak_rss_mb"] > 0
    [store] = report["store"]["empty"]
    assert store["project"]["rows"] == store["baseline"]["rows"] == USERS
    changed = report["store"]["changed"]
    assert (changed["updated"], changed["inserted"]) == (changed["rows_changed"], 0) == (USERS // 10, 0)
    assert all(run["pages_identical_to_bench_input"] for run in report["extract"])
    object_store = report["object_store"]
    for where in ("local", "s3"):  # the same steps, the run folder on the disk and on S3
        assert {step: run["rows"] for step, run in object_store[where].items()} == dict.fromkeys(
            ("extract", "process", "store"), USERS
        )
    assert object_store["pages_identical_to_bench_input"] is True
    assert object_store["s3_files_identical"] is True
    assert object_store["same_rows_loaded"] is True
    assert object_store["server"].startswith("rclone v")
    assert {parse["file"] for parse in report["parse"]} >= {"dags/user_processing.py"}
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert "## Summary" in markdown
    assert "## 6. The run folder on an object store" in markdown
    assert (tmp_path / "benchmarks.png").read_bytes().startswith(b"\x89PNG")

    dbt = json.loads((tmp_path / "benchmarks-dbt.json").read_text())
    [row] = dbt["rows"]
    assert row["models"] == DBT_MODELS
    assert row["floor"]["wall_seconds"] > 0
    build = row["ways"]["build"]
    # The default way, under a real scheduler (the figure) and under `airflow dags test`.
    assert build["task_count"] == 1
    assert {task["state"] for task in build["tasks"]} == {"success"}
    assert build["dbt_processes"] >= 1  # the sampler saw dbt itself, not only Airflow
    assert min(build["wall_seconds"], build["peak_pss_mb"], build["idle_pss_mb"]) > 0, build
    assert build["peak_pss_mb"] >= build["idle_pss_mb"]
    dags_test = build["dags_test"]
    assert min(dags_test["wall_seconds"], dags_test["parse_seconds"], dags_test["peak_rss_tree_mb"]) > 0
    assert set(dbt["measured"]) >= {"wall_seconds", "dags_test.wall_seconds", "floor.wall_seconds"}
    assert "## The dbt task group under a real scheduler" in (tmp_path / "benchmarks-dbt.md").read_text()
    assert (tmp_path / "benchmarks-dbt.png").read_bytes().startswith(b"\x89PNG")
