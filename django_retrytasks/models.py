"""Storage: jobs, the history of their runs, the workers that run them, periodic schedules.

Rows are written only by :mod:`django_retrytasks.store`; everything else reads.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_retrytasks import jobs


class JobStatus(models.TextChoices):
    TODO = jobs.Status.TODO, _("todo")
    DOING = jobs.Status.DOING, _("doing")
    SUCCEEDED = jobs.Status.SUCCEEDED, _("succeeded")
    FAILED = jobs.Status.FAILED, _("failed")
    CANCELLED = jobs.Status.CANCELLED, _("cancelled")
    ABORTED = jobs.Status.ABORTED, _("aborted")


class Outcome(models.TextChoices):
    SUCCEEDED = jobs.RunOutcome.SUCCEEDED, _("succeeded")
    FAILED = jobs.RunOutcome.FAILED, _("failed")
    #: Cut short by the worker's own graceful shutdown; does not use up a retry.
    INTERRUPTED = jobs.RunOutcome.INTERRUPTED, _("interrupted")
    #: The worker died during the run; counted, and judged as a ``WorkerLost`` failure.
    LOST = jobs.RunOutcome.LOST, _("lost")
    #: The task asked to run again later (``Snooze``); does not use up an attempt.
    SNOOZED = jobs.RunOutcome.SNOOZED, _("snoozed")
    ABORTED = jobs.RunOutcome.ABORTED, _("aborted")


class UndecodableJSON:
    """A stored JSON value that Python cannot read back, such as one nested thousands deep.

    Such a row can only come from outside ``defer()`` (hand-written SQL, another program),
    but it must not take down whatever reads it: the worker fails the job with ``error``,
    the admin and the command line show this instead of the value.
    """

    __slots__ = ("error", "size")

    def __init__(self, *, error: str, size: int) -> None:
        self.error = error
        self.size = size

    def __str__(self) -> str:
        return f"<stored JSON that cannot be read back ({self.error}); {self.size:,} characters>"

    __repr__ = __str__


class StoredJSONField(models.JSONField):
    """A ``JSONField`` whose rows never raise on reading: see :class:`UndecodableJSON`."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        try:
            return super().from_db_value(value, expression, connection)
        except (RecursionError, ValueError) as error:
            text = "nested too deep" if isinstance(error, RecursionError) else str(error)
            return UndecodableJSON(error=text, size=len(value) if isinstance(value, str) else 0)

    def deconstruct(self) -> Any:
        # Stored exactly like Django's JSONField: migrations need not know the difference.
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs


class JobQuerySet(models.QuerySet["Job"]):
    def waiting(self) -> JobQuerySet:
        return self.filter(status=JobStatus.TODO)

    def pending_retries(self) -> JobQuerySet:
        """Jobs waiting for another run after at least one finished run."""
        return self.filter(status=JobStatus.TODO, attempts__gt=0)

    def running(self) -> JobQuerySet:
        return self.filter(status=JobStatus.DOING)

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=jobs.Status.FINISHED)


class Worker(models.Model):
    """A running ``runworker`` process, kept alive by its heartbeat."""

    name = models.CharField(max_length=255, unique=True)
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    queues = models.JSONField(default=list, blank=True)
    concurrency = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["started_at"]

    def __str__(self) -> str:
        return self.name


