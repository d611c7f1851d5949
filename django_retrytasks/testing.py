"""Helpers for tests of projects that defer jobs: run them here, for real, in this thread.

``run_due_jobs()`` claims and runs due jobs with the real models and the real state
machine, in the calling thread and so inside the test's transaction: it works in
pytest-django's ``db`` fixture and in Django's ``TestCase``. With ``advance`` it also
moves its clock forward to each scheduled job (retries, snoozes, ``schedule_in``) and
runs it, so a test sees a job's whole life without waiting.

For pytest, the ``retrytasks_runner`` fixture (a :class:`JobRunner`) is registered as a
pytest plugin when this package is installed, and can also be imported into a
``conftest.py``. For ``unittest``, mix :class:`RetryTasksTestMixin` into a ``TestCase``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Min, QuerySet
from django.utils import timezone

from django_retrytasks import durations, store, tasks
from django_retrytasks.models import Job, JobStatus
from django_retrytasks.worker.announcing import Announcer
from django_retrytasks.worker.completer import InlineCompleter
from django_retrytasks.worker.processing import Processor

#: The worker name the test helpers record on attempts.
RUNNER_NAME = "test-runner"

#: How far ``advance`` may move the clock: ``True`` (as far as jobs are scheduled), a
#: ``timedelta`` or a dict of timedelta arguments; ``False`` keeps the clock where it is.
Advance = bool | timedelta | Mapping[str, float]


class _Clock:
    """A fixed moment that only :func:`_run` moves, or the real time when none is set."""

    def __init__(self, moment: datetime | None) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment or timezone.now()


def _horizon(start: datetime, advance: Advance) -> datetime | None:
    if advance is False:
        return None
    if advance is True:
        return durations.LATEST_RETRY_AT
    return durations.add_delay(start, durations.delay_to_seconds(advance, name="advance"))[0]


def _next_scheduled(after: datetime, queues: Sequence[str] | None, using: str) -> datetime | None:
    waiting = Job.objects.using(using).filter(status=JobStatus.TODO, scheduled_at__gt=after)
    if queues:
        waiting = waiting.filter(queue__in=queues)
    earliest: datetime | None = waiting.aggregate(earliest=Min("scheduled_at"))["earliest"]
    return earliest


def _run(
    *,
    now: datetime | None,
    advance: Advance,
    queues: Sequence[str] | None,
    app: tasks.App,
    max_runs: int,
    using: str,
) -> tuple[int, datetime | None]:
    """Run due jobs (moving the clock when asked); return the runs and the clock's last moment."""
    clock = _Clock(now if now is not None or advance is False else timezone.now())
    horizon = _horizon(clock(), advance)
    processor = Processor(app=app, worker_name=RUNNER_NAME, using=using, clock=clock)
    completer = InlineCompleter(announcer=Announcer(worker_name=RUNNER_NAME), using=using)
    runs = 0
    while runs < max_runs:
        claims = store.claim_jobs(now=clock(), limit=1, queues=queues, using=using)
        if claims:
            processor.process_and_complete(claims[0], completer)
            runs += 1
            continue
        if horizon is None:
            break
        upcoming = _next_scheduled(clock(), queues, using)
        if upcoming is None or upcoming > horizon:
            break
        clock.moment = upcoming
    return runs, clock.moment


def run_due_jobs(
    *,
    now: datetime | None = None,
    advance: Advance = False,
    queues: Sequence[str] | None = None,
    app: tasks.App = tasks.app,
    max_runs: int = 10_000,
    using: str = store.DEFAULT_DB,
) -> int:
    """Run every job due at ``now`` (default: the current time), retries due by then included.

    Returns the number of runs. Without ``advance``, jobs scheduled after ``now`` are
    left waiting: call again with a later ``now`` to run them. With ``advance=True`` the
    clock jumps to each next scheduled job and runs it, until none is left waiting (or
    ``max_runs``); ``advance={"hours": 1}`` (or a ``timedelta``) stops at ``now`` plus that.
    """
    return _run(now=now, advance=advance, queues=queues, app=app, max_runs=max_runs, using=using)[0]


class JobRunner:
    """Runs the jobs a test deferred, with a clock the test can move.

    ``now`` is ``None`` (the real time) until :meth:`advance` or ``run(advance=...)``
    moves it; from then on jobs run as if it were that moment.
    """

    def __init__(
        self,
        *,
        now: datetime | None = None,
        app: tasks.App = tasks.app,
        using: str = store.DEFAULT_DB,
    ) -> None:
        self.now = now
        self.app = app
        self.using = using

    def run(
        self,
        *,
        advance: Advance = False,
        queues: Sequence[str] | None = None,
        max_runs: int = 10_000,
    ) -> int:
        """Run the due jobs (see :func:`run_due_jobs`); returns the number of runs."""
        runs, moment = _run(
            now=self.now,
            advance=advance,
            queues=queues,
            app=self.app,
            max_runs=max_runs,
            using=self.using,
        )
        if moment is not None:
            self.now = moment
        return runs

    def advance(self, delta: timedelta | None = None, **delta_kwargs: float) -> datetime:
        """Move the clock forward by ``delta`` (or timedelta keyword arguments); return it."""
        step = delta if delta is not None else timedelta(**delta_kwargs)
        self.now = (self.now or timezone.now()) + step
        return self.now

    def jobs(
        self, task: tasks.Task | str | None = None, status: str | None = None
    ) -> QuerySet[Job]:
        """The stored jobs, optionally of one task and in one state, oldest first."""
        found = Job.objects.using(self.using).order_by("id")
        if task is not None:
            found = found.filter(task_name=task if isinstance(task, str) else task.name)
        if status is not None:
            found = found.filter(status=status)
        return found

    def job(self, job_id: int) -> Job:
        """One stored job, fresh from the database."""
        return Job.objects.using(self.using).get(pk=job_id)


class RetryTasksTestMixin:
    """For ``django.test.TestCase``: ``self.job_runner`` and ``self.run_jobs(...)``.

    ``class InvoiceTests(RetryTasksTestMixin, TestCase): ...``
    """

    job_runner: JobRunner

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.job_runner = JobRunner()

    def run_jobs(self, **options: Any) -> int:
        """Run the due jobs now; ``advance=True`` also runs retries and scheduled jobs."""
        return self.job_runner.run(**options)


# The fixture, for ``from django_retrytasks.testing import retrytasks_runner`` in a conftest.
# Without pytest installed it is simply absent.
with contextlib.suppress(ImportError):
    from django_retrytasks.pytest_plugin import retrytasks_runner  # noqa: F401
