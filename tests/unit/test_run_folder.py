"""The run folder's naming, from a task's context alone."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from include.common.run_folder import folder_of, logical_date_of

QUEUED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_a_run_with_a_logical_date_uses_it():
    date = datetime(2024, 1, 1, tzinfo=UTC)
    assert logical_date_of({"logical_date": date, "dag_run": SimpleNamespace(run_after=QUEUED)}) == date


def test_runs_without_one_use_the_time_they_were_queued_for():
    # A manual trigger without a date has logical_date None; an asset-triggered run has no key at all.
    assert logical_date_of({"logical_date": None, "dag_run": SimpleNamespace(run_after=QUEUED)}) == QUEUED
    assert logical_date_of({"dag_run": SimpleNamespace(run_after=QUEUED)}) == QUEUED


def test_folders_are_keyed_by_dag_and_logical_date(tmp_path):
    assert (
        folder_of(tmp_path, "users_report", QUEUED)
        == tmp_path / "users_report" / "logical_date=20240506T070809"
    )
