"""Did every dbt test of the project run? The manifest's tests against those a run's log reports.

A test that runs in no Airflow task fails nothing and shows nowhere: this makes it fail. dbt reports
each test it ran with its result (PASS, WARN, FAIL, ERROR) and name; the log of a DAG run (the
output of `airflow dags test`, or its task logs) holds those lines whichever way Cosmos runs dbt.

    python -m scripts.dbt_coverage LOG [MANIFEST]    # exit 1 and the names of the tests that never ran

make demo and the tests use it on every run of the DAG.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from include.common.project import DBT_PROJECT_DIR

# "3 of 12 PASS not_null_stg_users_user_id ........ [PASS in 0.05s]", "WARN 2 accepted_values_...",
# a unit test: "PASS stg_users::trims_names ...". A long name fills the line, without dots.
RESULT = re.compile(r"\b(?:PASS|WARN|FAIL|ERROR)(?: \d+)? ([\w.:-]+) +(?:\.+ +)?\[")


def tests_in(manifest: dict) -> set[str]:
    """The names dbt reports the project's data tests and unit tests by."""
    data_tests = {node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "test"}
    unit_tests = {f"{test['model']}::{test['name']}" for test in manifest.get("unit_tests", {}).values()}
    return data_tests | unit_tests


def tests_reported(log: str) -> set[str]:
    return set(RESULT.findall(log))


def tests_not_run(log: str, manifest: dict) -> set[str]:
    """The project's tests no line of `log` reports a result for."""
    return tests_in(manifest) - tests_reported(log)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return 2
    log = Path(argv[0]).read_text(errors="replace")
    manifest_path = Path(argv[1]) if len(argv) > 1 else DBT_PROJECT_DIR / "target" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    missing = tests_not_run(log, manifest)
    total = len(tests_in(manifest))
    if missing:
        print(f"{len(missing)} of {total} dbt tests never ran:\n  " + "\n  ".join(sorted(missing)))
        return 1
    print(f"all {total} dbt tests ran")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
