"""The PostgreSQL side of claiming and completing.

The claim is the function ``django_retrytasks_claim`` (migrations 0006 and 0007), which
keeps its plans for the session and skips rows other workers hold (``FOR UPDATE SKIP
LOCKED``); outcomes are stored many at once in one statement.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django_retrytasks.models import Attempt, Job
from django_retrytasks.store.rows import ATTEMPT_VALUES, JOB_ASSIGNMENTS, OutcomeRow
from django_retrytasks.store.sql import execute


@functools.lru_cache(maxsize=8)
def claim_sql(queues: tuple[str, ...] | None, columns: tuple[str, ...]) -> str:
    """Call the claim function; its parameters come from :func:`claim_params`."""
    return f"SELECT {', '.join(columns)} FROM django_retrytasks_claim(%s, %s, %s, %s, %s)"


def claim_params(
    moment: Any, worker_id: int | None, for_runners: int, queues: Sequence[str], limit: int
) -> list[Any]:
    return [moment, worker_id, for_runners, list(queues) or None, limit]


#: The SQL type of each field of an outcome row, for ``unnest``.
_ROW_TYPES = {
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


@functools.cache
def _complete_sql() -> str:
    job, attempt = Job._meta.db_table, Attempt._meta.db_table
    arrays = ", ".join(f"%s::{_ROW_TYPES[name]}[]" for name in OutcomeRow._fields)
    assignments = ", ".join(
        f"{column} = {expression.format(return_value='f.return_value::jsonb')}"
        for column, expression in JOB_ASSIGNMENTS
    )
    columns = ", ".join(column for column, _ in ATTEMPT_VALUES)
    values = ", ".join(expression.format(attempt=attempt) for _, expression in ATTEMPT_VALUES)
    return f"""
        WITH f AS (SELECT * FROM unnest({arrays}) AS f({", ".join(OutcomeRow._fields)})),
        done AS (
            UPDATE {job} AS j SET {assignments}
            FROM f WHERE j.id = f.id AND j.status = 'doing' AND j.started_at = f.fence
            RETURNING j.id
        )
        INSERT INTO {attempt} ({columns})
        SELECT {values} FROM f JOIN done ON done.id = f.id
        RETURNING job_id"""


def complete_many(connection: Any, rows: Sequence[OutcomeRow]) -> set[int]:
    """Store the outcomes of ``rows`` in one statement; return the ids of the jobs stored.

    The rows go in as one array per field (``unnest``), so the statement's text is the
    same whatever their number: one parse, one round trip.
    """
    columns = [list(values) for values in zip(*rows, strict=True)]
    return {job_id for (job_id,) in execute(connection, _complete_sql(), columns)}
