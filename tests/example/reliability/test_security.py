"""Security: no secret in logs, XCom or the warehouse; every server we start is local-only.

Secrets in git are `make lint`'s: detect-secrets with scripts/secret_literals.py.
"""

from __future__ import annotations

import socket
import subprocess
import urllib.parse

import pytest

from scripts.local_env import REPO_ROOT
from tests.example.integration.expected import api_users, assert_succeeded
from tests.example.reliability.conftest import USERS
from tests.example.reliability.invariants import assert_secrets_nowhere, login_secrets


def test_env_file_is_git_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO_ROOT, check=False)
    assert ignored.returncode == 0, ".env must be listed in .gitignore"


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
    # place it may appear; template/tests/stack checks the real task logs of real workers at DEBUG.
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
