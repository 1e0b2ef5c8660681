"""What the pipeline needs from each API user, and the error naming the first field that breaks it.

What is checked comes from the field table (fields.py): every required field must be there, every
field that is there must have one of its JSON types, a "uuid" must be a lower-case UUID and a
"timestamptz" an ISO-8601 timestamp. Anything else in a user may change or vanish without harm.

Plain Python, no Airflow: user_api.py applies it to every page it fetches, before anything is
written; tests/example/unit/test_user_api.py covers every field. `is_valid_user` is the fast yes/no check for
the valid users (nearly all): twice as fast as finding which field is wrong, and `user_problem`
decides only for the others.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from include.user_processing.errors import InvalidUserPayload
from include.user_processing.fields import FIELDS, Field

UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

REQUIRED_FIELDS = tuple(field for field in FIELDS if field.required)
OPTIONAL_FIELDS = tuple(field for field in FIELDS if not field.required)


def validate_users(users: list[Any], *, page: int) -> None:
    """Raise InvalidUserPayload naming the first user, and its field, that the pipeline cannot use."""
    for index, user in enumerate(users):
        if not is_valid_user(user):  # the shortcut for the valid users; user_problem decides
            validate_user(user, page=page, index=index)


def validate_user(user: Any, *, page: int, index: int) -> None:
    """Raise InvalidUserPayload naming the field of this user that the pipeline cannot use."""
    problem = user_problem(user)
    if problem:
        raise InvalidUserPayload(f"user {index} on page {page}: {problem}")


def user_problem(user: Any) -> str | None:
    """What makes this user unusable (the first field that is missing or wrong), or None.

    Required fields are checked first, so a user missing one is named for it.
    """
    if not isinstance(user, dict):
        return f"expected an object, got {type(user).__name__}"
    for field in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS):
        problem = _field_problem(user, field)
        if problem:
            return problem
    return None


def _field_problem(user: dict, field: Field) -> str | None:
    node: Any = user
    walked: list[str] = []
    for key in field.path.split("."):
        if node is not None and not isinstance(node, dict):
            return f"field {'.'.join(walked)!r} is a {type(node).__name__}, expected an object"
        walked.append(key)
        node = None if node is None else node.get(key)
    if node is None:
        return f"field {field.path!r} is missing" if field.required else None
    if type(node) not in field.json_types:
        expected = " or ".join(t.__name__ for t in field.json_types)
        return f"field {field.path!r} is a {type(node).__name__}, expected {expected}"
    check = format_check(field)
    if check is not None and not check(node):
        return f"field {field.path!r} is not {FORMATS[field.sql_type][0]}"
    return None


def format_check(field: Field) -> Callable[[Any], bool] | None:
    """What a value of the right JSON type must also pass for the field's SQL type, if anything."""
    return FORMATS[field.sql_type][1] if field.sql_type in FORMATS else None


def is_iso_timestamp(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


# The SQL types whose values need more than the right JSON type: (what they must be, the check).
FORMATS = {
    "uuid": ("a lower-case UUID", lambda value: UUID_PATTERN.fullmatch(value) is not None),
    "timestamptz": ("an ISO-8601 timestamp", is_iso_timestamp),
}


def is_valid_user(user: Any) -> bool:
    """True when user_problem finds nothing wrong; the tests check the two agree."""
    try:
        for keys, required, json_types, form in _CHECKS:
            value = user
            for key in keys:
                if value is None:  # an optional object the API left out
                    break
                value = value.get(key)
            if value is None:
                if required:
                    return False
            elif type(value) not in json_types or (form is not None and not form(value)):
                return False
    except AttributeError:  # something else where an object belongs (a str, a list)
        return False
    return True


_CHECKS = tuple(
    (tuple(field.path.split(".")), field.required, field.json_types, format_check(field)) for field in FIELDS
)
