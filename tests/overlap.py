"""Which task instances ran at the same time: for the checks that two dbt builds never overlap."""

from __future__ import annotations

from datetime import datetime
from itertools import combinations


def span(task_instance: dict) -> tuple[float, float]:
    """When a task instance (as the REST API returns it) started and ended, in seconds."""
    return _seconds(task_instance["start_date"]), _seconds(task_instance["end_date"])


def overlapping(task_instances: list[dict]) -> list[tuple[str, str]]:
    """Each pair of the task instances that ran at the same time, as "<run id> <task id>"."""
    named = [(f"{ti['dag_run_id']} {ti['task_id']}", *span(ti)) for ti in task_instances]
    return [
        (first, second)
        for (first, start, end), (second, other_start, other_end) in combinations(named, 2)
        if start < other_end and other_start < end
    ]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of the spans that were going on at one moment."""
    return max((sum(start <= moment < end for start, end in spans) for moment, _ in spans), default=0)


def _seconds(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
