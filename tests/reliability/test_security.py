"""Security: no secret in git, logs, XCom or the warehouse; every server we start is local-only."""

from __future__ import annotations

import re
import socket
import subprocess
import urllib.parse

import pytest

from scripts.local_env import REPO_ROOT
from tests.checkout import lines_where
from tests.integration.expected import api_users, assert_succeeded
from tests.reliability.conftest import USERS
from tests.reliability.invariants import assert_secrets_nowhere, login_secrets

# A value that only points at where the real secret comes from, or says to fill it in.
# ${VAR:?error}, $(command) and {template} are references; in ${VAR:-default} the default is a literal.
PLACEHOLDER = re.compile(r"^(\$\{.*|\$\(.*|\{.*|\?.*|<[^>]*>|CHANGE_?ME\w*|\*+|)$", re.IGNORECASE)
# `name = value` or `name: value`, not `==` (a comparison, or a pin such as detect-secrets==1.5.0).
SECRET_NAME = r"(?i:password|passwd|secret|fernet_key|token|api_key)\w*[\"']?\s*[:=](?!=)\s*"
# In Python, only a quoted string is a literal (password=password is code); elsewhere any value is.
PYTHON_SECRET = re.compile(SECRET_NAME + r"(?P<quote>[\"'])(?P<value>[^\"']*)(?P=quote)")
CONFIG_SECRET = re.compile(SECRET_NAME + r"[\"']?(?P<value>[^\s\"',}#]*)")
SHELL_DEFAULT = re.compile(r"\$\{\w*(?i:password|secret|fernet_key|token|api_key)\w*:?-(?P<value>[^}]*)\}")
URI_CREDENTIALS = re.compile(r"://(?P<user>[\w.-]+):(?P<value>[^@\s/]+)@")
# Real API samples (fake users' fake passwords), the upstream compose file kept for comparison, and
# this file's own examples of what the scanner must catch.
NOT_OURS = ("tests/fixtures/", "tests/stack/official-docker-compose")
THIS_FILE = "tests/reliability/test_security.py"
THROWAWAY = re.compile(r"test", re.IGNORECASE)  # the convention for the tests' throwaway servers


def secret_literals(name: str, line: str) -> list[str]:
    if name.endswith(".md"):  # prose says "token: ..." freely; only credentials in URLs count
        patterns = [URI_CREDENTIALS]
    else:
        patterns = [PYTHON_SECRET if name.endswith(".py") else CONFIG_SECRET, SHELL_DEFAULT, URI_CREDENTIALS]
    values = [
        match.group("value").removeprefix("-") for pattern in patterns for match in pattern.finditer(line)
    ]
    return [value for value in values if not (PLACEHOLDER.match(value) or THROWAWAY.search(value))]


def test_env_file_is_git_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO_ROOT, check=False)
    assert ignored.returncode == 0, ".env must be listed in .gitignore"


def test_no_secret_literal_is_committed():
    found = lines_where(lambda name, line: bool(secret_literals(name, line)), skip=(*NOT_OURS, THIS_FILE))
    assert not found, "secret-looking literals:\n" + "\n".join(found)


def test_the_scanner_finds_what_it_is_for():
    key = "Zm9vYmFyYmF6" + "cXV4cXV1eA=="  # split, so this file itself stays clean
    assert secret_literals("docker-compose.yaml", f"AIRFLOW__CORE__FERNET_KEY: {key}") == [key]
    assert secret_literals("settings.py", f'api_token = "{key}"') == [key]
    assert secret_literals("a.md", "postgresql://etl:hunter" + "2@db:5432/dwh") == ["hunter" + "2"]
    assert secret_literals("x.yaml", "POSTGRES_PASSWORD: air" + "flow") == ["air" + "flow"]
    assert secret_literals("x.yaml", "POSTGRES_PASSWORD: ${WAREHOUSE_PASSWORD}") == []
    assert secret_literals("x.py", "login['password'] = password") == []
    assert secret_literals("x.yaml", "JWT_SECRET: ${JWT_SECRET:-airflow_jwt_secret}") == [
        "airflow_jwt_secret"
    ]
    assert secret_literals("x.yaml", "JWT_SECRET: ${JWT_SECRET:?run make env}") == []
    assert secret_literals("dev.txt", "detect-secrets==1.5.0") == []


@pytest.mark.e2e
def test_a_debug_level_run_leaks_no_password(airflow, warehouse, warehouse_uri, user_api):
    # Every user gets a distinctive password, so a leak of any of them cannot hide in noise.
    user_api.control("POST", "edge-cases", {"enabled": True})
    result = airflow.dags_test(
        "2025-01-01", conf={"users": USERS}, env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"}
    )
    assert_succeeded(result)
    assert "[debug" in result.stdout  # the run really logged at DEBUG level

    salts_and_hashes, api_passwords = login_secrets(api_users("2025-01-01", USERS, edge_cases=True))
    assert_secrets_nowhere(
        salts_and_hashes | api_passwords,  # distinctive passwords here: searched for as text too
        warehouse=warehouse,
        metadata_uri=airflow.metadata_uri,
        folders=[airflow.home / "run-folders", airflow.home / "logs"],
        outputs=[result],
        passwords=api_passwords,
    )
    # The warehouse password: Airflow 3.3.2's in-process test supervisor (what `airflow dags test`
    # uses, not the workers) logs each secret it registers for masking at DEBUG. That line is the only
    # place it may appear; tests/stack checks the real task logs of real workers at DEBUG.
    warehouse_password = urllib.parse.urlsplit(warehouse_uri).password
    leaks = [line for line in (result.stdout + result.stderr).splitlines() if warehouse_password in line]
    assert all("Sending request" in line and "MaskSecret(value=" in line for line in leaks), leaks[:3]


@pytest.mark.e2e
def test_every_server_the_tests_start_listens_on_localhost_only(postgres, warehouse, user_api):
    assert warehouse.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
    host = urllib.parse.urlsplit(user_api.url).hostname
    assert host == "127.0.0.1"
    # Not reachable on any other address of this machine.
    port = urllib.parse.urlsplit(user_api.url).port
    for address in other_addresses():
        for server_port in (port, postgres.port):
            with socket.socket() as probe:
                probe.settimeout(1)
                assert probe.connect_ex((address, server_port)) != 0, f"{address}:{server_port} is open"


def other_addresses() -> list[str]:
    names = {socket.gethostname(), socket.getfqdn()}
    addresses = set()
    for name in names:
        try:
            addresses |= {info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)}
        except socket.gaierror:
            continue
    return sorted(address for address in addresses if not address.startswith("127."))
