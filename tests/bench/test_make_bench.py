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
    command = [sys.executable, "-m", "bench.run", "--sizes", str(USERS), "--repeats", "1"]
    result = subprocess.run(
        [
            *command,
            "--skip-dags-test",
            "--dbt-sizes",
            str(DBT_MODELS),
            "--dbt-ways",
            "watcher",
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
    assert {parse["file"] for parse in report["parse"]} >= {"dags/user_processing.py"}
    assert "## Summary" in (tmp_path / "benchmarks.md").read_text()
    assert (tmp_path / "benchmarks.png").read_bytes().startswith(b"\x89PNG")

    dbt = json.loads((tmp_path / "benchmarks-dbt.json").read_text())
    [row] = dbt["rows"]
    assert row["models"] == DBT_MODELS
    assert row["floor"]["wall_seconds"] > 0
    watcher = row["ways"]["watcher"]
    # The producer, its gate, the source's two tasks, and a run and a test task per model.
    assert watcher["task_count"] == 4 + 2 * DBT_MODELS
    assert {task["state"] for task in watcher["tasks"]} == {"success"}
    # What the report shows for each way: wall time, the DAG file's parse time, peak memory.
    assert min(watcher["wall_seconds"], watcher["parse_seconds"], watcher["peak_rss_tree_mb"]) > 0, watcher
    assert watcher["cache"]["dbt_invocations"] >= 1  # the log lines the report counts are still there
    assert "## Wall time" in (tmp_path / "benchmarks-dbt.md").read_text()
    assert (tmp_path / "benchmarks-dbt.png").read_bytes().startswith(b"\x89PNG")
