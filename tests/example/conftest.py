"""The example's fixtures, on top of tests/conftest.py's: the stand-in user API, and an `airflow` whose
helpers run user_processing unless told another DAG, with the `user_api` connection at the stand-in.

- ``user_api``: the stand-in randomuser.me API (template/standin_user_api) as a real HTTP server
  process, its faults and request log cleared per test.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest

from include.user_processing.settings import DAG_ID, DBT_GROUP, USER_API_CONN_ID
from template.standin_user_api.process import StandInUserApi
from tests.conftest import AirflowCli

FIXTURES = Path(__file__).parent / "fixtures"
SHIPPED_MODELS = (
    "stg_users",
    "dim_users",
    "users_by_country",
    "users_by_registration_year",
)  # in build order
DBT_BUILD_TASK = f"{DBT_GROUP}.dbt_build"  # the default mode's one task


@dataclass
class UserApi:
    """Test handle on the stand-in API: its URL plus its fault-injection control endpoints."""

    url: str

    def control(self, method: str, path: str, body: dict | None = None) -> object:
        request = urllib.request.Request(  # noqa: S310 - http:// to our own local server
            f"{self.url}/__standin__/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - as above
            payload = response.read()
        return json.loads(payload) if payload else None

    def add_fault(self, mode: str, **options: object) -> None:
        self.control("POST", "faults", {"mode": mode, **options})

    def requests(self) -> list[dict]:
        return self.control("GET", "requests")

    def reset(self) -> None:
        self.control("DELETE", "faults")
        self.control("DELETE", "requests")
        self.control("POST", "edge-cases", {"enabled": False})


@pytest.fixture(scope="session")
def _user_api_server() -> Iterator[StandInUserApi]:
    with StandInUserApi() as server:
        yield server


@pytest.fixture
def user_api(_user_api_server: StandInUserApi) -> Iterator[UserApi]:
    api = UserApi(_user_api_server.url)
    api.reset()
    yield api
    api.reset()


@pytest.fixture(scope="session")
def airflow(airflow: AirflowCli, _user_api_server: StandInUserApi) -> AirflowCli:
    """The session's Airflow (tests/conftest.py), reading the stand-in API, running user_processing."""
    connection = {f"AIRFLOW_CONN_{USER_API_CONN_ID.upper()}": _user_api_server.url}
    return replace(airflow, env={**airflow.env, **connection}, dag_id=DAG_ID, dbt_group=DBT_GROUP)


def users_in(
    conn: psycopg.Connection, columns: str = "user_id::text, firstname, lastname, country"
) -> list[tuple]:
    return conn.execute(f"SELECT {columns} FROM users ORDER BY user_id").fetchall()  # noqa: S608 - test-only
