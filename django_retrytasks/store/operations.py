"""Operator actions (retry now, cancel, abort, delete) and retention, for the admin and the CLI.

Each action locks the rows it changes, checks their state and changes them in one short
transaction, so a job cannot move between the check and the change; what it skipped comes
back with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connections, models
from django.db.models import Q
from django.utils import timezone

from django_retrytasks import conf, jobs
from django_retrytasks.jobs import log_fields
from django_retrytasks.models import Attempt, Job, JobStatus
from django_retrytasks.store.completing import queueing_lock_holder
from django_retrytasks.store.sql import DEFAULT_DB, write_transaction
from django_retrytasks.store.wake import wake_after_commit

logger = logging.getLogger(__name__)


# --- operator actions ----------------------------------------------------------------------


@dataclass
class ActionReport:
    """What an operator action did and what it skipped, with the reason for each skip."""

    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def retry_now(
    job_ids: Iterable[int], *, now: datetime | None = None, using: str = DEFAULT_DB
) -> ActionReport:
    """Make jobs run at once: waiting jobs are brought forward, finished ones go back to the queue.

    Running jobs are skipped: no action may start a second run of a job that still runs.
    Failed, cancelled and aborted jobs keep their history and their attempt count.
    """
    now = now or timezone.now()
    report = ActionReport()
    requeue = (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.ABORTED)
    for job_id in job_ids:
        with write_transaction(using):
            job = Job.objects.using(using).select_for_update().filter(pk=job_id).first()
            if job is None:
                report.skipped[job_id] = "no such job"
                continue
            if job.status == JobStatus.DOING:
                report.skipped[job_id] = "it is running"
                continue
            if job.status == JobStatus.SUCCEEDED:
                report.skipped[job_id] = "it succeeded"
                continue
            changes: dict[str, Any] = {"scheduled_at": now, "scheduled_later": False}
            if job.status in requeue:
                changes.update(status=JobStatus.TODO, finished_at=None, held=False)
                if job.queueing_lock and queueing_lock_holder(job.as_record(), using):
                    report.skipped[job_id] = (
                        f"another job with queueing lock {job.queueing_lock!r} is already waiting"
                    )
                    continue
            Job.objects.using(using).filter(pk=job_id).update(**changes)
            report.done.append(job_id)
            logger.info(
                "Job %s will run now (it was %s)",
                job_id,
                job.status,
                extra=log_fields(job, action="job_retry_now", previous_status=job.status),
            )
    if report.done:
        wake_after_commit(using)
    return report


def _act_on_jobs(
    job_ids: Iterable[int],
    *,
    eligible: Sequence[str],
    apply: Callable[[Any], object],
    not_eligible: str,
    log_action: str,
    log_text: str,
    using: str,
) -> ActionReport:
    """Apply ``apply`` to the jobs among ``job_ids`` whose status is in ``eligible``, in one transaction.

    The rows are locked first, so a job cannot change state between the check and the
    change. Every other id is reported as skipped, with ``not_eligible`` (formatted with
    the job's ``status``) as the reason. Each job changed is logged (``log_text`` formatted
    with its id, ``log_action`` as the record's ``action``).
    """
    report = ActionReport()
    ids = list(dict.fromkeys(job_ids))
    with write_transaction(using):
        found = {
            job.pk: job
            for job in Job.objects.using(using)
            .select_for_update()
            .filter(pk__in=ids)
            .only("id", "status", "task_name", "queue", "attempts")
        }
        report.done = [
            job_id for job_id in ids if job_id in found and found[job_id].status in eligible
        ]
        apply(Job.objects.using(using).filter(pk__in=report.done, status__in=eligible))
    for job_id in report.done:
        logger.info(log_text, job_id, extra=log_fields(found[job_id], action=log_action))
    for job_id in ids:
        if job_id not in found:
            report.skipped[job_id] = "no such job"
        elif job_id not in report.done:
            report.skipped[job_id] = not_eligible.format(status=found[job_id].status)
    return report


def cancel(
    job_ids: Iterable[int], *, now: datetime | None = None, using: str = DEFAULT_DB
) -> ActionReport:
    """Cancel waiting jobs; jobs in any other state are skipped."""
    moment = now or timezone.now()
    return _act_on_jobs(
        job_ids,
        eligible=jobs.Status.WAITING,
        apply=lambda waiting: waiting.update(status=JobStatus.CANCELLED, finished_at=moment),
        not_eligible="it is {status}, not waiting",
        log_action="job_cancelled",
        log_text="Job %s cancelled",
        using=using,
    )


def request_abort(job_ids: Iterable[int], *, using: str = DEFAULT_DB) -> ActionReport:
    """Ask running jobs to stop: the task sees it through ``JobContext.should_abort()``.

    Only a flag is set: the run goes on until the task gives up, and a run that raises
    after the request ends ``aborted`` instead of being retried. Jobs that are not
    running are skipped (a waiting job is cancelled, not aborted).
    """
    return _act_on_jobs(
        job_ids,
        eligible=(JobStatus.DOING,),
        apply=lambda running: running.update(abort_requested=True),
        not_eligible="it is {status}, not running",
        log_action="job_abort_requested",
        log_text="Job %s asked to abort",
        using=using,
    )


def delete_finished(job_ids: Iterable[int], *, using: str = DEFAULT_DB) -> ActionReport:
    """Delete finished jobs with their attempt history; waiting and running jobs are skipped."""
    return _act_on_jobs(
        job_ids,
        eligible=jobs.Status.FINISHED,
        apply=lambda finished: finished.delete(),
        not_eligible="it is {status}, not finished",
        log_action="job_deleted",
        log_text="Job %s deleted",
        using=using,
    )


# --- deleting finished jobs fast -------------------------------------------------------------


def delete_jobs(job_ids: Sequence[int], *, state: str, using: str) -> tuple[int, int]:
    """Delete the jobs among ``job_ids`` still in ``state``, with their attempts; (attempts, jobs).

    In plain SQL, not through Django's collector (which reads every row it deletes): the
    rows pointing at the jobs are deleted or cleared as their foreign keys say, and the
    jobs, the state checked again so that a job retried meanwhile stays. Call it in a
    transaction.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    table = quote(Job._meta.db_table)
    # Where foreign keys are checked at commit (Django makes them deferred on PostgreSQL and
    # SQLite), the jobs go first and say which they were; MySQL checks at once, so there
    # the jobs still in that state are read first and deleted last.
    jobs_first = connection.vendor != "mysql"
    with connection.cursor() as cursor:
        cursor.execute(
            f"{'DELETE' if jobs_first else 'SELECT id'} FROM {table} "
            f"WHERE {_id_in(connection, job_ids)} AND status = %s"
            + (" RETURNING id" if jobs_first else ""),
            [*_id_params(connection, job_ids), state],
        )
        ids = [job_id for (job_id,) in cursor.fetchall()]
        if not ids:
            return 0, 0
        attempts = 0
        for relation in relations_to_jobs():
            column = quote(str(relation.field.column))
            related = quote(relation.related_model._meta.db_table)
            where = _id_in(connection, ids, column=column)
            if relation.on_delete is models.CASCADE:
                cursor.execute(f"DELETE FROM {related} WHERE {where}", _id_params(connection, ids))
                if relation.related_model is Attempt:
                    attempts += cursor.rowcount
            else:  # SET_NULL: what the model asks for anything else is checked by a test
                cursor.execute(
                    f"UPDATE {related} SET {column} = NULL WHERE {where}",
                    _id_params(connection, ids),
                )
        if not jobs_first:
            cursor.execute(
                f"DELETE FROM {table} WHERE {_id_in(connection, ids)}", _id_params(connection, ids)
            )
        return attempts, len(ids)


def relations_to_jobs() -> list[Any]:
    """Every foreign key pointing at jobs, those without a reverse accessor too
    (``related_name="+"``, as a schedule's last job), which ``related_objects`` leaves out."""
    return [
        field
        for field in Job._meta.get_fields(include_hidden=True)
        if field.auto_created and not field.concrete and (field.one_to_many or field.one_to_one)
    ]


def _id_in(connection: Any, ids: Sequence[int], *, column: str = "id") -> str:
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)"
    return f"{column} IN ({', '.join(['%s'] * len(ids))})"


