"""The dbt scaling benchmark's console table, docs/benchmarks-dbt.md, .json and .png."""

from __future__ import annotations

import json
from pathlib import Path

from include.common.dbt_tasks import DBT_MODE
from template.bench.dbt_scaling import overhead_per_model, times_floor
from template.bench.report import markdown_table, mb

TARGET_MODELS = 200
TARGET_RATIO = 1.5  # the template's mode against one `dbt build`, at TARGET_MODELS models, under a scheduler
FIGURES = {"scheduler": "under a real scheduler", "dags_test": "under `airflow dags test`"}


def way_cells(row: dict, way: str, figure: str) -> str:
    result = row["ways"].get(way)
    if result is None:
        return "—"
    seconds = result["wall_seconds"] if figure == "scheduler" else result["dags_test"]["wall_seconds"]
    return f"{seconds:.1f} s ({times_floor(row, way, figure):.1f}x)"


def ways_of(results: dict) -> list[str]:
    return [way for way in results["descriptions"] if any(way in row["ways"] for row in results["rows"])]


def wall_table(results: dict, figure: str = "scheduler") -> tuple[list[str], list[list[str]]]:
    ways = ways_of(results)
    header = [
        "models",
        "floor: one `dbt build`",
        *[f"{way}{' (default)' if way == DBT_MODE else ''}" for way in ways],
    ]
    rows = [
        [
            str(row["models"]),
            f"{row['floor']['wall_seconds']:.1f} s",
            *[way_cells(row, way, figure) for way in ways],
        ]
        for row in results["rows"]
    ]
    return header, rows


def detail_table(results: dict) -> tuple[list[str], list[list[str]]]:
    header = [
        "models", "way", "scheduler: dbt group", "x floor", "overhead / model", "Airflow tasks",
        "dbt processes", "memory: idle -> peak (PSS, all Airflow + dbt)", "`dags test`", "x floor",
        "DAG file parse",
    ]  # fmt: skip
    rows = []
    for row in results["rows"]:
        floor = row["floor"]
        rows.append([
            str(row["models"]), "floor: `dbt build`", f"{floor['wall_seconds']:.1f} s", "1.0x", "—", "—", "1",
            f"{mb(floor['peak_rss_tree_mb'])} (RSS, dbt alone)", "—", "—", "—",
        ])  # fmt: skip
        for way, result in row["ways"].items():
            dags_test = result["dags_test"]
            rows.append([
                str(row["models"]), way, f"{result['wall_seconds']:.1f} s",
                f"{times_floor(row, way):.1f}x", f"{overhead_per_model(row, way):.2f} s",
                str(result["task_count"]), str(result["dbt_processes"]),
                f"{mb(result['idle_pss_mb'])} -> {mb(result['peak_pss_mb'])}",
                f"{dags_test['wall_seconds']:.1f} s", f"{times_floor(row, way, 'dags_test'):.1f}x",
                f"{dags_test['parse_seconds']:.2f} s",
            ])  # fmt: skip
    return header, rows


def docker_section(results: dict) -> list[str]:
    docker = results.get("docker")
    if not docker:
        return []
    floor = docker["floor_seconds"]
    header = ["Celery workers", "dbt task group", "x floor (`dbt build` from the command line)"]
    rows = [
        [workers, f"{run['wall_seconds']:.1f} s", f"{run['wall_seconds'] / floor:.1f}x" if floor else "—"]
        for workers, run in docker["workers"].items()
    ]
    return [
        f"## On the Docker stack, {docker['models']} models",
        "",
        f"The unmodified docker-compose.yaml (CeleryExecutor), the default way ({DBT_MODE}), the generated "
        f"project in place of dbt_project/, a user_processing run of {docker['users']:,} users triggered "
        "through the REST API; the dbt task group's wall time from its task instances"
        " (template/bench/dbt_docker.py).",
        "",
        markdown_table(header, rows),
        "",
    ]


def target_line(results: dict) -> str:
    target = (
        f"Target, the default mode ({DBT_MODE}) under a scheduler within {TARGET_RATIO}x of the floor at "
        f"{TARGET_MODELS} models"
    )
    at_target = [row for row in results["rows"] if row["models"] == TARGET_MODELS and DBT_MODE in row["ways"]]
    if not at_target:
        return f"{target}: not run."
    row = at_target[0]
    ratio = times_floor(row, DBT_MODE)
    best_way = min(row["ways"], key=lambda way: times_floor(row, way))
    best = times_floor(row, best_way)
    verdict = "met" if ratio <= TARGET_RATIO else "missed"
    return f"{target}: **{verdict}**, {ratio:.2f}x. Fastest way measured there: {best_way}, {best:.2f}x."


