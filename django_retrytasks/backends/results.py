"""``django.tasks`` results read from job rows: a job's state and its attempts as a TaskResult."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.tasks import Task, TaskResult
from django.tasks.base import TaskError, TaskResultStatus
from django.tasks.exceptions import InvalidTask

from django_retrytasks.models import Attempt, JobStatus, Outcome

#: Shown in ``worker_ids`` for a run whose worker is not known (it died during the run).
UNKNOWN_WORKER = "unknown"

_STATUSES = {
    JobStatus.TODO: TaskResultStatus.READY,
    JobStatus.DOING: TaskResultStatus.RUNNING,
    JobStatus.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    # django.tasks has four states; a job cancelled or aborted did not succeed.
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
    JobStatus.ABORTED: TaskResultStatus.FAILED,
}
_FAILED_OUTCOMES = (Outcome.FAILED, Outcome.LOST, Outcome.ABORTED)
# Runs that do not use up an attempt (``Job.attempts``) are not attempts for django.tasks either.
_UNCOUNTED_OUTCOMES = (Outcome.INTERRUPTED, Outcome.SNOOZED)
_RESULT_ID = re.compile(r"[0-9]{1,18}")


def history(job_id: int, using: str) -> list[Attempt]:
    return list(Attempt.objects.using(using).filter(job_id=job_id).order_by("number", "id"))


def _exception_class_path(error_type: str) -> str:
    # The core names built-in exceptions without their module ("ValueError").
    if not error_type:
        return "builtins.Exception"
    return error_type if "." in error_type else f"builtins.{error_type}"


def build_result(
    task: Task,
    *,
    job_id: int,
    status: str,
    enqueued_at: datetime | None,
    finished_at: datetime | None,
    task_kwargs: Any,
    return_value: Any,
    history: list[Attempt],
    running: tuple[datetime, str] | None,
    alias: str,
) -> TaskResult[Any, Any]:
    """A TaskResult from a job's row and its attempts (plus the run going on, if any).

    Runs cut short by a graceful shutdown, and snoozes, are not counted, as in ``Job.attempts``:
    ``worker_ids`` (and so ``attempts``) has one entry per counted run, ``errors`` one
    per failed one.
    """
    counted = [attempt for attempt in history if attempt.outcome not in _UNCOUNTED_OUTCOMES]
    worker_ids = [attempt.worker_name or UNKNOWN_WORKER for attempt in counted]
    starts = [attempt.started_at for attempt in history]
    if running is not None:
        starts.append(running[0])
        worker_ids.append(running[1])
    errors = [
        TaskError(
            exception_class_path=_exception_class_path(attempt.error_type),
            traceback=attempt.traceback or f"{attempt.error_type}: {attempt.error_message}",
        )
        for attempt in counted
        if attempt.outcome in _FAILED_OUTCOMES
    ]
    task_status = _STATUSES[JobStatus(status)]
    args, kwargs = arguments(task_kwargs)
    task_result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=str(job_id),
        status=task_status,
        enqueued_at=enqueued_at,
        started_at=starts[0] if starts else None,
        finished_at=finished_at
        if task_status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
        else None,
        last_attempted_at=starts[-1] if starts else None,
        args=args,
        kwargs=kwargs,
        backend=alias,
        errors=errors,
        worker_ids=worker_ids,
    )
    if task_status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(task_result, "_return_value", return_value)
    return task_result


def arguments(task_kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    if (
        isinstance(task_kwargs, dict)
        and set(task_kwargs) <= {"args", "kwargs"}
        and isinstance(task_kwargs.get("args", []), list)
        and isinstance(task_kwargs.get("kwargs", {}), dict)
    ):
        return list(task_kwargs.get("args", [])), dict(task_kwargs.get("kwargs", {}))
    raise InvalidTask(
        'The arguments of a django.tasks job must be {"args": [...], "kwargs": {...}}.'
    )


def job_id_of(result_id: object) -> int | None:
    if isinstance(result_id, int) and not isinstance(result_id, bool):
        result_id = str(result_id)
    if isinstance(result_id, str) and _RESULT_ID.fullmatch(result_id):
        return int(result_id)
    return None
