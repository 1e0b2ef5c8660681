"""deploy/helm/values.yaml, the values for the official Airflow Helm chart, checked offline: no Kubernetes
runs here, so nothing installs it. What can be checked without a cluster: the file parses, names the
image `make image` builds, sets what the project needs, holds no secret, and agrees with the commands of
docs/deploying.md ("The official Helm chart"), which create its Secrets and pin the chart's version.

Every expectation derives from its source of truth: docker-compose.yaml (the image's name, the executor,
the telemetry settings), the Dockerfile (Airflow's version), include/ (the connections, the run folder's
variable, the pools' module). The chart's values.schema.json is not in the repository; docs/deploying.md
says what was validated against it, and when.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import yaml

from include.common import pools
from include.common.project import OBJECT_STORE_CONN_ID, WAREHOUSE_CONN_ID
from include.common.run_folder import RUN_FOLDER_URL_VARIABLE
from include.user_processing.settings import USER_API_CONN_ID
from scripts import image as make_image
from scripts.local_env import REPO_ROOT

VALUES = REPO_ROOT / "deploy" / "helm" / "values.yaml"
DEPLOYING = REPO_ROOT / "docs" / "deploying.md"
HELM_SECTION = "## The official Helm chart"
# Every connection the pipeline's tasks use (contracts: the warehouse, the user API; the run folders'
# and task logs' bucket).
PIPELINE_CONNECTIONS = (WAREHOUSE_CONN_ID, USER_API_CONN_ID, OBJECT_STORE_CONN_ID)
# The components that run task code get every connection; the api-server only reads task logs.
TASK_RUNNERS = (("workers", "celery", "env"), ("triggerer", "env"))
LOG_READERS = (("apiServer", "env"),)
# Chart settings that take a secret's value inline, which would then sit in this file and in Helm's
# release history: none may be set.
INLINE_SECRETS = (
    ("fernetKey",),
    ("jwtSecret",),
    ("apiSecretKey",),
    ("webserverSecretKey",),
    ("redis", "password"),
    ("data", "brokerUrl"),
    ("data", "metadataConnection"),
    ("data", "resultBackendConnection"),
    ("createUserJob", "defaultUser"),
    ("postgresql", "auth"),
    ("flower", "password"),
    ("elasticsearch", "connection"),
    ("opensearch", "connection"),
    ("dags", "gitSync", "sshKey"),
)
# Where the chart reads a key of a Secret the values name (its templates: fernet-key, jwt-secret,
# api-secret-key, connection, password).
SECRET_KEYS = {
    ("fernetKeySecretName",): "fernet-key",
    ("jwtSecretName",): "jwt-secret",
    ("apiSecretKeySecretName",): "api-secret-key",
    ("data", "metadataSecretName"): "connection",
    ("data", "resultBackendSecretName"): "connection",
    ("data", "brokerUrlSecretName"): "connection",
    ("redis", "passwordSecretName"): "password",
}
ALLOWLIST = "pragma: allowlist secret"


@cache
def values() -> dict:
    loaded = yaml.safe_load(VALUES.read_text())
    assert isinstance(loaded, dict), f"{VALUES} is not a mapping"
    return loaded


_MISSING = object()


def lookup(tree: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return _MISSING
        tree = tree[key]
    return tree


def has(tree: dict, path: tuple[str, ...]) -> bool:
    """Whether the key is in the file, null or not."""
    return lookup(tree, path) is not _MISSING


def get(tree: dict, path: tuple[str, ...]):
    value = lookup(tree, path)
    return None if value is _MISSING else value


def env_list(path: tuple[str, ...]) -> dict[str, dict]:
    return {item["name"]: item for item in get(values(), path) or []}


def secret_refs(tree) -> list[dict]:
    """Every secretKeyRef anywhere in the values."""
    if isinstance(tree, dict):
        found = [tree["secretKeyRef"]] if isinstance(tree.get("secretKeyRef"), dict) else []
        return found + [ref for value in tree.values() for ref in secret_refs(value)]
    if isinstance(tree, list):
        return [ref for value in tree for ref in secret_refs(value)]
    return []


def compose_common_env() -> dict:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
    return compose["x-airflow-common"]["environment"]


# --- docs/deploying.md's commands -------------------------------------------------------------------


def helm_section() -> str:
    text = DEPLOYING.read_text()
    assert HELM_SECTION in text, f"docs/deploying.md has no section {HELM_SECTION!r}"
    return text.split(HELM_SECTION, 1)[1].split("\n## ", 1)[0]


def commands(section: str) -> list[list[str]]:
    """The shell commands of the section's bash blocks, continuation lines joined, as argument lists."""
    found = []
    for block in re.findall(r"^```bash\n(.*?)^```", section, re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line:
                found.append(shlex.split(line))
    return found


def created_secrets(section: str) -> dict[str, set[str]]:
    """Secret name -> keys, from `kubectl ... create secret generic NAME --from-literal=KEY=...`."""
    secrets = {}
    for argv in commands(section):
        if argv[:1] == ["kubectl"] and "secret" in argv and "generic" in argv:
            name = argv[argv.index("generic") + 1]
            keys = {arg.split("=", 2)[1] for arg in argv if arg.startswith("--from-literal=")}
            secrets[name] = keys
    return secrets


def option(argv: list[str], name: str) -> list[str]:
    return [argv[index + 1] for index, arg in enumerate(argv[:-1]) if arg == name]


def helm_install(section: str) -> list[str]:
    (install,) = [argv for argv in commands(section) if argv[:3] == ["helm", "upgrade", "--install"]]
    return install


def chart_version_in_values() -> str:
    match = re.search(r"official Apache Airflow Helm chart, version (\d+\.\d+\.\d+)", VALUES.read_text())
    assert match, f"{VALUES}'s header names no chart version"
    return match[1]


# --- the file and the image ------------------------------------------------------------------------


def test_the_values_name_the_image_make_image_builds():
    repository = get(values(), ("images", "airflow", "repository"))
    assert repository.rsplit("/", 1)[-1] == make_image.default_name(), (
        f"images.airflow.repository {repository!r} is not make image's {make_image.default_name()!r}"
    )
    # A file in git cannot hold the commit it is in: the tag comes from the command line.
    assert get(values(), ("images", "airflow", "tag")) is None
    install = helm_install(helm_section())
    assert any(arg.startswith("images.airflow.tag=") for arg in option(install, "--set-string"))
    (image_variable,) = [argv[0] for argv in commands(helm_section()) if argv[0].startswith("IMAGE=")]
    assert image_variable.rsplit("/", 1)[-1] == make_image.default_name()
    assert not get(values(), ("images", "useDefaultImageForMigration")), "the default image has no include/"


def test_the_airflow_version_is_the_images():
    match = re.search(r"^FROM apache/airflow:(\d+\.\d+\.\d+)-", (REPO_ROOT / "Dockerfile").read_text(), re.M)
    assert match, "no FROM apache/airflow:<version>-... in the Dockerfile"
    assert values()["airflowVersion"] == match[1]


def test_the_executor_and_telemetry_are_the_compose_stacks():
    compose = compose_common_env()
    assert values()["executor"] == compose["AIRFLOW__CORE__EXECUTOR"]
    everywhere = env_list(("env",))
    for name in ("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "DO_NOT_TRACK"):
        assert everywhere[name]["value"] == compose[name], name


def test_the_run_folders_and_the_task_logs_are_on_the_object_store():
    run_folder_url = env_list(("env",))[f"AIRFLOW_VAR_{RUN_FOLDER_URL_VARIABLE.upper()}"]["value"]
    match = re.fullmatch(rf"s3://{OBJECT_STORE_CONN_ID}@([a-z0-9.-]+)/.+", run_folder_url)
    assert match, f"the run folder URL {run_folder_url!r} names no bucket through {OBJECT_STORE_CONN_ID}"
    logging = values()["config"]["logging"]
    assert logging["remote_logging"] == "True"
    assert logging["remote_log_conn_id"] == OBJECT_STORE_CONN_ID
    assert logging["remote_base_log_folder"].startswith(f"s3://{match[1]}/"), "not the run folders' bucket"


def test_no_example_dags_and_the_dags_come_from_the_image():
    assert values()["config"]["core"]["load_examples"] == "False"
    assert get(values(), ("dags", "gitSync", "enabled")) is False
    assert get(values(), ("dags", "persistence", "enabled")) is False


def test_the_pools_are_created_after_each_migration():
    script = " ".join(values()["migrateDatabaseJob"]["args"])
    match = re.search(r"airflow db migrate && exec python -m ([\w.]+)$", script)
    assert match, f"the migration job does not create the pools after migrating: {script!r}"
    assert match[1] == pools.__name__, "not the module that declares the pools"


# --- connections and secrets ------------------------------------------------------------------------


def test_every_connection_comes_from_a_secret_and_only_where_it_is_used():
    for path in TASK_RUNNERS:
        env = env_list(path)
        for conn_id in PIPELINE_CONNECTIONS:
            item = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
            assert item, f"{'.'.join(path)} lacks the connection {conn_id}"
            assert "value" not in item, item
            assert "secretKeyRef" in item["valueFrom"], item
    for path in LOG_READERS:
        assert set(env_list(path)) == {f"AIRFLOW_CONN_{OBJECT_STORE_CONN_ID.upper()}"}, path
    # Not to every container (the scheduler and the dag-processor run no task code).
    for name in env_list(("env",)):
        assert not name.startswith("AIRFLOW_CONN_"), name
    assert not values().get("secret")
    assert not values().get("extraEnvFrom")


def test_no_secret_is_set_inline():
    for path in INLINE_SECRETS:
        assert get(values(), path) is None, f"{'.'.join(path)} takes a secret inline: name a Secret instead"
    # And no literal value for any connection, anywhere.
    text = VALUES.read_text()
    assert not re.search(r"name: AIRFLOW_CONN_\w+\s+value:", text)
    assert not re.search(r"://[^\s:/@]+:[^\s@/]+@", text), "credentials in a URL"


def test_each_secret_named_is_created_by_the_docs_with_the_keys_the_chart_reads():
    created = created_secrets(helm_section())
    needed: dict[str, set[str]] = {}
    for path, key in SECRET_KEYS.items():
        if name := get(values(), path):
            needed.setdefault(name, set()).add(key)
    for ref in secret_refs(values()):
        needed.setdefault(ref["name"], set()).add(ref["key"])
    assert needed, "the values name no Secret"
    for name, keys in needed.items():
        assert name in created, f"docs/deploying.md creates no Secret {name}"
        assert keys <= created[name], f"Secret {name} lacks {sorted(keys - created[name])}"
    assert set(created) == set(needed), f"Secrets created but not used: {sorted(set(created) - set(needed))}"


def test_the_chart_checks_on_redis_hold():
    """As the chart's check-values.yaml: its Redis with a password Secret needs the broker URL Secret,
    and neither may come with its inline counterpart."""
    if values()["executor"] == "CeleryExecutor" and get(values(), ("redis", "enabled")) is not False:
        assert get(values(), ("redis", "passwordSecretName"))
        assert get(values(), ("data", "brokerUrlSecretName")), "redis.passwordSecretName needs it"
    assert not (get(values(), ("redis", "passwordSecretName")) and get(values(), ("redis", "password")))
    assert not (get(values(), ("data", "brokerUrlSecretName")) and get(values(), ("data", "brokerUrl")))


def test_allowlisted_lines_only_name_secrets_the_docs_create():
    created = created_secrets(helm_section())
    lines = [
        line
        for line in VALUES.read_text().splitlines()
        if ALLOWLIST in line and not line.lstrip().startswith("#")
    ]
    assert lines, "no line names a Secret: then no line needs the allowlist"
    for line in lines:
        match = re.fullmatch(rf"\s*\w+SecretName: ([\w-]+)\s+# {ALLOWLIST}", line)
        assert match, f"allowlisted, but names no Secret: {line!r}"
        assert match[1] in created, f"allowlisted, but names a Secret the docs do not create: {line!r}"


def test_the_secret_scan_covers_the_file(tmp_path):
    """make lint's detect-secrets hook passes the file as it is and flags a copy with a password in it."""
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    (hook,) = [hook for repo in config["repos"] for hook in repo["hooks"] if hook["id"] == "detect-secrets"]
    relative = str(VALUES.relative_to(REPO_ROOT))
    assert not re.search(hook.get("exclude", "(?!)"), relative), f"the secret scan skips {relative}"
    leaked = tmp_path / "values.yaml"
    leaked.write_text(VALUES.read_text() + "flower:\n  password: " + "Zm9vYmFy" + "YmF6cXV4\n")

    def scan(path: Path) -> int:
        return subprocess.run(
            [hook["entry"], *hook.get("args", []), str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PATH": f"{REPO_ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"},
        ).returncode

    assert scan(VALUES) == 0
    assert scan(leaked) == 1


# --- the docs agree -------------------------------------------------------------------------------


def test_the_docs_pin_the_chart_version_the_values_were_written_for():
    section = helm_section()
    install = helm_install(section)
    version = chart_version_in_values()
    assert option(install, "--version") == [version]
    assert f"version {version}" in section, "the page does not say which chart version it was checked against"
    assert option(install, "--values") == [str(VALUES.relative_to(REPO_ROOT))]
    assert install[3:5] == ["airflow", "apache-airflow/airflow"], "the broker URL names the release airflow"
    assert "Nothing in this section is executed by the tests" in section


def test_every_values_key_the_docs_name_exists():
    """The table of what the file sets names only keys the file has."""
    rows = re.findall(r"^\| ([^|]+) \| ([^|]+) \|", helm_section(), re.M)
    table = [cell for what, cell in rows if what.strip() != "what"]  # not the header
    named = {name for cell in table for name in re.findall(r"`([A-Za-z][\w.]*)`", cell)}
    assert named, "the page's table names no key of the values file"
    env_names = {name for path in [("env",), *TASK_RUNNERS, *LOG_READERS] for name in env_list(path)}
    for name in sorted(named):
        if name.isupper():  # an environment variable the file sets
            assert name in env_names, f"the page names {name}, which the values file does not set"
        else:
            assert has(values(), tuple(name.split("."))), (
                f"the page names {name}, which the values file lacks"
            )
