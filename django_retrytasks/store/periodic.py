"""Periodic schedules' rows: one job per tick, pausing, resuming, running now.

A tick is deferred in one transaction that locks the schedule's row, checks it is neither
paused nor past, inserts the tick's row and the job: the unique constraint on (schedule,
tick) makes a second deferral of the same tick fail whatever the locks did, and the
schedule's ``last_tick`` keeps every worker from deferring a tick older than the newest one,
so old tick rows can be pruned.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction

from django_retrytasks import jobs
from django_retrytasks.exceptions import AlreadyEnqueued
from django_retrytasks.models import Schedule, ScheduleTick
from django_retrytasks.store.deferring import defer_jobs
from django_retrytasks.store.operations import ActionReport
from django_retrytasks.store.sql import DEFAULT_DB, write_transaction

logger = logging.getLogger(__name__)

#: Tick rows are kept this long behind the newest tick of their schedule (the schedule's
#: ``last_tick`` is what stops a second deferral; the rows back it up and show recent ticks).
TICKS_KEPT_SECONDS = 3600

Key = tuple[str, str]


def sync_schedules(
    keys: Iterable[Key], *, now: datetime, using: str = DEFAULT_DB
) -> dict[Key, Schedule]:
    """The rows of the schedules ``keys`` (task name, periodic_id), made if missing.

    A new schedule is active from ``now``: its earlier ticks are not caught up.
    """
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    rows = _rows(wanted, using)
    missing = [key for key in wanted if key not in rows]
    if missing:
        Schedule.objects.using(using).bulk_create(
            [
                Schedule(
                    task_name=task_name, periodic_id=periodic_id, created_at=now, active_since=now
                )
                for task_name, periodic_id in missing
            ],
            ignore_conflicts=True,  # another worker (or the admin) made it meanwhile
        )
        rows = _rows(wanted, using)
    return rows


def _rows(keys: Sequence[Key], using: str) -> dict[Key, Schedule]:
    names = {task_name for task_name, _ in keys}
    return {
        (row.task_name, row.periodic_id): row
        for row in Schedule.objects.using(using).filter(task_name__in=names)
        if (row.task_name, row.periodic_id) in keys
    }


class TickResult(enum.Enum):
    """What became of one tick a worker tried to defer."""

    DEFERRED = "deferred"
    #: This tick or a later one was already deferred (by another worker, most often).
    ALREADY_DEFERRED = "already deferred"
    PAUSED = "paused"
    #: The tick is before the schedule was stored or last resumed.
    INACTIVE = "before the schedule was active"
    #: The task's queueing lock is held by a waiting job: the tick is used up without a job.
    QUEUEING_LOCK_TAKEN = "queueing lock taken"
    GONE = "schedule row gone"


@dataclass(frozen=True)
class TickOutcome:
    result: TickResult
    #: The job deferred, and what it was made of.
    job_id: int | None = None
    job: jobs.JobSpec | None = None


def defer_tick(
    schedule_id: int,
    tick: int,
    make_job: Callable[[], jobs.JobSpec],
    *,
    now: datetime,
    using: str = DEFAULT_DB,
) -> TickOutcome:
    """Defer the job of one tick unless it was deferred already, in one transaction.

    ``make_job`` is called only when the tick is really to be deferred; what it raises (a
    job the checks refuse) propagates, and nothing is stored.
    """
    with write_transaction(using):
        row = (
            Schedule.objects.using(using)
            .select_for_update()
            .filter(pk=schedule_id)
            .values("paused_at", "active_since", "last_tick")
            .first()
        )
        if row is None:
            return TickOutcome(TickResult.GONE)
        if row["paused_at"] is not None:
            return TickOutcome(TickResult.PAUSED)
        if tick <= row["active_since"].timestamp():
            return TickOutcome(TickResult.INACTIVE)
        if row["last_tick"] is not None and tick <= row["last_tick"]:
            return TickOutcome(TickResult.ALREADY_DEFERRED)
        spec = make_job()
        try:
            with transaction.atomic(using=using):
                ScheduleTick.objects.using(using).create(
                    schedule_id=schedule_id, tick=tick, deferred_at=now
                )
        except IntegrityError:
            return TickOutcome(TickResult.ALREADY_DEFERRED)
        try:
            [job_id] = defer_jobs([spec], using=using)
        except AlreadyEnqueued:
            job_id = None
        changes: dict[str, object] = {"last_tick": tick}
        if job_id is not None:
            changes.update(last_job_id=job_id, last_deferred_at=now)
        Schedule.objects.using(using).filter(pk=schedule_id).update(**changes)
        ScheduleTick.objects.using(using).filter(
            schedule_id=schedule_id, tick__lt=tick - TICKS_KEPT_SECONDS
        ).delete()
    if job_id is None:
        return TickOutcome(TickResult.QUEUEING_LOCK_TAKEN, job=spec)
    return TickOutcome(TickResult.DEFERRED, job_id, spec)


def log_fields(job_id: int, spec: jobs.JobSpec, **more: object) -> dict[str, object]:
    """:func:`django_retrytasks.jobs.log_fields` of a job just deferred from ``spec``."""
    return {
        "job_id": job_id,
        "task_name": spec.task_name,
        "attempt": 1,
        "queue": spec.queue,
        **more,
    }


# --- operator actions ------------------------------------------------------------------------


def _act(
    schedule_ids: Iterable[int],
    change: Callable[[Schedule], str | None],
    *,
    using: str,
) -> ActionReport:
    """Lock each schedule's row and apply ``change``, which returns why it skipped, if it did."""
    report = ActionReport()
    for schedule_id in dict.fromkeys(schedule_ids):
        with write_transaction(using):
            row = Schedule.objects.using(using).select_for_update().filter(pk=schedule_id).first()
            reason = "no such schedule" if row is None else change(row)
        if reason is None:
            report.done.append(schedule_id)
        else:
            report.skipped[schedule_id] = reason
    return report


