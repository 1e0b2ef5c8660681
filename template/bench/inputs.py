"""Deterministic input for the benchmarks: what extract_user writes, generated once and cached.

One folder of stand-in pages per generator version, its pages named and placed as in a DAG run's
run folder (.local/bench/pages/<seed>-<version>/raw/page-00001.json, ...; no manifest). A
benchmark at N users gets a run folder laid out like a DAG run's (raw/ pages plus raw/manifest.json,
through include/user_processing/run_files.py) whose pages link to the cached ones, so 1M users are
generated only once.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

from include.common.run_folder import open_for_atomic_write
from include.user_processing import run_files
from include.user_processing.extract import seed_for
from include.user_processing.settings import MAX_USERS_PER_PAGE
from include.user_processing.user_api import page_sizes, strip_secrets
from include.user_processing.validation import validate_users
from scripts.local_env import LOCAL_DIR
from template.standin_user_api import generate_page

BENCH_DIR = LOCAL_DIR / "bench"  # git-ignored, like all of .local/
# The seed the DAG uses for logical date 2024-01-01, so the extract benchmark fetches these users.
SEED = seed_for("user_processing", datetime(2024, 1, 1))


@functools.cache
def generator_version() -> str:
    """Changes whenever the stand-in's users do, so a stale cache is never used.

    A digest of a sample of generated users, not of the generator's source: edits that do not
    change the users (comments, refactors) keep the cache. Computed once per process.
    """
    sample = json.dumps(generate_page(SEED, 1, 200), sort_keys=True).encode()
    return hashlib.sha256(sample).hexdigest()[:12]


def page_cache() -> Path:
    """The cached pages' folder: laid out like a run folder, pages under raw/ (no manifest)."""
    return BENCH_DIR / "pages" / f"{SEED}-{generator_version()}"


def cached_page(page: int) -> Path:
    return run_files.page_path(page_cache(), page)


def page_bytes(page: int) -> bytes:
    """Page `page` exactly as extract_user writes it: validated, secrets removed, same JSON."""
    users = generate_page(SEED, page, MAX_USERS_PER_PAGE)["results"]
    validate_users(users, page=page)
    for user in users:
        strip_secrets(user)
    return json.dumps(users, ensure_ascii=False).encode()


def _write_page(page: int) -> None:
    data = page_bytes(page)
    # Atomically, as extract_user does: a run killed half-way never leaves a truncated page behind.
    with open_for_atomic_write(cached_page(page)) as file:
        file.write(data)


def ensure_pages(users: int, progress=print) -> None:
    """Generate the pages `users` needs that are not cached yet (both cores: it is a one-off)."""
    missing = [page for page in range(1, len(page_sizes(users)) + 1) if not cached_page(page).exists()]
    if not missing:
        return
    progress(f"generating {len(missing) * MAX_USERS_PER_PAGE:,} stand-in users once into {page_cache()} ...")
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        list(pool.map(_write_page, missing, chunksize=4))


def run_folder(users: int) -> Path:
    """A run folder holding the first `users` cached users (whole pages only)."""
    if users % MAX_USERS_PER_PAGE:
        raise ValueError(f"benchmark sizes must be whole pages of {MAX_USERS_PER_PAGE}, got {users}")
    ensure_pages(users)
    run = BENCH_DIR / "runs" / f"users={users}"
    run_files.raw_folder(run).mkdir(parents=True, exist_ok=True)
    pages = len(page_sizes(users))
    for page in range(1, pages + 1):
        link, cached = run_files.page_path(run, page), cached_page(page)
        if not link.is_symlink() or link.resolve() != cached.resolve():
            link.unlink(missing_ok=True)
            link.symlink_to(cached)
    manifest = {"seed": SEED, "users": users, "pages": pages}  # what extract_users writes last
    run_files.manifest_path(run).write_text(json.dumps(manifest))
    return run


def changed_copy(source: Path, target: Path, every: int = 10) -> int:
    """Copy a users CSV, changing the email of every `every`-th user; returns how many changed.

    Read and written with the csv module and the same quoting, so unchanged rows stay byte-identical.
    """
    changed = 0
    with (
        source.open(newline="", encoding="utf-8") as src,
        target.open("w", newline="", encoding="utf-8") as dst,
    ):
        reader = csv.reader(src)
        writer = csv.writer(dst, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        header = next(reader)
        writer.writerow(header)
        email = header.index("email")
        for index, row in enumerate(reader):
            if index % every == 0:
                row[email] = "changed." + row[email]
                changed += 1
            writer.writerow(row)
    return changed
