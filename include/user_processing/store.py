"""store_user: the CSV from process_user -> the `users` table, all or nothing.

In ONE transaction: COPY the CSV into a temporary table of incoming rows, check it is not empty and that no
user_id occurs twice, then upsert it into `users`: one UPDATE for known users whose values changed,
one INSERT (in user_id order) for new users. Any failure (bad CSV, a killed worker, a lost
connection) rolls everything back, so `users` is never left holding half a batch. A re-run of the
same batch rewrites nothing: rows whose values did not change are skipped, `loaded_at` included.

Why not one INSERT ... ON CONFLICT DO UPDATE: it inserts row by row speculatively (check, insert,
confirm); the whole load is faster this way (measured before and after the change,
docs/performance.md; what it takes now: docs/benchmarks.md, section 2). The UPDATE + INSERT
pair is just as correct here because every load holds the advisory lock below, so no other load
can insert the same user between the two statements (a writer that skips the lock makes the INSERT
fail on the primary key: the load rolls back whole and the task retries).

Plain psycopg 3 (what PostgresHook hands out on Airflow 3), tested against a real PostgreSQL.
Identifiers go through psycopg.sql and values through COPY: no SQL is built from data.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import psycopg
from psycopg import errors, sql

from include.user_processing.errors import LoadError
from include.user_processing.fields import COLUMNS, OPTIONAL_COLUMNS, PRIMARY_KEY, USERS_TABLE

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from airflow.sdk import ObjectStoragePath

COPY_CHUNK_BYTES = 1 << 20
# How COPY reads users.csv: a header line, and "" as NULL in the optional columns (process writes
# every value quoted). template/bench/pipeline.py's `psql \copy` baseline reads the same CSV with these.
CSV_COPY_OPTIONS = sql.SQL("FORMAT csv, HEADER true, FORCE_NULL ({optional})").format(
    optional=sql.SQL(", ").join(map(sql.Identifier, OPTIONAL_COLUMNS))
)
# Serialises loads into `users`, so two runs loading overlapping users cannot deadlock.
LOAD_LOCK_KEY = "user_processing.load_users"


@dataclass(frozen=True)
class LoadResult:
    rows: int  # rows in the CSV
    inserted: int  # new users
    updated: int  # known users whose values changed

    @property
    def unchanged(self) -> int:
        return self.rows - self.inserted - self.updated


def store_run_csv(
    run: ObjectStoragePath, connect: Callable[[], AbstractContextManager[psycopg.Connection]]
) -> LoadResult:
    """The store_user task: store_users_csv of the run's users.csv.

    `connect` opens the warehouse connection (include.common.warehouse.connect): only once the CSV is
    found, so a run without one fails at once, whether or not the warehouse answers.
    """
    from include.common import run_folder  # Airflow: only the task needs it
    from include.user_processing import run_files

    with (
        run_folder.open_input(run_files.users_csv_path(run), produced_by="process_user") as csv_file,
        connect() as conn,
    ):
        return store_users_csv(conn, csv_file)


def store_users_csv(conn: psycopg.Connection, csv_file: BinaryIO, table: str = USERS_TABLE) -> LoadResult:
    """Upsert the CSV's users into `table` in one transaction; commits on success, else rolls back."""
    _check_header(csv_file)
    target = sql.Identifier(table)
    incoming = sql.Identifier(f"{table}_incoming")
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    try:
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (LOAD_LOCK_KEY,))
            _check_table(cursor, table)
            cursor.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {incoming} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP"
                ).format(incoming=incoming, target=target)
            )
            rows = _copy_csv(cursor, csv_file, incoming, columns)
            if rows == 0:
                raise LoadError("the CSV holds no users: refusing to report an empty load as a success")
            # Enough memory to hash and sort a million incoming rows without spilling to disk; SET LOCAL
            # ends with this transaction.
            cursor.execute("SET LOCAL work_mem = '64MB'")
            _refuse_users_twice_in_batch(cursor, incoming, already_in=target)
            cursor.execute(_update_statement(target, incoming))
            updated = cursor.rowcount
            try:
                with conn.transaction():  # a savepoint: after a duplicate key we can still look around
                    cursor.execute(_insert_statement(target, incoming))
                    inserted = cursor.rowcount
            except errors.UniqueViolation:
                _refuse_users_twice_in_batch(cursor, incoming)  # a new user twice in the CSV?
                raise  # no: someone who skips LOAD_LOCK_KEY inserted one of them meanwhile (see below)
    except errors.UniqueViolation:
        # Not a LoadError, so the task is retried: nothing was loaded, and the retry will find their row.
        raise
    except (errors.DataError, errors.IntegrityError) as error:  # names the CSV line and column
        raise LoadError(f"{error.diag.message_primary} ({error.diag.context})") from error
    except psycopg.OperationalError as error:
        if not (conn.broken or isinstance(error, SERVER_SHUTDOWN)):
            raise  # a timeout or a lock: PostgreSQL's own message says which
        raise WarehouseUnavailable(
            f"the warehouse went away during the load, which rolled back: {error}"
        ) from error
    return LoadResult(rows=rows, inserted=inserted, updated=updated)


