"""The run folder's guarantees on an object store: the session's S3 server (`rclone serve s3`), reached
as a task reaches it, through the amazon provider with the keys of the connection `object_store`.

- A file appears whole or not at all: not while it is written, not when its writer fails, not when its
  writer is killed mid-upload; nothing named .partial is ever left.
- A missing input names the task to run.
That a re-run changes nothing is checked on whole runs, in tests/example/integration/test_object_store.py.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from include.common import run_folder
from include.common.run_folder import MissingRunFile
from include.user_processing import process, run_files, store
from tests.conftest import stored

pytestmark = pytest.mark.e2e

LOGICAL_DATE = datetime(2024, 11, 1, tzinfo=UTC)


@pytest.fixture
def folder(object_store, monkeypatch, request):
    """An empty run folder of its own on the S3 server, as run_folder.folder_for gives it to a task."""
    settings = object_store.airflow_settings(prefix=f"reliability/{request.node.name}")
    for key, value in settings.items():
        monkeypatch.setenv(key, value)  # and for the processes the test starts
    return run_folder.folder_of(run_folder.root(), "user_processing", LOGICAL_DATE)


def test_a_file_appears_only_whole_and_a_failed_write_leaves_nothing_new(folder, object_store):
    s3 = object_store.filesystem()
    page = run_files.page_path(folder, 1)
    with run_folder.open_for_atomic_write(page) as file:
        file.write(b'[{"name": ')
        assert stored(s3, folder.path) == {}  # half a page: nothing to read
        file.write(b'"Ada"}]')
    assert stored(s3, folder.path) == {"raw/page-00001.json": b'[{"name": "Ada"}]'}

    # A task that fails half-way through rewriting the page, or writing the manifest.
    for path in (page, run_files.manifest_path(folder)):
        with pytest.raises(RuntimeError, match="mid-write"):
            fail_mid_write(path)
    assert stored(s3, folder.path) == {"raw/page-00001.json": b'[{"name": "Ada"}]'}  # no .partial either


def fail_mid_write(path) -> None:
    with run_folder.open_for_atomic_write(path) as file:
        file.write(b"[{")
        raise RuntimeError("the worker failed mid-write")


# The writer stops itself once the first part of its upload is stored: held there, mid-upload, for the
# test to look and then kill it, however fast the upload would otherwise end.
WRITE_IN_A_PROCESS = """
import os, signal, sys
import s3fs
from airflow.sdk import ObjectStoragePath
from include.common import run_folder

call_s3 = s3fs.S3FileSystem._call_s3
async def held_after_the_first_part(self, method, *args, **kwargs):
    result = await call_s3(self, method, *args, **kwargs)
    if method == "upload_part":
        print("mid-upload", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
    return result
s3fs.S3FileSystem._call_s3 = held_after_the_first_part

with run_folder.open_for_atomic_write(ObjectStoragePath(sys.argv[1])) as file:
    file.write(os.urandom(int(sys.argv[2])))
"""


def test_a_writer_killed_mid_upload_leaves_no_object(folder, object_store):
    s3 = object_store.filesystem()
    csv = run_files.users_csv_path(folder)
    size = 8 * run_folder.UPLOAD_PART_BYTES  # uploaded part by part
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITE_IN_A_PROCESS, str(csv), str(size)], stdout=subprocess.PIPE, text=True
    )
    try:
        for line in writer.stdout:  # Airflow logs to stdout too
            if line == "mid-upload\n":
                break
        assert writer.poll() is None, "the writer ended before the first part of its upload"
        assert uploads_under_way(s3, csv.path)
        assert not s3.exists(csv.path)  # not there for any reader
    finally:
        writer.kill()  # as the OOM killer or a lost host would
        writer.wait()
    assert stored(s3, folder.path) == {}
    # A killed upload may leave an unfinished multipart upload, which no reader sees (on AWS a bucket
    # lifecycle rule aborts them: docs/deploying.md). This server drops it once the client is gone.
    for upload in uploads_under_way(s3, csv.path):
        with contextlib.suppress(FileNotFoundError):  # dropped meanwhile
            s3.call_s3("abort_multipart_upload", Bucket=object_store.bucket, **upload)


def uploads_under_way(s3, key: str) -> list[dict]:
    """The unfinished multipart uploads to `key` (bucket/key)."""
    bucket, _, key = key.partition("/")
    try:
        uploads = s3.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key).get("Uploads", [])
    except FileNotFoundError:  # rclone: an upload ended while it listed them
        return []
    return [{"Key": upload["Key"], "UploadId": upload["UploadId"]} for upload in uploads]


def test_a_missing_input_names_the_task_to_run(folder, object_store):
    manifest = run_files.manifest_path(folder)
    with pytest.raises(MissingRunFile, match=re.escape(f"{manifest} not found: run extract_user")):
        process.write_run_csv(folder)
    users_csv = run_files.users_csv_path(folder)
    with pytest.raises(MissingRunFile, match=re.escape(f"{users_csv} not found: run process_user")):
        store.store_run_csv(folder, connect=lambda: pytest.fail("connected to the warehouse without a CSV"))
    assert str(manifest).startswith(f"s3://object_store@{object_store.bucket}/")  # the URL, never the keys
    assert stored(object_store.filesystem(), folder.path) == {}
