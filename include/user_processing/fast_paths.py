"""The pipeline's fast paths, kept apart so that process.py reads as plain pandas and
validation.py as plain checks. What they buy is measured in docs/benchmarks.md (`make bench`):

- ``decode_users``: a page file straight into CsvUser records that hold only the fields the CSV
  needs (msgspec skips the rest: three times faster than json.load, which it falls back to).
- ``columns_of_records``: the CSV's columns from those records; process._columns_of_dicts builds
  the same columns from plain dicts, and the tests check that both give the same CSV.
- ``SeenUserIds``: the user ids already written, as 16-byte keys in a sorted numpy array: what a
  set of str does, in 16 MB instead of 115 MB at a million users.
- ``is_valid_user``: a yes/no answer to validation.user_problem, for the users that have no problem
  (nearly all): twice as fast as finding which field is wrong. extract_user calls it per user.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import numpy as np

from include.user_processing.validation import OPTIONAL_FIELDS, UUID_PATTERN, is_iso_timestamp, lookup


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
        # process step fails, or succeeds, exactly as it would have without this fast path.
        return json.loads(page_json)


def is_records(users: list[Any]) -> bool:
    return bool(users) and isinstance(users[0], CsvUser)


def columns_of_records(users: list[CsvUser]) -> dict[str, list]:
    """The same columns as process._columns_of_dicts, from CsvUser records: keep the two in step."""
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
        "postcode": [None if location.postcode is None else str(location.postcode) for location in locations],
        "nationality": [user.nat for user in users],
        "registered_at": [None if user.registered is None else user.registered.date for user in users],
    }


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


def is_valid_user(user: Any) -> bool:
    """True when validation.user_problem finds nothing wrong; the tests check the two agree."""
    try:
        login, name, location = user["login"], user["name"], user["location"]
        return (
            UUID_PATTERN.fullmatch(login["uuid"]) is not None
            and all(
                type(value) is str
                for value in (
                    login["username"],
                    name["first"],
                    name["last"],
                    user["email"],
                    location["country"],
                )
            )
            and _optional_fields_valid(user)
        )
    except (KeyError, TypeError):
        return False


def _optional_fields_valid(user: dict) -> bool:
    for path, types in OPTIONAL_FIELDS.items():
        value = lookup(user, path)
        if value is not None and type(value) not in types:
            return False
    registered = lookup(user, "registered.date")
    return registered is None or is_iso_timestamp(registered)
