"""What the worker runs for a claimed job: a :class:`JobHandler`, found by where the job came from.

Jobs deferred with ``app.task`` run through :class:`TaskHandler`. Jobs stored by another
source (the ``django.tasks`` backend, whose alias the job's ``backend`` column holds) run
through the handler that source makes: any ``django.tasks`` backend with a
``job_handler(claim, *, worker_name, using)`` method is such a source. The worker knows
only this module's interface, never a source's module.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from django_retrytasks import tasks
from django_retrytasks.exceptions import ArgumentsNotSerializable, UnknownTask
from django_retrytasks.jobs import Job, JobContext
from django_retrytasks.records import Claim
from django_retrytasks.retry import BaseRetryStrategy


class CannotRun(Exception):
    """The job cannot run at all: it ends ``failed`` without a run of its task, never retried."""

    def __init__(self, error: BaseException, reason: str) -> None:
        super().__init__(str(error))
        #: The error recorded in the job's attempt.
        self.error = error
        #: The decision recorded with it ("not retried: ...").
        self.reason = reason


class JobHandler(Protocol):
    """Runs one kind of job: its function, options and the announcements of its source."""

    #: The task's name, for log lines.
    name: str
    #: The ``sender`` of the job's signals (the app.task Task, else ``None``).
    sender: Any
    retry: BaseRetryStrategy | None
    #: Seconds a run may take, or ``None``.
    timeout: float | None
    #: Snoozes a job may take (``None``: the ``RETRYTASKS_MAX_SNOOZES`` setting).
    max_snoozes: int | None
    #: Whether the function is ``async def`` (:meth:`call` then returns a coroutine).
    is_async: bool

    def call(self, claim: Claim, should_abort: Callable[[], bool]) -> Any:
        """Call the function with the job's arguments; return what it returned.

        Raises :class:`CannotRun` when the stored arguments cannot work (retrying would not help).
        """

    def to_json(self, value: Any) -> Any:
        """The return value as JSON types (raise ``TypeError``/``ValueError`` if it has none)."""

    def started(self, claim: Claim) -> None:
        """Announce, as the job's source does, that its run started."""

    def finished(
        self,
        claim: Claim,
        *,
        return_value: Any,
        finished_at: datetime,
        error: BaseException | None,
    ) -> None:
        """Announce, as the job's source does, that the job ended (its state is stored).

        ``error`` is the error of a job that failed, ``None`` for one that succeeded.
        """

    def final_failure(self, job: Job, error: BaseException) -> None:
        """Call the task's hook for a job that failed for good."""


class TaskHandler:
    """Runs a job deferred with ``app.task``: the registered :class:`~django_retrytasks.tasks.Task`."""

    def __init__(self, task: tasks.Task, *, worker_name: str) -> None:
        self.task = task
        self.worker_name = worker_name
        self.name = task.name
        self.sender = task
        self.retry = task.retry
        self.timeout = task.timeout
        self.max_snoozes = task.max_snoozes
        self.is_async = inspect.iscoroutinefunction(task.func)

    def check_arguments(self, claim: Claim) -> None:
        """Refuse a stored job whose arguments the function cannot take: running it cannot work."""
        shape = self.task.call_shape
        problem = None if shape is None else shape.problem(claim.record.task_kwargs)
        if problem is not None:
            raise CannotRun(
                TypeError(f"task {self.name!r} {problem}"),
                "not retried: the stored arguments do not fit the task's signature",
            )

    def call(self, claim: Claim, should_abort: Callable[[], bool]) -> Any:
        """Call the function; arguments it cannot take raise :class:`CannotRun`."""
        kwargs = claim.record.task_kwargs
        try:
            if self.task.pass_context:
                context = JobContext(
                    job=claim.record,
                    task=self.task,
                    worker_name=self.worker_name,
                    should_abort=should_abort,
                )
                return self.task.func(context, **kwargs)
            return self.task.func(**kwargs)
        except TypeError:
            # Only now, so that the runs that work pay nothing for the check.
            self.check_arguments(claim)
            raise

    def to_json(self, value: Any) -> Any:
        return value

    def started(self, claim: Claim) -> None:
        pass

    def finished(
        self,
        claim: Claim,
        *,
        return_value: Any,
        finished_at: datetime,
        error: BaseException | None,
    ) -> None:
        pass

    def final_failure(self, job: Job, error: BaseException) -> None:
        if self.task.on_final_failure is not None:
            self.task.on_final_failure(job, error)


def resolve(claim: Claim, *, app: tasks.App, worker_name: str, using: str) -> JobHandler:
    """The handler that runs ``claim``'s job; raises :class:`CannotRun` when none can."""
    if claim.undecodable:
        raise CannotRun(
            ArgumentsNotSerializable(f"the job's stored arguments cannot be read: {claim.undecodable}"),
            "not retried: the stored arguments cannot be read back",
        )
    if claim.backend:
        return _source_handler(claim, worker_name=worker_name, using=using)
    task = app.tasks.get(claim.record.task_name)
    if task is None:
        raise CannotRun(
            UnknownTask(
                f"no task is registered under the name {claim.record.task_name!r}; "
                "only registered tasks run"
            ),
            "not retried: unknown task",
        )
    return TaskHandler(task, worker_name=worker_name)


def _source_handler(claim: Claim, *, worker_name: str, using: str) -> JobHandler:
    """The handler made by the ``django.tasks`` backend whose alias the job carries."""
    if importlib.util.find_spec("django.tasks") is None:
        raise CannotRun(
            UnknownTask(
                f"job {claim.record.id} was enqueued through django.tasks (backend "
                f"{claim.backend!r}), which this Django version does not have"
            ),
            "not retried: no django.tasks",
        )
    from django.tasks import task_backends
    from django.tasks.exceptions import InvalidTaskBackend

    try:
        backend = task_backends[claim.backend]
    except InvalidTaskBackend as error:
        raise CannotRun(error, "not retried: not a django.tasks task of this backend") from error
    make_handler = getattr(backend, "job_handler", None)
    if make_handler is None:
        raise CannotRun(
            UnknownTask(f"task backend {claim.backend!r} does not run django-retrytasks jobs"),
            "not retried: not a django.tasks task of this backend",
        )
    handler: JobHandler = make_handler(claim, worker_name=worker_name, using=using)
    return handler

