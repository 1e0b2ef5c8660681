"""Turn one benchmark run into the console table, docs/benchmarks.md, .json and .png."""

from __future__ import annotations

import json
from pathlib import Path

from include.user_processing.settings import DEFAULT_USERS_PER_RUN, MAX_USERS_PER_PAGE

# The speed targets the template holds itself to.
PROCESS_TARGET = 4.0  # x the json_normalize baseline, at N >= PROCESS_TARGET_FROM
PROCESS_TARGET_FROM = 100_000
STORE_TARGET = 0.5  # x psql \copy into an empty plain table
MEMORY_TARGET_MB = 300  # peak RSS at 1M users
MEMORY_TARGET_AT = 1_000_000
PARSE_TARGET = 2.0  # x a trivial one-task DAG


def rate(value: float) -> str:
    return f"{value / 1000:,.1f}k/s" if value < 1e6 else f"{value / 1e6:,.2f}M/s"


def secs(summary: dict) -> str:
    """Median seconds, with the spread of the repeats when there were several."""
    if summary.get("sum_of_medians"):
        return f"{summary['seconds']:.2f} s (the medians added up)"
    if summary.get("runs", 1) > 1:
        spread = f"{summary['seconds_min']:.2f}-{summary['seconds_max']:.2f}"
        return f"{summary['seconds']:.2f} s ({spread}, {summary['runs']} runs)"
    return f"{summary['seconds']:.2f} s (1 run)"


def mb(value: float) -> str:
    return f"{value:,.0f} MB"


def verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"


def summary_rows(results: dict) -> list[list[str]]:
    """One row per measured target: measure, N, project, baseline, ratio, target, met, machine."""
    machine = results["machine"]["short"]
    rows = []
    for row in results["process"]:
        target = row["users"] >= PROCESS_TARGET_FROM
        rows.append([
            "1. process JSON → CSV, rows/s", f"{row['users']:,}",
            f"{rate(row['project']['rows_per_second'])} ({secs(row['project'])})",
            f"json_normalize + to_csv: {rate(row['baseline']['rows_per_second'])} ({secs(row['baseline'])})",
            f"{row['ratio']:.1f}x", f"≥ {PROCESS_TARGET:g}x" if target else "—",
            verdict(row["ratio"] >= PROCESS_TARGET) if target else "reported", machine,
        ])  # fmt: skip
    for row in results["store"]["empty"]:
        rows.append([
            "2. store CSV → empty users, rows/s", f"{row['users']:,}",
            f"{rate(row['project']['rows_per_second'])} ({secs(row['project'])})",
            f"psql \\copy, plain table: {rate(row['baseline']['rows_per_second'])} ({secs(row['baseline'])})",
            f"{row['ratio']:.2f}x", f"≥ {STORE_TARGET:g}x", verdict(row["ratio"] >= STORE_TARGET), machine,
        ])  # fmt: skip
    changed = results["store"]["changed"]
    rows.append([
        f"2. store into users holding {changed['users']:,} rows, 10% changed", f"{changed['users']:,}",
        f"{rate(changed['project']['rows_per_second'])} ({secs(changed['project'])})",
        f"psql \\copy, plain table: {rate(results['store']['empty'][-1]['baseline']['rows_per_second'])}",
        f"{changed['ratio']:.2f}x", "—", "reported", machine,
    ])  # fmt: skip
    by_users = {row["users"]: row for row in results["process"]}
    store_by_users = {row["users"]: row for row in results["store"]["empty"]}
    for users in results["sizes"]:
        target = users == MEMORY_TARGET_AT
        for name, project, baseline in (
            ("process", by_users[users]["project"], by_users[users]["baseline"]),
            ("store", store_by_users[users]["project"], None),
        ):
            rows.append([
                f"3. peak RSS, {name}", f"{users:,}", mb(project["peak_rss_mb"]),
                f"json_normalize: {mb(baseline['peak_rss_mb'])}" if baseline else "—",
                f"{baseline['peak_rss_mb'] / project['peak_rss_mb']:.1f}x less" if baseline else "—",
                f"≤ {MEMORY_TARGET_MB} MB" if target else "—",
                verdict(project["peak_rss_mb"] <= MEMORY_TARGET_MB) if target else "reported", machine,
            ])  # fmt: skip
    for row in results["extract"]:
        latency = (
            f", +{row['added_latency_seconds']:g} s latency a page" if row["added_latency_seconds"] else ""
        )
        rows.append([
            f"4. extract, {row['pages_in_flight']} request(s) in flight{latency}, users/s",
            f"{row['users']:,}",
            f"{rate(row['project']['rows_per_second'])} ({secs(row['project'])})",
            "—", "—", "—", "reported", machine,
        ])  # fmt: skip
    for row in results["parse"]:
        for way in ("cold", "dag_processor"):
            rows.append([
                f"5. parse {row['file']} ({way.replace('_', '-')})", "—",
                f"{row['seconds'][way]:.3f} s", f"one-task DAG: {row['floor_seconds'][way]:.3f} s",
                f"{row['ratio'][way]:.1f}x", f"≤ {PARSE_TARGET:g}x",
                verdict(row["ratio"][way] <= PARSE_TARGET), machine,
            ])  # fmt: skip
    dags_test = results.get("dags_test")
    if dags_test:
        rows.append([
            "5. `airflow dags test user_processing`, wall", f"{DEFAULT_USERS_PER_RUN} (default)",
            f"{dags_test['real']['wall_seconds']:.1f} s",
            f"{dags_test['tasks']} no-op tasks: {dags_test['noop']['wall_seconds']:.1f} s",
            f"{dags_test['ratio']:.2f}x", "—", "reported", machine,
        ])  # fmt: skip
    for step, local, on_s3 in object_store_rows(results):
        rows.append([
            f"6. {step}, run folder on S3 (rclone on 127.0.0.1), seconds",
            f"{results['object_store']['users']:,}", secs(on_s3), f"local disk: {secs(local)}",
            f"{on_s3['seconds'] / local['seconds']:.2f}x the time", "—", "reported", machine,
        ])  # fmt: skip
    return rows


