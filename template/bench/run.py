"""`make bench`: the pipeline against its baselines, dbt's modes against one `dbt build`; tables, docs/.

    .venv/bin/python -m template.bench.run                      # everything, as `make bench`
    .venv/bin/python -m template.bench.run --sizes 10000,100000 --repeats 2 --skip-dags-test   # a quick look
    .venv/bin/python -m template.bench.run --only dbt --dbt-sizes 5,50      # the dbt scaling part alone

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

from include.user_processing.extract import PAGES_IN_FLIGHT
from scripts.local_env import REPO_ROOT
from template.bench import airflow_floor, dbt_report, dbt_scaling, inputs, machine, pipeline, report

DOCS = REPO_ROOT / "docs"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    generated_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    described = machine.describe()
    progress(f"machine: {described['short']}")
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if args.only in (None, "pipeline"):
        written += bench_pipeline(args, argv, sizes, generated_at, described, progress)
    if args.only in (None, "dbt"):
        written += bench_dbt(args, generated_at, described, progress)
    print("\nWritten:", ", ".join(map(str, written)))
    return 0


def bench_pipeline(args, argv, sizes, generated_at, described, progress) -> list[Path]:
    """The pipeline's steps against their baselines, and Airflow's floor: docs/benchmarks.*."""
    started = time.perf_counter()
    results: dict = {
        "generated_at": generated_at,
        "command": shlex.join(["python", "-m", "template.bench.run", *argv]),  # `make bench`: no arguments
        "machine": described,
        "sizes": sizes,
        "repeats": args.repeats,
        "pages_in_flight_default": PAGES_IN_FLIGHT,
    }
    progress(f"pipeline: N = {', '.join(f'{n:,}' for n in sizes)}")
    inputs.ensure_pages(max(sizes), progress)

    results["process"] = pipeline.bench_process(sizes, args.repeats, progress)
    results["store"] = pipeline.bench_store(sizes, args.repeats, progress)
    results["extract"] = pipeline.bench_extract(sizes, args.repeats, progress)
    results["object_store"] = None
    if args.object_store_users:
        results["object_store"] = pipeline.bench_object_store(
            args.object_store_users, min(args.repeats, 3), progress
        )
    results["parse"] = airflow_floor.bench_parse(progress)
    results["dags_test"] = None
    if not args.skip_dags_test:
        log = inputs.BENCH_DIR / "dags-test.log"
        log.unlink(missing_ok=True)
        tasks = airflow_floor.tasks_of(results["parse"], "user_processing")
        results["dags_test"] = airflow_floor.bench_dags_test(tasks, args.scale_users, log, progress)

    results["load_average_at_end"] = os.getloadavg()
    results["elapsed_seconds"] = time.perf_counter() - started
    report.write_json(results, args.out / "benchmarks.json")
    report.write_markdown(results, args.out / "benchmarks.md")
    report.write_plot(results, args.out / "benchmarks.png")
    print()
    print(report.console_table(results))
    return [args.out / name for name in ("benchmarks.md", "benchmarks.json", "benchmarks.png")]


def bench_dbt(args, generated_at, described, progress) -> list[Path]:
    """The dbt task group as the dbt project grows, against one `dbt build`: docs/benchmarks-dbt.*."""
    started = time.perf_counter()
    sizes = sorted(int(size) for size in args.dbt_sizes.split(","))
    results = dbt_scaling.bench_dbt(sizes, args.dbt_ways, progress)
    if args.dbt_docker:
        from bench import dbt_docker  # needs a Docker engine (template/tests/docker/engine.py starts one)

        docker = dbt_docker.bench_docker(args.dbt_docker, progress)
        floors = [row["floor"]["wall_seconds"] for row in results["rows"] if row["models"] == args.dbt_docker]
        results["docker"] = {**docker, "floor_seconds": floors[0] if floors else None}
    minutes = (time.perf_counter() - started) / 60
    dbt_report.write_json(results, args.out / "benchmarks-dbt.json")
    dbt_report.write_markdown(
        results, args.out / "benchmarks-dbt.md", generated_at, described["short"], minutes
    )
    dbt_report.write_plot(results, args.out / "benchmarks-dbt.png", described["short"])
    print()
    print(dbt_report.console_table(results))
    return [args.out / f"benchmarks-dbt.{suffix}" for suffix in ("md", "json", "png")]


def dbt_ways(text: str) -> list[str]:
    """--dbt-ways, checked before anything runs."""
    ways = text.split(",")
    unknown = sorted(set(ways) - set(dbt_scaling.WAYS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}: choose from {', '.join(dbt_scaling.WAYS)}")
    return ways


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m template.bench.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="N values, whole pages of 5000")
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs per measurement below 1M users (3 at 1M, 3 for extract)"
    )
    parser.add_argument(
        "--scale-users", type=int, default=1_000_000, help="users for the big `dags test` run; 0 skips it"
    )
    parser.add_argument(
        "--object-store-users",
        type=int,
        default=100_000,
        help="users for extract, process and store with the run folder on S3 and on disk; 0 skips it",
    )
    parser.add_argument("--skip-dags-test", action="store_true", help="skip `airflow dags test` (~5 min)")
    parser.add_argument("--only", choices=["pipeline", "dbt"], help="one part only (default: both)")
    parser.add_argument(
        "--dbt-sizes", default=",".join(map(str, dbt_scaling.SIZES)), help="dbt models per project"
    )
    parser.add_argument(
        "--dbt-ways",
        default=",".join(dbt_scaling.WAYS),
        type=dbt_ways,
        help=f"of: {', '.join(dbt_scaling.WAYS)}",
    )
    parser.add_argument(
        "--dbt-docker",
        type=int,
        default=0,
        metavar="MODELS",
        help="also the default dbt way on the Docker stack (1 and 2 workers) at MODELS models (0: not)",
    )
    parser.add_argument("--out", type=Path, default=DOCS, help="where to write benchmarks.md/.json/.png")
    return parser


if __name__ == "__main__":
    sys.exit(main())
