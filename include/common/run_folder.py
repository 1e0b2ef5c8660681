"""The run folder: where one DAG run's tasks hand their files to each other.

Tasks may run on different Celery workers, so nothing is handed over through a worker's local disk:
every file sits under one URL that all workers share (a shared volume in the Docker stack, or an
object store such as S3). Each run gets its own folder, keyed by DAG id and logical date, so a task
finds its input from its own context alone: that is what lets `airflow tasks test` run the tasks of
a DAG one by one.

    <run folder url>/<dag_id>/logical_date=<YYYYMMDDTHHMMSS>/

The URL defaults to file://$AIRFLOW_HOME/run-folders; the Airflow Variable `run_folder_url` (or
AIRFLOW_VAR_RUN_FOLDER_URL) overrides it: a shared volume, or a bucket on S3 through the amazon
provider, e.g. s3://object_store@my-bucket/run-folders, where `object_store` is the Airflow connection
holding the store's endpoint and keys (docs/deploying.md, "Run folders on an object store"). The
helpers below (all but remove_folder) use only the pathlib API, so they take a local pathlib.Path as
well: the benchmarks in template/bench/ lay out their folders with them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any

from airflow.sdk import ObjectStoragePath, Variable

RUN_FOLDER_URL_VARIABLE = "run_folder_url"
# Stores on which an object appears only once its upload is complete (one PUT, or a multipart upload
# when it is completed), and where a rename is a copy of the whole object: the amazon provider's S3.
WHOLE_OBJECT_STORES = frozenset({"s3", "s3a", "s3n"})
# Uploads above twice this size go in parts of this size, one at a time: a task's memory stays flat
# whatever the file's size (s3fs' own default holds up to 10 parts of 50 MB at once).
UPLOAD_PART_BYTES = 16 * 2**20


class MissingRunFile(Exception):
    """An upstream task's output is not in the run folder (run that task first)."""


def default_url(airflow_home: str | None = None) -> str:
    airflow_home = airflow_home or os.path.expanduser(os.environ.get("AIRFLOW_HOME", "~/airflow"))
    return f"file://{airflow_home}/run-folders"


def root() -> ObjectStoragePath:
    return ObjectStoragePath(Variable.get(RUN_FOLDER_URL_VARIABLE, default=default_url()))


def logical_date_of(context: Any) -> datetime:
    """The run's logical date; runs without one (asset-triggered, or triggered without a date) use the
    time they were queued for, and their context may not hold the key at all."""
    return context.get("logical_date") or context["dag_run"].run_after


def folder_of(base: ObjectStoragePath, dag_id: str, logical_date: datetime) -> ObjectStoragePath:
    return base / dag_id / f"logical_date={logical_date:%Y%m%dT%H%M%S}"


def folder_for(context: Any) -> ObjectStoragePath:
    """The run folder of the task's own DAG run."""
    return folder_of(root(), context["dag"].dag_id, logical_date_of(context))


def open_input(path: ObjectStoragePath, produced_by: str, mode: str = "rb") -> IO[Any]:
    """Open an upstream task's output, or say which task has to run first."""
    if not path.exists():
        raise MissingRunFile(f"{path} not found: run {produced_by} for this logical date first")
    return path.open(mode)


@contextmanager
def open_for_atomic_write(path: ObjectStoragePath, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Write `path` so that a reader finds it whole or not at all, even if the writer dies half-way.

    On a file system (a local disk, a shared volume): write <name>.partial beside it, then rename it
    into place. On S3 the store itself never shows half an object, and a rename would be a copy of it:
    write a temporary file on this worker, then upload it to `path` in one go. Either way, a write that
    fails leaves nothing new under either name.
    """
    if getattr(path, "protocol", "") in WHOLE_OBJECT_STORES:
        with tempfile.TemporaryDirectory(prefix="run-folder-upload-") as scratch:
            local = os.path.join(scratch, path.name)
            with open(local, mode, **kwargs) as file:
                yield file
            path.fs.put_file(local, path.path, chunksize=UPLOAD_PART_BYTES, max_concurrency=1)
        return
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
