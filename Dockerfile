# The project image for docker-compose.yaml (`build: .`): the official Airflow 3.3.2 image on Python 3.11
# (the Python the lock files are resolved for), plus exactly the pinned packages the local setup installs,
# and dbt in its own virtualenv. The code is not copied in: compose mounts dags/, include/ and
# dbt_project/ at /opt/airflow, the project root. tests/stack/test_compose_static.py checks this file.
FROM apache/airflow:3.3.2-python3.11

# The lock files `make install` reads. To add a package: requirements/airflow.in, `make lock`, rebuild.
COPY --chown=airflow:0 requirements/airflow.txt requirements/dbt.txt /requirements/

# Every package of the lock at its pinned version, on top of the image's own Airflow and providers (the
# lock pins the same apache-airflow 3.3.2). uv ships with the official image; compiled bytecode keeps DAG
# parsing and CLI start-up fast. `uv pip check` fails the build when the lock and a package the image
# already had disagree, instead of leaving a broken import for the first task to find.
RUN uv pip install --no-cache --compile-bytecode -r /requirements/airflow.txt \
    && uv pip check

# dbt in its own virtualenv, so its pins never fight Airflow's, at <project root>/.venv-dbt as in a
# local checkout: Cosmos runs /opt/airflow/.venv-dbt/bin/dbt.
RUN uv venv --python "$(command -v python)" /opt/airflow/.venv-dbt \
    && uv pip sync --no-cache --compile-bytecode --python /opt/airflow/.venv-dbt/bin/python /requirements/dbt.txt \
    && uv pip check --python /opt/airflow/.venv-dbt/bin/python

# DAGs import the project's own code (`import include...`) from the project root, as they do locally.
ENV PYTHONPATH=/opt/airflow

# The `run-folders` volume starts with this folder's owner and mode: writable by any AIRFLOW_UID in
# group 0.
RUN mkdir -p /opt/airflow/run-folders && chmod 775 /opt/airflow/run-folders
