"""Run benchmark steps in fresh processes, repeat them, and summarise the repeats."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from scripts.local_env import REPO_ROOT

STEP_TIMEOUT_SECONDS = 1800


def step_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **extra}
    env.pop("PYTHONSTARTUP", None)
    return env


def run_json(*argv: str, env: dict[str, str] | None = None, timeout: float = STEP_TIMEOUT_SECONDS) -> dict:
    """Run `python ARGV...` in a new interpreter at the repository root; returns the JSON object it
    prints on its last line of stdout."""
    result = subprocess.run(
        [sys.executable, *argv],
        cwd=REPO_ROOT,
        env=env or step_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        shown = " ".join("<script>" if "\n" in arg else arg for arg in argv)
        raise RuntimeError(f"python {shown} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_step(step: str, env: dict[str, str] | None = None, **arguments: object) -> dict:
    """Run template.bench.steps STEP in a new interpreter; returns what it measured."""
    return run_json("-m", "template.bench.steps", step, json.dumps(arguments), env=env)


def summarise(runs: list[dict]) -> dict:
    """Median seconds (with min and max, to show the noise), rows/s and peak memory over repeats."""
    seconds = [run["seconds"] for run in runs]
    median = statistics.median(seconds)
    summary = {
        "runs": len(runs),
        "rows": runs[0]["rows"],
        "seconds": median,
        "seconds_min": min(seconds),
        "seconds_max": max(seconds),
        "rows_per_second": runs[0]["rows"] / median,
    }
    if "peak_rss_mb" in runs[0]:
        summary["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
        summary["rss_before_mb"] = statistics.median(run["rss_before_mb"] for run in runs)
        summary["cpu_seconds"] = statistics.median(run["cpu_seconds"] for run in runs)
    for warm_up in ("object_storage_warm_up_seconds", "run_folder_warm_up_seconds"):
        if warm_up in runs[0]:  # once per process, not timed (see template.bench.steps)
            summary[warm_up] = statistics.median(run[warm_up] for run in runs)
    return summary


def same_rows(csv_a: Path, csv_b: Path) -> bool:
    """Both CSVs hold the same rows, in any order (values compared as text, as COPY reads them)."""
    import csv

    def rows(path: Path) -> list[tuple[str, ...]]:
        with path.open(newline="", encoding="utf-8") as file:
            return sorted(map(tuple, csv.reader(file)))

    return rows(csv_a) == rows(csv_b)
