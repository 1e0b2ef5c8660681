"""default_args every DAG of this project starts from: an owner, retries and a failure alert.

    @dag(..., default_args=default_args("my_dag"))

Each value can be tuned per DAG in its settings section (include/common/settings.py):
`[my_dag] retries`, `retry_delay` (seconds; it doubles with each retry) and `task_timeout` (seconds),
e.g. AIRFLOW__MY_DAG__RETRY_DELAY=120 in airflow.env. Pass more keys to add or override them.
"""

from __future__ import annotations

from typing import Any

from include.common.alerts import FailureAlert
from include.common.settings import integer, seconds

OWNER = "data-engineering"


def default_args(section: str, **more: Any) -> dict[str, Any]:
    return {
        "owner": OWNER,
        "retries": integer(section, "retries", 2),
        "retry_delay": seconds(section, "retry_delay", 60),
        "retry_exponential_backoff": True,
        "execution_timeout": seconds(section, "task_timeout", 60 * 60),
        "on_failure_callback": FailureAlert(),  # once per task, after its last attempt
        **more,
    }
