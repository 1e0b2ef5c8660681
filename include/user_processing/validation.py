"""What the pipeline needs from each API user, and the error naming the first field that breaks it.

Plain Python, no Airflow: user_api.py applies it to every page it fetches, before anything is
written; tests/unit/test_user_api.py covers every field. The fast yes/no check for the valid users
is fast_paths.is_valid_user.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from include.user_processing.errors import InvalidUserPayload

UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# What the pipeline reads from each user. Anything else may change or vanish without harm.
REQUIRED_TEXT_FIELDS = (
    "login.uuid",
    "login.username",
    "name.first",
    "name.last",
    "email",
    "location.country",
)
OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "gender": (str,),
    "location.city": (str,),
    "location.postcode": (str, int),  # the API sends both, e.g. 32158 and "0150"
    "nat": (str,),
    "registered.date": (str,),
}


def validate_users(users: list[Any], *, page: int) -> None:
    """Raise InvalidUserPayload naming the first user, and its field, that the pipeline cannot use."""
    from include.user_processing.fast_paths import is_valid_user  # numpy, msgspec: not at DAG parse

    for index, user in enumerate(users):
        if not is_valid_user(user):  # the shortcut for the valid users; user_problem decides
            validate_user(user, page=page, index=index)


def validate_user(user: Any, *, page: int, index: int) -> None:
    """Raise InvalidUserPayload naming the field of this user that the pipeline cannot use."""
    problem = user_problem(user)
    if problem:
        raise InvalidUserPayload(f"user {index} on page {page}: {problem}")


def user_problem(user: Any) -> str | None:
    """What makes this user unusable (the first field that is missing or wrong), or None."""
    if not isinstance(user, dict):
        return f"expected an object, got {type(user).__name__}"
    for path in REQUIRED_TEXT_FIELDS:
        problem = _field_problem(user, path, (str,), required=True)
        if problem:
            return problem
    if not UUID_PATTERN.fullmatch(user["login"]["uuid"]):
        return "field 'login.uuid' is not a lower-case UUID"
    for path, types in OPTIONAL_FIELDS.items():
        problem = _field_problem(user, path, types, required=False)
        if problem:
            return problem
    registered = lookup(user, "registered.date")
    if registered is not None and not is_iso_timestamp(registered):
        return "field 'registered.date' is not an ISO-8601 timestamp"
    return None


def _field_problem(user: dict, path: str, types: tuple[type, ...], *, required: bool) -> str | None:
    node: Any = user
    walked: list[str] = []
    for key in path.split("."):
        if node is not None and not isinstance(node, dict):
            return f"field {'.'.join(walked)!r} is a {type(node).__name__}, expected an object"
        walked.append(key)
        node = None if node is None else node.get(key)
    if node is None:
        return f"field {path!r} is missing" if required else None
    if type(node) not in types:
        expected = " or ".join(t.__name__ for t in types)
        return f"field {path!r} is a {type(node).__name__}, expected {expected}"
    return None


def lookup(user: dict, path: str) -> Any:
    """The value at a dotted path such as "registered.date", or None where any part is missing."""
    node: Any = user
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def is_iso_timestamp(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True
