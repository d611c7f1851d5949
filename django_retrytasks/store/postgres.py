"""The PostgreSQL side of claiming and completing.

The claim is the function ``django_retrytasks_claim`` (migrations 0006 and 0007), which
keeps its plans for the session and skips rows other workers hold (``FOR UPDATE SKIP
LOCKED``); successes are stored many at once in one statement.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django_retrytasks.store.sql import execute


@functools.lru_cache(maxsize=8)
def claim_sql(queues: tuple[str, ...] | None, columns: tuple[str, ...]) -> str:
    """Call the claim function; its parameters come from :func:`claim_params`."""
    return f"SELECT {', '.join(columns)} FROM django_retrytasks_claim(%s, %s, %s, %s, %s)"


def claim_params(
    moment: Any, worker_id: int | None, for_runners: int, queues: Sequence[str], limit: int
) -> list[Any]:
    return [moment, worker_id, for_runners, list(queues) or None, limit]


def succeed_many(
    connection: Any,
    update: tuple[str, str],
    insert_sql: str,
    fields: Sequence[str],
    casts: Sequence[str | None],
    rows: list[list[Any]],
) -> set[int]:
    """Apply the fenced successes of all ``rows`` in one statement; return the job ids stored.

    The rows become a VALUES list ``f``; the UPDATE (its SQL and the job table's quoted
    name) returns the ids it changed, which feed the attempts' INSERT.
    """
    update_sql, job_table = update
    row_sql = "(" + ", ".join(f"CAST(%s AS {cast})" for cast in casts) + ")"
    values = f"f ({', '.join(fields)}) AS (VALUES {', '.join([row_sql] * len(rows))})"
    sql = (
        f"WITH {values}, done AS ({update_sql.replace('{rows}', 'f')} RETURNING {job_table}.id) "
        f"{insert_sql.replace('{rows}', 'f JOIN done ON done.id = f.id')} RETURNING job_id"
    )
    return {job_id for (job_id,) in execute(connection, sql, [v for row in rows for v in row])}
