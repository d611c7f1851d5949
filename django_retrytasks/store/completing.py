"""Storing how runs ended: each one's attempt row and its job's named transition, fenced.

A run's outcome is written only while its job is still ``doing`` for the same claim
(``status`` and ``started_at``), so the outcome of a run whose job was recovered
meanwhile never overwrites what the recovery wrote. Many completions go in one
transaction: one statement for all of them on PostgreSQL, two on SQLite, two or three on
MySQL and MariaDB.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.db.models import F

from django_retrytasks import jobs
from django_retrytasks.models import Attempt, Job, JobStatus, Outcome
from django_retrytasks.records import (
    Completion,
    Fail,
    Interrupt,
    Retry,
    Snooze,
    Succeed,
)
from django_retrytasks.store import mysql, postgres, sqlite
from django_retrytasks.store.claiming import fenced
from django_retrytasks.store.rows import OutcomeRow
from django_retrytasks.store.sql import DEFAULT_DB, fetch_all, write_transaction
from django_retrytasks.store.wake import wake_after_commit

logger = logging.getLogger(__name__)


def complete(completions: Sequence[Completion], *, using: str = DEFAULT_DB) -> list[bool]:
    """Store runs' outcomes in one transaction; for each, False if it was fenced off.

    Raises what the database raises (then nothing is stored): the caller decides whether
    to try again (an outage) or to store something simpler (a value no column holds).
    """
    if not completions:
        return []
    connection = connections[using]
    # A job going back to the queue with a queueing lock may find the lock taken by a job
    # deferred meanwhile: those few are stored one by one, each ready to let the lock go.
    careful = [c for c in completions if _may_meet_its_queueing_lock(c)]
    plain = [c for c in completions if not _may_meet_its_queueing_lock(c)]
    stored: set[int] = set()
    refusals = mysql.refusals_are_not_outages if connection.vendor == "mysql" else nullcontext
    with refusals(), write_transaction(using):
        if plain:
            rows = [outcome_row(c, connection) for c in plain]
            dialect = {"postgresql": postgres, "mysql": mysql}.get(connection.vendor, sqlite)
            stored |= dialect.complete_many(connection, rows)
        for completion in careful:
            if _store_one(completion, using):
                stored.add(completion.job_id)
    if any(_due_now(c) for c in completions if c.job_id in stored):
        wake_after_commit(using)
    results = []
    for completion in completions:
        results.append(completion.job_id in stored)
        if completion.job_id not in stored:
            _log_discarded(completion)
    return results


def aborts_requested(job_ids: Sequence[int], *, using: str = DEFAULT_DB) -> set[int]:
    """Which of the running jobs ``job_ids`` an operator asked to stop (one read for all)."""
    if not job_ids:
        return set()
    # Plain SQL: on the retry path this runs once per batch of failures.
    marks = ", ".join(["%s"] * len(job_ids))
    sql = f"SELECT id FROM {Job._meta.db_table} WHERE abort_requested AND id IN ({marks})"
    return {job_id for (job_id,) in fetch_all(connections[using], sql, list(job_ids))}


def abort_requested(job_id: int, *, using: str = DEFAULT_DB) -> bool:
    """Whether an operator asked the running job ``job_id`` to stop (what ``should_abort`` reads)."""
    return Job.objects.using(using).filter(pk=job_id, abort_requested=True).exists()


def _due_now(completion: Completion) -> bool:
    transition = completion.transition
    if isinstance(transition, Interrupt):
        return True
    if isinstance(transition, Retry | Snooze):
        return transition.retry_at <= completion.report.finished_at
    return False


def _may_meet_its_queueing_lock(completion: Completion) -> bool:
    return bool(completion.claim.record.queueing_lock) and isinstance(
        completion.transition, Retry | Snooze | Interrupt
    )


# --- many outcomes at once --------------------------------------------------------------------


def outcome_row(completion: Completion, connection: Any) -> OutcomeRow:
    """The values that store ``completion``: the job's new columns and its attempt row.

    ``None`` in a job column keeps what the job holds (see the dialects' statements).
    """
    claim, report, transition = completion.claim, completion.report, completion.transition
    record, now = claim.record, report.finished_at
    retry_at = scheduled_at = None
    status: str = JobStatus.TODO
    priority, queue, lock, held = None, None, None, None
    snoozes_added, return_value = 0, None
    match transition:
        case Succeed():
            status = JobStatus.SUCCEEDED
            if transition.return_value is not None:
                return_value = json.dumps(transition.return_value)
        case Retry():
            retry_at = scheduled_at = transition.retry_at
            decision = transition.decision
            priority, queue, lock = decision.priority, decision.queue, decision.lock
        case Snooze():
            retry_at = scheduled_at = transition.retry_at
            snoozes_added = 1
        case Interrupt():
            retry_at = scheduled_at = now
        case Fail():
            status, held = transition.status, True if transition.held else None
    if completion.lost is not None:
        losses: int | None = completion.lost.consecutive_losses + 1
    elif report.outcome in (Outcome.FAILED, Outcome.SUCCEEDED):
        losses = 0  # the run finished: the job is not a poison job
    else:
        losses = None
    moment = connection.ops.adapt_datetimefield_value
    return OutcomeRow(
        id=record.id,
        fence=moment(claim.started_at),
        status=status,
        attempts=record.attempts + (1 if completion.counted else 0),
        finished_at=moment(now),
        scheduled_at=moment(scheduled_at),
        scheduled_later=None if scheduled_at is None else scheduled_at > now,
        priority=priority,
        queue=queue,
        lock=lock,
        snoozes_added=snoozes_added,
        held=held,
        consecutive_losses=losses,
        return_value=return_value,
        run_started_at=moment(claim.run_started_at),
        outcome=report.outcome,
        worker_name=report.worker_name,
        error_type=report.error_type,
        error_message=report.error_message,
        traceback=report.traceback,
        retry_at=moment(retry_at),
        decision=transition.reason,
    )


# --- one failure, snooze or interruption that may meet its queueing lock --------------------------


def _store_one(completion: Completion, using: str) -> bool:
    claim, report, transition = completion.claim, completion.report, completion.transition
    record = claim.record
    now = report.finished_at
    changes: dict[str, Any] = {"finished_at": now}
    retry_at = None
    if completion.counted:
        changes["attempts"] = record.attempts + 1
    if completion.lost is not None:
        changes["consecutive_losses"] = completion.lost.consecutive_losses + 1
    elif report.outcome == Outcome.FAILED:
        changes["consecutive_losses"] = 0  # the run finished: the job is not a poison job
    match transition:
        case Retry():
            retry_at = transition.retry_at
            changes.update(status=JobStatus.TODO, scheduled_at=retry_at)
            for name in ("priority", "queue", "lock"):
                value = getattr(transition.decision, name)
                if value is not None:
                    changes[name] = value
        case Snooze():
            retry_at = transition.retry_at
            changes.update(status=JobStatus.TODO, scheduled_at=retry_at, snoozes=F("snoozes") + 1)
        case Interrupt():
            retry_at = now
            changes.update(status=JobStatus.TODO, scheduled_at=now)
        case Fail():
            changes["status"] = transition.status
            if transition.held:
                changes["held"] = True
        case _:
            raise TypeError(f"not a transition for a failed run: {transition!r}")
    if retry_at is not None:
        changes["scheduled_later"] = retry_at > now
    notes = []
    if changes["status"] == JobStatus.TODO and record.queueing_lock:
        holder = queueing_lock_holder(record, using)
        if holder is not None:
            changes["queueing_lock"] = None
            notes.append(_queueing_lock_note(record, holder))
    if not _fenced_update(completion, changes, notes, using):
        return False
    Attempt(
        job_id=record.id,
        number=Attempt.objects.using(using).filter(job_id=record.id).count() + 1,
        started_at=claim.run_started_at,
        finished_at=now,
        outcome=report.outcome,
        worker_name=report.worker_name,
        error_type=report.error_type,
        error_message=report.error_message,
        traceback=report.traceback,
        retry_at=retry_at,
        decision="; ".join(filter(None, [transition.reason, *notes])),
    ).save(using=using)
    return True


def _fenced_update(
    completion: Completion, changes: dict[str, Any], notes: list[str], using: str
) -> bool:
    """Update the job if it is still running for this claim; False if it was fenced off."""
    may_race = (
        changes["status"] == JobStatus.TODO
        and completion.claim.record.queueing_lock
        and "queueing_lock" not in changes
    )
    if not may_race:
        return bool(fenced(completion.claim, using).update(**changes))
    try:
        with transaction.atomic(using=using):
            return bool(fenced(completion.claim, using).update(**changes))
    except IntegrityError:
        # Another process deferred a job with the same queueing lock in the meantime.
        holder = queueing_lock_holder(completion.claim.record, using)
        changes["queueing_lock"] = None
        notes.append(_queueing_lock_note(completion.claim.record, holder))
        return bool(fenced(completion.claim, using).update(**changes))


def queueing_lock_holder(record: jobs.Job, using: str) -> int | None:
    holder: int | None = (
        Job.objects.using(using)
        .filter(status=JobStatus.TODO, queueing_lock=record.queueing_lock)
        .exclude(pk=record.id)
        .values_list("pk", flat=True)
        .first()
    )
    return holder


def _queueing_lock_note(record: jobs.Job, holder: int | None) -> str:
    return (
        f"queueing lock {record.queueing_lock!r} is held by waiting job #{holder}; "
        "this retry was scheduled without it"
    )


def _log_discarded(completion: Completion) -> None:
    logger.warning(
        "Outcome of job %s discarded: it is no longer running for this worker "
        "(it was recovered or changed elsewhere)",
        completion.job_id,
        extra=jobs.log_fields(completion.claim.record, action="outcome_discarded"),
    )
