"""What every pipeline of this project shares; each pipeline's own logic has its own package.

- ``dag_defaults``: ``default_args(dag_id)``, what every DAG starts from (owner, retries, alert).
- ``settings``: how a DAG reads its options, from its own ``[dag_id]`` section of Airflow's config.
- ``project``: where things are (the repository, the dbt project), the warehouse connection's id
  and the ``users`` table.
- ``warehouse``: ``connect()``, the warehouse connection every task opens the same way.
- ``assets``: the Assets DAGs hand to each other (``users``).
- ``run_folder``: the folder one DAG run's tasks hand their files over through.
- ``alerts``: ``FailureAlert``, the on_failure_callback that reports a failed task once, without data.
- ``dbt_manifest``: keeps dbt_project/target/manifest.json in step with the dbt project.

Importing any of these is cheap (Airflow's SDK, PyYAML), so DAG files may import them at the top;
heavy libraries (psycopg, pandas) are imported inside the functions that need them.
"""
