"""process_user: the extracted API pages -> users.csv, the rows of the `users` table, with pandas.

Plain Python with no Airflow in it, so it is unit-tested directly (tests/example/unit/test_process.py).
Only write_run_csv, the task's body, touches the run folder: it imports run_folder and extract
(which need Airflow) when it is called, never when this module is imported.

- Values are copied verbatim: no trimming, no case changes (dbt's staging models clean them).
- Every value is written as text, so nothing is re-typed on the way: postcode "0150" keeps its
  leading zero, and an int postcode never becomes "12345.0".
- The CSV is written one API page at a time, so memory does not grow with the batch.
- Values are str or None (validation.py checked them at extract): None is written as "" (NULL).

The fast paths (msgspec records, numpy id keys) are in fast_paths.py, so that this file reads as
what it is: JSON pages in, one CSV out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

import pandas as pd

from include.user_processing.fast_paths import SeenUserIds, columns_of_records, is_records
from include.user_processing.fields import COLUMNS, FIELDS, Field

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def users_to_frame(users: list[dict[str, Any]] | list[Any]) -> pd.DataFrame:
    """One row per user, in API order, every value a str (or None when the API has none).

    Takes API user dicts, or the CsvUser records fast_paths.decode_users reads (the same
    columns, faster).
    """
    columns = columns_of_records(users) if is_records(users) else columns_of_dicts(users)
    return pd.DataFrame(columns, columns=list(COLUMNS), dtype=object)


def columns_of_dicts(users: list[dict[str, Any]]) -> dict[str, list]:
    """Each field's values, read from API user dicts along its path. A required field that is
    missing raises KeyError naming it (validation keeps such users out of extracted pages)."""
    return {field.column: [_value_at(user, field) for user in users] for field in FIELDS}


def _value_at(user: dict[str, Any], field: Field) -> str | None:
    node: Any = user
    for key in field.path.split("."):
        if node is None:  # an optional object the API left out
            return None
        node = node[key] if field.required else node.get(key)
    return _as_text(node)


def write_users_csv(pages_newest_first: Iterable[list[dict[str, Any]] | list[Any]], out: IO[str]) -> int:
    """Write the CSV (header, then one chunk per page); returns the number of rows written.

    A user_id that occurs more than once keeps its LAST occurrence in API order. Pages therefore
    arrive newest first: the first time we meet an id is its last occurrence, and any later
    sighting is an older copy to drop. Rows of one page keep their API order.
    """
    seen = SeenUserIds()
    rows = 0
    header = True
    for page in pages_newest_first:
        frame = users_to_frame(page).drop_duplicates("user_id", keep="last")
        frame = frame[seen.add_and_flag_new(frame["user_id"].tolist())]
        _write_chunk(frame, out, header=header)
        header = False
        rows += len(frame)
    if header:  # no pages at all: still a valid CSV, which store_user rejects as empty
        _write_chunk(users_to_frame([]), out, header=True)
    return rows


def write_run_csv(run: ObjectStoragePath) -> int:
    """The process_user task: the run's extracted pages -> its users.csv (written atomically).

    Returns the number of rows written.
    """
    from include.common import run_folder  # Airflow: see the module docstring
    from include.user_processing import extract, run_files

    with run_folder.open_for_atomic_write(
        run_files.users_csv_path(run), "w", encoding="utf-8", newline=""
    ) as file:
        return write_users_csv(extract.read_pages_newest_first(run), file)


def _write_chunk(frame: pd.DataFrame, out: IO[str], *, header: bool) -> None:
    # Quote every value, so COPY reads each one as data: an empty name stays an empty string and a
    # literal \N stays text. Missing optional values are written as "" too and load as NULL.
    # The rows go straight from the frame's columns to the csv module's C writer: the same bytes as
    # frame.to_csv(quoting=QUOTE_NONNUMERIC) for our str-or-None values, in under half the time
    # (to_csv first re-checks every value for NaN). They are gathered first and written in one call
    # per page: the csv writer writes row by row, and each write to an ObjectStoragePath file goes
    # through Airflow's lineage wrapper (1.5 s per 100k rows here). See docs/benchmarks.md.
    chunk = io.StringIO()
    writer = csv.writer(chunk, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    if header:
        writer.writerow(frame.columns)
    writer.writerows(zip(*(frame[column].tolist() for column in frame.columns), strict=True))
    out.write(chunk.getvalue())


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)
