"""docker-compose.yaml, Dockerfile and .env.example, checked as files (no Docker engine needed).

The official 3.3.2 compose file (official-docker-compose-3.3.2.yaml, beside this file) is the
reference: every service, healthcheck, dependency and setting of it must still be there, changed only
where ALLOWED_CHANGES says why. Rendered values come from Docker Compose itself (`docker compose
config`, template/tests/stack/compose.py). template/tests/docker/ runs the same files on a real engine.
"""

from __future__ import annotations

import ast
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from include.common import dbt_manifest, run_folder
from include.user_processing.settings import USERS_ASSET
from scripts import image as make_image
from scripts import make_env
from scripts.local_env import REPO_ROOT
from template.tests.stack.compose import (
    COMPOSE_FILE,
    DOCKERFILE,
    IMAGE_PROJECT_FOLDERS,
    IMAGE_PROJECT_ROOT,
    LOCK_FILES,
    SECRETS_BY_SERVICE,
    ComposeConfigError,
    dependencies,
    expected_build_context,
    raw_compose,
    read_env_file,
    render,
    secrets_in,
    variables_referenced,
)
from tests.checkout import tracked_files

OFFICIAL = raw_compose(Path(__file__).parent / "official-docker-compose-3.3.2.yaml")
OURS = raw_compose(COMPOSE_FILE)
ENV_EXAMPLE = REPO_ROOT / ".env.example"
AIRFLOW_IMAGE = "${AIRFLOW_IMAGE_NAME:-user-processing-airflow:3.3.2}"
# Official settings the template changes, and why. Anything else that differs fails the tests.
ALLOWED_CHANGES = {
    ("x-airflow-common", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"): "metadata DB password from .env",
    ("x-airflow-common", "AIRFLOW__CELERY__RESULT_BACKEND"): "metadata DB password from .env",
    ("x-airflow-common", "AIRFLOW__CELERY__BROKER_URL"): "Redis password from .env",
    ("x-airflow-common", "AIRFLOW__CORE__FERNET_KEY"): "required instead of empty",
    ("x-airflow-common", "AIRFLOW__CORE__LOAD_EXAMPLES"): "no example DAGs in a template",
    ("x-airflow-common", "AIRFLOW__API_AUTH__JWT_SECRET"): "required instead of a public default",
    ("postgres", "POSTGRES_PASSWORD"): "metadata DB password from .env",
    ("airflow-init", "_AIRFLOW_WWW_USER_PASSWORD"): "admin password from .env",
}
# Official keys the template drops, and why.
REMOVED: dict[tuple[str, str], str] = {}
# The official env_file hands every Airflow container all of .env; the template's hands them airflow.env,
# the user's own settings, which hold none of the stack's secrets.
USER_SETTINGS_FILE = [{"path": "${AIRFLOW_ENV_FILE:-airflow.env}", "required": False}]
# Lines of airflow-init's official script the template replaces, and why: the official script chowns
# everything under /opt/airflow, the project's own mounted files included.
REPLACED_INIT_LINES = {
    'echo "Change ownership of files in /opt/airflow to ${AIRFLOW_UID:-50000}:0"',
    'chown -R "${AIRFLOW_UID:-50000}:0" /opt/airflow/',
    'echo "Change ownership of files in shared volumes to ${AIRFLOW_UID:-50000}:0"',
    'chown -v -R "${AIRFLOW_UID:-50000}:0" /opt/airflow/{logs,dags,plugins,config}',
}
# Healthchecks that start the airflow or celery CLI (5-6 s here) get a longer timeout than the official
# 10 s, which they exceed while the stack starts on a 2-core machine.
SLOW_HEALTHCHECKS = dict.fromkeys(
    ["airflow-scheduler", "airflow-dag-processor", "airflow-worker", "airflow-triggerer"], "30s"
)
# Where the template publishes the official ports: on PUBLISH_ADDRESS (default 127.0.0.1), not on all.
PUBLISH_PREFIX = "${PUBLISH_ADDRESS:-127.0.0.1}:"
# Official services the template publishes too, on PUBLISH_ADDRESS: what a Celery worker on another
# machine needs, the result backend (Airflow's metadata database) and the broker. Their host ports keep
# clear of a PostgreSQL or a Redis of the machine (5432, 6379).
PUBLISHED_FOR_OTHER_HOSTS = {
    "postgres": ["${AIRFLOW_DB_PORT:-5434}:5432"],
    "redis": ["${REDIS_PORT:-6380}:6379"],
}
# Flower's port has an address of its own: its /metrics and /healthcheck answer without its login.
FLOWER_PUBLISH_PREFIX = "${FLOWER_PUBLISH_ADDRESS:-127.0.0.1}:"
# Official bind mounts the template makes read-only: Airflow only reads the DAGs.
READ_ONLY = {
    "${AIRFLOW_PROJ_DIR:-.}/dags:/opt/airflow/dags": "${AIRFLOW_PROJ_DIR:-.}/dags:/opt/airflow/dags:ro"
}
# Official healthchecks the template changes, and why.
CHANGED_HEALTHCHECK_TESTS = {
    "flower": "Flower asks for its login on every page but /healthcheck: the check logs in",
    "redis": "Redis asks for its password, for `ping` too: the check logs in",
}
# Official commands the template changes, and why.
CHANGED_COMMANDS = {
    "redis": "the server reads its password from a file (test_redis_asks_for_its_password_...)",
}
# Flower's whole environment: what `airflow celery flower` reads (the executor, for the command to
# exist; the broker and result backend; its login; the config file), and the official pip variable.
FLOWER_ENVIRONMENT = {
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__FLOWER_BASIC_AUTH",
    "AIRFLOW_CONFIG",
    "_PIP_ADDITIONAL_REQUIREMENTS",
}
# Where the containers write in the checkout (writable bind mounts; make env creates these folders).
PROJECT = f"{IMAGE_PROJECT_ROOT}/"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|PRIVATE_KEY")
REQUIRED_VARIABLE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}$")