SUMMARY_HEADER = ["measure", "N (users)", "project", "baseline", "ratio", "target", "result", "machine"]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def console_table(results: dict) -> str:
    rows = summary_rows(results)
    header = SUMMARY_HEADER[:-1]
    cells = [header, *[[cell.replace("**", "") for cell in row[:-1]] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return f"Machine: {results['machine']['short']}\n" + "\n".join(lines)


def write_markdown(results: dict, path: Path) -> None:
    machine = results["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items() if version)
    parts = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`{results['command']}`) on {results['generated_at']} in "
        f"{results['elapsed_seconds'] / 60:.0f} min. Do not edit: run `make bench` again.",
        "",
        f"- **Machine**: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB RAM, "
        f"{machine['os']}; load average at start {_load(machine['load_average_at_start'])}, "
        f"at end {_load(results['load_average_at_end'])} (other work shares this machine: see the spreads).",
        f"- **Software**: Python {machine['python']}, {packages}, "
        f"PostgreSQL {results['store']['server_version'] // 10000} (fsync on).",
        "- **Method**: every step runs in a fresh process, on deterministic stand-in users; times are "
        f"the median of up to {results['repeats']} runs, with the min-max spread and the number of "
        "runs in brackets; throughput = rows / median wall seconds of the step itself; ratios "
        "compare project and baseline measured side by side in this run. Details at the end.",
        "",
        "![throughput and peak memory versus N](benchmarks.png)",
        "",
        "## Summary",
        "",
        markdown_table(SUMMARY_HEADER, summary_rows(results)),
        "",
        _process_section(results),
        _store_section(results),
        _memory_section(results),
        _extract_section(results),
        _airflow_section(results),
        _object_store_section(results),
        _method(results),
    ]
    path.write_text("\n".join(parts))


def _load(values: list[float]) -> str:
    return " / ".join(f"{value:.1f}" for value in values)


def _process_section(results: dict) -> str:
    rows = [
        [
            f"{row['users']:,}",
            secs(row["project"]), rate(row["project"]["rows_per_second"]),
            f"{row['project']['cpu_seconds']:.2f} s",
            secs(row["baseline"]), rate(row["baseline"]["rows_per_second"]),
            f"{row['ratio']:.1f}x",
            {True: "yes", False: "**no**", None: "not checked"}[row.get("same_rows_as_baseline")],
        ]
        for row in results["process"]
    ]  # fmt: skip
    header = [
        "N",
        "project",
        "project rows/s",
        "project CPU",
        "json_normalize",
        "baseline rows/s",
        "ratio",
        "same rows",
    ]
    return "\n".join([
        "## 1. process: JSON pages → users.csv",
        "",
        "Project: `extract.read_pages_newest_first` + `process.write_users_csv` into "
        "`run_folder.open_for_atomic_write`, exactly as the process_user task calls them. Baseline: load "
        "every page, `pd.json_normalize`, select and rename the same columns, drop duplicate ids, "
        "`to_csv` (the same rows, checked one by one up to 100k, in API order).",
        "",
        markdown_table(header, rows),
        "",
    ])  # fmt: skip


def _store_section(results: dict) -> str:
    store = results["store"]
    rows = [
        [
            f"{row['users']:,}",
            secs(row["project"]), rate(row["project"]["rows_per_second"]),
            secs(row["baseline"]), rate(row["baseline"]["rows_per_second"]),
            f"{row['ratio']:.2f}x",
            f"{secs(row['copy_into_users_with_primary_key'])}, "
            f"{rate(row['copy_into_users_with_primary_key']['rows_per_second'])}",
        ]
        for row in store["empty"]
    ]  # fmt: skip
    header = [
        "N",
        "project",
        "project rows/s",
        "psql \\copy (plain)",
        "psql rows/s",
        "ratio",
        "psql \\copy into users (primary key)",
    ]
    changed = store["changed"]
    return "\n".join([
        "## 2. store: users.csv → users",
        "",
        "Project: `store.store_users_csv` (header check, COPY into a temporary table, duplicate "
        "check, UPDATE of changed users, INSERT of new ones, commit), as the store_user task calls it. "
        "Baseline: `psql \\copy` of the same CSV, same COPY options, into an empty plain table shaped "
        "like users without its primary key. For reference only, the last column: the same `\\copy` "
        "into an empty `users` with its primary key (what a plain COPY into the target costs; it "
        "cannot upsert).",
        "",
        markdown_table(header, rows),
        "",
        f"Into a `users` already holding {changed['users']:,} rows (vacuumed), the same batch with "
        f"{changed['rows_changed']:,} rows (10%) changed: {secs(changed['project'])}, "
        f"{rate(changed['project']['rows_per_second'])}, {changed['ratio']:.2f}x psql \\copy into an "
        f"empty plain table; {changed['updated']:,} updated, {changed['inserted']:,} inserted.",
        "",
    ])  # fmt: skip


def _memory_section(results: dict) -> str:
    store = {row["users"]: row for row in results["store"]["empty"]}
    extract = {row["users"]: row for row in default_extract(results)}
    rows = []
    for row in results["process"]:
        users = row["users"]
        rows.append([
            f"{users:,}",
            f"{mb(row['project']['peak_rss_mb'])} ({mb(row['project']['rss_before_mb'])})",
            f"{mb(store[users]['project']['peak_rss_mb'])} ({mb(store[users]['project']['rss_before_mb'])})",
            f"{mb(extract[users]['project']['peak_rss_mb'])}" if users in extract else "—",
            f"{mb(row['baseline']['peak_rss_mb'])} ({mb(row['baseline']['rss_before_mb'])})",
        ])  # fmt: skip
    header = [
        "N",
        "process: peak (before)",
        "store: peak (before)",
        "extract: peak",
        "json_normalize: peak (before)",
    ]
    return "\n".join([
        "## 3. Peak memory (RSS of the step's own process)",
        "",
        "Peak = the high-water mark of the step's own process (VmHWM; `ru_maxrss` would include the "
        "benchmark runner that started it); before = its RSS after the imports (airflow.sdk, pandas, "
        "psycopg), when the step starts. The project streams page by page and COPYs in 1 MB chunks: "
        "what grows with N is the set of user ids already written (16 bytes an id).",
        "",
        markdown_table(header, rows),
        "",
    ])  # fmt: skip


def default_extract(results: dict) -> list[dict]:
    """Extract rows as the DAG runs it: default requests in flight, no added latency."""
    return [
        row
        for row in results["extract"]
        if row["pages_in_flight"] == results["pages_in_flight_default"] and not row["added_latency_seconds"]
    ]


def _extract_section(results: dict) -> str:
    rows = [
        [
            f"{row['users']:,}", str(row["pages_in_flight"]), f"{row['added_latency_seconds']:g} s",
            secs(row["project"]),
            rate(row["project"]["rows_per_second"]), f"{row['project']['cpu_seconds']:.1f} s",
            mb(row["project"]["peak_rss_mb"]), "yes" if row["pages_identical_to_bench_input"] else "**no**",
        ]
        for row in results["extract"]
    ]  # fmt: skip
    header = [
        "N", "requests in flight", "added latency a page", "extract", "users/s", "extract CPU", "peak RSS",
        "pages identical",
    ]  # fmt: skip
    return "\n".join([
        "## 4. extract: stand-in API → page files",
        "",
        "`extract.extract_users` with an HttpHook on the stand-in API (a separate process, HTTP on "
        f"127.0.0.1), pages of {MAX_USERS_PER_PAGE}, validation and secret stripping included. The "
        "stand-in builds each page on one core, and the worker's CPU (parse, validate, write) is the "
        f"other half of each page: with {results['pages_in_flight_default']} requests in flight both "
        "sides can work at once, given a free core each. "
        "A remote API also takes time to answer: the rows with added latency make the stand-in wait "
        "that long before each page (sleeping, no CPU), as a remote API's response time would. The "
        "pages written are checked byte for byte against the benchmark's input pages.",
        "",
        markdown_table(header, rows),
        "",
    ])  # fmt: skip


def object_store_rows(results: dict) -> list[tuple[str, dict, dict]]:
    """(step, local disk, S3) for each step of the object store measure, then the three together."""
    measured = results.get("object_store")
    if not measured:
        return []
    steps = list(measured["local"])
    rows = [(step, measured["local"][step], measured["s3"][step]) for step in steps]
    together = {  # secs() shows it as one figure, with no spread: a sum of medians has none
        where: {"seconds": sum(measured[where][step]["seconds"] for step in steps), "sum_of_medians": True}
        for where in ("local", "s3")
    }
    return [*rows, (" + ".join(steps), together["local"], together["s3"])]


def _object_store_section(results: dict) -> str:
    measured = results.get("object_store")
    title = "## 6. The run folder on an object store"
    if not measured:
        return "\n".join([title, "", "Not measured in this run (--object-store-users 0).", ""])
    rows = [
        [
            step, secs(local), secs(on_s3), f"{on_s3['seconds'] / local['seconds']:.2f}x",
            mb(local["peak_rss_mb"]) if "peak_rss_mb" in local else "—",
            mb(on_s3["peak_rss_mb"]) if "peak_rss_mb" in on_s3 else "—",
        ]
        for step, local, on_s3 in object_store_rows(results)
    ]  # fmt: skip
    header = ["step", "local disk", "S3", "S3 / local", "peak RSS, local", "peak RSS, S3"]
    first_use = {
        where: max(measured[where][step]["run_folder_warm_up_seconds"] for step in measured[where])
        for where in ("local", "s3")
    }
    checks = {
        "the pages extracted are byte for byte the benchmark's input": (
            measured["pages_identical_to_bench_input"]
        ),
        "the pages and users.csv on S3 are byte for byte those on the disk": measured["s3_files_identical"],
        "both loads left the same rows in `users`": measured["same_rows_loaded"],
    }
    return "\n".join([
        title,
        "",
        f"extract, process and store of {measured['users']:,} users, each as its task runs it (the "
        "stand-in API, PostgreSQL with fsync on), with the run folder on the local disk and on an S3 "
        f"server: `rclone serve s3` ({measured['server']}) on 127.0.0.1, over a folder of the same "
        "disk, reached through the amazon provider and the connection `object_store`. Local and S3 "
        "alternate in each repeat. On S3 each file is written to a temporary local file, then uploaded "
        "(run_folder.open_for_atomic_write); each file read is downloaded as it is read. What it adds "
        "is the object store's own cost on this machine, without a network between: a store in "
        "another data centre adds its round trips and bandwidth on top.",
        "",
        markdown_table(header, rows),
        "",
        f"Not timed: reaching the store the first time in a task (the connection, a client, one request): "
        f"{first_use['s3']:.2f} s on S3, {first_use['local']:.3f} s on the disk, once per task whatever N.",
        "",
        *(f"- {check}: {'yes' if ok else '**no**'}" for check, ok in checks.items()),
        "",
    ])  # fmt: skip


def _airflow_section(results: dict) -> str:
    parts = ["## 5. Airflow: DAG parse time and `airflow dags test`", ""]
    rows = [
        [
            row["file"], ", ".join(f"{dag}: {count}" for dag, count in row["tasks"].items()),
            f"{row['seconds']['cold']:.3f} s", f"{row['floor_seconds']['cold']:.3f} s",
            f"{row['ratio']['cold']:.2f}x",
            f"{row['seconds']['after_sdk']:.3f} s", f"{row['floor_seconds']['after_sdk']:.3f} s",
            f"{row['seconds']['dag_processor']:.3f} s", f"{row['floor_seconds']['dag_processor']:.3f} s",
            f"{row['ratio']['dag_processor']:.1f}x",
        ]
        for row in results["parse"]
    ]  # fmt: skip
    header = [
        "file", "tasks", "cold", "one-task DAG, cold", "ratio",
        "after airflow.sdk", "one-task, after airflow.sdk",
        "dag-processor", "one-task, dag-processor", "ratio",
    ]  # fmt: skip
    parts += [
        f"Median of {results['parse'][0]['runs'] if results['parse'] else 0} fresh processes per file "
        "and way. Cold: a new interpreter imports airflow.sdk, then runs the file. After airflow.sdk: "
        "the file alone in that process (what tests/dags budgets). Dag-processor: the Airflow modules "
        "the file imports are loaded first, as the dag-processor does before forking each parser, "
        "then the file runs: the cost of every re-parse.",
        "",
        markdown_table(header, rows),
        "",
    ]
    dags_test = results.get("dags_test")
    if not dags_test:
        return "\n".join([*parts, "`airflow dags test`: skipped in this run (--skip-dags-test).", ""])
    real, noop, scale = dags_test["real"], dags_test["noop"], dags_test["scale"]
    parts += [
        f"`airflow dags test` (local_airflow: throwaway PostgreSQL, stand-in API), wall time of the CLI "
        f"process: user_processing with its default users **{real['wall_seconds']:.1f} s**, a DAG of "
        f"{dags_test['tasks']} no-op tasks run the same way **{noop['wall_seconds']:.1f} s** "
        f"({dags_test['ratio']:.2f}x). Inside the run: tasks {real['task_seconds']:.1f} s vs "
        f"{noop['task_seconds']:.1f} s, Airflow between tasks {real['between_tasks_seconds']:.1f} s vs "
        f"{noop['between_tasks_seconds']:.1f} s.",
        "",
    ]
    runs = [("default users", real), (f"{dags_test['tasks']} no-op tasks", noop)]
    if scale:
        runs.append((f"users={scale['conf']['users']:,}", scale))
    noop_tasks = noop["tasks"]
    table = []
    for index, task in enumerate(real["tasks"]):
        cells = [task["task_id"], _task_seconds(task)]
        if scale:
            scaled = {t["task_id"]: t for t in scale["tasks"]}.get(task["task_id"])
            cells.append(_task_seconds(scaled) if scaled else "—")
        noop_task = noop_tasks[index] if index < len(noop_tasks) else None
        cells += [noop_task["task_id"] if noop_task else "—", _task_seconds(noop_task) if noop_task else "—"]
        table.append(cells)
    totals = ["**whole CLI call (wall)**", f"**{real['wall_seconds']:.1f} s**"]
    if scale:
        totals.append(f"**{scale['wall_seconds']:.1f} s**")
    totals += ["", f"**{noop['wall_seconds']:.1f} s**"]
    table.append(totals)
    for label, key in (
        ("peak RSS, largest process", "peak_rss_mb"),
        ("peak RSS, all processes", "peak_rss_tree_mb"),
    ):
        peak = [label, mb(real[key])]
        if scale:
            peak.append(mb(scale[key]))
        peak += ["", mb(noop[key])]
        table.append(peak)
    header = ["user_processing task", "default users"]
    if scale:
        header.append(f"users={scale['conf']['users']:,}")
    header += ["no-op task", "seconds"]
    parts += [markdown_table(header, table), ""]
    return "\n".join(parts)


def _task_seconds(task: dict) -> str:
    seconds = task["seconds"]
    text = f"{seconds:.1f} s" if seconds is not None else "—"
    return text if task["state"] == "success" else f"{text} ({task['state']})"


METHOD = """## How it is measured

- **Input**: `template/standin_user_api` users for the seed the DAG uses on 2024-01-01, validated and
  stripped of secrets and written exactly as extract_user writes them (the extract benchmark checks
  this byte for byte); generated once into `.local/bench/` and reused.
- **Fresh processes**: each step (`template/bench/steps.py`) runs in a new interpreter, imports first, then
  the clock; its peak RSS is its own. The project steps call the project's own functions, never a
  copy.
- **PostgreSQL**: a throwaway local cluster (scripts/local_env.py) with fsync on; a CHECKPOINT
  before every timed load, so each starts from the same state; `psql \\copy` time is the psql
  process's wall time.
- **Noise**: the machine may be shared, so every time has its min-max spread over the repeats,
  and project and baseline alternate. Runs differ more than the spreads suggest (the naive baseline
  at 1M runs once; at 10k a load takes 50 ms, of which starting psql is a good part): run
  `make bench` twice before trusting a difference of less than a fifth.
- **Not timed**: interpreter start and imports, and the first ObjectStoragePath read of a process
  (it loads Airflow's plugins: {warm_up} here, once per task whatever N).
"""


def _method(results: dict) -> str:
    warm_ups = [
        row["project"]["object_storage_warm_up_seconds"]
        for row in results["process"]
        if "object_storage_warm_up_seconds" in row["project"]
    ]
    return METHOD.format(warm_up=f"{max(warm_ups):.1f} s" if warm_ups else "under a second")


def write_json(results: dict, path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def write_plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    process, store = results["process"], results["store"]["empty"]
    extract = default_extract(results)
    figure, (speed, memory) = plt.subplots(1, 2, figsize=(12, 4.8))
    series = [
        ("process: project", process, "project", "C0", "-"),
        ("process: json_normalize", process, "baseline", "C0", "--"),
        ("store: project", store, "project", "C1", "-"),
        ("store: psql \\copy", store, "baseline", "C1", "--"),
        ("extract: project", extract, "project", "C2", "-"),
    ]
    for label, rows, key, color, style in series:
        speed.plot(
            [row["users"] for row in rows], [row[key]["rows_per_second"] for row in rows],
            marker="o", color=color, linestyle=style, label=label,
        )  # fmt: skip
    for label, rows, key, color, style in series:
        if rows and "peak_rss_mb" in rows[0][key]:
            memory.plot(
                [row["users"] for row in rows], [row[key]["peak_rss_mb"] for row in rows],
                marker="o", color=color, linestyle=style, label=label,
            )  # fmt: skip
    measured = results.get("object_store")
    if measured:  # section 6, at its one N: each step (its colour) on the disk (+) and on S3 (x)
        for where, marker in (("local", "+"), ("s3", "x")):
            for step, color in (("process", "C0"), ("store", "C1"), ("extract", "C2")):
                speed.plot(
                    [measured["users"]], [measured[where][step]["rows_per_second"]],
                    marker=marker, markersize=10, color=color, linestyle="none",
                )  # fmt: skip
            label = "6. run folder on S3" if where == "s3" else "6. run folder on disk"
            speed.plot([], [], marker=marker, markersize=10, color="grey", linestyle="none", label=label)
    memory.axhline(
        MEMORY_TARGET_MB, color="grey", linewidth=0.8, linestyle=":", label=f"{MEMORY_TARGET_MB} MB target"
    )
    for axes, title, unit in ((speed, "Throughput", "rows / s"), (memory, "Peak memory (RSS)", "MB")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xticks(sizes, [f"{size:,}" for size in sizes])
        axes.set_xlabel("N (users)")
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(f"make bench: {results['machine']['short']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
