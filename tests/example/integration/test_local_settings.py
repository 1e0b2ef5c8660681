"""airflow.env and your shell reach a real local Airflow (as in make demo, shell and ui)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.local_env import airflow_env, without_airflow_settings
from template.standin_user_api.process import StandInUserApi
from tests.example.conftest import UserApi, users_in
from tests.example.integration.expected import ROW, assert_succeeded, user_rows

pytestmark = pytest.mark.e2e


def test_a_connection_a_variable_and_an_option_of_yours_and_your_shells_api(
    airflow, warehouse, warehouse_uri, user_api, tmp_path
):
    settings_file = tmp_path / "airflow.env"
    settings_file.write_text(
        f"AIRFLOW_CONN_WAREHOUSE2={warehouse_uri}\n"
        "AIRFLOW_VAR_GREETING=hello from airflow.env\n"
        "AIRFLOW__USER_PROCESSING__SENSOR_POKE_INTERVAL=7\n"
    )
    with StandInUserApi() as other_api:
        shell = {**without_airflow_settings(airflow.env), "AIRFLOW_CONN_USER_API": other_api.url}
        local = airflow_env(
            Path(airflow.env["AIRFLOW_HOME"]),
            airflow.metadata_uri,
            airflow.env["AIRFLOW_CONN_POSTGRES"],
            user_api.url,  # the template's default; your shell points the run at other_api instead
            user_settings=settings_file,
            shell=shell,
        )
        env = local.env

        connection = json.loads(airflow.run("connections", "get", "warehouse2", "-o", "json", env=env).stdout)
        assert connection[0]["host"] == "127.0.0.1"
        assert airflow.run("variables", "get", "greeting", env=env).stdout.strip() == "hello from airflow.env"
        option = airflow.run("config", "get-value", "user_processing", "sensor_poke_interval", env=env)
        assert option.stdout.strip() == "7"

        assert_succeeded(airflow.dags_test("2024-06-01", skip_dbt=True, env=env))
        assert UserApi(other_api.url).requests(), "the run did not call the API your shell named"
    assert user_api.requests() == []  # nor the template's default
    assert users_in(warehouse, ROW) == user_rows("2024-06-01")