def airflow_services(compose: dict) -> list[str]:
    """The services built on x-airflow-common: Airflow components (they have its executor setting)."""
    return [
        name
        for name, service in compose["services"].items()
        if "AIRFLOW__CORE__EXECUTOR" in (service.get("environment") or {})
    ]


@pytest.fixture(scope="module")
def generated_env_file(tmp_path_factory) -> Path:
    """A .env as `make env` writes it."""
    env_file = tmp_path_factory.mktemp("env") / ".env"
    assert make_env.write_env(env_file, ENV_EXAMPLE)
    return env_file


@pytest.fixture(scope="module")
def generated_env(generated_env_file) -> dict[str, str]:
    return read_env_file(generated_env_file)


@pytest.fixture(scope="module")
def rendered(generated_env_file) -> dict:
    """docker-compose.yaml as `docker compose config` renders it with that .env (every profile on)."""
    return render(generated_env_file)


# --- The official stack, unchanged except where the template needs it ------------------------------


def test_the_official_airflow_services_are_exactly_the_ones_that_use_the_shared_airflow_settings():
    assert airflow_services(OFFICIAL) == [
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
        "airflow-triggerer",
        "airflow-init",
        "airflow-cli",
        "flower",
    ]
    assert airflow_services(OURS) == airflow_services(OFFICIAL)


@pytest.mark.parametrize("name", list(OFFICIAL["services"]))
def test_every_official_service_keeps_its_command_healthcheck_and_dependencies(name):
    official, ours = OFFICIAL["services"][name], OURS["services"].get(name)
    assert ours is not None, f"service {name} is missing"
    for key in ("command", "entrypoint", "restart", "profiles", "expose", "user"):
        if key == "command" and name == "airflow-init":
            continue  # its script changes: test_airflow_init_keeps_the_official_script
        if key == "command" and name in CHANGED_COMMANDS:
            continue
        assert ours.get(key) == official.get(key), f"{name}: {key} differs from the official file"
    healthcheck = dict(official.get("healthcheck") or {})
    if name in SLOW_HEALTHCHECKS:
        healthcheck["timeout"] = SLOW_HEALTHCHECKS[name]
    if name in CHANGED_HEALTHCHECK_TESTS:
        healthcheck["test"] = ours["healthcheck"]["test"]  # checked by its own test
    assert ours.get("healthcheck", {}) == healthcheck, f"{name}: healthcheck differs from the official file"
    # The same ports, published on PUBLISH_ADDRESS only (Flower's on its own, test_flower_...).
    prefix = FLOWER_PUBLISH_PREFIX if name == "flower" else PUBLISH_PREFIX
    ports = official.get("ports", []) + PUBLISHED_FOR_OTHER_HOSTS.get(name, [])
    assert ours.get("ports", []) == [prefix + port for port in ports]
    ours_dependencies = dependencies(ours)
    for dependency, condition in dependencies(official).items():
        assert ours_dependencies.get(dependency) == condition, f"{name} -> {dependency}"
    if name not in airflow_services(OFFICIAL):
        assert ours["image"] == official["image"]
    if name == "flower":
        return  # Celery's monitor mounts config/ alone: test_flower_gets_only_what_it_uses
    for volume in official.get("volumes", []):
        volume = READ_ONLY.get(volume, volume)
        assert volume in ours.get("volumes", []), f"{name}: volume {volume} is missing"


@pytest.mark.parametrize("name", ["x-airflow-common", *OFFICIAL["services"]])
def test_every_official_setting_is_kept_or_its_change_is_allowed(name):
    official = OFFICIAL[name] if name.startswith("x-") else OFFICIAL["services"][name]
    ours = OURS[name] if name.startswith("x-") else OURS["services"][name]
    common = OFFICIAL["x-airflow-common"]["environment"]
    for key, value in (official.get("environment") or {}).items():
        if name != "x-airflow-common" and common.get(key) == value:
            continue  # inherited: checked once, on x-airflow-common
        if (name, key) in ALLOWED_CHANGES:
            assert key in ours["environment"], f"{name}: {key} is missing"
        else:
            assert ours["environment"].get(key) == value, f"{name}: {key} changed without a reason"


def test_every_official_shared_key_is_kept_unless_its_removal_is_allowed():
    official, ours = OFFICIAL["x-airflow-common"], OURS["x-airflow-common"]
    for key in official:
        if ("x-airflow-common", key) in REMOVED:
            assert all(key not in service for service in OURS["services"].values()), key
        else:
            assert key in ours, f"x-airflow-common: {key} is missing"
    assert official["env_file"] == ["${ENV_FILE_PATH:-.env}"]
    assert ours["env_file"] == USER_SETTINGS_FILE


def test_airflow_init_keeps_the_official_script():
    # Bare `echo` lines only print blank lines: the order of everything else is what must hold.
    official_lines = [
        line
        for line in OFFICIAL["services"]["airflow-init"]["command"][1].splitlines()
        if line.strip() != "echo"
    ]
    kept = [line for line in official_lines if line.strip() not in REPLACED_INIT_LINES]
    assert len(kept) == len(official_lines) - len(REPLACED_INIT_LINES)
    ours = iter(OURS["services"]["airflow-init"]["command"][1].splitlines())
    missing = [line for line in kept if not any(line == mine for mine in ours)]
    assert not missing, f"lines of the official script missing or out of order: {missing}"


