"""The MySQL and MariaDB side of claiming and completing.

Neither has ``UPDATE ... RETURNING`` nor partial indexes. A claim is one short
transaction: a ``SELECT ... FOR UPDATE SKIP LOCKED`` of the due jobs in claiming order,
which walks a composite index led by ``status, scheduled_later`` (the MySQL form of the
partial claiming index, see ``migrations/_mysql.py``) and returns every column the worker
needs, then one ``UPDATE`` of all the jobs it found. The unique index on the virtual
column ``running_lock`` refuses a second running job of a lock, as the partial unique
index does elsewhere.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import InternalError, OperationalError, transaction

from django_retrytasks.models import Attempt, Job
from django_retrytasks.store.rows import (
    ATTEMPT_VALUES,
    JOB_ASSIGNMENTS,
    NewJobRow,
    OutcomeRow,
    new_job_insert,
)
from django_retrytasks.store.sql import execute

#: InnoDB's "deadlock found" and "lock wait timeout": the transaction was rolled back and
#: trying it again is the documented remedy, not an outage.
RETRYABLE_ERRORS = (1213, 1205)
TRANSACTION_TRIES = 5
#: Server errors that mean it cannot serve anyone now (too many connections, shutting
#: down, connection killed or timed out, the retryable ones above); with the client's own
#: errors (2000-2999: cannot connect, server gone away, lost connection) these are outages.
OUTAGE_SERVER_ERRORS = frozenset(
    {1040, 1053, 1077, 1078, 1079, 1080, 1081, 1152, 1158, 1159, 1160, 1161, 1927, 4031}
    | set(RETRYABLE_ERRORS)
)


def quoted(column: str) -> str:
    return f"`{column}`"


@functools.lru_cache(maxsize=64)
def claim_sql(queues: tuple[str, ...] | None, columns: tuple[str, ...]) -> str:
    """Select and lock up to ``limit`` due jobs in claiming order (see :func:`claim`).

    Its parameters: the claim's time, one per queue, the limit.
    """
    table = Job._meta.db_table
    queue_filter = f"AND j.queue IN ({', '.join(['%s'] * len(queues))})" if queues else ""
    # With one queue, its range of the queue index is in claiming order; with none or
    # several, the plain claiming index is, and the queue is a filter on its rows.
    one_queue = bool(queues) and len(queues or ()) == 1
    index = "retrytasks_my_todo_queue_idx" if one_queue else "retrytasks_my_todo_idx"
    # A job whose lock is held by a running job, or by a job deferred before it that is
    # still waiting (even one scheduled for later), must wait its turn. Both subqueries
    # are plain reads of the lock index: only the outer rows are locked.
    return f"""
        SELECT {", ".join(f"j.{quoted(column)}" for column in columns)}
        FROM {table} j FORCE INDEX ({index})
        WHERE j.status = 'todo' AND j.scheduled_later = 0
          AND (j.scheduled_at IS NULL OR j.scheduled_at <= %s)
          {queue_filter}
          AND (j.`lock` IS NULL OR (
              NOT EXISTS (
                  SELECT 1 FROM {table} o
                  WHERE o.`lock` = j.`lock` AND o.status = 'doing'
              )
              AND NOT EXISTS (
                  SELECT 1 FROM {table} o
                  WHERE o.`lock` = j.`lock` AND o.status = 'todo' AND o.id < j.id
              )
          ))
        ORDER BY j.priority DESC, j.id
        LIMIT %s
        FOR UPDATE SKIP LOCKED"""


def mark_claimed_sql(claimed: int, ahead: int) -> str:
    """Mark ``claimed`` jobs ``doing``, the last ``ahead`` of them claimed ahead of a runner.

    Its parameters: the claim's time, the worker's id, the ids claimed ahead, then every id.
    """
    table = Job._meta.db_table
    claimed_ahead = f"id IN ({', '.join(['%s'] * ahead)})" if ahead else "FALSE"
    return f"""
        UPDATE {table}
        SET status = 'doing', started_at = %s, worker_id = %s, abort_requested = FALSE,
            claimed_ahead = {claimed_ahead}
        WHERE id IN ({", ".join(["%s"] * claimed)})"""


def claim(
    connection: Any,
    *,
    moment: Any,
    worker_id: int | None,
    for_runners: int,
    queues: tuple[str, ...] | None,
    limit: int,
    columns: tuple[str, ...],
) -> list[tuple[Any, ...]]:
    """Claim up to ``limit`` due jobs in one transaction; return their ``columns``, best first."""
    promote_due_jobs(connection, moment)

    def select_and_mark() -> list[tuple[Any, ...]]:
        rows = execute(connection, claim_sql(queues, columns), [moment, *(queues or ()), limit])
        if rows:
            ids = [row[0] for row in rows]
            ahead = ids[for_runners:]
            execute(
                connection,
                mark_claimed_sql(len(ids), len(ahead)),
                [moment, worker_id, *ahead, *ids],
            )
        return rows

    return in_transaction(connection, select_and_mark)


def promote_due_jobs(connection: Any, moment: Any) -> None:
    """Let the jobs scheduled for later that are due at ``moment`` join the claiming range.

    One statement on the index by time (named: a fresh table's statistics made the
    optimizer walk every due job by ``scheduled_at`` instead); when nothing is due it
    changes nothing, which costs InnoDB no log write. PostgreSQL's claim function does the
    same itself.
    """
    table = Job._meta.db_table
    execute(
        connection,
        f"""UPDATE {table} FORCE INDEX (retrytasks_my_later_idx) SET scheduled_later = FALSE
        WHERE status = 'todo' AND scheduled_later = TRUE
          AND (scheduled_at <= %s OR scheduled_at IS NULL)
        ORDER BY scheduled_at
        LIMIT 1000""",
        [moment],
    )


def in_transaction[T](connection: Any, work: Callable[[], T]) -> T:
    """Run ``work`` in a transaction (a savepoint inside one); again after a deadlock."""
    for attempt in range(TRANSACTION_TRIES):
        try:
            with transaction.atomic(using=connection.alias):
                return work()
        except OperationalError as error:
            code = error.args[0] if error.args else None
            if code not in RETRYABLE_ERRORS or attempt == TRANSACTION_TRIES - 1:
                raise
            if connection.in_atomic_block:
                raise  # the caller's transaction was rolled back with ours: its call
    raise AssertionError("unreachable")


#: Bytes of an INSERT besides a job's arguments: the SQL, the other columns (names of at
#: most 255 characters, four bytes each), the row's punctuation.
INSERT_OVERHEAD = 8 * 1024


def max_packet(connection: Any) -> int:
    """The server's ``max_allowed_packet``, read once per connection."""
    connection.ensure_connection()
    known = getattr(connection, "_retrytasks_max_packet", None)
    if known is not None and known[0] is connection.connection:
        return int(known[1])
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@max_allowed_packet")
        (size,) = cursor.fetchone()
    connection._retrytasks_max_packet = (connection.connection, size)
    return int(size)


