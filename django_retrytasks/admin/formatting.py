"""How the admin writes times, counts and values: small pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone

from django_retrytasks import tasks
from django_retrytasks.retry import RetryStrategy

#: Job ids named one by one in an action's message; the rest are counted.
IDS_IN_MESSAGE = 20
EMPTY = "—"


def duration_text(seconds: float) -> str:
    """A short duration: "45 s", "4 min", "2.5 h", "3 d"."""
    seconds = abs(seconds)
    if seconds < 59.5:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.2g} s"
    if seconds < 3570:  # what would round to 60 min reads "1 h"
        return f"{round(seconds / 60)} min"
    if seconds < 86400:
        return f"{seconds / 3600:.2g} h"
    return f"{seconds / 86400:.3g} d"


def relative_text(moment: datetime, now: datetime) -> str:
    """ "in 4 min" for the future, "3 min ago" for the past, "now" within a second."""
    seconds = (moment - now).total_seconds()
    if abs(seconds) < 1:
        return "now"
    return f"in {duration_text(seconds)}" if seconds > 0 else f"{duration_text(seconds)} ago"


def moment_text(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def first_line(text: str, limit: int = 140) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def ids_text(ids: Sequence[int]) -> str:
    ids = sorted(ids)
    shown = ", ".join(f"#{job_id}" for job_id in ids[:IDS_IN_MESSAGE])
    rest = len(ids) - IDS_IN_MESSAGE
    return shown + (f" and {rest} more" if rest > 0 else "")


def jobs_text(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def max_runs(task_name: str) -> int | None:
    """The most runs the task's strategy allows a job, or None when unlimited or not known.

    Known for tasks without retries (1) and for :class:`RetryStrategy` with a
    ``max_attempts`` (that many retries, so one more run).
    """
    task = tasks.app.tasks.get(task_name)
    if task is None:
        return None
    if task.retry is None:
        return 1
    if isinstance(task.retry, RetryStrategy) and task.retry.max_attempts is not None:
        return task.retry.max_attempts + 1
    return None
