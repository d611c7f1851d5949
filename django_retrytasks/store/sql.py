"""Connections and transactions for the store's own statements.

``write_transaction`` takes SQLite's write lock up front; ``fetch_all`` runs one hot-path
statement in one round trip; ``to_datetime`` reads a raw timestamp back as Django would.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

DEFAULT_DB = "default"


def sized_chunks[T](rows: Sequence[T], largest: int) -> Iterator[Sequence[T]]:
    """``rows`` in chunks whose sizes are powers of two, at most ``largest`` (one too).

    A statement written for a number of rows is compiled and cached per number: these few
    sizes keep that cache small however the batches vary (37 rows: 32, 4 and 1).
    """
    start = 0
    while start < len(rows):
        size = min(largest, 1 << ((len(rows) - start).bit_length() - 1))
        yield rows[start : start + size]
        start += size


@contextmanager
def write_transaction(using: str = DEFAULT_DB) -> Iterator[None]:
    """A transaction for our own writes; on SQLite it begins with ``BEGIN IMMEDIATE``.

    A deferred SQLite transaction that reads, then writes, is refused at once ("database
    is locked") when another connection writes meanwhile; taking the write lock up front
    makes it wait its turn instead, whatever the project's OPTIONS say.
    """
    connection = connections[using]
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic(using=using):
            yield
        return
    connection.ensure_connection()
    previous = getattr(connection, "transaction_mode", None)
    connection.transaction_mode = "IMMEDIATE"  # type: ignore[attr-defined]
    try:
        with transaction.atomic(using=using):
            connection.transaction_mode = previous  # type: ignore[attr-defined]
            yield
    finally:
        connection.transaction_mode = previous  # type: ignore[attr-defined]


def fetch_all(connection: Any, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run one statement in autocommit (one round trip), or in a savepoint inside a transaction."""
    if connection.in_atomic_block:
        with transaction.atomic(using=connection.alias):
            return execute(connection, sql, params)
    return execute(connection, sql, params)


def execute(connection: Any, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Execute a hot-path statement and return its rows; errors come out as Django's.

    On PostgreSQL with server-side binding (one unnamed statement: safe behind a
    transaction pooler), never prepared unless the project turned psycopg's prepared
    statements on (``OPTIONS["prepare_threshold"]``; Django turns them off by default, for
    connection poolers). The claim keeps its plans in a function instead (migration 0006).
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


def to_datetime(value: Any, connection: Any, field: Any) -> datetime | None:
    """A timestamp of a raw row as an aware datetime (SQLite returns text)."""
    if value is None or isinstance(value, datetime):
        if isinstance(value, datetime) and timezone.is_naive(value):
            return timezone.make_aware(value, UTC)
        return value
    for converter in connection.ops.get_db_converters(field.get_col("")):
        value = converter(value, None, connection)
    converted: datetime | None = value
    return converted
