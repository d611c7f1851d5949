"""Plain records handed to strategies and tasks: :class:`Job` and :class:`JobContext`.

These are snapshots, not ORM objects: a strategy or a task reading them cannot change
a job's state by accident, and they can be built without a database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from django_retrytasks.exceptions import GiveUp, Snooze

if TYPE_CHECKING:
    from django_retrytasks.tasks import Task


class Status:
    """The states a job moves through."""

    TODO = "todo"  #: waiting to run (for the first time, or for a retry)
    DOING = "doing"  #: claimed by a worker and running
    SUCCEEDED = "succeeded"  #: the last run returned
    FAILED = "failed"  #: the last run raised and the strategy did not retry it
    CANCELLED = "cancelled"  #: cancelled while waiting; never ran again
    ABORTED = "aborted"  #: stopped while running, at an operator's request

    WAITING = (TODO,)
    FINISHED = (SUCCEEDED, FAILED, CANCELLED, ABORTED)


class RunOutcome:
    """How one run of a job ended (``Attempt.outcome``)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: Cut short by the worker's own shutdown (or never started); does not use up an attempt.
    INTERRUPTED = "interrupted"
    #: The worker died during the run; counted, and judged as a ``WorkerLost`` failure.
    LOST = "lost"
    #: The task asked to run again later (``Snooze``); does not use up an attempt.
    SNOOZED = "snoozed"
    ABORTED = "aborted"


@dataclass(frozen=True, kw_only=True)
class Job:
    """A job as strategies and tasks see it.

    ``attempts`` is the number of runs already finished: 0 during the first run.
    """

    id: int
    task_name: str
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    status: str = Status.TODO
    queue: str = "default"
    priority: int = 0
    lock: str | None = None
    queueing_lock: str | None = None
    scheduled_at: datetime | None = None
    attempts: int = 0
    created_at: datetime | None = None
    #: When the run being judged failed: set by the worker when it asks a strategy, so
    #: that time budgets (``retry_for``) need no clock of their own.
    failed_at: datetime | None = None

    def evolve(self, **changes: Any) -> Job:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to store one job: what to run and where it waits."""

    task_name: str
    task_kwargs: dict[str, Any]
    queue: str
    priority: int
    lock: str | None
    queueing_lock: str | None
    scheduled_at: datetime | None
    delay_seconds: float | None
    #: The ``django.tasks`` backend alias for jobs enqueued through it, else empty.
    backend: str = ""
    #: ``task_kwargs`` as compact JSON text, when the caller has it already.
    task_kwargs_json: str = ""


class JobLike(Protocol):
    """What a log line reads from a job: a :class:`Job` record or a ``models.Job`` row."""

    @property
    def id(self) -> int | None: ...

    @property
    def task_name(self) -> str: ...

    @property
    def attempts(self) -> int: ...

    @property
    def queue(self) -> str: ...


def log_fields(job: JobLike, **more: Any) -> dict[str, Any]:
    """The ``extra`` keys every log line about a job carries (``action`` comes with ``more``).

    ``attempt`` is the number of the run the line is about: the current run for a
    worker, the next run for a job that waits.
    """
    return {
        "job_id": job.id,
        "task_name": job.task_name,
        "attempt": job.attempts + 1,
        "queue": job.queue,
        **more,
    }


@dataclass(frozen=True, kw_only=True)
class JobContext:
    """What a task declared with ``pass_context=True`` receives as its first argument."""

    job: Job
    task: Task
    worker_name: str = ""
    should_abort: Callable[[], bool] = field(default=lambda: False, repr=False)

    @property
    def is_last_attempt(self) -> bool:
        """Whether a failure of this run would not be retried whatever the exception.

        Unlike asking the strategy about a plain ``Exception()``, this is right for
        strategies with ``retry_exceptions`` too.
        """
        strategy = self.task.retry
        return strategy is None or strategy.is_last_attempt(self.job)

    def snooze(self, seconds: float = 0, **delay: float) -> NoReturn:
        """Run again after the delay without using up an attempt (see the task's ``max_snoozes``)."""
        raise Snooze(seconds, **delay)

    def give_up(self, reason: str = "the task gave up") -> NoReturn:
        """End the job ``failed`` now, whatever its retry strategy, with ``reason`` recorded."""
        raise GiveUp(reason)
