"""The columns of `users`, one line each: everything else is derived from FIELDS.

Each Field says where its value sits in an API user, whether the API may leave it out, and its SQL
type. From this table come: what extract_user checks in every user (validation.py), the columns of
users.csv and how they are read (process.py, and its fast path in fast_paths.py), how store_user
loads them (store.py) and the table itself (create_table: users_table_sql below).

Adding a column is one line here, plus the dbt model that exposes it
(dbt_project/models/staging/users/stg_users.sql); docs/pipeline.md, "Adding a column", shows the steps.
An existing warehouse gains the column on the next run (create_table adds what is missing), with
NULL in the rows loaded before; a user the API serves again gets the value then.

Plain Python, no Airflow: the DAG file imports it at parse time, so keep it light.
"""

from __future__ import annotations

from dataclasses import dataclass

USERS_TABLE = "users"  # the table (other DAGs read it through settings.USERS_ASSET)


@dataclass(frozen=True)
class Field:
    column: str  # in `users` and in users.csv
    path: str  # where the API puts it: "email", "location.city"
    sql_type: str = "text"  # "uuid" and "timestamptz" values are also checked at extract
    required: bool = True  # a user without it is refused at extract (and the column is NOT NULL)
    json_types: tuple[type, ...] = (str,)  # what the API may send; every value is stored as its text


FIELDS = (
    Field("user_id", "login.uuid", "uuid"),  # the primary key
    Field("firstname", "name.first"),
    Field("lastname", "name.last"),
    Field("email", "email"),  # not unique: the API repeats emails
    Field("username", "login.username"),  # not unique either
    Field("gender", "gender", required=False),
    Field("city", "location.city", required=False),
    Field("country", "location.country"),
    # Text: the API sends 32158 and "0150" alike.
    Field("postcode", "location.postcode", required=False, json_types=(str, int)),
    Field("nationality", "nat", required=False),  # the API's two-letter code
    Field("registered_at", "registered.date", "timestamptz", required=False),
)
PRIMARY_KEY = FIELDS[0].column

COLUMNS = tuple(field.column for field in FIELDS)  # users.csv's columns, in order
OPTIONAL_COLUMNS = tuple(field.column for field in FIELDS if not field.required)  # "" in the CSV is NULL
# Not from the API: when store_user last inserted or changed the row (dbt's increments read it).
LOADED_AT = "loaded_at timestamptz NOT NULL DEFAULT now()"


def users_table_sql(table: str = USERS_TABLE) -> list[str]:
    """create_table's statements: the table if it is missing, then any column it lacks.

    Both run at the start of every DAG run, so both are idempotent. A column added to an existing
    table is nullable: the rows already there have no value for it.
    """
    columns = [f"{field.column} {field.sql_type}{_constraint(field)}" for field in FIELDS]
    create = f"CREATE TABLE IF NOT EXISTS {table} (\n    " + ",\n    ".join([*columns, LOADED_AT]) + "\n)"
    added = ",\n    ".join(
        f"ADD COLUMN IF NOT EXISTS {field.column} {field.sql_type}" for field in FIELDS[1:]
    )
    return [create, f"ALTER TABLE {table}\n    {added}"]


def _constraint(field: Field) -> str:
    if field.column == PRIMARY_KEY:
        return " PRIMARY KEY"
    return " NOT NULL" if field.required else ""
