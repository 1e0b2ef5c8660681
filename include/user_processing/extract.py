"""Extract: fetch one run's users page by page into the run's staging folder, and read them back.

Pages are written as they arrive, so memory stays flat however many users a run asks for, and the
manifest is written last: process_user refuses a folder without one, so a crashed or half-finished
extract is never mistaken for a complete one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from include.user_processing import staging
from include.user_processing.user_api import fetch_users_page, page_sizes, request_timeout

if TYPE_CHECKING:
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.sdk import ObjectStoragePath


def seed_for(dag_id: str, logical_date: datetime) -> str:
    """The API seed for one run: the same logical date always fetches the same users."""
    return f"{dag_id}-{logical_date:%Y%m%dT%H%M%S}"


def extract_users(hook: HttpHook, run: ObjectStoragePath, *, seed: str, total_users: int) -> dict:
    """Fetch `total_users` users into `run`'s raw folder; returns the manifest."""
    sizes = page_sizes(total_users)
    timeout = request_timeout(hook)
    staging.remove_folder(staging.raw_folder(run))  # a retry starts from a clean folder
    for page, size in enumerate(sizes, start=1):
        users = fetch_users_page(hook, seed=seed, page=page, results=size, timeout=timeout)
        with staging.open_for_atomic_write(staging.page_path(run, page)) as file:
            file.write(json.dumps(users, ensure_ascii=False).encode())
    manifest = {"seed": seed, "users": total_users, "pages": len(sizes)}
    with staging.open_for_atomic_write(staging.manifest_path(run)) as file:
        file.write(json.dumps(manifest).encode())
    return manifest


def read_pages_newest_first(run: ObjectStoragePath) -> Iterator[list[dict]]:
    """Yield the extracted pages, last page first (see transform.write_users_csv for why)."""
    with staging.open_input(staging.manifest_path(run), produced_by="extract_user") as file:
        manifest = json.load(file)
    for page in range(manifest["pages"], 0, -1):
        with staging.open_input(staging.page_path(run, page), produced_by="extract_user") as file:
            yield json.load(file)
