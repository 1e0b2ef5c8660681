"""The output of `airflow dags test`, read back when the run failed: each failed task's own error.

`airflow dags test` runs every task in its own process and prints all their logs to one stream, tens
of thousands of lines with dbt's; the error of the task that failed is easy to miss in it. This
keeps that stream in a file, splits it by task, and picks each failed task's error lines (Python's
exception, dbt's "Compilation Error in model ..." with the line under it, "Failure in test ...").

    python -m scripts.run_log LOG TASK [TASK ...]    # the error lines of those tasks in a saved log
    python -m scripts.run_log dags-test DAG_ID DATE [OPTIONS]    # `airflow dags test`, explained

The second form is `make shell`'s `dags-test` (and what make demo does): it runs `airflow dags test`
with the output on your terminal as usual, keeps it in .local/logs/, and when the run failed prints
each failed task's error lines and where the whole log is.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from scripts.local_env import LOCAL_DIR

LOGS_DIR = LOCAL_DIR / "logs"  # kept after make demo ends (git-ignored, like all of .local/)
TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
# dbt's and Python's words for what went wrong; not dbt's "ERROR=0" tallies.
ERROR = re.compile(r"(?<![\w=])(error|exception|traceback|failure in|failed|refused)(?![=\w])", re.I)
DETAIL_AFTER = re.compile(r"(Error|Failure) in (model|test|seed|snapshot|macro|unit_test|sql)\b")
MAX_LINES = 30


def save(output: str, name: str) -> Path:
    """Keep a run's whole output under .local/logs/, where it stays after the run's services are gone."""
    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    path = LOGS_DIR / f"{name}.log"
    path.write_text(output, encoding="utf-8")
    return path


def task_sections(output: str) -> dict[str, list[str]]:
    """Each task's lines (all its tries, in order), from `dags test`'s "starting task_id=" markers."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if match := TASK_START.search(line):
            current = sections.setdefault(match[1], [])
        if current is not None:
            current.append(line)
    return sections


def error_lines(lines: list[str]) -> list[str]:
    """The lines that say what went wrong, each once, with the line dbt puts under its error title."""
    picked: list[str] = []
    for index, line in enumerate(lines):
        if ERROR.search(line) or (index and DETAIL_AFTER.search(lines[index - 1])):
            text = line.strip()
            if text and text not in picked:
                picked.append(text)
    return picked[-MAX_LINES:]


def explain(output: str, failed_tasks: list[str]) -> str:
    """Each failed task's error lines, for printing."""
    sections = task_sections(output)
    parts = []
    for task in failed_tasks:
        found = error_lines(sections.get(task, []))
        parts.append(f"--- {task} failed:\n" + ("\n".join(found) if found else "(no error lines found)"))
    return "\n\n".join(parts)


FAILED_TASKS = "SELECT task_id FROM task_instance WHERE dag_id = %s AND run_id = %s AND state = 'failed'"
LATEST_RUN = "SELECT run_id FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1"


def failed_tasks(metadata_uri: str, dag_id: str) -> list[str]:
    """The failed tasks of the DAG's latest run, from Airflow's metadata database."""
    import psycopg

    with psycopg.connect(metadata_uri) as conn:
        (run_id,) = conn.execute(LATEST_RUN, (dag_id,)).fetchone() or (None,)
        return [row[0] for row in conn.execute(FAILED_TASKS, (dag_id, run_id)).fetchall()]


def report_failure(output: str, dag_id: str, metadata_uri: str, name: str) -> str:
    """Keep a failed run's output under LOGS_DIR, print each failed task's error lines; returns the
    line that says which tasks failed and where the whole log is."""
    log = save(output, name)
    tasks = failed_tasks(metadata_uri, dag_id)
    print(explain(output, tasks) if tasks else output[-4000:])
    failed = ", ".join(tasks) or "no task failed"
    return f"\nairflow dags test {dag_id} failed ({failed}): the whole log is {log}"


def dags_test(dag_id: str, *args: str) -> int:
    """`airflow dags test DAG_ID ARGS` with its output teed to memory; on failure, report_failure."""
    import os
    import subprocess

    command = ["airflow", "dags", "test", dag_id, *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if process.wait() == 0:
        return 0
    metadata_uri = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "")
    name = "-".join([dag_id, *(arg for arg in args if not arg.startswith("-"))])[:80]
    print(report_failure("".join(lines), dag_id, metadata_uri, name))
    return process.returncode


def main(argv: list[str]) -> int:
    if argv[:1] == ["dags-test"] and len(argv) >= 2:
        return dags_test(*argv[1:])
    if len(argv) < 2:
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return 2
    print(explain(Path(argv[0]).read_text(errors="replace"), argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
