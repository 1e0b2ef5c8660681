"""The files of one user_processing run, inside its run folder (include/common/run_folder.py).

<run folder>/
    raw/page-00001.json     extract_user: one API page (secrets removed)
    raw/manifest.json       extract_user: written last; marks the extract as complete
    users.csv               process_user: what store_user loads
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def raw_folder(run: ObjectStoragePath) -> ObjectStoragePath:
    return run / "raw"


def manifest_path(run: ObjectStoragePath) -> ObjectStoragePath:
    return raw_folder(run) / "manifest.json"


def page_path(run: ObjectStoragePath, page: int) -> ObjectStoragePath:
    return raw_folder(run) / f"page-{page:05d}.json"


def users_csv_path(run: ObjectStoragePath) -> ObjectStoragePath:
    return run / "users.csv"
