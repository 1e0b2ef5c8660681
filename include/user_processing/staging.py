"""Where one DAG run's files live between tasks.

Tasks may run on different Celery workers, so nothing is handed over through a worker's local disk:
every file sits under one staging URL that all workers share (a shared volume in the Docker stack,
or an object store such as S3). The folder is keyed by DAG id and logical date, so each task finds
its input from its own context alone: that is what lets `airflow tasks test` run the tasks one by one.

Layout of one run's folder::

    <staging url>/<dag_id>/logical_date=<YYYYMMDDTHHMMSS>/
        raw/page-00001.json     extract_user: one API page (secrets removed)
        raw/manifest.json       extract_user: written last; marks the extract as complete
        users.csv               process_user: what store_user loads

The path and file helpers below (all but remove_folder) use only the pathlib API, so they take a
local pathlib.Path as well: the benchmarks in bench/ lay out their folders with them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any

from airflow.sdk import ObjectStoragePath, Variable

from include.user_processing.errors import MissingStagingFile
from include.user_processing.settings import STAGING_URL_VARIABLE


def default_staging_url() -> str:
    airflow_home = os.path.expanduser(os.environ.get("AIRFLOW_HOME", "~/airflow"))
    return f"file://{airflow_home}/staging"


def staging_root() -> ObjectStoragePath:
    return ObjectStoragePath(Variable.get(STAGING_URL_VARIABLE, default=default_staging_url()))


def logical_date_of(context: Any) -> datetime:
    """The run's logical date; runs triggered without one use the time they were queued for."""
    return context["logical_date"] or context["dag_run"].run_after


def run_folder(root: ObjectStoragePath, dag_id: str, logical_date: datetime) -> ObjectStoragePath:
    return root / dag_id / f"logical_date={logical_date:%Y%m%dT%H%M%S}"


def folder_for(context: Any) -> ObjectStoragePath:
    """The staging folder of the task's own DAG run."""
    return run_folder(staging_root(), context["dag"].dag_id, logical_date_of(context))


def raw_folder(run: ObjectStoragePath) -> ObjectStoragePath:
    return run / "raw"


def manifest_path(run: ObjectStoragePath) -> ObjectStoragePath:
    return raw_folder(run) / "manifest.json"


def page_path(run: ObjectStoragePath, page: int) -> ObjectStoragePath:
    return raw_folder(run) / f"page-{page:05d}.json"


def users_csv_path(run: ObjectStoragePath) -> ObjectStoragePath:
    return run / "users.csv"


def open_input(path: ObjectStoragePath, produced_by: str, mode: str = "rb") -> IO[Any]:
    """Open an upstream task's output, or say which task has to run first."""
    if not path.exists():
        raise MissingStagingFile(f"{path} not found: run {produced_by} for this logical date first")
    return path.open(mode)


@contextmanager
def open_for_atomic_write(path: ObjectStoragePath, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Write to a temporary name and rename it when done, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open(mode, **kwargs) as file:
            yield file
        partial.rename(path)
    finally:
        if partial.exists():
            partial.unlink()


def remove_folder(folder: ObjectStoragePath) -> None:
    if folder.exists():
        folder.fs.rm(folder.path, recursive=True)
