"""What every pipeline of this project shares; each pipeline's own logic has its own package.

- ``project``: where things are (the repository, SQL, the dbt project) and the warehouse connection.
- ``run_folder``: the folder one DAG run's tasks hand their files over through.
- ``alerts``: ``FailureAlert``, the on_failure_callback that reports a failed task once, without data.

Importing any of these is cheap (Airflow's SDK only), so DAG files may import them at the top.
"""
