"""How the worker runs a job enqueued through ``RetryTasksBackend``: its :class:`JobHandler`.

The job runs through the worker's one job boundary like any other; this handler only
supplies what is ``django.tasks``' own: the Task and its arguments, ``TaskContext``, JSON
normalisation of the return value, and the ``task_started``/``task_finished`` signals.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.tasks import TaskContext
from django.tasks.base import TaskResultStatus
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend
from django.tasks.signals import task_finished, task_started
from django.utils.json import normalize_json

from django_retrytasks import signals
from django_retrytasks.backends.results import arguments, build_result, history
from django_retrytasks.handlers import CannotRun
from django_retrytasks.jobs import Job as JobRecord
from django_retrytasks.models import Job, JobStatus
from django_retrytasks.records import Claim

if TYPE_CHECKING:
    from django_retrytasks.backends import RetryTasksBackend

NOT_THIS_BACKEND = "not retried: not a django.tasks task of this backend"


class DjangoTaskHandler:
    """Runs one claimed ``django.tasks`` job (see :class:`django_retrytasks.handlers.JobHandler`)."""

    sender = None  # django.tasks jobs have no app.task Task to send signals as
    max_snoozes = None

    def __init__(
        self, backend: RetryTasksBackend, claim: Claim, *, worker_name: str, using: str
    ) -> None:
        from django_retrytasks.backends import retry_strategy_of

        record = claim.record
        try:
            self.task = backend.task_of(
                record.task_name, priority=record.priority, queue_name=record.queue, run_after=None
            )
            self.args, self.kwargs = arguments(record.task_kwargs)
        except (InvalidTask, InvalidTaskBackend) as error:
            raise CannotRun(error, NOT_THIS_BACKEND) from error
        self.backend = backend
        self.using = using
        self.name = self.task.module_path
        self.retry = retry_strategy_of(self.task)
        self.timeout: float | None = getattr(self.task, "timeout", None)
        self.is_async = inspect.iscoroutinefunction(self.task.func)
        self.task_result = build_result(
            self.task,
            job_id=record.id,
            status=JobStatus.DOING,
            enqueued_at=record.created_at,
            finished_at=None,
            task_kwargs=record.task_kwargs,
            return_value=None,
            # No counted run before (the common first run): no attempt row to read for the
            # result the task sees (only an interrupted or snoozed run's start would be missing).
            history=history(record.id, using) if record.attempts else [],
            running=(claim.run_started_at, worker_name),
            alias=claim.backend,
        )

    def call(self, claim: Claim, should_abort: Callable[[], bool]) -> Any:
        # The function itself, not Task.call: an async one is awaited by the worker, within
        # the task's timeout, like any async task.
        if self.task.takes_context:
            context: TaskContext = TaskContext(task_result=self.task_result)
            return self.task.func(context, *self.args, **self.kwargs)
        return self.task.func(*self.args, **self.kwargs)

    def to_json(self, value: Any) -> Any:
        return normalize_json(value)

    def started(self, claim: Claim) -> None:
        signals.send(task_started, sender=type(self.backend), task_result=self.task_result)

    def finished(
        self,
        claim: Claim,
        *,
        return_value: Any,
        finished_at: datetime,
        error: BaseException | None,
    ) -> None:
        if error is None:
            # The running result plus what the success wrote: no need to read the job back.
            result = self.task_result
            for name, value in (
                ("status", TaskResultStatus.SUCCESSFUL),
                ("finished_at", finished_at),
                ("_return_value", return_value),
            ):
                object.__setattr__(result, name, value)
        else:
            job = Job.objects.using(self.using).select_related("worker").get(pk=claim.record.id)
            result = self.backend.result_of(job, self.using)
            # Sent inside an exception handler, as Django's backends do: its own receiver
            # logs the traceback it finds in sys.exc_info().
            try:
                raise error
            except BaseException:
                signals.send(task_finished, sender=type(self.backend), task_result=result)
            return
        signals.send(task_finished, sender=type(self.backend), task_result=result)

    def final_failure(self, job: JobRecord, error: BaseException) -> None:
        pass  # django.tasks has no such hook: receivers of task_finished learn it
