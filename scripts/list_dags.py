"""The DAGs of the DAG folder, as JSON: {dag_id: its first task}, the DAGs scheduled on Assets after
the others, so that running them in this order (make demo) gives each its Assets' updates first.

Run in a local Airflow's environment (LocalAirflow.dags): it parses the folder that environment
names. A DAG file that does not import is an error, named with the file.
"""

from __future__ import annotations

import json
import sys


def main() -> int | str:
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag()  # [core] dags_folder
    if dagbag.import_errors:
        return "\n".join(f"{path}:\n{error}" for path, error in dagbag.import_errors.items())
    on_assets = {dag.dag_id for dag in dagbag.dags.values() if hasattr(dag.timetable, "asset_condition")}
    ordered = sorted(dagbag.dags.values(), key=lambda dag: (dag.dag_id in on_assets, dag.dag_id))
    print(json.dumps({dag.dag_id: min(task.task_id for task in dag.roots) for dag in ordered}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