def rows_per_insert(connection: Any, texts: Sequence[str]) -> int:
    """How many jobs one INSERT may carry within ``max_allowed_packet``.

    ``texts``: the JSON text of each job's arguments, as the statement sends it. Raises
    ``ValueError`` for a job that no statement can carry: sent, it would make the server
    refuse the statement and drop the connection.
    """
    limit = max_packet(connection)
    largest = 0
    for index, text in enumerate(texts):
        # Sent as a quoted SQL string: quotes and backslashes are escaped, one byte each.
        size = len(text.encode()) + text.count('"') + text.count("\\") + text.count("'")
        if size + INSERT_OVERHEAD > limit:
            which = f"job {index + 1} of the batch" if len(texts) > 1 else "the job"
            raise ValueError(
                f"the arguments of {which} take {size:,} bytes in SQL, more than this "
                f"MySQL server takes in one statement (max_allowed_packet = {limit:,} bytes); "
                "store large data elsewhere and pass a reference, or keep "
                "RETRYTASKS_MAX_ARGUMENTS_SIZE below the server's limit; nothing was stored"
            )
        largest = max(largest, size)
    return max(1, limit // (largest + INSERT_OVERHEAD))


@functools.cache
def _insert_job_sql() -> str:
    # Quoted: ``lock`` is a reserved word in MySQL and MariaDB.
    columns, values = new_job_insert(Job, quote=lambda column: f"`{column}`")
    return f"INSERT INTO {Job._meta.db_table} ({columns}) VALUES {values}"


def insert_job(connection: Any, row: NewJobRow) -> int:
    """Store one new job with one plain INSERT and return its id (``LAST_INSERT_ID()``)."""
    moment = connection.ops.adapt_datetimefield_value
    params = row._replace(scheduled_at=moment(row.scheduled_at), created_at=moment(row.created_at))
    with connection.cursor() as cursor:
        cursor.execute(_insert_job_sql(), list(params))
        return int(cursor.lastrowid)


def is_outage(error: OperationalError) -> bool:
    code = error.args[0] if error.args else None
    return not isinstance(code, int) or code in OUTAGE_SERVER_ERRORS or 2000 <= code < 3000


@contextmanager
def refusals_are_not_outages() -> Iterator[None]:
    """Raise what the server refuses in a statement as ``InternalError``, not ``OperationalError``.

    The MySQL driver reports as ``OperationalError`` both a lost server and a refusal of
    the values sent (a trigger's ``SIGNAL``, a packet over ``max_allowed_packet``): the
    worker waits out the first and stores the second as the run's failure, as PostgreSQL's
    and SQLite's drivers let it tell apart by the exception's class.
    """
    try:
        yield
    except OperationalError as error:
        if is_outage(error):
            raise
        raise InternalError(*error.args) from error


@functools.cache
def _update_sql(count: int) -> str:
    """Store ``count`` outcomes in the jobs still running for their claim (fenced)."""
    job = Job._meta.db_table
    assignments = ", ".join(
        f"j.{quoted(column)} = {expression.format(return_value='f.return_value')}"
        for column, expression in JOB_ASSIGNMENTS
    )
    return (
        f"UPDATE {job} j JOIN {rows_sql(count)} ON j.id = f.id SET {assignments} "
        "WHERE j.status = 'doing' AND j.started_at = f.fence"
    )


@functools.cache
def _insert_sql(count: int) -> str:
    attempt = Attempt._meta.db_table
    columns = ", ".join(quoted(column) for column, _ in ATTEMPT_VALUES)
    values = ", ".join(expression.format(attempt=attempt) for _, expression in ATTEMPT_VALUES)
    return f"INSERT INTO {attempt} ({columns}) SELECT {values} FROM {rows_sql(count)}"


class _NotAllMatched(Exception):
    """The UPDATE matched fewer jobs than rows: undo it and take the careful way."""


def complete_many(connection: Any, rows: Sequence[OutcomeRow]) -> set[int]:
    """Store the outcomes of ``rows``; return the ids of the jobs stored.

    Two statements for all of them when every job still runs for its claim (the common
    case): the UPDATE, then the INSERT of their attempts. Otherwise (a run recovered
    meanwhile, or an outcome already stored whose commit's reply was lost) the UPDATE is
    undone and the jobs still running for their claims are locked and read first: without
    RETURNING, a job the UPDATE left as it was cannot be told from one it changed.
    """
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(_update_sql(len(rows)), [value for row in rows for value in row])
            if cursor.rowcount != len(rows):
                raise _NotAllMatched
    except _NotAllMatched:
        job = Job._meta.db_table
        running = execute(
            connection,
            f"SELECT j.id FROM {rows_sql(len(rows))} JOIN {job} j ON j.id = f.id "
            "AND j.status = 'doing' AND j.started_at = f.fence FOR UPDATE",
            [value for row in rows for value in row],
        )
        still_running = {job_id for (job_id,) in running}
        rows = [row for row in rows if row.id in still_running]
        if not rows:
            return set()
        with connection.cursor() as cursor:
            cursor.execute(_update_sql(len(rows)), [value for row in rows for value in row])
    execute(connection, _insert_sql(len(rows)), [value for row in rows for value in row])
    return {row.id for row in rows}


def rows_sql(count: int) -> str:
    """``count`` outcome rows as a derived table ``f``; times compared as DATETIME(6)."""

    def value(field: str) -> str:
        is_time = field.endswith("_at") or field == "fence"
        return "CAST(%s AS DATETIME(6))" if is_time else "%s"

    fields = OutcomeRow._fields
    first = "SELECT " + ", ".join(f"{value(field)} AS {quoted(field)}" for field in fields)
    others = " UNION ALL SELECT " + ", ".join(value(field) for field in fields)
    return f"({first}{others * (count - 1)}) AS f"