def test_airflow_init_stops_at_the_first_failure_and_a_failed_dbt_parse_says_so():
    script = OURS["services"]["airflow-init"]["command"][1]
    assert script.splitlines()[1] == "set -eo pipefail"  # after its template comment
    parse = script[script.index("if ! setpriv") :]
    assert re.match(
        r"[^\n]*\n\s*python -m include.common.dbt_manifest /opt/airflow/dbt_project; then\n"
        r".*ERROR!!!: dbt deps or dbt parse failed.*\n.*\n\s*exit 1\n",
        parse,
    )


def test_airflow_init_creates_the_projects_pools_after_the_migration():
    """A task in a pool that does not exist never runs: airflow-init creates them (pools.py)."""
    script = OURS["services"]["airflow-init"]["command"][1]
    pools = script.index("python -m include.common.pools")
    assert script.index("/entrypoint airflow version") < pools  # the entrypoint migrates the database
    assert "set -eo pipefail" in script[:pools]  # a failure stops airflow-init


def test_airflow_init_changes_owner_only_where_the_containers_write():
    """Never the project's own files (dags/, include/, dbt_project/): the folders make env creates."""
    script = OURS["services"]["airflow-init"]["command"][1]
    chowns = [
        line.strip()
        for line in script.splitlines()
        if "chown" in line and not line.strip().startswith("echo")
    ]
    # -h: a symlink planted in one of them changes owner itself, never what it points to.
    assert chowns == [
        "find /opt/airflow/{logs,plugins,config} /opt/airflow/dbt_project/{target,dbt_packages}"
        ' \\! -user "${AIRFLOW_UID:-50000}" -exec chown -hv "${AIRFLOW_UID:-50000}:0" {} +'
    ]
    assert set(make_env.WRITABLE_FOLDERS) == {
        "logs",
        "plugins",
        "config",
        "dbt_project/target",
        "dbt_project/dbt_packages",
    }
    # dbt runs as the containers' user (dbt_manifest keeps its log in target/, not dbt_project/logs).
    assert re.search(
        r'setpriv --reuid="\$\{AIRFLOW_UID:-50000\}" --regid=0 --clear-groups \\\n'
        r"\s*python -m include.common.dbt_manifest",
        script,
    )


def test_every_official_volume_and_the_template_volumes_are_declared():
    assert set(OFFICIAL["volumes"]) | {"warehouse-db-volume", "run-folders"} == set(OURS["volumes"])


def test_every_change_is_marked_with_a_template_comment():
    text = COMPOSE_FILE.read_text()
    marks = text.count("# template:")
    # One per group of changes: image/build, 2 env groups..., the services and volumes added.
    assert marks >= len(ALLOWED_CHANGES) + 5, f"only {marks} '# template:' comments"


# --- Every Airflow service: the project image and the same settings -------------------------------


@pytest.mark.parametrize("name", airflow_services(OURS))
def test_every_airflow_service_uses_the_project_image_and_the_common_settings(name):
    common, service = OURS["x-airflow-common"], OURS["services"][name]
    assert service["image"] == AIRFLOW_IMAGE
    assert service["build"] == "."
    # No service gets the whole .env; every Airflow component gets airflow.env, but Celery's monitor.
    assert service["env_file"] == ([] if name == "flower" else USER_SETTINGS_FILE)
    for key, value in common["environment"].items():
        if name == "airflow-init" and key == "_PIP_ADDITIONAL_REQUIREMENTS":
            continue  # the official init clears it
        if name == "flower" and key not in FLOWER_ENVIRONMENT:
            continue  # test_flower_gets_only_what_it_uses
        assert service["environment"].get(key) == value, f"{name}: {key}"
    if name not in ("airflow-init", "flower"):  # each has its own test
        assert service["volumes"] == common["volumes"]


def _mounts(service: dict) -> dict[str, dict]:
    """A rendered service's mounts by their target inside the container."""
    return {mount["target"]: mount for mount in service.get("volumes", [])}


def test_airflow_reads_the_project_read_only_and_writes_only_where_it_must(rendered):
    """dags/, include/ and dbt_project/ are read-only in every Airflow container; dbt's target/ and
    dbt_packages/ are writable on top; airflow-init alone may write dbt_project/ (package-lock.yml)."""
    read_only = {f"{PROJECT}{folder}" for folder in ("dags", "include", "dbt_project")}
    writable_in_checkout = {f"{PROJECT}{folder}" for folder in make_env.WRITABLE_FOLDERS}
    for name in airflow_services(rendered):
        if name == "flower":
            continue  # no project folder at all: test_flower_gets_only_what_it_uses
        mounts = _mounts(rendered["services"][name])
        expected_read_only = read_only - {f"{PROJECT}dbt_project"} if name == "airflow-init" else read_only
        assert {t for t, m in mounts.items() if m.get("read_only")} == expected_read_only, name
        binds = {t: m for t, m in mounts.items() if m["type"] == "bind"}
        writable = {t for t, m in binds.items() if not m.get("read_only")}
        if name == "airflow-init":
            # Its dbt_project/ holds target/ and dbt_packages/ already.
            assert writable == writable_in_checkout - {
                f"{PROJECT}dbt_project/target",
                f"{PROJECT}dbt_project/dbt_packages",
            } | {f"{PROJECT}dbt_project"}, name
        else:
            assert writable == writable_in_checkout, name
        for target, mount in binds.items():  # each folder is the checkout's folder of the same name
            assert mount["source"] == f"{REPO_ROOT}/{target.removeprefix(PROJECT)}", (name, target)
        assert mounts[f"{PROJECT}run-folders"]["type"] == "volume"


