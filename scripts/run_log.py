"""The output of `airflow dags test`, read back when the run failed: each failed task's own error.

`airflow dags test` runs every task in its own process and prints all their logs to one stream, tens
of thousands of lines with dbt's; the error of the task that failed is easy to miss in it. This
keeps that stream in a file, splits it by task, and picks each failed task's error lines (Python's
exception, dbt's "Compilation Error in model ..." with the line under it, "Failure in test ...").

    python -m scripts.run_log LOG TASK [TASK ...]    # the error lines of those tasks in a saved log
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


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return 2
    print(explain(Path(argv[0]).read_text(errors="replace"), argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