class Job(models.Model):
    """One deferred call of a task, with its schedule and its state."""

    id = models.BigAutoField(primary_key=True)
    task_name = models.CharField(max_length=255)
    task_kwargs = StoredJSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.TODO)
    queue = models.CharField(max_length=128, default="default")
    priority = models.IntegerField(default=0)
    lock = models.CharField(max_length=255, null=True, blank=True)
    queueing_lock = models.CharField(max_length=255, null=True, blank=True)
    #: When the job may run next; NULL means "now" (the worker treats it as due).
    scheduled_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    #: Runs already finished (interrupted runs are not counted).
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    #: Start of the current run while ``doing``, else of the last run.
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.ForeignKey(
        Worker, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    abort_requested = models.BooleanField(default=False)
    #: Runs that asked to be retried later without using up an attempt.
    snoozes = models.PositiveIntegerField(default=0)
    #: Runs in a row lost with their worker; a poison job is held after too many.
    consecutive_losses = models.PositiveIntegerField(default=0)
    held = models.BooleanField(default=False)
    #: Claimed ahead of a free runner (see the worker's claiming ahead): should its worker
    #: die, the run may never have started, so its recovery uses no attempt.
    claimed_ahead = models.BooleanField(default=False)
    #: Stored waiting for a later ``scheduled_at`` (a delayed job, a retry with a wait):
    #: kept out of the claiming indexes until a claim finds it due and clears this, so
    #: that a backlog of such jobs does not slow every claim. Only a hint for speed: a
    #: job is never claimed before its ``scheduled_at`` either way.
    scheduled_later = models.BooleanField(default=False)
    #: The ``django.tasks`` backend alias for jobs enqueued through it, else empty.
    backend = models.CharField(max_length=64, blank=True, default="")
    return_value = StoredJSONField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("retry_job", "Can retry jobs"),
            ("cancel_job", "Can cancel jobs"),
            ("abort_job", "Can abort jobs"),
        ]
        indexes = [
            # The claiming indexes: waiting jobs not scheduled for later, in claiming order.
            models.Index(
                "queue",
                models.F("priority").desc(),
                "id",
                name="retrytasks_todo_queue_idx",
                condition=Q(status="todo", scheduled_later=False),
            ),
            models.Index(
                models.F("priority").desc(),
                "id",
                name="retrytasks_todo_idx",
                condition=Q(status="todo", scheduled_later=False),
            ),
            # Jobs scheduled for later, by time: a claim finds the ones due now here.
            models.Index(
                "scheduled_at",
                name="retrytasks_later_idx",
                condition=Q(status="todo", scheduled_later=True),
            ),
            models.Index(
                "scheduled_at", name="retrytasks_todo_sched_idx", condition=Q(status="todo")
            ),
            models.Index(
                "lock",
                "id",
                name="retrytasks_lock_idx",
                condition=Q(status__in=["todo", "doing"], lock__isnull=False),
            ),
            models.Index("status", "finished_at", name="retrytasks_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                "queueing_lock",
                name="retrytasks_one_waiting_per_qlock",
                condition=Q(status="todo", queueing_lock__isnull=False),
            ),
            models.UniqueConstraint(
                "lock",
                name="retrytasks_one_running_per_lock",
                condition=Q(status="doing", lock__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.task_name}"

    @property
    def is_pending_retry(self) -> bool:
        return self.status == JobStatus.TODO and self.attempts > 0

    def as_record(self) -> jobs.Job:
        """Return the plain :class:`django_retrytasks.Job` that strategies and tasks receive."""
        return record_from_row(self.__dict__)


def record_from_row(row: dict[str, Any]) -> jobs.Job:
    return jobs.Job(
        id=row["id"],
        task_name=row["task_name"],
        task_kwargs=row["task_kwargs"],
        status=row["status"],
        queue=row["queue"],
        priority=row["priority"],
        lock=row["lock"],
        queueing_lock=row["queueing_lock"],
        scheduled_at=row["scheduled_at"],
        attempts=row["attempts"],
        created_at=row.get("created_at"),
    )


class Attempt(models.Model):
    """One run of a job: when, on which worker, how it ended and what was decided next."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempt_history")
    #: 1 for the first run of the job.
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    worker_name = models.CharField(max_length=255, blank=True, default="")
    error_type = models.CharField(max_length=255, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    #: When the retry decided after this run is due; NULL when there was none.
    retry_at = models.DateTimeField(null=True, blank=True)
    #: The decision taken after the run, in words ("retry in 5s", "max attempts reached", ...).
    decision = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["job_id", "number", "id"]
        indexes = [
            # The admin's error type filter and its choices (the search has its own index,
            # see django_retrytasks.search_index, migration 0008).
            models.Index("error_type", "job", name="retrytasks_attempt_type_idx"),
            # The dashboard's failures of the last 24 hours, read from the index alone: the
            # attempts' own rows carry tracebacks (SQLite read 90 MB of them for 30,000 runs).
            models.Index(
                "finished_at", "outcome", "error_type", "job", name="retrytasks_attempt_recent_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of job #{self.job_id}: {self.outcome}"

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Schedule(models.Model):
    """A periodic schedule declared in code (``@app.periodic``), with what operators set on it.

    Its cron expression, time zone and arguments live in the code; the row holds what every
    worker must agree on: whether it is paused, since when it ticks, and its last tick.
    """

    task_name = models.CharField(max_length=255)
    periodic_id = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    #: Ticks at or before this moment are never deferred: when the schedule was first
    #: stored, or last resumed.
    active_since = models.DateTimeField(default=timezone.now)
    #: Set while an operator has paused the schedule: its ticks are skipped, not caught up.
    paused_at = models.DateTimeField(null=True, blank=True)
    #: The newest tick deferred (Unix seconds); a tick at or before it is never deferred again.
    last_tick = models.BigIntegerField(null=True, blank=True)
    #: The last job the schedule deferred, at a tick or run now by an operator.
    last_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_deferred_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task_name", "periodic_id"]
        permissions = [
            ("pause_schedule", "Can pause and resume schedules"),
            ("run_schedule", "Can run schedules now"),
        ]
        constraints = [
            # Plain columns (``fields``), not expressions: MariaDB and MySQL take it as it is.
            models.UniqueConstraint(
                fields=["task_name", "periodic_id"], name="retrytasks_one_row_per_schedule"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name}[{self.periodic_id}]" if self.periodic_id else self.task_name


class ScheduleTick(models.Model):
    """A tick of a schedule that a worker deferred: the unique constraint on (schedule, tick)
    is what makes it one job per tick, however many workers defer. Old rows are pruned."""

    id = models.BigAutoField(primary_key=True)
    # The unique constraint's index leads with the schedule: no index of its own.
    schedule = models.ForeignKey(
        Schedule, on_delete=models.CASCADE, related_name="ticks", db_index=False
    )
    #: The tick, as Unix seconds.
    tick = models.BigIntegerField()
    deferred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["schedule_id", "tick"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "tick"], name="retrytasks_one_job_per_tick"
            ),
        ]

    def __str__(self) -> str:
        return f"tick {self.tick} of schedule {self.schedule_id}"
