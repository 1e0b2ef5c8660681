"""`make bench`: the pipeline's own code, timed side by side with naive baselines.

Run it with `make bench` (or `.venv/bin/python -m template.bench.run --help`). It writes docs/benchmarks.md,
docs/benchmarks.json and docs/benchmarks.png, and docs/benchmarks-dbt.* for dbt. Modules, in the
order the run uses them:

- ``machine``: what the numbers were measured on (CPU, cores, versions).
- ``inputs``: deterministic stand-in pages, generated once and cached under .local/bench/.
- ``steps``: one measured step per fresh subprocess (the project's functions, or a baseline).
- ``measure``: runs a step in its own process and collects its timing and peak memory.
- ``pipeline``: process, store and extract at each N, against their baselines.
- ``airflow_floor``: DAG parse time and `airflow dags test`, against a no-op DAG (Airflow's floor).
- ``report``: the console table, the markdown and JSON files and the plot.
- ``dbt_scaling``: the dbt task group in each mode, on projects ``dbt_projects`` generates (5 to 200
  models) and template/bench/dbt_dag/ renders, against one `dbt build`; ``dbt_report`` writes
  docs/benchmarks-dbt.*.
"""

import os

from scripts.local_env import LOCAL_DIR

# Airflow reads its configuration on first import: the benchmarks get their own home, never ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", str(LOCAL_DIR / "bench" / "airflow-home"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
