"""What happens when a task fails for good: one alert, with no data in it.

`FailureAlert` is an Airflow notifier used as `on_failure_callback`: Airflow calls it once, after the
last retry, not on every attempt. It names the DAG, task, run, attempt, the error's type and the log
link, and never the error's message: messages can quote the data (a COPY error quotes the bad value,
a name, an email), and alerts travel to places logs do not. Swap it for a chat or e-mail notifier
from a provider (e.g. SlackNotifier) with the same fields.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier


class FailureAlert(BaseNotifier):
    def notify(self, context: Any) -> None:
        self.log.error(alert_message(context))


def alert_message(context: Any) -> str:
    ti = context["ti"]
    error = context.get("exception")
    return (
        f"ALERT {ti.dag_id}.{ti.task_id} failed: run={ti.run_id} try={ti.try_number}"
        f" error={type(error).__name__ if error else 'unknown'} log={ti.log_url}"
    )
