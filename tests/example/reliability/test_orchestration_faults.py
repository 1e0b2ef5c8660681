"""Orchestration faults: sensor timeout, task timeout, and stale data as dbt's freshness check sees it."""

from __future__ import annotations

import pytest

from tests.example.integration.expected import assert_succeeded
from tests.example.reliability.conftest import assert_baseline_and_users_of
from tests.example.reliability.invariants import assert_visible_failure

pytestmark = pytest.mark.e2e


def test_an_api_that_stays_down_times_the_sensor_out(run, user_api, unchanged):
    user_api.add_fault("status", status=503, times=-1)
    result = run(
        "2024-12-01",
        env={
            "AIRFLOW__USER_PROCESSING__SENSOR_TIMEOUT": "3",
            "AIRFLOW__USER_PROCESSING__SENSOR_POKE_INTERVAL": "1",
        },
    )
    assert_visible_failure(result, "is_api_available", "AirflowSensorTimeout")
    assert all(request["status"] == 503 for request in user_api.requests())  # nothing got past it
    unchanged()


def test_a_hung_request_hits_execution_timeout_and_the_retry_loads_once(run, user_api, warehouse, baseline):
    # The first page request hangs longer than the task may run; the task's retry then succeeds.
    user_api.add_fault("timeout", seconds=20, after=1, times=1)
    result = run("2024-12-02", env={"AIRFLOW__USER_PROCESSING__TASK_TIMEOUT": "5"})
    assert_succeeded(result)
    assert "AirflowTaskTimeout" in result.stdout + result.stderr
    assert_baseline_and_users_of(warehouse, "2024-12-02")


def test_stale_users_fail_dbts_freshness_check(warehouse, baseline, dbt):
    # The DAG builds right after a load, so it does not check freshness (it would always pass);
    # `dbt source freshness`, run on its own or from a monitoring DAG, catches a pipeline that stopped.
    warehouse.execute("UPDATE users SET loaded_at = now() - interval '3 days'")  # no load for 3 days
    result = dbt.run("source", "freshness")
    assert result.returncode != 0
    assert "ERROR STALE freshness of warehouse.users" in result.stdout
