"""`make bench`: measure the pipeline and its baselines, print one table, write docs/benchmarks.*.

    .venv/bin/python -m bench.run                      # everything, as `make bench` (~15-20 min)
    .venv/bin/python -m bench.run --sizes 10000,100000 --repeats 2 --skip-dags-test   # a quick look

Not part of `make test`: it takes minutes, needs the machine to itself as far as possible, and its
numbers are for reading, not asserting.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import airflow_floor, inputs, machine, pipeline, report
from include.user_processing.extract import PAGES_IN_FLIGHT
from scripts.local_env import REPO_ROOT

DOCS = REPO_ROOT / "docs"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    results: dict = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python", "-m", "bench.run", *argv]),  # `make bench`: no arguments
        "machine": machine.describe(),
        "sizes": sizes,
        "repeats": args.repeats,
        "pages_in_flight_default": PAGES_IN_FLIGHT,
    }
    progress(f"machine: {results['machine']['short']}; N = {', '.join(f'{n:,}' for n in sizes)}")
    inputs.ensure_pages(max(sizes), progress)

    results["process"] = pipeline.bench_process(sizes, args.repeats, progress)
    results["store"] = pipeline.bench_store(sizes, args.repeats, progress)
    results["extract"] = pipeline.bench_extract(sizes, args.repeats, progress)
    results["parse"] = airflow_floor.bench_parse(progress)
    results["dags_test"] = None
    if not args.skip_dags_test:
        log = inputs.BENCH_DIR / "dags-test.log"
        log.unlink(missing_ok=True)
        tasks = airflow_floor.tasks_of(results["parse"], "user_processing")
        results["dags_test"] = airflow_floor.bench_dags_test(tasks, args.scale_users, log, progress)

    results["load_average_at_end"] = os.getloadavg()
    results["elapsed_seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(results, args.out / "benchmarks.json")
    report.write_markdown(results, args.out / "benchmarks.md")
    report.write_plot(results, args.out / "benchmarks.png")
    print()
    print(report.console_table(results))
    written = [args.out / name for name in ("benchmarks.md", "benchmarks.json", "benchmarks.png")]
    print("\nWritten:", ", ".join(map(str, written)))
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="N values, whole pages of 5000")
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs per measurement below 1M users (3 at 1M, 3 for extract)"
    )
    parser.add_argument(
        "--scale-users", type=int, default=1_000_000, help="users for the big `dags test` run; 0 skips it"
    )
    parser.add_argument("--skip-dags-test", action="store_true", help="skip `airflow dags test` (~5 min)")
    parser.add_argument("--out", type=Path, default=DOCS, help="where to write benchmarks.md/.json/.png")
    return parser


if __name__ == "__main__":
    sys.exit(main())
