"""Run `airflow dags test DAG_ID DATE` for several dates in ONE process.

The same CLI code path as the command, minus ~8 s of start-up per date: used where a test needs many
runs (a backfill of 7 days, twice). Prints one JSON line: {"<date>": "success" | "failed", ...}.

    python tests/dags_test_many.py user_processing 2024-08-01 2024-08-02 ... [-- `airflow dags test` args]
"""

from __future__ import annotations

import json
import sys

from airflow.cli.cli_parser import get_parser


def main(argv: list[str]) -> int:
    dag_id, argv = argv[0], argv[1:]
    dates, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = get_parser()
    outcome = {}
    for date in dates:
        args = parser.parse_args(["dags", "test", dag_id, date, *extra])
        try:
            args.func(args)
            outcome[date] = "success"
        except SystemExit:  # what `airflow dags test` raises for a failed run
            outcome[date] = "failed"
    print(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
