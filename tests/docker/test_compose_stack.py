"""The compose stack on a real Docker engine, used as a user would, in file order (conftest.py sets it up).

The tests share one stack and run in order: the first run on one worker, then two workers, then a
restart during a run, then the README's own commands; the last one takes the stack down.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.user_processing.extract import seed_for
from include.user_processing.settings import DEFAULT_USERS_PER_RUN
from include.user_processing.user_api import page_sizes
from scripts.airflow_api import AirflowApi
from scripts.make_env import GENERATED
from scripts.standin_user_api import generate_page
from tests.docker.conftest import USER_PASSWORD, USER_SETTINGS, say
from tests.docker.project import ComposeProject
from tests.stack.compose import SECRETS_BY_SERVICE, secrets_in

pytestmark = pytest.mark.docker

DAG_ID = "user_processing"
USERS = 300  # a few hundred users: more than one page would be slow here, and proves nothing more
PARSE_TIMEOUT = 180  # seconds until the dag-processor has the DAG in the database
RUN_TIMEOUT = 900  # seconds for one run, dbt tasks included (a restart can add a retry)
SECRET_NAMES = sorted(set(GENERATED) - {"AIRFLOW_UID"})
README = Path(__file__).resolve().parents[2] / "README.md"
# The second run's run folder, as each worker sees it.
SECOND_RUN_FOLDER = "/opt/airflow/run-folders/user_processing/logical_date=20240102T000000"
# The tasks that write and read the run's files and load the users: the restart hits one of them.
DATA_TASKS = ("extract_user", "process_user", "store_user")


def test_the_base_images_are_the_ones_the_files_name_pulled_or_stood_in(base_images):
    names = {image.name for image in base_images}
    assert names == {"apache/airflow:3.3.2-python3.11", "postgres:16", "redis:7.2-bookworm"}
    assert all(image.origin for image in base_images)


def test_every_service_is_healthy_and_airflow_init_completed(stack: ComposeProject):
    containers = {c["Service"]: c for c in stack.containers()}
    assert set(containers) == set(SECRETS_BY_SERVICE) - {"airflow-cli"}  # every service of the profiles used
    init = containers.pop("airflow-init")
    assert (init["State"], init["ExitCode"]) == ("exited", 0)
    unhealthy = {
        name: (c["State"], c["Health"]) for name, c in containers.items() if c["Health"] != "healthy"
    }
    assert not unhealthy, unhealthy


def test_every_published_port_binds_127_0_0_1_only(stack: ComposeProject):
    published = {}
    for container in stack.containers():
        for port in container.get("Publishers") or []:
            if port.get("PublishedPort"):
                published[(container["Service"], port["TargetPort"])] = port["URL"]
        mappings = stack.engine.docker("port", container["ID"]).stdout.splitlines()
        for mapping in mappings:  # e.g. "8080/tcp -> 127.0.0.1:8080"
            target, _, host = mapping.partition(" -> ")
            published[(container["Service"], int(target.split("/")[0]))] = host.rsplit(":", 1)[0]
    say_ports = ", ".join(f"{service}:{port} on {url}" for (service, port), url in sorted(published.items()))
    assert {("airflow-apiserver", 8080), ("flower", 5555), ("warehouse", 5432)} == set(published), say_ports
    assert set(published.values()) == {"127.0.0.1"}, say_ports


def test_each_service_gets_only_the_secrets_it_needs(stack: ComposeProject):
    generated = {name: stack.dotenv()[name] for name in SECRET_NAMES}
    seen = {}
    for container in stack.containers():
        environment = container_environment(stack, container["ID"])
        seen[container["Service"]] = secrets_in(environment, generated)
    expected = {service: set(SECRETS_BY_SERVICE[service]) for service in seen}
    assert seen == expected


def test_your_own_settings_reach_every_airflow_component_and_nothing_else(stack: ComposeProject):
    components = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker"}
    components |= {"airflow-triggerer", "airflow-init"}
    seen = {}
    for container in stack.containers():
        environment = container_environment(stack, container["ID"])
        seen[container["Service"]] = {key: environment.get(key) for key in USER_SETTINGS}
    for service, settings in seen.items():
        expected = USER_SETTINGS if service in components else dict.fromkeys(USER_SETTINGS)
        assert settings == expected, service
    # Airflow itself reads them: the variable, as a task would.
    greeting = stack.compose("exec", "-T", "airflow-worker", "airflow", "variables", "get", "greeting")
    assert greeting.stdout.strip() == USER_SETTINGS["AIRFLOW_VAR_GREETING"]


def container_environment(stack: ComposeProject, container_id: str) -> dict[str, str]:
    lines = stack.engine.docker(
        "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", container_id
    ).stdout.splitlines()
    return dict(line.partition("=")[::2] for line in lines)


def test_a_triggered_run_loads_exactly_the_users_the_api_served(stack: ComposeProject, api: AirflowApi):
    api.wait_for_dag(DAG_ID, PARSE_TIMEOUT)
    # Today's midnight: the run the scheduler would create itself once the DAG is unpaused, so
    # unpausing adds no second run. Triggered while paused, it starts once unpaused.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    run_id = api.trigger(DAG_ID, today.isoformat(), {"users": USERS})
    api.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    assert_run_succeeds(stack, api, run_id)
    assert warehouse_users(stack) == served_users(api)


def test_two_workers_share_a_runs_tasks_through_the_run_folders_volume(
    stack: ComposeProject, api: AirflowApi
):
    started = time.monotonic()
    stack.compose("up", "-d", "--scale", "airflow-worker=2", timeout=600)
    say(f"docker compose up -d --scale airflow-worker=2: {time.monotonic() - started:.0f} s")
    workers = [c["ID"] for c in stack.containers() if c["Service"] == "airflow-worker"]
    assert len(workers) == 2
    hostnames = {
        stack.engine.docker("inspect", "--format", "{{.Config.Hostname}}", worker).stdout.strip()
        for worker in workers
    }
    wait_until_consuming(stack, hostnames)
    say(f"second worker consuming {time.monotonic() - started:.0f} s after up --scale")
    run_id = api.trigger(DAG_ID, "2024-01-02T00:00:00+00:00", {"users": USERS})
    task_instances = assert_run_succeeds(stack, api, run_id)
    ran_on = {ti["hostname"] for ti in task_instances}
    assert ran_on == hostnames, f"task instances ran on {ran_on}, the workers are {hostnames}"
    # Both workers see the same files in the run folder: one volume, not two disks.
    listings = [
        stack.compose(
            "exec", "-T", "--index", str(index), "airflow-worker", "ls", "-l", SECOND_RUN_FOLDER
        ).stdout
        for index in (1, 2)
    ]
    assert listings[0] == listings[1]
    assert "users.csv" in listings[0]
    assert warehouse_users(stack) == served_users(api)


def test_a_restart_during_a_run_loses_and_duplicates_nothing(stack: ComposeProject, api: AirflowApi):
    run_id = api.trigger(DAG_ID, "2024-01-03T00:00:00+00:00", {"users": USERS})
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:  # until the files are being written or loaded
        states = {ti["task_id"]: ti["state"] for ti in api.task_instances(DAG_ID, run_id)}
        if any(states.get(task) in ("running", "success") for task in DATA_TASKS):
            break
        assert time.monotonic() < deadline, f"no data task of the run started: {states}"
        time.sleep(0.2)
    started = time.monotonic()
    stack.compose("restart", "airflow-scheduler", "airflow-worker", timeout=300)
    moment = {task: states.get(task) for task in DATA_TASKS}
    say(f"restarted scheduler and workers at {moment}: {time.monotonic() - started:.0f} s")
    assert_run_succeeds(stack, api, run_id)
    assert warehouse_users(stack) == served_users(api)
    rows, ids = warehouse(stack, "SELECT count(*), count(DISTINCT user_id) FROM users")[0]
    assert rows == ids


def test_the_readme_course_commands_work_as_written(stack: ComposeProject):
    commands = readme_commands("docker compose exec ")
    assert any("airflow tasks test" in c for c in commands), commands
    # Else the scheduler also runs the rest of the temporary run that `tasks test` creates, and
    # can deadlock with its deletion (seen here: `deadlock detected` deleting from dag_run).
    assert "dags pause" in commands[0], commands
    assert any("psql" in c for c in commands), commands
    for command in commands:
        result = stack.shell(command)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command}\n{output[-3000:]}"
        if "airflow tasks test" in command:
            # `airflow tasks test` exits 0 even when the task fails: its final state says.
            states = re.findall(r"new_state=(\w+)", output)
            assert states[-1:] == ["success"], f"{command}\n{output[-3000:]}"
        if "psql" in command:
            assert re.search(r"^\(\d+ rows?\)$", result.stdout, re.M), f"{command}\n{output}"


def test_the_task_logs_hold_no_secret_even_at_debug_level(stack: ComposeProject, api: AirflowApi):
    logs = sorted((stack.folder / "logs" / f"dag_id={DAG_ID}").rglob("*.log"))
    assert logs, "no task logs were written"
    text = "\n".join(log.read_text(errors="replace") for log in logs)
    assert '"level":"debug"' in text.replace(" ", ""), "the task logs are not at DEBUG level"
    text += stack.compose("logs", "--no-color").stdout  # every service's own output too
    generated = stack.dotenv()
    leaked = [name for name in SECRET_NAMES if generated[name] in text]
    assert not leaked, "\n".join(_context(text, generated[name]) for name in leaked)
    # The password of the connection in airflow.env: the user's own secrets stay out as well.
    assert USER_PASSWORD not in text, _context(text, USER_PASSWORD)
    for user in served_logins(api):
        for field in ("salt", "sha256"):
            assert user[field] not in text, _context(text, user[field])


def test_a_failing_dbt_parse_fails_airflow_init_with_a_clear_message(stack: ComposeProject):
    broken = stack.folder / "dbt_project" / "models" / "staging" / "broken.sql"
    broken.write_text("select * from {{ ref('no_such_model') }}\n")
    try:
        # The real init script; only its migration and user creation are skipped (both done already).
        skip = ("-e", "_AIRFLOW_DB_MIGRATE=", "-e", "_AIRFLOW_WWW_USER_CREATE=")
        result = stack.compose("run", "--rm", *skip, "airflow-init", check=False, timeout=600)
    finally:
        broken.unlink()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "ERROR!!!: dbt parse failed" in output, output[-3000:]
    assert "no_such_model" in output, output[-3000:]


def test_an_admin_password_starting_with_a_dash_fails_airflow_init_with_a_clear_message(
    stack: ComposeProject,
):
    # The entrypoint would pass it to `airflow users create --password` as an option and create no admin.
    password = ("-e", "_AIRFLOW_WWW_USER_PASSWORD=-starts-with-a-dash")
    result = stack.compose("run", "--rm", *password, "airflow-init", check=False, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert 'ERROR!!!: _AIRFLOW_WWW_USER_PASSWORD in .env starts with "-"' in output, output[-3000:]
    assert "Airflow version" not in output, "airflow-init went on after the bad password"


def test_down_leaves_nothing_and_no_file_of_the_checkout_changed_owner(stack: ComposeProject):
    (command,) = readme_commands("docker compose down --volumes")
    result = stack.shell(command)
    assert result.returncode == 0, result.stderr
    assert stack.project_resources() == {"containers": [], "volumes": [], "networks": []}
    before, after = stack.owners_before, stack.owners()
    assert before, "the owners were not recorded before the run"
    changed = {
        path: (before[path], owner) for path, owner in after.items() if before.get(path, owner) != owner
    }
    assert not changed, f"owner changed (before, after): {changed}"
    uid = int(stack.dotenv()["AIRFLOW_UID"])
    new = {path: owner for path, owner in after.items() if path not in before}
    assert new, "the stack wrote nothing into the checkout (logs/?)"
    foreign = {path: owner for path, owner in new.items() if owner != (uid, 0)}
    assert not foreign, f"new files not owned by AIRFLOW_UID={uid}:0: {foreign}"


# --- helpers ------------------------------------------------------------------------------------------


def assert_run_succeeds(stack: ComposeProject, api: AirflowApi, run_id: str) -> list[dict]:
    """Wait for the run; every task instance (the dbt ones included) must have succeeded."""
    state = api.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT)
    run = api.run(DAG_ID, run_id)
    took = (
        datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])
    ).total_seconds()
    say(f"run {run['logical_date']}, {run['conf'].get('users')} users: {state} in {took:.0f} s")
    task_instances = api.task_instances(DAG_ID, run_id)
    failed = {ti["task_id"]: ti["state"] for ti in task_instances if ti["state"] != "success"}
    assert task_instances, "the run has no task instances"
    assert not failed, (
        f"run {run_id}: tasks not successful: {failed}\n{task_log_tails(stack, run_id, failed)}"
    )
    assert state == "success"
    assert any(ti["task_id"].startswith("transform_users.") for ti in task_instances)
    return task_instances


def wait_until_consuming(stack: ComposeProject, hostnames: set[str], timeout: float = 300) -> None:
    """Until every worker answers Celery's ping (their healthcheck's question, without its 30 s interval)."""
    ping = ("celery", "--app", "airflow.providers.celery.executors.celery_executor.app", "inspect", "ping")
    deadline = time.monotonic() + timeout
    for hostname in hostnames:
        destination = ("-d", f"celery@{hostname}")
        while stack.compose("exec", "-T", "airflow-worker", *ping, *destination, check=False).returncode:
            assert time.monotonic() < deadline, f"worker {hostname} does not answer after {timeout:.0f} s"
            time.sleep(2)


def warehouse(stack: ComposeProject, sql: str) -> list[tuple[str, ...]]:
    """Rows of a query, run with psql in the warehouse container, as the README does."""
    psql = ("psql", "-U", "warehouse", "--no-align", "--tuples-only", "--field-separator=\t", "-c", sql)
    output = stack.compose("exec", "-T", "warehouse", *psql).stdout
    return [tuple(line.split("\t")) for line in output.splitlines()]


def warehouse_users(stack: ComposeProject) -> list[tuple[str, ...]]:
    return sorted(warehouse(stack, "SELECT user_id, firstname, lastname, country FROM users"))


def loaded_runs(api: AirflowApi) -> list[dict]:
    """The DAG's real runs (not the temporary ones of `airflow tasks test`)."""
    return [run for run in api.runs(DAG_ID) if run["run_type"] in ("manual", "scheduled")]


