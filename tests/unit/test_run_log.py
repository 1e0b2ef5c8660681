"""A failed run's output, read back: each failed task's own error lines (scripts/run_log.py)."""

from __future__ import annotations

from scripts.run_log import error_lines, explain, task_sections

# The shape of `airflow dags test` output around a dbt task that failed on an undefined macro,
# after a task that succeeded with an ERROR-looking tally (lines from a real run, trimmed).
OUTPUT = """\
[info     ] [DAG TEST] starting task_id=store_user map_index=-1 [airflow.sdk.definitions.dag]
[info     ] Done. PASS=3 WARN=0 ERROR=0 SKIP=0 TOTAL=3 [cosmos.operators.base]
[info     ] [DAG TEST] starting task_id=transform_users.stg_phones_model_build map_index=-1 [airflow.sdk]
[info     ] 1 of 3 START sql view model analytics.stg_phones ......... [RUN]
[info     ] 1 of 3 ERROR creating sql view model analytics.stg_phones ......... [ERROR in 0.03s]
[info     ] Failure in model stg_phones (models/staging/contact/phones/stg_phones.sql)
[info     ]   Compilation Error in model stg_phones (models/staging/contact/phones/stg_phones.sql)
[info     ]   'digits_only' is undefined. This can happen when calling a macro that does not exist.
[info     ] Done. PASS=0 WARN=0 ERROR=1 SKIP=2 NO-OP=0 TOTAL=3 [cosmos.operators.base]
[error    ] Task failed with exception     [task] loc=task_runner.py:1651
[info     ] [DAG TEST] starting task_id=transform_users.dim_users_model_build map_index=-1 [airflow.sdk]
[info     ] all good
"""


def test_the_output_is_split_by_task():
    sections = task_sections(OUTPUT)
    assert list(sections) == [
        "store_user",
        "transform_users.stg_phones_model_build",
        "transform_users.dim_users_model_build",
    ]
    assert sections["transform_users.dim_users_model_build"][-1].endswith("all good")


def test_a_failed_tasks_error_lines_hold_dbts_error_and_its_detail_and_no_tally():
    lines = error_lines(task_sections(OUTPUT)["transform_users.stg_phones_model_build"])
    assert any("'digits_only' is undefined" in line for line in lines)  # the line under the title
    assert any("Compilation Error in model stg_phones" in line for line in lines)
    assert any("Task failed with exception" in line for line in lines)
    assert not any(
        "ERROR=1" in line and "Done." in line for line in lines[:-1] if "ERROR creating" not in line
    )


def test_explain_names_each_failed_task():
    text = explain(OUTPUT, ["transform_users.stg_phones_model_build"])
    assert text.startswith("--- transform_users.stg_phones_model_build failed:")
    assert "all good" not in text
    assert "PASS=3" not in text
