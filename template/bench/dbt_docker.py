"""The dbt part on the Docker stack (CeleryExecutor), with one worker and with two, on a generated project.

    .venv/bin/python -m template.bench.run --only dbt --dbt-sizes 50 --dbt-docker 50

The unmodified docker-compose.yaml and Dockerfile, on a scratch copy of the checkout (as
`make test-docker` runs them: template/tests/docker/), with the generated project of N models
(template/bench/dbt_projects.py) in place of dbt_project/ and the stand-in API. For each worker count, a
user_processing run of USERS users is triggered through the REST API; the figure is its dbt task
group's wall time, read from its task instances (first start to last end), with the models'
schema dropped before the run so every model is built from nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime

from scripts.airflow_api import AirflowApi
from template.bench import dbt_projects
from template.tests.docker.conftest import base_image_names
from template.tests.docker.engine import DockerEngine
from template.tests.docker.images import provide
from template.tests.docker.project import ComposeProject, remove_leftovers

USERS = 10_000
WORKERS = (1, 2)
SETTINGS = {"AIRFLOW_CONN_USER_API": "http://user-api:8000", "COMPOSE_PROFILES": "standin"}
RUN_TIMEOUT_SECONDS = 3600


def bench_docker(models: int, progress: Callable[[str], None]) -> dict:
    engine = DockerEngine.start(progress)
    project: ComposeProject | None = None
    try:
        remove_leftovers(engine, progress)
        project = ComposeProject.copy_of_checkout(engine)
        subprocess.run(["make", "env"], cwd=project.folder, capture_output=True, check=True)
        project.set_dotenv(SETTINGS)
        generated = dbt_projects.generate(models)
        shutil.rmtree(project.folder / "dbt_project")
        built = shutil.ignore_patterns("target", "logs", "dbt_packages")
        shutil.copytree(generated, project.folder / "dbt_project", ignore=built)
        provide(engine, base_image_names(project), project.folder, progress)
        progress(f"dbt on Docker, {models} models: docker compose build, up -d --wait")
        project.compose("build", timeout=1800)
        project.compose("up", "-d", "--wait", "--wait-timeout", "900", timeout=960)
        api = login(project)
        api.wait_for_dag("user_processing", timeout=600)
        api.request("PATCH", "/api/v2/dags/user_processing", {"is_paused": False})
        results = {}
        for day, workers in enumerate(WORKERS, start=1):
            if workers > 1:
                project.compose("up", "-d", "--wait", "--scale", f"airflow-worker={workers}", timeout=960)
            project.compose(
                "exec",
                "-T",
                "warehouse",
                "psql",
                "-U",
                "warehouse",
                "-c",
                "DROP SCHEMA IF EXISTS analytics CASCADE",
            )
            progress(f"dbt on Docker, {models} models, {workers} worker(s): a run of {USERS:,} users")
            run_id = api.trigger("user_processing", f"2024-03-{day:02d}T00:00:00+00:00", {"users": USERS})
            state = api.wait_for_run("user_processing", run_id, timeout=RUN_TIMEOUT_SECONDS)
            if state != "success":
                raise RuntimeError(f"the run on {workers} worker(s) ended {state}: {project.logs(40)}")
            results[str(workers)] = group_timing(api, run_id)
            progress(
                f"dbt on Docker, {workers} worker(s): dbt group {results[str(workers)]['wall_seconds']:.1f} s"
            )
        return {"models": models, "users": USERS, "workers": results}
    finally:
        if project is not None:
            project.remove()
        engine.stop()


def login(project: ComposeProject) -> AirflowApi:
    address = project.compose("port", "airflow-apiserver", "8080").stdout.strip()
    env = project.dotenv()
    return AirflowApi(f"http://{address}").login(
        env["_AIRFLOW_WWW_USER_USERNAME"], env["_AIRFLOW_WWW_USER_PASSWORD"]
    )


def group_timing(api: AirflowApi, run_id: str) -> dict:
    tasks = [
        ti
        for ti in api.task_instances("user_processing", run_id)
        if ti["task_id"].startswith("transform_users.")
    ]
    starts = [_time(ti["start_date"]) for ti in tasks]
    ends = [_time(ti["end_date"]) for ti in tasks]
    return {"wall_seconds": max(ends) - min(starts), "task_count": len(tasks)}


def _time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
