"""Transform: API users -> CSV rows for the `users` table, with pandas.

Plain Python with no Airflow in it, so it is unit-tested directly (tests/unit/test_transform.py).
Only write_run_csv, the process_user task's body, touches the run's staging folder: it imports
staging and extract (which need Airflow) when it is called, never when this module is imported.

- Values are copied verbatim: no trimming, no case changes (dbt's staging layer cleans them).
- Every value is written as text, so nothing is re-typed on the way: postcode "0150" keeps its
  leading zero, and an int postcode never becomes "12345.0".
- Page files are decoded straight into CsvUser records holding only the CSV's fields; columns are
  built with one list comprehension each (far faster than `json_normalize`) and the CSV is written
  one API page at a time, so memory does not grow with the batch (see docs/benchmarks.md).
- Values are str or None (user_api validated them at extract): None is written as "" (NULL).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

import msgspec
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

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


class _Login(msgspec.Struct, gc=False):
    uuid: str
    username: str


class _Name(msgspec.Struct, gc=False):
    first: str
    last: str


class _Location(msgspec.Struct, gc=False):
    country: str
    city: str | None = None
    postcode: str | int | None = None


class _Registered(msgspec.Struct, gc=False):
    date: str | None = None


class CsvUser(msgspec.Struct, gc=False):
    """The fields of an API user that the CSV is built from, as decode_users reads them.

    gc=False: records without references to other objects need no cycle collection, which would
    otherwise rescan hundreds of thousands of them while a page is decoded.
    """

    login: _Login
    name: _Name
    email: str
    location: _Location
    gender: str | None = None
    nat: str | None = None
    registered: _Registered | None = None


_PAGE_DECODER = msgspec.json.Decoder(list[CsvUser])


def decode_users(page_json: bytes) -> list[CsvUser] | list[dict[str, Any]]:
    """A page file's users as CsvUser records: only the fields above are built, the rest skipped."""
    try:
        return _PAGE_DECODER.decode(page_json)
    except msgspec.DecodeError:
        # Not the shape extract_user writes (a hand-edited page, say): plain dicts, so the
        # transform fails, or succeeds, exactly as it would have without this fast path.
        return json.loads(page_json)


def users_to_frame(users: list[dict[str, Any]] | list[CsvUser]) -> pd.DataFrame:
    """One row per user, in API order, every value a str (or None when the API has none).

    Takes API user dicts, or the CsvUser records decode_users reads (the same columns, faster).
    """
    records = bool(users) and isinstance(users[0], CsvUser)
    columns = _columns_of_records(users) if records else _columns_of_dicts(users)
    return pd.DataFrame(columns, columns=list(CSV_COLUMNS), dtype=object)


def _columns_of_dicts(users: list[dict[str, Any]]) -> dict[str, list]:
    logins = [user["login"] for user in users]
    names = [user["name"] for user in users]
    locations = [user["location"] for user in users]
    return {
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


def _columns_of_records(users: list[CsvUser]) -> dict[str, list]:
    """The same columns as _columns_of_dicts, from CsvUser records: keep the two in step."""
    logins = [user.login for user in users]
    names = [user.name for user in users]
    locations = [user.location for user in users]
    return {
        "user_id": [login.uuid for login in logins],
        "firstname": [name.first for name in names],
        "lastname": [name.last for name in names],
        "email": [user.email for user in users],
        "username": [login.username for login in logins],
        "gender": [user.gender for user in users],
        "city": [location.city for location in locations],
        "country": [location.country for location in locations],
        "postcode": [_as_text(location.postcode) for location in locations],
        "nationality": [user.nat for user in users],
        "registered_at": [None if user.registered is None else user.registered.date for user in users],
    }


def write_users_csv(pages_newest_first: Iterable[list[dict[str, Any]] | list[CsvUser]], out: IO[str]) -> int:
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
    from include.user_processing import extract, staging  # Airflow: see the module docstring

    with staging.open_for_atomic_write(
        staging.users_csv_path(run), "w", encoding="utf-8", newline=""
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


class SeenUserIds:
    """The user ids already written, exactly, in ~20 bytes an id (a set of str takes ~115).

    At a million users a plain set would be the biggest thing in memory. API ids are UUIDs, so
    they are kept as 16-byte keys in one sorted numpy array, looked up with a binary search. New
    ids wait in a small set and join the array in batches, so the array is rebuilt rarely. Ids
    that are not lower-case UUIDs (hand-made data: validation keeps them out of the API's pages)
    go to a plain set instead. Both are exact: no hashing, no false positives.
    """

    MERGE_EVERY = 50_000  # pending ids; ~6 MB of set, and ~20 array rebuilds per million users

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype="S16")  # sorted
        self._pending_ids: set[str] = set()
        self._pending_keys: list[np.ndarray] = []
        self._other_ids: set[str] = set()

    def add_and_flag_new(self, ids: list[str]) -> np.ndarray:
        """For each id (unique within the call): True if no earlier call had it. Remembers them all."""
        keys = _uuid_keys(ids)
        if keys is None:  # some id is not a UUID: sort them one by one
            return np.array([self._add_one(user_id) for user_id in ids], dtype=bool)
        new = ~self._in_keys(keys) & np.array([i not in self._pending_ids for i in ids], dtype=bool)
        self._pending_ids.update(ids)
        self._pending_keys.append(keys)
        if len(self._pending_ids) >= self.MERGE_EVERY:
            self._merge_pending()
        return new

    def _add_one(self, user_id: str) -> bool:
        if _uuid_keys([user_id]) is not None:
            return bool(self.add_and_flag_new([user_id])[0])
        new = user_id not in self._other_ids
        self._other_ids.add(user_id)
        return new

    def _in_keys(self, keys: np.ndarray) -> np.ndarray:
        if not len(self._keys):
            return np.zeros(len(keys), dtype=bool)
        at = np.searchsorted(self._keys, keys).clip(max=len(self._keys) - 1)
        return self._keys[at] == keys

    def _merge_pending(self) -> None:
        pending = np.sort(np.concatenate(self._pending_keys))
        self._keys = np.insert(self._keys, np.searchsorted(self._keys, pending), pending)
        self._pending_ids.clear()
        self._pending_keys.clear()


def _uuid_keys(ids: list[str]) -> np.ndarray | None:
    """The ids as 16-byte keys if every one is a lower-case UUID like the API's, else None."""
    count = len(ids)
    try:
        joined = "".join(ids)
    except TypeError:  # an id that is not even a str (hand-made data): not a UUID either
        return None
    if not (joined.isascii() and all(len(user_id) == 36 for user_id in ids)):
        return None
    if any(joined[position::36] != "-" * count for position in (8, 13, 18, 23)):
        return None
    digits = joined.replace("-", "")
    if len(digits) != 32 * count or digits != digits.lower():
        return None
    try:
        packed = bytes.fromhex(digits)
    except ValueError:
        return None
    if len(packed) != 16 * count:  # fromhex skips whitespace: then a UUID had fewer than 32 digits
        return None
    return np.frombuffer(packed, dtype="S16")


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)
