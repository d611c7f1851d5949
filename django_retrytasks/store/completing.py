"""Storing how runs ended: each one's attempt row and its job's named transition, fenced.

A run's outcome is written only while its job is still ``doing`` for the same claim
(``status`` and ``started_at``), so the outcome of a run whose job was recovered
meanwhile never overwrites what the recovery wrote. Many completions go in one
transaction; successes in one statement on PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
from django_retrytasks.store import postgres, sqlite
from django_retrytasks.store.claiming import fenced
from django_retrytasks.store.sql import DEFAULT_DB, write_transaction
from django_retrytasks.store.wake import wake_after_commit

logger = logging.getLogger(__name__)


def complete(completions: Sequence[Completion], *, using: str = DEFAULT_DB) -> list[bool]:
    """Store runs' outcomes in one transaction; for each, False if it was fenced off.

    Raises what the database raises (then nothing is stored): the caller decides whether
    to try again (an outage) or to store something simpler (a value no column holds).
    """
    if not completions:
        return []
    successes = [c for c in completions if isinstance(c.transition, Succeed)]
    others = [c for c in completions if not isinstance(c.transition, Succeed)]
    stored: set[int] = set()
    with write_transaction(using):
        if successes:
            stored |= _succeed_many(successes, using)
        for completion in others:
            if _store_one(completion, using):
                stored.add(completion.job_id)
    if any(_due_now(c) for c in others if c.job_id in stored):
        wake_after_commit(using)
    results = []
    for completion in completions:
        results.append(completion.job_id in stored)
        if completion.job_id not in stored:
            _log_discarded(completion)
    return results


def abort_requested(job_id: int, *, using: str = DEFAULT_DB) -> bool:
    """Whether an operator asked the running job ``job_id`` to stop (one read by primary key)."""
    return Job.objects.using(using).filter(pk=job_id, abort_requested=True).exists()


def _due_now(completion: Completion) -> bool:
    transition = completion.transition
    if isinstance(transition, Interrupt):
        return True
    if isinstance(transition, Retry | Snooze):
        return transition.retry_at <= completion.report.finished_at
    return False


# --- one failure, snooze or interruption --------------------------------------------------------


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


# --- successes, many at once ---------------------------------------------------------------------

#: The values one success carries into SQL, in order.
_SUCCESS_FIELDS = (
    "id",
    "started_at",
    "run_started_at",
    "attempts",
    "finished_at",
    "return_value",
    "worker_name",
    "decision",
)


def _succeed_many(successes: Sequence[Completion], using: str) -> set[int]:
    connection = connections[using]
    quote = connection.ops.quote_name
    job_table = quote(Job._meta.db_table)
    attempt_table = quote(Attempt._meta.db_table)
    attempt_columns = _attempt_columns()
    update_sql = (
        f"UPDATE {job_table} SET status = 'succeeded', attempts = f.attempts, "
        "finished_at = f.finished_at, consecutive_losses = 0, return_value = f.return_value "
        "FROM {rows} WHERE {job}.id = f.id AND {job}.status = 'doing' "
        "AND {job}.started_at = f.started_at"
    ).replace("{job}", job_table)
    insert_sql = (
        f"INSERT INTO {attempt_table} ({', '.join(quote(c) for c, _ in attempt_columns)}) "
        f"SELECT {', '.join(e for _, e in attempt_columns)} FROM {{rows}}"
    )
    rows = [_success_row(completion, connection) for completion in successes]
    if connection.vendor == "postgresql":
        return postgres.succeed_many(
            connection,
            (update_sql, job_table),
            insert_sql,
            _SUCCESS_FIELDS,
            _success_casts(connection),
            rows,
        )
    with connection.cursor() as cursor:
        return sqlite.succeed_many(cursor, update_sql, insert_sql, _SUCCESS_FIELDS, rows)


def _success_row(completion: Completion, connection: Any) -> list[Any]:
    claim, report = completion.claim, completion.report
    transition = completion.transition
    assert isinstance(transition, Succeed)
    return_value = Job._meta.get_field("return_value").get_db_prep_save(
        transition.return_value, connection
    )
    return [
        claim.record.id,
        connection.ops.adapt_datetimefield_value(claim.started_at),
        connection.ops.adapt_datetimefield_value(claim.run_started_at),
        claim.record.attempts + 1,
        connection.ops.adapt_datetimefield_value(report.finished_at),
        return_value,
        report.worker_name,
        transition.reason,
    ]


def _success_casts(connection: Any) -> list[str | None]:
    job_fields = Job._meta
    return [
        job_fields.pk.cast_db_type(connection),
        job_fields.get_field("started_at").cast_db_type(connection),
        job_fields.get_field("started_at").cast_db_type(connection),
        "integer",
        job_fields.get_field("finished_at").cast_db_type(connection),
        job_fields.get_field("return_value").cast_db_type(connection),
        Attempt._meta.get_field("worker_name").cast_db_type(connection),
        "text",
    ]


def _attempt_columns() -> list[tuple[str, str]]:  # column, expression
    """(column, SQL expression over the success row ``f``) for every column of an attempt.

    Built from the model, so a column added to :class:`Attempt` gets its default here.
    """
    attempt_table = Attempt._meta.db_table
    taken = {
        "job": "f.id",
        "number": f"(SELECT COUNT(*) + 1 FROM {attempt_table} a WHERE a.job_id = f.id)",
        "started_at": "f.run_started_at",
        "finished_at": "f.finished_at",
        "outcome": "'succeeded'",
        "worker_name": "f.worker_name",
        "decision": "f.decision",
    }
    columns = []
    for model_field in Attempt._meta.local_concrete_fields:
        if model_field.primary_key:
            continue
        expression = taken.get(model_field.name)
        if expression is None:
            default = model_field.get_default()
            if default is None:
                expression = "NULL"
            elif isinstance(default, str):
                expression = "'" + default.replace("'", "''") + "'"
            elif isinstance(default, bool | int | float):
                expression = str(int(default) if isinstance(default, bool) else default)
            else:
                raise TypeError(f"no SQL literal for the default of Attempt.{model_field.name}")
        columns.append((str(model_field.column), expression))
    return columns
