"""Long values read in part: their start (a traceback: its end) and their length, cut by the
database, so that showing a job never loads megabytes of it.

The values: a job's arguments and return value (JSON, read as the stored text, which also
serves a value nested too deep for Python to read back), an attempt's error message and
traceback. The admin's job page and ``manage.py retrytasks show`` read them through here.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, QuerySet, TextField
from django.db.models.functions import Cast, Length, Right, Substr

from django_retrytasks.models import Attempt, Job

#: The model field behind each value, and whether it holds JSON.
SOURCES = {
    "arguments": ("task_kwargs", True),
    "result": ("return_value", True),
    "error": ("error_message", False),
    "traceback": ("traceback", False),
}


def as_text(what: str) -> Any:
    """An expression of the value ``what`` as text (JSON: the stored text)."""
    field, is_json = SOURCES[what]
    return Cast(field, TextField()) if is_json else F(field)


def job_value_heads(job_id: int, chars: int) -> dict[str, tuple[str | None, int]]:
    """``{"arguments": (start, length), "result": (start, length)}`` of a job, in one query:
    the first ``chars`` characters of each stored JSON text (``None`` for a NULL)."""
    columns: dict[str, Any] = {}
    for what in ("arguments", "result"):
        columns[f"{what}_head"] = Substr(as_text(what), 1, chars)
        columns[f"{what}_length"] = Length(as_text(what))
    row: Any = Job.objects.filter(pk=job_id).values(**columns).first() or {}
    return {
        what: (row.get(f"{what}_head"), row.get(f"{what}_length") or 0)
        for what in ("arguments", "result")
    }


def with_attempt_heads(
    attempts: QuerySet[Attempt], *, error_chars: int, traceback_chars: int
) -> QuerySet[Attempt]:
    """The attempts without their error message and traceback, but with the message's first
    ``error_chars`` characters (``error_head``), the traceback's last ``traceback_chars``
    (``traceback_tail``), and both lengths (``error_length``, ``traceback_length``)."""
    return attempts.defer("error_message", "traceback").annotate(
        error_head=Substr("error_message", 1, error_chars),
        error_length=Length("error_message"),
        traceback_tail=Right("traceback", traceback_chars),
        traceback_length=Length("traceback"),
    )


def whole(what: str, *, job_id: int, attempt_id: int | None = None) -> str | None:
    """The whole value ``what`` of a job (or of one of its attempts) as stored text; ``None``
    when there is no such row, or for a NULL JSON value."""
    rows: QuerySet[Any] = (
        Job.objects.filter(pk=job_id)
        if attempt_id is None
        else Attempt.objects.filter(job_id=job_id, pk=attempt_id)
    )
    found: str | None = rows.values_list(as_text(what), flat=True).first()
    return found
