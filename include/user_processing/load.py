"""Load: the CSV from process_user -> the `users` table, all or nothing.

In ONE transaction: COPY the CSV into a temporary staging table, check it is not empty, then upsert
it into `users` with a single INSERT ... ON CONFLICT. Any failure (bad CSV, a killed worker, a lost
connection) rolls everything back, so `users` is never left holding half a batch. A re-run of the
same batch rewrites nothing: rows whose values did not change are skipped, `loaded_at` included.

Plain psycopg 3 (what PostgresHook hands out on Airflow 3), tested against a real PostgreSQL.
Identifiers go through psycopg.sql and values through COPY: no SQL is built from data.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from psycopg import errors, sql

from include.user_processing.errors import LoadError
from include.user_processing.transform import CSV_COLUMNS, OPTIONAL_COLUMNS

if TYPE_CHECKING:
    import psycopg

COPY_CHUNK_BYTES = 1 << 20
# Serialises loads into `users`, so two runs loading overlapping users cannot deadlock.
LOAD_LOCK_KEY = "user_processing.load_users"


@dataclass(frozen=True)
class LoadResult:
    staged: int  # rows in the CSV
    inserted: int  # new users
    updated: int  # known users whose values changed

    @property
    def unchanged(self) -> int:
        return self.staged - self.inserted - self.updated


def load_users_csv(conn: psycopg.Connection, csv_file: BinaryIO, table: str = "users") -> LoadResult:
    """Upsert the CSV's users into `table` in one transaction; commits on success, else rolls back."""
    _check_header(csv_file)
    target = sql.Identifier(table)
    staging_table = sql.Identifier(f"{table}_staging")
    columns = sql.SQL(", ").join(map(sql.Identifier, CSV_COLUMNS))
    try:
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (LOAD_LOCK_KEY,))
            cursor.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {staging} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP"
                ).format(staging=staging_table, target=target)
            )
            staged = _copy_csv(cursor, csv_file, staging_table, columns)
            if staged == 0:
                raise LoadError("the CSV holds no users: refusing to report an empty load as a success")
            cursor.execute(_upsert_statement(target, staging_table))
            inserted, updated = cursor.fetchone()
    except errors.CardinalityViolation as error:
        raise LoadError(f"a user_id occurs twice in the CSV: {error.diag.message_primary}") from error
    except (errors.DataError, errors.IntegrityError) as error:  # names the CSV line and column
        raise LoadError(f"{error.diag.message_primary} ({error.diag.context})") from error
    return LoadResult(staged=staged, inserted=inserted, updated=updated)


def _check_header(csv_file: BinaryIO) -> None:
    """The header must name exactly our columns, in order: COPY maps columns by position."""
    first_line = csv_file.readline().decode("utf-8", errors="replace")
    csv_file.seek(0)
    if not first_line:
        raise LoadError("the CSV file is empty (not even a header): refusing to load nothing")
    header = next(csv.reader(io.StringIO(first_line)), [])
    if tuple(header) != CSV_COLUMNS:
        raise LoadError(f"CSV header {header} does not match the expected columns {list(CSV_COLUMNS)}")


def _copy_csv(
    cursor: psycopg.Cursor, csv_file: BinaryIO, staging_table: sql.Identifier, columns: sql.Composed
) -> int:
    statement = sql.SQL(
        "COPY {staging} ({columns}) FROM STDIN"
        " (FORMAT csv, HEADER true, ENCODING 'UTF8', FORCE_NULL ({optional}))"
    ).format(
        staging=staging_table,
        columns=columns,
        optional=sql.SQL(", ").join(map(sql.Identifier, OPTIONAL_COLUMNS)),
    )
    with cursor.copy(statement) as copy:
        while chunk := csv_file.read(COPY_CHUNK_BYTES):
            copy.write(chunk)
    return cursor.rowcount


def _upsert_statement(target: sql.Identifier, staging_table: sql.Identifier) -> sql.Composed:
    data_columns = [sql.Identifier(column) for column in CSV_COLUMNS if column != "user_id"]
    # Returns (inserted, updated). Unchanged rows are not touched at all. `xmax = 0` marks a row this
    # statement inserted rather than updated: PostgreSQL's well-known way to tell the two apart.
    return sql.SQL(
        """
        WITH upserted AS (
            INSERT INTO {target} ({columns})
            SELECT {columns} FROM {staging}
            ON CONFLICT (user_id) DO UPDATE
                SET ({data_columns}, loaded_at) = ({excluded_columns}, now())
                WHERE ({current_columns}) IS DISTINCT FROM ({excluded_columns})
            RETURNING xmax = 0 AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
        """
    ).format(
        target=target,
        staging=staging_table,
        columns=sql.SQL(", ").join(map(sql.Identifier, CSV_COLUMNS)),
        data_columns=sql.SQL(", ").join(data_columns),
        excluded_columns=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(c) for c in data_columns),
        current_columns=sql.SQL(", ").join(sql.SQL("{}.{}").format(target, c) for c in data_columns),
    )