# The server ends the session as it stops (`docker compose stop`, a restart): the client may hear it
# before its socket closes, so the connection is not `broken` yet.
SERVER_SHUTDOWN = (errors.AdminShutdown, errors.CrashShutdown, errors.CannotConnectNow)


class WarehouseUnavailable(Exception):
    """The connection broke during a load (a restart, a network cut); nothing was loaded: retried."""


def _check_header(csv_file: BinaryIO) -> None:
    """The header must name exactly our columns, in order: COPY maps columns by position."""
    first_line = csv_file.readline().decode("utf-8", errors="replace")
    csv_file.seek(0)
    if not first_line:
        raise LoadError("the CSV file is empty (not even a header): refusing to load nothing")
    header = next(csv.reader(io.StringIO(first_line)), [])
    if tuple(header) != COLUMNS:
        raise LoadError(f"CSV header {header} does not match the expected columns {list(COLUMNS)}")


def _check_table(cursor: psycopg.Cursor, table: str) -> None:
    """The table must have every column of the CSV: create_table adds the ones fields.py gained."""
    cursor.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    )
    existing = {row[0] for row in cursor.fetchall()}
    missing = [column for column in COLUMNS if column not in existing]
    if len(missing) == len(COLUMNS):
        raise LoadError(f"table {table!r} does not exist: run create_table first")
    if missing:
        raise LoadError(f"table {table!r} has no column {', '.join(missing)}: run create_table first")


def _copy_csv(
    cursor: psycopg.Cursor, csv_file: BinaryIO, incoming: sql.Identifier, columns: sql.Composed
) -> int:
    statement = sql.SQL("COPY {incoming} ({columns}) FROM STDIN ({options}, ENCODING 'UTF8')").format(
        incoming=incoming, columns=columns, options=CSV_COPY_OPTIONS
    )
    with cursor.copy(statement) as copy:
        while chunk := csv_file.read(COPY_CHUNK_BYTES):
            copy.write(chunk)
    return cursor.rowcount


def _refuse_users_twice_in_batch(
    cursor: psycopg.Cursor, incoming: sql.Identifier, already_in: sql.Identifier | None = None
) -> None:
    """Each user may occur once in the CSV: otherwise which copy wins would be up to the database.

    For new users the INSERT's primary key already catches a second copy, so before loading only
    the users `already_in` the table are checked: free when none are (a first load, or a day of new
    users), where counting every incoming id would cost as much as a tenth of the load.
    """
    known = sql.SQL("")
    if already_in is not None:
        known = sql.SQL("JOIN {target} AS existing USING (user_id)").format(target=already_in)
    cursor.execute(
        sql.SQL(
            "SELECT incoming.user_id FROM {incoming} AS incoming {known}"
            " GROUP BY incoming.user_id HAVING count(*) > 1 LIMIT 1"
        ).format(incoming=incoming, known=known)
    )
    if twice := cursor.fetchone():
        raise LoadError(f"a user_id occurs twice in the CSV: {twice[0]}")


def _update_statement(target: sql.Identifier, incoming: sql.Identifier) -> sql.Composed:
    """Known users whose values changed get the new values and a new loaded_at; the rest are untouched."""
    data_columns = [sql.Identifier(column) for column in COLUMNS if column != PRIMARY_KEY]
    return sql.SQL(
        """
        UPDATE {target} AS existing SET ({data_columns}, loaded_at) = ({incoming_columns}, now())
        FROM {incoming} AS incoming
        WHERE existing.user_id = incoming.user_id
          AND ({existing_columns}) IS DISTINCT FROM ({incoming_columns})
        """
    ).format(
        target=target,
        incoming=incoming,
        data_columns=sql.SQL(", ").join(data_columns),
        incoming_columns=sql.SQL(", ").join(sql.SQL("incoming.{}").format(c) for c in data_columns),
        existing_columns=sql.SQL(", ").join(sql.SQL("existing.{}").format(c) for c in data_columns),
    )


def _insert_statement(target: sql.Identifier, incoming: sql.Identifier) -> sql.Composed:
    """Users not in the table yet, in user_id order: consecutive rows then go to the same page of the
    primary key index instead of a random one (about twice as fast at a million new users)."""
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    return sql.SQL(
        """
        INSERT INTO {target} ({columns})
        SELECT {columns} FROM {incoming} AS incoming
        WHERE NOT EXISTS (SELECT FROM {target} AS existing WHERE existing.user_id = incoming.user_id)
        ORDER BY incoming.user_id
        """
    ).format(target=target, incoming=incoming, columns=columns)
