"""The row of values that stores one run's outcome, as the dialects' statements read it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


class OutcomeRow(NamedTuple):
    """One completion as SQL parameters; ``None`` in a job column keeps what the job holds."""

    # The job: which one, fenced on the claim's ``started_at``, and its new columns.
    id: int
    fence: Any
    status: str
    attempts: int
    finished_at: Any
    scheduled_at: Any
    scheduled_later: bool | None
    priority: int | None
    queue: str | None
    lock: str | None
    snoozes_added: int
    held: bool | None
    consecutive_losses: int | None
    #: JSON text, set on the job only when it succeeded.
    return_value: str | None
    # The attempt row.
    run_started_at: Any
    outcome: str
    worker_name: str
    error_type: str
    error_message: str
    traceback: str
    retry_at: Any
    decision: str


#: The job's columns set from a row: (column, expression over the row ``f`` and the job ``j``).
JOB_ASSIGNMENTS = (
    ("status", "f.status"),
    ("attempts", "f.attempts"),
    ("finished_at", "f.finished_at"),
    ("scheduled_at", "COALESCE(f.scheduled_at, j.scheduled_at)"),
    ("scheduled_later", "COALESCE(f.scheduled_later, j.scheduled_later)"),
    ("priority", "COALESCE(f.priority, j.priority)"),
    ("queue", "COALESCE(f.queue, j.queue)"),
    ("lock", "COALESCE(f.lock, j.lock)"),
    ("snoozes", "j.snoozes + f.snoozes_added"),
    ("held", "COALESCE(f.held, j.held)"),
    ("consecutive_losses", "COALESCE(f.consecutive_losses, j.consecutive_losses)"),
    (
        "return_value",
        "CASE WHEN f.status = 'succeeded' THEN {return_value} ELSE j.return_value END",
    ),
)

#: The attempt's columns: (column, expression over the row ``f``); ``{attempt}`` is its table.
ATTEMPT_VALUES = (
    ("job_id", "f.id"),
    ("number", "(SELECT COUNT(*) + 1 FROM {attempt} a WHERE a.job_id = f.id)"),
    ("started_at", "f.run_started_at"),
    ("finished_at", "f.finished_at"),
    ("outcome", "f.outcome"),
    ("worker_name", "f.worker_name"),
    ("error_type", "f.error_type"),
    ("error_message", "f.error_message"),
    ("traceback", "f.traceback"),
    ("retry_at", "f.retry_at"),
    ("decision", "f.decision"),
)


class NewJobRow(NamedTuple):
    """A job to store: the columns a new job sets (the rest are written as their defaults)."""

    task_name: str
    #: JSON text.
    task_kwargs: str
    queue: str
    priority: int
    lock: str | None
    queueing_lock: str | None
    scheduled_at: Any
    scheduled_later: bool
    created_at: Any
    backend: str


#: The columns :class:`NewJobRow` fills, in order.
NEW_JOB_COLUMNS = NewJobRow._fields


def default_literals(model: Any, *, besides: Sequence[str]) -> list[tuple[str, str]]:
    """(column, SQL literal of its default) for every column of ``model`` not in ``besides``.

    So a column added to the model is written with its default by the store's own INSERTs.
    """
    columns = []
    for field in model._meta.local_concrete_fields:
        if field.primary_key or field.column in besides or field.name in besides:
            continue
        default = field.get_default()
        if default is None:
            literal = "NULL"
        elif isinstance(default, bool):
            literal = "TRUE" if default else "FALSE"
        elif isinstance(default, int | float):
            literal = str(default)
        elif isinstance(default, str):
            literal = "'" + default.replace("'", "''") + "'"
        elif isinstance(default, dict | list):
            literal = "'" + json.dumps(default).replace("'", "''") + "'"
        else:
            raise TypeError(f"no SQL literal for the default of {model.__name__}.{field.name}")
        columns.append((str(field.column), literal))
    return columns


def new_job_insert(model: Any, *, quote: Callable[[str], str] = str) -> tuple[str, str]:
    """A new job's INSERT: its column list, and one row of values (``%s`` for the columns
    of :class:`NewJobRow`, the literal default for every other column)."""
    defaults = default_literals(model, besides=NEW_JOB_COLUMNS)
    columns = ", ".join(quote(column) for column in [*NEW_JOB_COLUMNS, *(c for c, _ in defaults)])
    placeholders = ["%s"] * len(NEW_JOB_COLUMNS)
    return columns, "(" + ", ".join(placeholders + [literal for _, literal in defaults]) + ")"
