"""The SQLite side of claiming and completing: one statement under the database's write lock.

SQLite has one writer at a time, so a claim cannot race another; ``RETURNING`` (3.35+)
gives the claimed rows back in the same statement.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django_retrytasks.models import Attempt, Job
from django_retrytasks.store.rows import (
    ATTEMPT_VALUES,
    JOB_ASSIGNMENTS,
    NewJobRow,
    OutcomeRow,
    new_job_insert,
)
from django_retrytasks.store.sql import execute, fetch_all, sized_chunks


@functools.lru_cache(maxsize=64)
def claim_sql(queues: tuple[str, ...] | None, columns: tuple[str, ...]) -> str:
    """One statement that marks up to ``limit`` due jobs ``doing`` and returns ``columns``.

    Its parameters: the claim's time, the worker's id, how many of the claimed jobs start
    at once (the rest are marked claimed ahead), the time again, one parameter per queue,
    the limit (see :func:`claim_params`).
    """
    table = Job._meta.db_table
    queue_filter = f"AND j.queue IN ({', '.join(['%s'] * len(queues))})" if queues else ""
    # A job whose lock is held by a running job, or by a job deferred before it that is
    # still waiting (even one scheduled for later), must wait its turn.
    # Two lookups of the partial index on (lock, id), whose condition each repeats so that
    # SQLite sees it applies; one OR-ed subquery made SQLite scan every waiting job.
    lock_filter = f"""
        AND (j.lock IS NULL OR (
            NOT EXISTS (
                SELECT 1 FROM {table} o
                WHERE o.lock = j.lock AND o.status = 'doing'
                  AND o.status IN ('todo', 'doing') AND o.lock IS NOT NULL
            )
            AND NOT EXISTS (
                SELECT 1 FROM {table} o
                WHERE o.lock = j.lock AND o.status = 'todo' AND o.id < j.id
                  AND o.status IN ('todo', 'doing') AND o.lock IS NOT NULL
            )
        ))"""
    index_hint = ""
    # The flag is tested in both spellings: see promote_due_jobs.
    if not queues or len(queues) == 1:
        # Without statistics SQLite would sort every waiting job for each claim: walk the
        # partial index that is already in claiming order instead.
        index_hint = "INDEXED BY " + (
            "retrytasks_todo_queue_idx" if queues else "retrytasks_todo_idx"
        )
    return f"""
        UPDATE {table}
        SET status = 'doing', started_at = %s, worker_id = %s, abort_requested = FALSE,
            claimed_ahead = picked.rank > %s
        FROM (
            SELECT due.id, row_number() OVER (ORDER BY due.priority DESC, due.id) AS rank
            FROM (
                SELECT j.id, j.priority FROM {table} j {index_hint}
                WHERE j.status = 'todo' AND j.scheduled_later = 0 AND NOT j.scheduled_later
                  AND (j.scheduled_at IS NULL OR j.scheduled_at <= %s)
                  {queue_filter}
                  {lock_filter}
                ORDER BY j.priority DESC, j.id ASC
                LIMIT %s
            ) AS due
        ) AS picked
        WHERE {table}.id = picked.id
        RETURNING {", ".join(f"{table}.{column}" for column in columns)}"""


def claim_params(
    moment: Any, worker_id: int | None, for_runners: int, queues: Sequence[str], limit: int
) -> list[Any]:
    return [moment, worker_id, for_runners, moment, *queues, limit]


def promote_due_jobs(connection: Any, moment: Any) -> None:
    """Let the jobs scheduled for later that are due at ``moment`` join the claiming indexes.

    Looked for first with reads, so that a claim with nothing to move does not take
    SQLite's write lock for it. Two range lookups of the index by time (an OR of both
    would scan it), the second for a row whose scheduled_at was set to NULL by hand.
    PostgreSQL's claim function does the same itself.
    """
    table = Job._meta.db_table
    # Both spellings of the flag: SQLite uses a partial index only when the query repeats
    # its condition's terms, and Django writes that condition as "scheduled_later" = 1
    # (6.0 on) or as a bare "scheduled_later" (5.2): the index keeps the spelling of the
    # Django that ran the migration.
    later = f"""
        SELECT id FROM {table} INDEXED BY retrytasks_later_idx
        WHERE status = 'todo' AND scheduled_later = 1 AND scheduled_later"""
    for due, params in ((" AND scheduled_at <= %s", [moment]), (" AND scheduled_at IS NULL", [])):
        if fetch_all(connection, later + due + " LIMIT 1", params):
            fetch_all(
                connection,
                f"UPDATE {table} SET scheduled_later = 0 WHERE id IN ({later}{due} LIMIT 1000)",
                params,
            )


#: Outcomes per statement: 22 parameters each, far below SQLite's 32,766.
_OUTCOME_ROWS = 512


@functools.lru_cache(maxsize=32)
def _complete_sql(count: int) -> tuple[str, str]:
    """The UPDATE of ``count`` jobs and the INSERT of their attempts, each over the rows
    ``f`` given once as a VALUES list."""
    job, attempt = Job._meta.db_table, Attempt._meta.db_table
    one = "(" + ", ".join(["%s"] * len(OutcomeRow._fields)) + ")"
    rows = f"WITH f({', '.join(OutcomeRow._fields)}) AS (VALUES {', '.join([one] * count)}) "
    assignments = ", ".join(
        f"{column} = {expression.format(return_value='f.return_value')}"
        for column, expression in JOB_ASSIGNMENTS
    )
    # RETURNING may name only the updated table's columns: ``id`` is the job's.
    update = (
        f"{rows}UPDATE {job} AS j SET {assignments} FROM f "
        "WHERE j.id = f.id AND j.status = 'doing' AND j.started_at = f.fence RETURNING id"
    )
    columns = ", ".join(column for column, _ in ATTEMPT_VALUES)
    values = ", ".join(expression.format(attempt=attempt) for _, expression in ATTEMPT_VALUES)
    insert = f"{rows}INSERT INTO {attempt} ({columns}) SELECT {values} FROM f"
    return update, insert


def complete_many(connection: Any, rows: Sequence[OutcomeRow]) -> set[int]:
    """Store the outcomes of ``rows``: an UPDATE of the jobs still running for their claims,
    then one INSERT of those jobs' attempts; return the ids of the jobs stored."""
    stored: set[int] = set()
    for chunk in sized_chunks(rows, _OUTCOME_ROWS):
        update, _ = _complete_sql(len(chunk))
        params = [value for row in chunk for value in row]
        stored |= {job_id for (job_id,) in execute(connection, update, params)}
    kept = [row for row in rows if row.id in stored]
    for chunk in sized_chunks(kept, _OUTCOME_ROWS):
        _, insert = _complete_sql(len(chunk))
        execute(connection, insert, [value for row in chunk for value in row])
    return stored


#: Rows per INSERT: SQLite takes up to 32,766 parameters in a statement.
_INSERT_ROWS = 1024


@functools.lru_cache(maxsize=16)
def _insert_jobs_sql(count: int) -> str:
    columns, one = new_job_insert(Job)
    return f"INSERT INTO {Job._meta.db_table} ({columns}) VALUES {', '.join([one] * count)} RETURNING id"


def insert_jobs(connection: Any, rows: Sequence[NewJobRow]) -> list[int]:
    """Store new jobs, up to 1,024 a statement; their ids in ``rows``' order."""
    moment = connection.ops.adapt_datetimefield_value
    ids: list[int] = []
    for chunk in sized_chunks(rows, _INSERT_ROWS):
        params = [
            value
            for row in chunk
            for value in row._replace(
                scheduled_at=moment(row.scheduled_at), created_at=moment(row.created_at)
            )
        ]
        # Rowids are handed out in the order of the VALUES: sorted, they are the rows' order.
        ids.extend(
            sorted(
                job_id for (job_id,) in fetch_all(connection, _insert_jobs_sql(len(chunk)), params)
            )
        )
    return ids