def pause(schedule_ids: Iterable[int], *, now: datetime, using: str = DEFAULT_DB) -> ActionReport:
    """Pause schedules: every worker skips their ticks until they are resumed."""

    def paused(row: Schedule) -> str | None:
        if row.paused_at is not None:
            return "it is already paused"
        Schedule.objects.using(using).filter(pk=row.pk).update(paused_at=now)
        logger.info("Schedule %s paused", row, extra={"action": "schedule_paused"})
        return None

    return _act(schedule_ids, paused, using=using)


def resume(schedule_ids: Iterable[int], *, now: datetime, using: str = DEFAULT_DB) -> ActionReport:
    """Resume paused schedules from ``now``: the ticks they missed while paused are not caught up."""

    def resumed(row: Schedule) -> str | None:
        if row.paused_at is None:
            return "it is not paused"
        Schedule.objects.using(using).filter(pk=row.pk).update(paused_at=None, active_since=now)
        logger.info("Schedule %s resumed", row, extra={"action": "schedule_resumed"})
        return None

    return _act(schedule_ids, resumed, using=using)


def run_now(
    jobs_by_schedule: Mapping[int, Callable[[], jobs.JobSpec]],
    *,
    now: datetime,
    using: str = DEFAULT_DB,
) -> ActionReport:
    """Defer one job of each schedule at once (paused or not), outside its ticks.

    ``jobs_by_schedule`` maps a schedule's id to what makes its job (with ``timestamp`` =
    now); the job is recorded as the schedule's last job.
    """

    def ran(row: Schedule) -> str | None:
        spec = jobs_by_schedule[row.pk]()
        try:
            [job_id] = defer_jobs([spec], using=using)
        except AlreadyEnqueued as error:
            return str(error).replace("; nothing was stored", "")
        Schedule.objects.using(using).filter(pk=row.pk).update(
            last_job_id=job_id, last_deferred_at=now
        )
        logger.info(
            "Schedule %s run now: job %s",
            row,
            job_id,
            extra=log_fields(job_id, spec, action="schedule_run_now"),
        )
        return None

    return _act(jobs_by_schedule, ran, using=using)
