"""The Airflow pools this project's tasks run in: each declared once, here, and created wherever
Airflow's database is made (airflow-init in docker-compose.yaml, make demo/shell/ui, the tests).

A task whose pool does not exist never runs: the scheduler leaves it waiting (and logs "Tasks using
non-existent pool"), so tests/dags/test_dag_integrity.py fails on a task in any pool not declared
here. Add yours to POOLS; `python -m include.common.pools` creates or updates them all.

- ``dbt``: every dbt task of every DAG (include/common/dbt_tasks.py). One slot: one dbt process
  against the warehouse at a time, so two builds of the same models never run at once, however
  runs overlap (a backfill beside the scheduled run, several DAGs building dbt, max_active_runs
  above 1). The others wait their turn in the queue. A slot more would let two builds of the same
  tables collide again (`relation "stg_users" already exists`).

    python -m include.common.pools    # what airflow-init and scripts/local_env.py run
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Pool:
    name: str
    slots: int
    description: str


DBT_POOL = Pool(
    "dbt",
    slots=1,
    description="dbt tasks, one at a time: two builds of the same models must never run at once "
    "(include/common/pools.py)",
)
POOLS = (DBT_POOL,)
DEFAULT_POOL = "default_pool"  # Airflow's own, for every task that names none


def create_pools() -> None:
    """Create each pool of POOLS in Airflow's database, or set its slots and description if it exists."""
    from airflow.models.pool import Pool as AirflowPool  # Airflow's ORM: not needed to declare them

    for pool in POOLS:
        AirflowPool.create_or_update_pool(
            name=pool.name, slots=pool.slots, description=pool.description, include_deferred=False
        )


def main() -> int:
    create_pools()
    print(f"Airflow pools: {', '.join(f'{pool.name} ({pool.slots} slot(s))' for pool in POOLS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
