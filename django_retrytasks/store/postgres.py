"""The PostgreSQL side of claiming and completing.

The claim is the function ``django_retrytasks_claim`` (migrations 0006 and 0007), which
keeps its plans for the session and skips rows other workers hold (``FOR UPDATE SKIP
LOCKED``); outcomes are stored many at once in one statement.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django_retrytasks.models import Attempt, Job
from django_retrytasks.store.rows import (
    ATTEMPT_VALUES,
    JOB_ASSIGNMENTS,
    NEW_JOB_COLUMNS,
    NewJobRow,
    OutcomeRow,
    default_literals,
)
from django_retrytasks.store.sql import execute


@functools.lru_cache(maxsize=8)
def claim_sql(queues: tuple[str, ...] | None, columns: tuple[str, ...]) -> str:
    """Call the claim function; its parameters come from :func:`claim_params`."""
    return f"SELECT {', '.join(columns)} FROM django_retrytasks_claim(%s, %s, %s, %s, %s)"


def claim_params(
    moment: Any, worker_id: int | None, for_runners: int, queues: Sequence[str], limit: int
) -> list[Any]:
    return [moment, worker_id, for_runners, list(queues) or None, limit]


#: Up to this many rows go in as a VALUES list, beyond as one JSON document: a VALUES list
#: costs one statement text per number of rows (which the driver caches only while short);
#: the document (an array of rows, each an array of fields) is written by ``json`` in C and
#: read by the server in one pass, where one array per field cost the driver a Python call
#: per element (a third of a batch_defer of 1,000).
VALUES_ROWS = 8


def rows_source(types: dict[str, str], count: int) -> str:
    """SQL for ``count`` rows of fields ``types`` (name -> SQL type), as a table ``f``.

    Its parameters come from :func:`rows_params`, in the same order.
    """
    names = ", ".join(types)
    if count <= VALUES_ROWS:
        row = "(" + ", ".join(f"CAST(%s AS {kind})" for kind in types.values()) + ")"
        return f"(VALUES {', '.join([row] * count)}) AS f({names})"
    # Each row is a JSON array of its fields; a JSON field arrives as its text (a string).
    columns = ", ".join(
        f"(r.e->>{index})::{kind} AS {name}" for index, (name, kind) in enumerate(types.items())
    )
    # In the rows' order: new jobs' ids are handed out in it (see insert_jobs).
    return (
        f"(SELECT {columns} FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS r(e, n) "
        "ORDER BY r.n) AS f"
    )


def rows_params(rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    """The parameters of :func:`rows_source` for ``rows``."""
    if len(rows) <= VALUES_ROWS:
        return [value for row in rows for value in row]
    return [json.dumps(rows, ensure_ascii=False, separators=(",", ":"), default=_iso)]


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in a row of the store")


#: The SQL type of each field of an outcome row.
_OUTCOME_TYPES = {
    "id": "bigint",
    "fence": "timestamptz",
    "status": "text",
    "attempts": "integer",
    "finished_at": "timestamptz",
    "scheduled_at": "timestamptz",
    "scheduled_later": "boolean",
    "priority": "integer",
    "queue": "text",
    "lock": "text",
    "snoozes_added": "integer",
    "held": "boolean",
    "consecutive_losses": "integer",
    "return_value": "text",
    "run_started_at": "timestamptz",
    "outcome": "text",
    "worker_name": "text",
    "error_type": "text",
    "error_message": "text",
    "traceback": "text",
    "retry_at": "timestamptz",
    "decision": "text",
}


@functools.lru_cache(maxsize=VALUES_ROWS + 1)
def _complete_sql(count: int) -> str:
    job, attempt = Job._meta.db_table, Attempt._meta.db_table
    assignments = ", ".join(
        f"{column} = {expression.format(return_value='f.return_value::jsonb')}"
        for column, expression in JOB_ASSIGNMENTS
    )
    columns = ", ".join(column for column, _ in ATTEMPT_VALUES)
    values = ", ".join(expression.format(attempt=attempt) for _, expression in ATTEMPT_VALUES)
    return f"""
        WITH f AS (SELECT * FROM {rows_source(_OUTCOME_TYPES, count)}),
        done AS (
            UPDATE {job} AS j SET {assignments}
            FROM f WHERE j.id = f.id AND j.status = 'doing' AND j.started_at = f.fence
            RETURNING j.id
        )
        INSERT INTO {attempt} ({columns})
        SELECT {values} FROM f JOIN done ON done.id = f.id
        RETURNING job_id"""


def complete_many(connection: Any, rows: Sequence[OutcomeRow]) -> set[int]:
    """Store the outcomes of ``rows`` in one statement; return the ids of the jobs stored."""
    sql = _complete_sql(min(len(rows), VALUES_ROWS + 1))
    return {job_id for (job_id,) in execute(connection, sql, rows_params(rows))}


_NEW_JOB_TYPES = {
    "task_name": "text",
    "task_kwargs": "jsonb",
    "queue": "text",
    "priority": "integer",
    "lock": "text",
    "queueing_lock": "text",
    "scheduled_at": "timestamptz",
    "scheduled_later": "boolean",
    "created_at": "timestamptz",
    "backend": "text",
}


@functools.lru_cache(maxsize=VALUES_ROWS + 1)
def _insert_jobs_sql(count: int) -> str:
    defaults = default_literals(Job, besides=NEW_JOB_COLUMNS)
    columns = ", ".join([*NEW_JOB_COLUMNS, *(column for column, _ in defaults)])
    selected = ", ".join([*(f"f.{name}" for name in NEW_JOB_COLUMNS), *(v for _, v in defaults)])
    return (
        f"INSERT INTO {Job._meta.db_table} ({columns}) "
        f"SELECT {selected} FROM {rows_source(_NEW_JOB_TYPES, count)} RETURNING id"
    )


#: One job (``defer()``): through the function of migration 0012, whose plan the session
#: keeps (an INSERT sent as text is planned at every call).
_DEFER_SQL = "SELECT django_retrytasks_defer({})".format(
    ", ".join(f"CAST(%s AS {kind})" for kind in _NEW_JOB_TYPES.values())
)


def insert_jobs(connection: Any, rows: Sequence[NewJobRow]) -> list[int]:
    """Store new jobs with one statement whatever their number; their ids in ``rows``' order.

    The ids come from one sequence in the order the rows are inserted, so sorting them
    gives ``rows``' order.
    """
    if len(rows) == 1:
        return [job_id for (job_id,) in execute(connection, _DEFER_SQL, list(rows[0]))]
    sql = _insert_jobs_sql(min(len(rows), VALUES_ROWS + 1))
    return sorted(job_id for (job_id,) in execute(connection, sql, rows_params(rows)))
