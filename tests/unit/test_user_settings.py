"""Which settings a local run (make demo, shell, ui) takes from airflow.env and from your shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.local_env import airflow_env

SHELL = {"PATH": "/usr/bin", "HOME": "/home/me"}
WAREHOUSE_URI = "postgresql://warehouse:pw@127.0.0.1:5/warehouse"  # pragma: allowlist secret
CRM_URI = "postgresql://me:pw@crm:5432/crm"  # pragma: allowlist secret


def settings(tmp_path: Path, user_file: str | None, **shell: str):
    path = None
    if user_file is not None:
        path = tmp_path / "airflow.env"
        path.write_text(user_file)
    return airflow_env(
        tmp_path / "home",
        "postgresql://airflow:pw@127.0.0.1:5/airflow",  # pragma: allowlist secret
        WAREHOUSE_URI,
        "http://127.0.0.1:6",
        user_settings=path,
        shell={**SHELL, **shell},
    )


def test_the_template_defaults_point_at_the_throwaway_services(tmp_path):
    env = settings(tmp_path, None).env
    assert env["AIRFLOW_CONN_USER_API"] == "http://127.0.0.1:6"
    assert env["AIRFLOW_CONN_POSTGRES"] == WAREHOUSE_URI
    assert env["AIRFLOW_HOME"] == str(tmp_path / "home")


def test_airflow_env_adds_connections_variables_and_options(tmp_path):
    local = settings(
        tmp_path,
        f"# mine\nAIRFLOW_CONN_CRM={CRM_URI}\nexport AIRFLOW_VAR_GREETING='hi there'\n"
        "AIRFLOW__USER_PROCESSING__SENSOR_TIMEOUT=900  # seconds\n",
    )
    assert local.env["AIRFLOW_CONN_CRM"] == CRM_URI
    assert local.env["AIRFLOW_VAR_GREETING"] == "hi there"
    assert local.env["AIRFLOW__USER_PROCESSING__SENSOR_TIMEOUT"] == "900"
    assert local.from_user_settings == [
        "AIRFLOW_CONN_CRM",
        "AIRFLOW_VAR_GREETING",
        "AIRFLOW__USER_PROCESSING__SENSOR_TIMEOUT",
    ]
    assert "pw" not in local.sources()  # names only, never a value


def test_your_shell_wins_over_the_defaults_and_over_airflow_env(tmp_path):
    local = settings(
        tmp_path,
        "AIRFLOW_VAR_GREETING=from-file\nAIRFLOW__LOGGING__LOGGING_LEVEL=DEBUG\n",
        AIRFLOW_CONN_USER_API="http://other-api:8000",
        AIRFLOW_VAR_GREETING="from-shell",
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        AIRFLOW_CONN_ELSEWHERE="http://x",
    )
    assert local.env["AIRFLOW_CONN_USER_API"] == "http://other-api:8000"
    assert local.env["AIRFLOW_VAR_GREETING"] == "from-shell"
    assert local.env["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "WARNING"
    assert local.env["AIRFLOW_CONN_ELSEWHERE"] == "http://x"
    assert local.from_shell == [
        "AIRFLOW_CONN_ELSEWHERE",
        "AIRFLOW_CONN_USER_API",
        "AIRFLOW_VAR_GREETING",
        "AIRFLOW__LOGGING__LOGGING_LEVEL",
    ]


def test_your_shell_never_points_a_local_run_away_from_its_services(tmp_path):
    env = settings(
        tmp_path,
        None,
        AIRFLOW_HOME="/home/me/airflow",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql://prod",
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",  # meant for another Airflow: not one the template sets
    ).env
    assert env["AIRFLOW_HOME"] == str(tmp_path / "home")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@127.0.0.1:5/airflow")
    assert "AIRFLOW__CORE__EXECUTOR" not in env


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("AIRFLOW_CONN_USER_API=http://x", "AIRFLOW_CONN_USER_API: set by the template itself"),
        ("AIRFLOW__CORE__FERNET_KEY=abc", "AIRFLOW__CORE__FERNET_KEY: set by the template itself"),
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=x", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: set by the template"),
        ("WAREHOUSE_PASSWORD=secret", "WAREHOUSE_PASSWORD: not an AIRFLOW_CONN_*"),
    ],
)
def test_airflow_env_refuses_what_is_not_yours_by_name(tmp_path, line, why):
    with pytest.raises(ValueError, match="has lines the template cannot take") as refused:
        settings(tmp_path, line + "\n")
    assert why in str(refused.value)
    assert line.split("=", 1)[1] not in str(refused.value)  # the value is never repeated
