"""The field table (include/user_processing/fields.py) drives every step, shipped and grown by a user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from include.user_processing.fields import COLUMNS, users_table_sql
from scripts.local_env import REPO_ROOT

# What a user adds: one line each, of every kind the table has (a nested text field, a timestamp in
# an optional object, an int-or-str three levels down).
ADDED_FIELDS = """
    Field("phone", "phone", required=False),
    Field("born_at", "dob.date", "timestamptz", required=False),
    Field("street_number", "location.street.number", required=False, json_types=(int, str)),
"""

# Run inside the copy: every path of the pipeline reads the added columns, and agrees with the others.
CHECK = """
import json, io
from include.user_processing.fast_paths import decode_users
from include.user_processing.fields import COLUMNS, users_table_sql
from include.user_processing.process import users_to_frame, write_users_csv
from include.user_processing.validation import is_valid_user, user_problem
from template.standin_user_api import generate_page

users = generate_page("grown", 1, 200, edge_cases=True)["results"]
missing = {k: v for k, v in users[0].items() if k != "dob"}  # an optional object left out
users.append(missing)
assert all(user_problem(user) is None and is_valid_user(user) for user in users)
bad = json.loads(json.dumps(users[1]))
bad["dob"]["date"] = "yesterday"
print(json.dumps({
    "columns": list(COLUMNS),
    "records_equal_dicts": users_to_frame(decode_users(json.dumps(users).encode())).equals(
        users_to_frame(users)
    ),
    "frame": users_to_frame(users)[["phone", "born_at", "street_number"]].values.tolist(),
    "expected": [[u.get("phone"), (u.get("dob") or {}).get("date"), str(u["location"]["street"]["number"])]
                 for u in users],
    "bad": user_problem(bad),
    "bad_fast": is_valid_user(bad),
    "ddl": users_table_sql(),
}))
"""


@pytest.fixture(scope="module")
def grown(tmp_path_factory) -> dict:
    """A copy of include/ with three fields added to the table, exercised in a fresh interpreter."""
    copy = tmp_path_factory.mktemp("grown")
    shutil.copytree(REPO_ROOT / "include", copy / "include", ignore=shutil.ignore_patterns("__pycache__"))
    fields = copy / "include" / "user_processing" / "fields.py"
    text = fields.read_text()
    last = text.index("\n)\nPRIMARY_KEY")
    fields.write_text(text[:last] + ADDED_FIELDS.rstrip() + text[last:])
    env = {**os.environ, "PYTHONPATH": f"{copy}{os.pathsep}{REPO_ROOT}"}  # include/ from the copy
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=copy, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_added_fields_become_columns_after_the_shipped_ones(grown):
    assert grown["columns"] == [*COLUMNS, "phone", "born_at", "street_number"]


def test_added_fields_are_read_with_their_values_the_same_on_both_paths(grown):
    assert grown["records_equal_dicts"]
    assert grown["frame"] == [[a, b, c] for a, b, c in grown["expected"]]
    assert grown["frame"][-1][1] is None  # the user without `dob`


def test_added_fields_are_validated_by_their_sql_type(grown):
    assert grown["bad"] == "field 'dob.date' is not an ISO-8601 timestamp"
    assert grown["bad_fast"] is False


def test_added_fields_reach_the_table_and_an_existing_table_gains_them(grown):
    create, alter = grown["ddl"]
    assert "    phone text,\n    born_at timestamptz,\n    street_number text," in create
    assert alter.endswith(
        "ADD COLUMN IF NOT EXISTS phone text,\n    ADD COLUMN IF NOT EXISTS born_at timestamptz,\n"
        "    ADD COLUMN IF NOT EXISTS street_number text"
    )


def test_the_shipped_table_is_the_one_the_contract_names():
    create, _ = users_table_sql()
    assert create.startswith("CREATE TABLE IF NOT EXISTS users (\n    user_id uuid PRIMARY KEY,")
    for column in ("firstname", "lastname", "country", "username", "email"):
        assert f"\n    {column} text NOT NULL," in create