def console_table(results: dict) -> str:
    header, rows = wall_table(results)
    cells = [header, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "dbt scaling, the dbt task group under a scheduler vs one `dbt build`:\n" + "\n".join(
        [*lines, target_line(results).replace("**", "")]
    )


def write_markdown(results: dict, path: Path, generated_at: str, machine: str, minutes: float) -> None:
    detail_header, detail_rows = detail_table(results)
    ways = "\n".join(f"- **{way}**: {results['descriptions'][way]}." for way in ways_of(results))
    parts = [
        "# Benchmarks: dbt at scale",
        "",
        f"Generated by `make bench` (`python -m template.bench.run`) on {generated_at} in {minutes:.0f} min, "
        f"on {machine}. Do not edit: run `make bench` again (`--only dbt` for this page alone). "
        "What the numbers mean for the template: [dbt.md](dbt.md#the-modes-and-their-cost).",
        "",
        f"![wall time of the dbt task group versus the number of models]({path.with_suffix('.png').name})",
        "",
    ]
    for figure, title in FIGURES.items():
        header, rows = wall_table(results, figure)
        parts += [
            f"## The dbt task group {title} vs one `dbt build`",
            "",
            "In brackets: times the floor.",
            "",
        ]
        parts += [markdown_table(header, rows), ""]
    parts += [
        target_line(results),
        "",
        *docker_section(results),
        "## The ways",
        "",
        ways,
        "",
        "## Details",
        "",
        markdown_table(detail_header, detail_rows),
        "",
        METHOD.format(users=f"{results['users']:,}", threads=results["threads"]),
    ]
    path.write_text("\n".join(parts))


METHOD = """## How it is measured

- **Projects**: generated by template/bench/dbt_projects.py (never shipped), over the template's own `users`
  source holding {users} users: about 2/5 staging views (each a slice of the users), 2/5 marts
  tables (users per country over three staging models), the rest incremental models (delete+insert
  on user_id, the union of three staging models), one data test on each model, plus the source's
  tests, as in dbt_project/. Their manifests are built by the template's own step
  (include/common/dbt_manifest.py).
- **Floor**: `dbt build` of the project from the command line, with dbt_project/profiles.yml
  ({threads} threads, as Airflow's profile).
- **Under a real scheduler** (the figure, `wall_seconds` in the JSON): the services `make ui` runs
  (scheduler, dag-processor, triggerer, api-server; LocalExecutor with Airflow's default
  parallelism; scripts/ui.py), started for each run, with template/bench/dbt_dag/dbt_scaling.py as the
  only DAG: the template's own dbt task group (`dbt_tasks.dbt_task_group`) for that project
  and way. The run is triggered through the REST API; its time is the dbt task group's, from its
  task instances: the first one's start to the last one's end.
- **Under `airflow dags test`** (the second table): the same DAG, one task at a time in one
  process: wall time of the CLI process.
- **State**: one throwaway PostgreSQL; the models' schema is dropped before every run, so the floor
  and each way build every model from nothing. Cosmos' cache starts empty, as on a fresh worker.
- **Memory**: under the scheduler, the summed PSS (shared pages counted once) of every Airflow
  process and all they started (task runners, dbt), sampled every second: at rest before the run,
  and its peak during it. The floor's is the RSS of dbt alone.
- **Parse**: the DAG file in a new interpreter (import airflow.sdk, then the file), median of 3.
"""


def write_json(results: dict, path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def write_plot(results: dict, path: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    models = [row["models"] for row in results["rows"]]
    for axes, (kind, title) in zip(panels, FIGURES.items(), strict=True):
        axes.plot(models, [row["floor"]["wall_seconds"] for row in results["rows"]], marker="o",
                  color="black", linestyle="--", label="floor: one `dbt build`")  # fmt: skip
        for way in ways_of(results):
            rows = [row for row in results["rows"] if way in row["ways"]]
            seconds = [times_floor(row, way, kind) * row["floor"]["wall_seconds"] for row in rows]
            axes.plot([row["models"] for row in rows], seconds, marker="o", label=way)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xticks(models, [str(size) for size in models])
        axes.set_xlabel("dbt models")
        axes.set_ylabel("seconds (wall)")
        axes.set_title(f"dbt task group, {title}")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(f"make bench, dbt at scale: {machine}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
