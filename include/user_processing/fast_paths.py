"""The pipeline's fast paths, kept apart so that process.py reads as plain pandas and
validation.py as plain checks. What they buy is measured in docs/benchmarks.md (`make bench`).
Each is built from the field table (fields.py), so a column added there is read here too:

- ``decode_users``: a page file straight into CsvUser records that hold only the fields the CSV
  needs (msgspec skips the rest: three times faster than json.load, which it falls back to).
- ``columns_of_records``: the CSV's columns from those records; process.columns_of_dicts builds
  the same columns from plain dicts, and the tests check that both give the same CSV.
- ``SeenUserIds``: the user ids already written, as 16-byte keys in a sorted numpy array: what a
  set of str does, in 16 MB instead of 115 MB at a million users.

The fast yes/no check of a user, validation.is_valid_user, is plain Python and lives with the checks.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from include.user_processing.fields import FIELDS, Field


def _required_object(path: str, fields: tuple[Field, ...]) -> bool:
    """Whether the API always sends the object at `path` ("" is the user itself)."""
    return path == "" or any(field.required and field.path.startswith(path + ".") for field in fields)


def _record_types(fields: tuple[Field, ...], prefix: str = "") -> list[tuple]:
    """msgspec fields (name, type[, default]) for the API objects under `prefix`, from the field table.

    An object is optional (None when the API leaves it out) when every field under it is.
    """
    members: dict[str, list[Field]] = {}
    for field in fields:
        name = field.path.removeprefix(prefix).split(".")[0]
        members.setdefault(name, []).append(field)
    struct_fields = []
    for name, under in members.items():
        leaf = [field for field in under if field.path == prefix + name]
        if leaf:
            (field,) = leaf
            kind: Any = functools.reduce(operator.or_, field.json_types)  # (str, int) -> str | int
            required = field.required
        else:
            kind = msgspec.defstruct(
                f"_{name.title()}", _record_types(tuple(under), f"{prefix}{name}."), kw_only=True, gc=False
            )
            required = _required_object(prefix + name, fields)
        if required:
            struct_fields.append((name, kind))
        else:
            struct_fields.append((name, kind | None, None))
    return struct_fields


# gc=False: records without references to other objects need no cycle collection, which would
# otherwise rescan hundreds of thousands of them while a page is decoded.
CsvUser = msgspec.defstruct("CsvUser", _record_types(FIELDS), kw_only=True, gc=False)
CsvUser.__doc__ = "The fields of an API user that the CSV is built from, as decode_users reads them."

_PAGE_DECODER = msgspec.json.Decoder(list[CsvUser])


def decode_users(page_json: bytes) -> list[Any] | list[dict[str, Any]]:
    """A page file's users as CsvUser records: only the fields above are built, the rest skipped."""
    try:
        return _PAGE_DECODER.decode(page_json)
    except msgspec.DecodeError:
        # Not the shape extract_user writes (a hand-edited page, say): plain dicts, so the
        # process step fails, or succeeds, exactly as it would have without this fast path.
        return json.loads(page_json)


def is_records(users: list[Any]) -> bool:
    return bool(users) and isinstance(users[0], CsvUser)


def _columns_source(fields: tuple[Field, ...]) -> str:
    """Python source of columns_of_records for `fields`: one list comprehension per object and per
    column, as one would write them by hand (shown in COLUMNS_SOURCE).

    Generated rather than written out so that the field table stays the one place a column is
    declared; generated rather than looped over at run time because a comprehension per column is
    what keeps this step as fast as hand-written code (attrgetter calls or a loop over paths per
    user cost 50% more; docs/benchmarks.md).
    """
    lines = ["def columns_of_records(users):"]
    lists = {"": "users"}  # object path -> the name of the list holding it for every user

    def list_of(path: str) -> str:
        if path not in lists:
            parent, _, attribute = path.rpartition(".")
            source = list_of(parent)
            name = f"_{path.replace('.', '_')}"
            guard = "" if _required_object(parent, fields) else "None if o is None else "
            lines.append(f"    {name} = [{guard}o.{attribute} for o in {source}]")
            lists[path] = name
        return lists[path]

    columns = []
    for field in fields:
        parent, _, attribute = field.path.rpartition(".")
        source = list_of(parent)
        value = f"o.{attribute}"
        if field.json_types != (str,):  # stored as text: 32158 -> "32158"
            value = f"(None if {value} is None else str({value}))"
        if not _required_object(parent, fields):
            value = f"(None if o is None else {value})"
        columns.append(f"        {field.column!r}: [{value} for o in {source}],")
    return "\n".join([*lines, "    return {", *columns, "    }"]) + "\n"


COLUMNS_SOURCE = _columns_source(FIELDS)
_generated: dict[str, Any] = {}
exec(compile(COLUMNS_SOURCE, f"<columns_of_records of {__name__}>", "exec"), _generated)  # noqa: S102 - our own source
columns_of_records: Callable[[list[Any]], dict[str, list]] = _generated["columns_of_records"]
columns_of_records.__doc__ = "The same columns as process.columns_of_dicts, from CsvUser records."


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
