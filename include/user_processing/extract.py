"""extract_user: fetch one run's users page by page into its run folder, and read them back.

Pages are written as they arrive, so memory stays flat however many users a run asks for, and the
manifest is written last: process_user refuses a folder without one, so a crashed or half-finished
extract is never mistaken for a complete one.

Two requests are in flight at a time (PAGES_IN_FLIGHT): while the API builds one page, this worker
validates and writes the previous one. Pages are still written strictly in order, one file each,
byte for byte what a one-page-at-a-time extract writes, and the first failing page fails the task.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from include.common import run_folder
from include.user_processing import run_files
from include.user_processing.user_api import fetch_users_page, page_sizes, request_timeout

if TYPE_CHECKING:
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.sdk import ObjectStoragePath

# Why 2: with one request in flight, the API idles while this worker validates and writes a page,
# and the worker idles while the API builds and sends the next one. A second request hides that
# wait: with 1 s of response time a page, 1.8x the users/s of one at a time (docs/benchmarks.md).
# A third hides a little more, but it is one more page (5000 users) in memory per task and one more
# concurrent request per task against the API; the real API's quota (about 20k users per 5 minutes)
# caps a run's speed whatever the concurrency, so more would only reach its 429s sooner.
PAGES_IN_FLIGHT = 2


def seed_for(dag_id: str, logical_date: datetime) -> str:
    """The API seed for one run: the same logical date always fetches the same users."""
    return f"{dag_id}-{logical_date:%Y%m%dT%H%M%S}"


def extract_users(
    hook: HttpHook,
    run: ObjectStoragePath,
    *,
    seed: str,
    total_users: int,
    pages_in_flight: int = PAGES_IN_FLIGHT,
) -> dict:
    """Fetch `total_users` users into `run`'s raw folder; returns the manifest."""
    sizes = page_sizes(total_users)
    timeout = request_timeout(hook)
    run_folder.remove_folder(run_files.raw_folder(run))  # a retry starts from a clean folder

    def fetch(page: int, size: int) -> list[dict]:
        # Each request gets its own copy of the hook: HttpHook.run keeps per-call state on the hook.
        return fetch_users_page(copy.copy(hook), seed=seed, page=page, results=size, timeout=timeout)

    requests = list(enumerate(sizes, start=1))  # (page, size), in page order
    with ThreadPoolExecutor(max_workers=pages_in_flight, thread_name_prefix="extract") as pool:
        in_flight = deque(pool.submit(fetch, *request) for request in requests[:pages_in_flight])
        for page, _ in requests:
            users = in_flight.popleft().result()  # the first failure, in page order, fails the task
            if page + pages_in_flight <= len(requests):  # keep the window full
                in_flight.append(pool.submit(fetch, *requests[page + pages_in_flight - 1]))
            with run_folder.open_for_atomic_write(run_files.page_path(run, page)) as file:
                file.write(json.dumps(users, ensure_ascii=False).encode())
            del users  # do not hold a written page while waiting for the next one
    manifest = {"seed": seed, "users": total_users, "pages": len(sizes)}
    with run_folder.open_for_atomic_write(run_files.manifest_path(run)) as file:
        file.write(json.dumps(manifest).encode())
    return manifest


def read_pages_newest_first(run: ObjectStoragePath) -> Iterator[list]:
    """Yield the extracted pages, last page first (see process.write_users_csv for why).

    Each page comes as fast_paths.decode_users reads it: one CsvUser record per user, holding only
    the fields the CSV is built from (parsing skips the rest: three times faster than json.load).
    """
    from include.user_processing.fast_paths import decode_users  # msgspec: only process_user needs it

    with run_folder.open_input(run_files.manifest_path(run), produced_by="extract_user") as file:
        manifest = json.load(file)
    for page in range(manifest["pages"], 0, -1):
        with run_folder.open_input(run_files.page_path(run, page), produced_by="extract_user") as file:
            yield decode_users(file.read())
