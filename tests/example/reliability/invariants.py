"""The five invariants every fault case is checked against (see docs/guarantees.md).

1. No duplicate `user_id` in `users`.
2. No partial batch is ever visible: a failed run leaves `users` and the dbt models as they were.
3. Re-running an interval gives the same table (checksum over ordered rows, load timestamps excluded).
4. No plaintext password from the API anywhere: database, run folders, XCom, task logs.
5. A failure is visible: the task fails with a message naming the cause, and one alert says so.
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from include.common.run_folder import folder_of

TIMESTAMP_COLUMNS = ("loaded_at",)


def checksum(conn: psycopg.Connection, relation: str, schema: str = "public") -> tuple[int, str]:
    """(row count, md5 of every row in order), load timestamps excluded."""
    columns = [
        name
        for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, relation),
        )
        if name not in TIMESTAMP_COLUMNS
    ]
    query = sql.SQL(
        "SELECT count(*), coalesce(md5(string_agg(row_text, E'\\n' ORDER BY row_text)), '')"
        " FROM (SELECT ROW({columns})::text AS row_text FROM {relation}) AS rows"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        relation=sql.Identifier(schema, relation),
    )
    return conn.execute(query).fetchone()


def warehouse_state(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """Checksums of `users` and of every dbt model that exists."""
    relations = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE (table_schema, table_name) = ('public', 'users') OR table_schema = 'analytics'"
    ).fetchall()
    return {f"{schema}.{name}": checksum(conn, name, schema) for schema, name in sorted(relations)}


def assert_no_duplicate_user_ids(conn: psycopg.Connection) -> None:
    total, distinct = conn.execute("SELECT count(*), count(DISTINCT user_id) FROM users").fetchone()
    assert total == distinct, f"{total - distinct} duplicate user_id(s) in users"


def login_secrets(users: list[dict]) -> tuple[set[str], set[str]]:
    """(salts and hashes, passwords) of API users: strings that must never leave the extract.

    Default passwords are common words ("talk", "testing") that may appear in any log by chance:
    search for them as text only when the stand-in's edge-case mode makes each one unique.
    """
    logins = [user["login"] for user in users]
    salts_and_hashes = {login[key] for login in logins for key in ("salt", "md5", "sha1", "sha256")}
    return salts_and_hashes, {login["password"] for login in logins}


def run_folders(airflow_home: Path, logical_date: str) -> list[Path]:
    """The run folder and the task log folders of the runs for one logical date."""
    run = folder_of(airflow_home / "run-folders", "user_processing", datetime.fromisoformat(logical_date))
    return [run, *(airflow_home / "logs" / "dag_id=user_processing").glob(f"run_id=*{logical_date}*")]


def assert_secrets_nowhere(
    secrets: set[str],
    *,
    warehouse: psycopg.Connection,
    metadata_uri: str,
    folders: list[Path],
    outputs: list[subprocess.CompletedProcess],
    passwords: set[str] = frozenset(),
) -> None:
    """Invariant 4: search the database, run folders, XCom, task log files and the runs' output."""
    places = {"run output": "\n".join(result.stdout + result.stderr for result in outputs)}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                places[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    with psycopg.connect(metadata_uri) as metadata:
        places["xcom"] = "\n".join(str(value) for (value,) in metadata.execute("SELECT value FROM xcom"))
    places["warehouse"] = "\n".join(row for (row,) in warehouse.execute("SELECT u::text FROM users AS u"))
    for place, text in places.items():
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, f"{len(leaked)} API secret(s) found in {place}, e.g. {leaked[0]!r}"
    if passwords:  # common words: only an exact value in a column counts
        cells = warehouse.execute(
            "SELECT count(*) FROM users WHERE ARRAY[firstname, lastname, email, username, city]"
            " && %s::text[]",
            (sorted(passwords),),
        ).fetchone()[0]
        assert cells == 0, f"{cells} row(s) of users hold a value equal to an API password"


def assert_visible_failure(
    result: subprocess.CompletedProcess, task_id: str, cause: str, users: list[dict] = ()
) -> None:
    """Invariant 5: the run failed, its log names the cause, and one alert was raised, free of data."""
    log = result.stdout + result.stderr
    assert result.returncode != 0, "the run went green"
    assert cause in log, f"{cause!r} not in the log:\n{log[-4000:]}"
    alerts = [line for line in log.splitlines() if f"ALERT user_processing.{task_id} failed" in line]
    assert len(alerts) == 1, f"expected one alert for {task_id}, got {len(alerts)}"
    for user in users:
        for value in (user["login"]["uuid"], user["email"], user["name"]["last"], user["login"]["salt"]):
            assert value not in alerts[0], f"the alert carries user data: {value!r}"