def _id_params(connection: Any, ids: Sequence[int]) -> list[Any]:
    return [list(ids)] if connection.vendor == "postgresql" else list(ids)


# --- retention -----------------------------------------------------------------------------


@dataclass
class PruneReport:
    """Jobs deleted (or, in a dry run, that would be) per state, and their attempt rows."""

    jobs: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.jobs.values())


def prune(
    *,
    now: datetime | None = None,
    retention: dict[str, Any] | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
    dry_run: bool = False,
    using: str = DEFAULT_DB,
) -> PruneReport:
    """Delete finished jobs older than their state's age limit, with their attempts.

    Ages come from ``RETRYTASKS_RETENTION`` (or ``retention``, merged over it) and count
    from when the job finished. Only finished states are ever considered: a waiting or
    running job is never deleted, whatever its age. Each batch of at most ``batch_size``
    jobs is deleted in its own short transaction; ``max_batches`` bounds the work (the
    worker prunes a little at a time).
    """
    settings = conf.get_settings()
    now = now or timezone.now()
    ages = settings.retention if retention is None else conf.merge_retention(retention)
    size = batch_size or settings.prune_batch_size
    report = PruneReport(dry_run=dry_run)
    batches = 0
    for state, age in ages.items():
        if age is None or state not in jobs.Status.FINISHED:
            continue
        cutoff = now - age
        old = (
            Job.objects.using(using)
            .filter(status=state)
            .filter(Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff))
        )
        if dry_run:
            report.jobs[state] = old.count()
            report.attempts += Attempt.objects.using(using).filter(job__in=old).count()
            continue
        report.jobs[state] = 0
        # Each batch starts after the last id of the one before: the rows just deleted are
        # behind it, so no batch walks over them again (they stay in the index until vacuumed).
        after = 0
        while max_batches is None or batches < max_batches:
            ids = list(old.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:size])
            if not ids:
                break
            after = ids[-1]
            batches += 1
            with write_transaction(using):
                attempts, deleted = delete_jobs(ids, state=state, using=using)
            report.attempts += attempts
            report.jobs[state] += deleted
    if report.total:
        logger.info(
            "Pruned %s finished jobs (%s) and %s attempts",
            report.total,
            ", ".join(f"{state}: {count}" for state, count in report.jobs.items() if count),
            report.attempts,
            extra={"action": "jobs_pruned", "jobs": dict(report.jobs), "attempts": report.attempts},
        )
    return report
