"""Transform: API users -> CSV rows for the `users` table, with pandas.

Plain Python with no Airflow in it, so it is unit-tested directly (tests/unit/test_transform.py).

- Values are copied verbatim: no trimming, no case changes (dbt's staging layer cleans them).
- Every value is written as text, so nothing is re-typed on the way: postcode "0150" keeps its
  leading zero, and an int postcode never becomes "12345.0".
- Columns are built with one list comprehension each (far faster than `json_normalize`) and the
  CSV is written one API page at a time, so memory does not grow with the batch.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

import pandas as pd

# The CSV's columns, in order; the same names as the columns of the `users` table.
CSV_COLUMNS = (
    "user_id",
    "firstname",
    "lastname",
    "email",
    "username",
    "gender",
    "city",
    "country",
    "postcode",
    "nationality",
    "registered_at",
)
# Columns the API may leave out or send as null; loaded as NULL when empty.
OPTIONAL_COLUMNS = ("gender", "city", "postcode", "nationality", "registered_at")


def users_to_frame(users: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per user, in API order, every value a str (or None when the API has none)."""
    logins = [user["login"] for user in users]
    names = [user["name"] for user in users]
    locations = [user["location"] for user in users]
    columns = {
        "user_id": [login["uuid"] for login in logins],
        "firstname": [name["first"] for name in names],
        "lastname": [name["last"] for name in names],
        "email": [user["email"] for user in users],
        "username": [login["username"] for login in logins],
        "gender": [user.get("gender") for user in users],
        "city": [location.get("city") for location in locations],
        "country": [location["country"] for location in locations],
        "postcode": [_as_text(location.get("postcode")) for location in locations],
        "nationality": [user.get("nat") for user in users],
        "registered_at": [(user.get("registered") or {}).get("date") for user in users],
    }
    return pd.DataFrame(columns, columns=list(CSV_COLUMNS), dtype=object)


def write_users_csv(pages_newest_first: Iterable[list[dict[str, Any]]], out: IO[str]) -> int:
    """Write the CSV (header, then one chunk per page); returns the number of rows written.

    A user_id that occurs more than once keeps its LAST occurrence in API order. Pages therefore
    arrive newest first: the first time we meet an id is its last occurrence, and any later
    sighting is an older copy to drop. Rows of one page keep their API order.
    """
    seen: set[str] = set()
    rows = 0
    header = True
    for page in pages_newest_first:
        frame = users_to_frame(page).drop_duplicates("user_id", keep="last")
        frame = frame[[user_id not in seen for user_id in frame["user_id"]]]
        seen.update(frame["user_id"])
        _write_chunk(frame, out, header=header)
        header = False
        rows += len(frame)
    if header:  # no pages at all: still a valid CSV, which store_user rejects as empty
        _write_chunk(users_to_frame([]), out, header=True)
    return rows


def _write_chunk(frame: pd.DataFrame, out: IO[str], *, header: bool) -> None:
    # Quote every value, so COPY reads each one as data: an empty name stays an empty string and a
    # literal \N stays text. Missing optional values are written as "" too and load as NULL.
    frame.to_csv(out, header=header, index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)
