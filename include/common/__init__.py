"""What every pipeline of this project shares; each pipeline's own logic has its own package.

- ``dag_defaults``: ``default_args(dag_id)``, what every DAG starts from (owner, retries, alert).
- ``settings``: how a DAG reads its options, from its own ``[dag_id]`` section of Airflow's config.
- ``project``: where things are (the repository, the dbt project, the schemas), the warehouse
  connection's id.
- ``warehouse``: ``connect()``, the warehouse connection every task opens the same way.
- ``assets``: the Assets DAGs hand to each other (a loaded table's, each dbt model's), named after the data.
- ``run_folder``: the folder one DAG run's tasks hand their files over through.
- ``alerts``: ``FailureAlert``, the on_failure_callback that reports a failed task once, without data.
- ``pools``: the Airflow pools tasks run in (``dbt``), declared once and created with the database.
- ``dbt_tasks``: ``dbt_task_group(select)``, a DAG's dbt models as tasks, in the project's ``[dbt] mode``;
  ``dbt_selection`` resolves the selection, ``dbt_build`` is the build mode's one task.
- ``dbt_manifest``: keeps dbt_project/target/manifest.json in step with the dbt project.

Importing any of these is cheap (Airflow's SDK, PyYAML, Cosmos' configs), so DAG files may import them
at the top; heavy libraries (psycopg, pandas) are imported inside the functions that need them.
"""
