# The project image: the official Airflow 3.3.2 image on Python 3.11 (the Python the lock files are
# resolved for), plus exactly the pinned packages the local setup installs, dbt in its own virtualenv,
# and the project itself: dags/, include/ and dbt_project/ with its dbt packages and manifest, built
# here, once. `make image` builds it as what you deploy, tagged with the code in it; docker-compose.yaml
# builds it too, and mounts your checkout over the project for development (docs/docker.md).
# template/tests/stack/test_compose_static.py checks this file, template/tests/docker/test_image.py the image it builds.
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

# The project, from here on: every layer above is reused when only the code changes. Owned by root and
# read-only to the user the containers run as (any uid in group 0): Airflow only reads it.
USER root

# dbt's packages and manifest (Cosmos renders the dbt tasks from dbt_project/target/manifest.json), built
# here with what airflow-init runs: include/common/dbt_manifest.py and the module it imports, copied
# first, so that a change to dags/ or include/ does not install the dbt packages or parse again.
COPY include/__init__.py /opt/airflow/include/
COPY include/common/__init__.py include/common/project.py include/common/dbt_manifest.py /opt/airflow/include/common/
COPY dbt_project/ /opt/airflow/dbt_project/
# Only the manifest, its fingerprint and dbt's partial-parse file stay in target/: with them, parsing
# the DAG in a container only hashes the project's files and never starts dbt.
RUN python -m include.common.dbt_manifest /opt/airflow/dbt_project \
    && find /opt/airflow/dbt_project/target -mindepth 1 -maxdepth 1 \
        \! -name manifest.json \! -name manifest.inputs \! -name partial_parse.msgpack -exec rm -rf {} +

COPY include/ /opt/airflow/include/
COPY dags/ /opt/airflow/dags/
# Bytecode compiled here, since the containers cannot write __pycache__. All of it root's (dags/ was
# the image user's), with no write bit for group 0 or others, whatever the modes in your checkout.
RUN python -m compileall -q /opt/airflow/dags /opt/airflow/include \
    && chown -R root:root /opt/airflow/dags /opt/airflow/include /opt/airflow/dbt_project \
    && chmod -R go-w,a+rX /opt/airflow/dags /opt/airflow/include /opt/airflow/dbt_project

USER 50000