def _seconds(duration: str) -> float:
    """A duration as docker compose config renders it (e.g. 3m0s, 1m30s, 10s) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", duration)
    assert "".join(f"{number}{unit}" for number, unit in parts) == duration, duration
    return sum(float(number) * {"h": 3600, "m": 60, "s": 1}[unit] for number, unit in parts)


# extract_user of 1M users, the longest task of the largest run measured (docs/scaling.md), in seconds.
LONGEST_MEASURED_TASK = 93


def test_a_stop_lets_the_workers_running_tasks_finish(rendered):
    worker = rendered["services"]["airflow-worker"]
    # Celery's warm shutdown: SIGTERM reaches the worker process alone (dumb-init, no new session),
    # which then takes no new task and waits for the running ones.
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    # Docker waits this long before it kills the worker: the longest task measured, with half as much
    # again to spare at least (3 minutes: about twice).
    assert _seconds(worker["stop_grace_period"]) >= 1.5 * LONGEST_MEASURED_TASK
    assert "stop_grace_period: 3m" in COMPOSE_FILE.read_text()
    # No other service runs a task.
    assert [n for n, s in rendered["services"].items() if "stop_grace_period" in s] == ["airflow-worker"]


def test_airflow_init_keeps_dbt_project_writable_and_every_other_mount_of_the_others():
    common = OURS["x-airflow-common"]["volumes"]
    dbt_project = "${AIRFLOW_PROJ_DIR:-.}/dbt_project:/opt/airflow/dbt_project"
    nested = [
        v
        for v in common
        if v.split(":")[-2 if v.endswith(":ro") else -1].startswith("/opt/airflow/dbt_project/")
    ]
    expected = [dbt_project if v == f"{dbt_project}:ro" else v for v in common if v not in nested]
    assert OURS["services"]["airflow-init"]["volumes"] == expected


def test_flower_gets_only_what_it_uses(rendered, generated_env):
    """The broker, the result backend and its own login; its UI asks for that login."""
    flower = rendered["services"]["flower"]
    assert set(flower["environment"]) == FLOWER_ENVIRONMENT
    env, common = flower["environment"], rendered["services"]["airflow-scheduler"]["environment"]
    for key in FLOWER_ENVIRONMENT - {"AIRFLOW__CELERY__FLOWER_BASIC_AUTH"}:
        assert env[key] == common[key], key
    assert env["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"] == (
        f"{generated_env['FLOWER_USERNAME']}:{generated_env['FLOWER_PASSWORD']}"
    )
    raw = OURS["services"]["flower"]["environment"]["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"]
    assert re.fullmatch(r"\$\{FLOWER_USERNAME:-flower\}:\$\{FLOWER_PASSWORD:\?[^}]*run make env\}", raw)
    assert flower.get("env_file") in (None, [])
    assert [(m["source"], m["target"], m.get("read_only")) for m in flower["volumes"]] == [
        (f"{REPO_ROOT}/config", f"{PROJECT}config", True)
    ]
    check = flower["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL"
    for part in ('--user "$${AIRFLOW__CELERY__FLOWER_BASIC_AUTH}"', "--fail", "http://localhost:5555/"):
        assert part in check[1], check
    assert flower["profiles"] == ["flower"]  # off unless asked for


def test_the_stand_in_api_runs_from_the_project_image_only_in_its_profile():
    on_project_image = {name for name, s in OURS["services"].items() if s.get("image") == AIRFLOW_IMAGE}
    assert on_project_image == {*airflow_services(OURS), "user-api"}
    service = OURS["services"]["user-api"]
    assert service["image"] == AIRFLOW_IMAGE
    assert service["profiles"] == ["standin"]
    assert service["entrypoint"] == ["python", "-m", "template.standin_user_api"]
    assert service["command"] == ["--host", "0.0.0.0", "--port", "8000"]  # noqa: S104 - inside its container
    assert service["expose"] == [8000]
    # Published as the other services, for a worker on another machine.
    assert service["ports"] == [PUBLISH_PREFIX + "${USER_API_PORT:-8001}:8000"]
    assert service["healthcheck"]["test"][:2] == ["CMD", "curl"]
    # Mounted alone, the folder of the module it runs, which exists in the checkout: the pipeline's
    # include/ is not part of it.
    folder = service["entrypoint"][2].replace(".", "/")
    assert (REPO_ROOT / folder / "__main__.py").is_file(), f"{folder}/__main__.py is not in the checkout"
    assert service["volumes"] == [f"${{AIRFLOW_PROJ_DIR:-.}}/{folder}:/opt/airflow/{folder}:ro"]


def test_the_execution_api_url_and_the_jwt_secret_are_shared_by_every_airflow_service(
    rendered, generated_env
):
    apiserver = rendered["services"]["airflow-apiserver"]
    assert apiserver["command"] == ["api-server"]
    container_port = apiserver["ports"][0]["target"]
    for name in airflow_services(rendered):
        if name == "flower":
            continue  # Celery's monitor talks to neither: test_flower_gets_only_what_it_uses
        env = rendered["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            f"http://airflow-apiserver:{container_port}/execution/"
        )
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == generated_env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert len(generated_env["AIRFLOW__API_AUTH__JWT_SECRET"].encode()) >= 32


def test_the_connections_run_folders_and_settings_of_the_template(rendered, generated_env):
    env = rendered["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW_CONN_POSTGRES"] == (
        f"postgresql://warehouse:{generated_env['WAREHOUSE_PASSWORD']}@warehouse:5432/warehouse"
    )
    # The Asset the DAG updates names the table, not this stack's host: the same one everywhere.
    assert USERS_ASSET.uri == "x-warehouse://public/users"
    assert env["AIRFLOW_CONN_USER_API"] == "http://randomuser.me/https"  # the real API by default
    # Tasks hand files over through the run-folders volume: run_folder's default in the image's home.
    assert "AIRFLOW_VAR_RUN_FOLDER_URL" not in env  # so that airflow.env may set it
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_HOME", IMAGE_PROJECT_ROOT)
        assert run_folder.default_url() == f"file://{IMAGE_PROJECT_ROOT}/run-folders"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] == "False"
    mounts = {mount["target"]: mount for mount in rendered["services"]["airflow-worker"]["volumes"]}
    for folder in ("dags", "include", "dbt_project"):
        assert mounts[f"{IMAGE_PROJECT_ROOT}/{folder}"]["source"] == f"{REPO_ROOT}/{folder}"
    run_folders = mounts[f"{IMAGE_PROJECT_ROOT}/run-folders"]  # a named volume: one for every worker
    assert (run_folders["type"], run_folders["source"]) == ("volume", "run-folders")


def test_the_warehouse_is_its_own_database_published_on_localhost_only(rendered, generated_env):
    warehouse = rendered["services"]["warehouse"]
    assert warehouse["image"] == OFFICIAL["services"]["postgres"]["image"]
    assert warehouse["environment"] == {
        "POSTGRES_USER": "warehouse",
        "POSTGRES_PASSWORD": generated_env["WAREHOUSE_PASSWORD"],
        "POSTGRES_DB": "warehouse",
    }
    assert [(p["host_ip"], p["published"], p["target"]) for p in warehouse["ports"]] == [
        ("127.0.0.1", "5433", 5432)
    ]
    assert warehouse["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    # Airflow's own database is published too (a worker elsewhere reads its results there), on
    # 127.0.0.1 and a port of its own.
    metadata = rendered["services"]["postgres"]
    assert [(p["host_ip"], p["published"], p["target"]) for p in metadata["ports"]] == [
        ("127.0.0.1", "5434", 5432)
    ]
    # What runs task code waits for it: the workers' tasks and the triggerer's triggers.
    for name in ("airflow-worker", "airflow-triggerer"):
        assert dependencies(rendered["services"][name])["warehouse"] == "service_healthy", name


# --- Secrets --------------------------------------------------------------------------------------


def _strings(node, key=""):
    if isinstance(node, dict):
        for child_key, value in node.items():
            yield from _strings(value, str(child_key))
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, key)
    elif isinstance(node, str):
        yield key, node


def test_no_secret_literal_appears_in_the_compose_file():
    for key, value in _strings(OURS):
        if SECRET_NAME.search(key):
            assert REQUIRED_VARIABLE.match(value), f"{key}: {value!r} is not a required ${{VAR:?...}}"
        for password in re.findall(r"://[^:/@\s]*:([^@\s]*)@", value):
            assert REQUIRED_VARIABLE.match(password) or password == "", f"password literal in {value!r}"


def test_every_secret_variable_is_required_and_has_no_default():
    text = COMPOSE_FILE.read_text()
    secrets_read = {name for name in variables_referenced(text) if SECRET_NAME.search(name)}
    assert secrets_read == {
        "FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW_DB_PASSWORD",
        "WAREHOUSE_PASSWORD",
        "_AIRFLOW_WWW_USER_PASSWORD",
        "FLOWER_PASSWORD",
        "REDIS_PASSWORD",
    }
    for name in secrets_read:
        for use in re.findall(rf"\$\{{{name}([^}}]*)\}}", text):
            assert use.startswith(":?"), f"${{{name}{use}}} is not required"


def test_without_make_env_compose_stops_and_says_what_to_run():
    with pytest.raises(ComposeConfigError, match="run make env"):
        render(ENV_EXAMPLE)


def test_each_service_is_given_only_the_secrets_it_needs(rendered, generated_env):
    generated = {name: generated_env[name] for name in set(make_env.GENERATED) - {"AIRFLOW_UID"}}
    given = {
        name: secrets_in(service.get("environment") or {}, generated)
        for name, service in rendered["services"].items()
    }
    assert given == {name: set(needed) for name, needed in SECRETS_BY_SERVICE.items()}


def test_redis_asks_for_its_password_which_no_environment_or_command_holds(rendered, generated_env):
    """Every broker URL (Flower's too) carries REDIS_PASSWORD. Redis itself gets it as a file, a secret
    from .env readable by root only: its command reads the file into the server's configuration on
    standard input, its healthcheck into redis-cli's REDISCLI_AUTH. So neither `docker inspect` (the
    environment, the command, the healthcheck) nor `ps` shows the password."""
    password = generated_env["REDIS_PASSWORD"]
    brokers = {
        name: service["environment"]["AIRFLOW__CELERY__BROKER_URL"]
        for name, service in rendered["services"].items()
        if "AIRFLOW__CELERY__BROKER_URL" in (service.get("environment") or {})
    }
    assert set(brokers) == set(airflow_services(rendered))
    assert set(brokers.values()) == {f"redis://:{password}@redis:6379/0"}
    assert rendered["secrets"]["redis-password"]["environment"] == "REDIS_PASSWORD"
    redis = rendered["services"]["redis"]
    secret_file = "/run/secrets/redis-password"  # pragma: allowlist secret (a path)
    assert redis["secrets"] == [{"source": "redis-password", "target": secret_file, "mode": "0400"}]
    assert [name for name, s in rendered["services"].items() if s.get("secrets")] == ["redis"]
    assert password not in json.dumps(redis)
    command = redis["command"]
    assert command[:2] == ["sh", "-c"]
    # The entrypoint as the image's CMD would run it, the configuration on standard input ("-"), and
    # `exec`: redis-server is the container's first process, which `docker stop` asks to save and quit.
    assert re.match(r"exec docker-entrypoint\.sh redis-server - <<EOF\n", command[2]), command
    assert f'requirepass "$$(cat {secret_file})"' in command[2]
    check = redis["healthcheck"]["test"]
    assert check == ["CMD-SHELL", f'REDISCLI_AUTH="$$(cat {secret_file})" redis-cli ping | grep -qx PONG']


def test_every_published_port_binds_localhost_unless_publish_address_opens_it(
    rendered, tmp_path, generated_env_file
):
    published = [(name, p) for name, s in rendered["services"].items() for p in s.get("ports", [])]
    assert {(name, p["target"], p["published"]) for name, p in published} == {
        ("airflow-apiserver", 8080, "8080"),
        ("flower", 5555, "5555"),
        ("warehouse", 5432, "5433"),
        ("postgres", 5432, "5434"),
        ("redis", 6379, "6380"),
        ("user-api", 8000, "8001"),
    }
    assert {p["host_ip"] for _, p in published} == {"127.0.0.1"}
    # Not where a PostgreSQL or a Redis of this machine listens.
    assert not {p["published"] for _, p in published} & {"5432", "6379"}
    opened = tmp_path / ".env"
    opened.write_text(
        generated_env_file.read_text().replace("PUBLISH_ADDRESS=127.0.0.1", "PUBLISH_ADDRESS=0.0.0.0")
    )
    services = render(opened)["services"]
    addresses = {name: [p["host_ip"] for p in s.get("ports", [])] for name, s in services.items()}
    assert {name: hosts for name, hosts in addresses.items() if hosts} == {
        "airflow-apiserver": ["0.0.0.0"],  # noqa: S104 - what the option is for
        "warehouse": ["0.0.0.0"],  # noqa: S104 - as above
        "postgres": ["0.0.0.0"],  # noqa: S104 - as above
        "redis": ["0.0.0.0"],  # noqa: S104 - as above
        "user-api": ["0.0.0.0"],  # noqa: S104 - as above
        "flower": ["127.0.0.1"],  # its /metrics and /healthcheck answer without a login
    }
    opened.write_text(opened.read_text() + "FLOWER_PUBLISH_ADDRESS=0.0.0.0\n")
    assert [p["host_ip"] for p in render(opened)["services"]["flower"]["ports"]] == ["0.0.0.0"]  # noqa: S104


def test_your_own_settings_reach_every_airflow_component_and_nothing_else(tmp_path, generated_env_file):
    settings = tmp_path / "airflow.env"
    settings.write_text(
        "AIRFLOW_CONN_WAREHOUSE2=postgresql://db.example.com:5432/analytics\n"
        "AIRFLOW_VAR_GREETING='hello # not a comment'\n"
        "AIRFLOW__USER_PROCESSING__SENSOR_TIMEOUT=900  # seconds\n"
    )
    services = render(generated_env_file, user_settings=settings)["services"]
    expected = make_env.read_env_file(settings)
    assert expected["AIRFLOW_VAR_GREETING"] == "hello # not a comment"  # read as compose reads it
    for name, service in services.items():
        env = service.get("environment") or {}
        given = {key: env.get(key) for key in expected}
        if name in airflow_services(OURS) and name != "flower":
            assert given == expected, name
        else:
            assert given == dict.fromkeys(expected), name


def test_the_settings_example_holds_only_your_settings_and_none_of_the_stacks():
    example = REPO_ROOT / "airflow.env.example"
    assert make_env.read_env_file(example) == {}, "airflow.env.example sets something: keep it commented"
    documented = re.findall(r"^# ([A-Z][A-Z0-9_]*)=", example.read_text(), re.M)
    assert "AIRFLOW__DBT__MODE" in documented
    for key in documented:
        assert make_env.USER_SETTING.match(key), key
        assert key not in make_env.stack_settings(), (
            f"{key} is set by docker-compose.yaml: it would be ignored"
        )


def test_a_setting_of_the_stack_in_airflow_env_is_refused_by_name(tmp_path):
    settings = tmp_path / "airflow.env"
    settings.write_text("AIRFLOW__CORE__FERNET_KEY=abc\nAIRFLOW_CONN_USER_API=http://x\nDBT_PASSWORD=pw\n")
    with pytest.raises(ValueError, match=r"airflow\.env has lines the template cannot take") as refused:
        make_env.read_user_settings(settings, reserved=make_env.stack_settings())
    assert "AIRFLOW__CORE__FERNET_KEY: set by the template itself" in str(refused.value)
    assert "AIRFLOW_CONN_USER_API: set by the template itself" in str(refused.value)
    assert "DBT_PASSWORD: not an AIRFLOW_CONN_*" in str(refused.value)


# --- .env.example and make env ---------------------------------------------------------------------


def test_env_example_documents_every_variable_the_compose_file_reads():
    lines = ENV_EXAMPLE.read_text().splitlines()
    documented = {}
    for index, line in enumerate(lines):
        if match := re.match(r"^#? ?([A-Za-z_][A-Za-z0-9_]*)=", line):
            documented[match[1]] = index
            above = index - 1
            while re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", lines[above]):  # a group shares one comment
                above -= 1
            assert lines[above].startswith("#"), f"{match[1]} has no comment above it"
    missing = variables_referenced(COMPOSE_FILE.read_text()) - documented.keys()
    assert not missing, f"not in .env.example: {missing}"
    for name in set(make_env.GENERATED) - {"AIRFLOW_UID"}:
        assert read_env_file(ENV_EXAMPLE)[name] == "", f"{name} has a shared value in .env.example"


def run_make_env(env_file: Path) -> str:
    """`make env` writing to env_file; returns what it printed."""
    command = [sys.executable, "-m", "scripts.make_env", "--output", str(env_file)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout


def test_make_env_generates_every_secret_and_never_overwrites(tmp_path):
    env_file = tmp_path / ".env"
    assert "wrote" in run_make_env(env_file)
    env = read_env_file(env_file)
    Fernet(env["FERNET_KEY"].encode())  # a valid key, or this raises
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"].encode()) >= 32
    names = (
        "AIRFLOW_DB_PASSWORD",
        "WAREHOUSE_PASSWORD",
        "REDIS_PASSWORD",
        "_AIRFLOW_WWW_USER_PASSWORD",
        "FLOWER_PASSWORD",
    )
    passwords = [env[name] for name in names]
    assert all(len(p) >= 16 for p in passwords)
    assert len(set(passwords)) == len(names)
    # Letters and digits only: a leading "-" once made `airflow users create --password` create no admin.
    assert all(p.isascii() and p.isalnum() for p in passwords), passwords
    assert all(make_env.password().isalnum() for _ in range(500))
    assert env["AIRFLOW_UID"] == str(os.getuid() or make_env.IMAGE_UID)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    for folder in make_env.WRITABLE_FOLDERS:  # what the containers write: theirs (yours, or 50000 as root)
        info = (tmp_path / folder).stat()
        assert (info.st_uid, info.st_gid) == (
            (os.getuid(), os.getgid()) if os.getuid() else (make_env.IMAGE_UID, 0)
        )

    before = env_file.read_text()
    assert "left unchanged" in run_make_env(env_file)
    assert env_file.read_text() == before
    # A .env of an older template, without a secret the compose file now requires: make env adds it
    # (what "... is not set, run make env" asks for), and changes no line that was there.
    older = "\n".join(line for line in before.splitlines() if not line.startswith("REDIS_PASSWORD="))
    env_file.write_text(older)  # no newline at the end either
    assert "added what it lacked (REDIS_PASSWORD)" in run_make_env(env_file)
    lines = env_file.read_text().splitlines()
    assert lines[:-1] == older.splitlines()
    assert re.fullmatch(r"REDIS_PASSWORD=[A-Za-z0-9]{24}", lines[-1])
    # Two machines never share a secret.
    other = tmp_path / "other.env"
    make_env.write_env(other, ENV_EXAMPLE)
    assert read_env_file(other)["FERNET_KEY"] != env["FERNET_KEY"]


def test_make_env_is_wired_into_the_makefile_and_env_is_git_ignored():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^env \.env:.*\n\t.*-m scripts\.make_env$", makefile, re.M)
    assert re.search(r"^install: \| \.env$", makefile, re.M)  # the first target a user runs writes it too
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO_ROOT, check=False)
    assert ignored.returncode == 0, ".env is not git-ignored"


# --- Dockerfile: the same pinned packages as the local setup ------------------------------------------


def _pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", path.read_text(), re.M))


def test_the_image_is_the_official_one_for_the_locked_airflow_and_python():
    lock = (REPO_ROOT / "requirements" / "airflow.txt").read_text()
    python = re.search(r"--python-version (\d+\.\d+)", lock)[1]
    airflow = _pins(REPO_ROOT / "requirements" / "airflow.txt")["apache-airflow"]
    assert re.search(
        rf"^FROM apache/airflow:{re.escape(airflow)}-python{re.escape(python)}$", DOCKERFILE.read_text(), re.M
    )
    assert OFFICIAL["x-airflow-common"]["image"].endswith(f":{airflow}}}")


def test_the_image_installs_the_lock_files_the_local_setup_syncs():
    dockerfile = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    copy = re.search(r"^COPY (?:--\S+ )*(?P<sources>.+) (?P<target>/\S+/)$", dockerfile, re.M)
    assert copy["sources"].split() == ["requirements/airflow.txt", "requirements/dbt.txt"]
    runs = re.findall(r"^RUN (.+)$", dockerfile, re.M)
    installs = [run for run in runs if "pip install" in run or "pip sync" in run]
    assert any(f"-r {copy['target']}airflow.txt" in run for run in installs)
    assert any(
        f"{IMAGE_PROJECT_ROOT}/.venv-dbt" in run and f"{copy['target']}dbt.txt" in run for run in installs
    )
    assert all("--compile-bytecode" in run for run in installs)
    # Every install is checked for conflicts with what the image already had.
    assert all("uv pip check" in run for run in installs)
    # Locally: .venv is synced from dev.txt, which pins every runtime package exactly as airflow.txt does;
    # .venv-dbt from dbt.txt, as in the image.
    runtime, dev = (
        _pins(REPO_ROOT / "requirements" / "airflow.txt"),
        _pins(REPO_ROOT / "requirements" / "dev.txt"),
    )
    assert {name: dev.get(name) for name in runtime} == runtime
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "requirements/dev.txt" in makefile
    assert "requirements/dbt.txt" in makefile
    assert re.search(rf"^ENV PYTHONPATH={IMAGE_PROJECT_ROOT}$", dockerfile, re.M)  # DAGs import include/


def test_the_build_context_holds_the_lock_files_and_the_project_and_no_secrets():
    """What a build of this checkout receives (.dockerignore read with Docker's rules, scripts/image.py;
    template/tests/docker/test_image.py compares them with a real build's): exactly the lock files and
    what git has in dags/, include/ and dbt_project/. This checkout holds .env, .venv, dbt's target/ and more
    after `make install`: none of it."""
    patterns = [pattern.text for pattern in make_image.ignore_patterns(REPO_ROOT)]
    assert patterns[0] == "*"  # everything out, then only what the image needs back in
    context = set(make_image.context_files(REPO_ROOT))
    expected = expected_build_context(tracked_files())
    assert context == expected, (
        f"left out: {sorted(expected - context)}; let in: {sorted(context - expected)}"
    )
    assert (REPO_ROOT / "dbt_project" / "target" / "manifest.json").exists()  # make install built it


def test_what_a_local_run_leaves_in_a_checkout_never_reaches_the_build(tmp_path):
    for name in [*LOCK_FILES, *(f"{folder}/kept.py" for folder in IMAGE_PROJECT_FOLDERS), ".dockerignore"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes((REPO_ROOT / name).read_bytes() if name == ".dockerignore" else b"")
    left_out = [
        ".env",
        "airflow.env",
        ".venv/bin/python",
        ".venv-dbt/bin/dbt",
        ".git/config",
        "logs/dag_id=user_processing/attempt=1.log",
        "config/airflow.cfg",
        "run-folders/user_processing/users.csv",
        "dbt_project/target/manifest.json",
        "dbt_project/dbt_packages/dbt_utils/dbt_project.yml",
        "dbt_project/logs/dbt.log",
        "dbt_project/.user.yml",
        "include/__pycache__/kept.cpython-311.pyc",
        "dags/kept.pyc",
        "requirements/dev.txt",
        "tests/test_kept.py",
    ]
    for name in left_out:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("planted\n")
    assert set(make_image.context_files(tmp_path)) == {
        *LOCK_FILES,
        *(f"{folder}/kept.py" for folder in IMAGE_PROJECT_FOLDERS),
    }


def _instructions() -> list[str]:
    """The Dockerfile's instructions, one line each (continuations joined, comments left out)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _index(instructions: list[str], pattern: str) -> int:
    (found,) = [index for index, line in enumerate(instructions) if re.search(pattern, line)]
    return found


def _include_modules_imported_by(module: str) -> set[str]:
    """The files of include/ that importing `module` (a file of it) reads: the modules it imports from
    include/, theirs, and every package's __init__.py on the way."""
    found, pending = set(), [module]
    while pending:
        path = pending.pop()
        if path in found:
            continue
        found.add(path)
        parts = Path(path).with_suffix("").parts
        pending += [str(Path(*parts[:depth], "__init__.py")) for depth in range(1, len(parts))]
        for node in ast.walk(ast.parse((REPO_ROOT / path).read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("include."):
                pending.append(node.module.replace(".", "/") + ".py")
    return found


def test_the_image_copies_the_project_after_the_packages_and_builds_the_manifest_before_the_code():
    """Layer order: a change to dags/ or include/ rebuilds only the last layers (no package install, no
    dbt deps or parse); the manifest step gets exactly the include/ files dbt_manifest imports."""
    instructions = _instructions()
    installs = [i for i, line in enumerate(instructions) if re.search(r"uv pip (install|sync)", line)]
    copies = {
        folder: _index(instructions, rf"^COPY (?:--\S+ )*{folder}/ ") for folder in IMAGE_PROJECT_FOLDERS
    }
    manifest = _index(instructions, r"^RUN python -m include\.common\.dbt_manifest ")
    assert max(installs) < copies["dbt_project"] < manifest < copies["include"] < copies["dags"]
    early = [
        line.split()[1:-1]
        for line in instructions[max(installs) : manifest]
        if line.startswith("COPY ") and "include/" in line
    ]
    manifest_module = "include/common/dbt_manifest.py"
    assert {name for sources in early for name in sources} == _include_modules_imported_by(manifest_module)
    # dbt_manifest's own file names are the ones the build keeps in target/ (the rest is pruned).
    kept = re.findall(r"\\! -name (\S+)", instructions[manifest])
    assert {dbt_manifest.MANIFEST.name, dbt_manifest.FINGERPRINT.name} <= set(kept), kept
    assert f"{IMAGE_PROJECT_ROOT}/dbt_project" in instructions[manifest]


def test_the_project_in_the_image_is_roots_and_read_only_and_the_containers_run_as_the_image_user():
    instructions = _instructions()
    last_run = [line for line in instructions if line.startswith("RUN ")][-1]
    folders = " ".join(f"{IMAGE_PROJECT_ROOT}/{folder}" for folder in IMAGE_PROJECT_FOLDERS)
    assert f"chown -R root:root {folders}" in last_run
    assert f"chmod -R go-w,a+rX {folders}" in last_run
    # Built as root, run as the user compose runs the services as by default (AIRFLOW_UID's default).
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users == ["root", re.search(r":-(\d+)\}", OURS["x-airflow-common"]["user"])[1]]
    assert instructions[-1].startswith("USER ")


def test_make_image_builds_the_repository_the_compose_file_names():
    """One place for the name: docker-compose.yaml's AIRFLOW_IMAGE_NAME default (its tag names the Airflow
    version of the development build; make image tags the code)."""
    assert (
        make_image.default_name(REPO_ROOT)
        == AIRFLOW_IMAGE.removeprefix("${AIRFLOW_IMAGE_NAME:-").split(":")[0]
    )
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(
        r"^image: .*## .*\n\t\$\(PYTHON\) -m scripts\.image \$\(if \$\(IMAGE\),--name \$\(IMAGE\)\)$",
        makefile,
        re.M,
    )


def test_the_stacks_celery_executor_loads_with_the_pinned_packages():
    """The stack runs the CeleryExecutor: it must import with the locked celery and celery provider."""
    result = subprocess.run(
        [sys.executable, "-c", "import airflow.providers.celery.executors.celery_executor"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (
        "the CeleryExecutor does not import with the pinned packages (requirements/airflow.txt):\n"
        + result.stderr[-1500:]
    )