def served_pages(api: AirflowApi):
    """Every page the stand-in served the DAG's runs: same seed, same users."""
    for run in loaded_runs(api):
        # As the tasks do: a run triggered without a logical date uses the time it was queued for.
        when = run["logical_date"] or run["run_after"]
        logical_date = datetime.fromisoformat(when.replace("Z", "+00:00"))
        seed = seed_for(DAG_ID, logical_date)
        total = (run.get("conf") or {}).get("users", DEFAULT_USERS_PER_RUN)
        for page, size in enumerate(page_sizes(total), start=1):
            yield generate_page(seed, page, size)["results"]


def served_users(api: AirflowApi) -> list[tuple[str, ...]]:
    users = {
        u["login"]["uuid"]: (
            u["login"]["uuid"],
            u["name"]["first"],
            u["name"]["last"],
            u["location"]["country"],
        )
        for page in served_pages(api)
        for u in page
    }
    return sorted(users.values())


def served_logins(api: AirflowApi) -> list[dict]:
    return [user["login"] for page in served_pages(api) for user in page]


def readme_commands(prefix: str) -> list[str]:
    """The lines of README.md's code blocks that start with prefix, without their trailing comments."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(), re.M | re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(prefix)]


def _context(text: str, secret: str) -> str:
    """Where a secret showed up, with the secret itself masked."""
    index = text.index(secret)
    return (
        text[max(0, index - 300) : index].rsplit("\n", 1)[-1] + "<SECRET>" + text[index + len(secret) :][:200]
    )


def task_log_tails(stack: ComposeProject, run_id: str, task_ids, lines: int = 30) -> str:
    """The end of the Airflow log of each task that did not succeed (logs/ is the checkout's)."""
    folder = stack.folder / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    parts = []
    for task_id in task_ids:
        for log in sorted(folder.glob(f"task_id={task_id}/**/attempt=*.log")):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            parts.append(f"----- {log.relative_to(folder)} -----\n{tail}")
    return "\n".join(parts)
