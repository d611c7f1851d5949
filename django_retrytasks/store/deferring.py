"""Storing new jobs: one, or many in one round trip, joining the caller's transaction.

``defer()`` runs in the caller's request and ``batch_defer()`` takes thousands of jobs at
once, so neither builds model instances: a job's values go straight into one INSERT (one
array per column on PostgreSQL, rows of placeholders on SQLite), the columns a new job
never sets written as their defaults.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from django_retrytasks import durations, jobs, signals
from django_retrytasks.exceptions import AlreadyEnqueued
from django_retrytasks.models import Job
from django_retrytasks.store import mysql, postgres, sqlite
from django_retrytasks.store.rows import NEW_JOB_COLUMNS, NewJobRow
from django_retrytasks.store.sql import DEFAULT_DB
from django_retrytasks.store.wake import wake_after_commit

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stored:
    """A job just stored: its id and when it was deferred."""

    id: int
    created_at: datetime


def defer_jobs(
    specs: Sequence[jobs.JobSpec], *, sender: Any = None, using: str = DEFAULT_DB
) -> list[int]:
    """Store jobs in one transaction (joining the caller's) and return their ids in order.

    Raises :class:`AlreadyEnqueued` when a queueing lock is taken; then nothing is stored
    and a surrounding transaction stays usable. ``sender`` is the ``job_deferred`` signal's.
    """
    return [stored.id for stored in store_jobs(specs, sender=sender, using=using)]


def store_jobs(
    specs: Sequence[jobs.JobSpec], *, sender: Any = None, using: str = DEFAULT_DB
) -> list[Stored]:
    """Like :func:`defer_jobs`, but return each job's id with its ``created_at``."""
    if not specs:
        return []
    now = timezone.now()
    rows = [_new_row(spec, now) for spec in specs]
    # A savepoint keeps the caller's transaction usable when a queueing lock is taken.
    needs_savepoint = len(rows) > 1 or any(spec.queueing_lock for spec in specs)
    try:
        if needs_savepoint:
            with transaction.atomic(using=using):
                ids = _insert(rows, using)
        else:
            ids = _insert(rows, using)
    except IntegrityError as error:
        if _queueing_lock_conflict(error):
            taken = sorted({spec.queueing_lock for spec in specs if spec.queueing_lock})
            raise AlreadyEnqueued(
                f"a job with queueing lock {', '.join(map(repr, taken))} is already waiting; "
                "nothing was stored"
            ) from error
        raise
    if any(not row.scheduled_later for row in rows):
        wake_after_commit(using)
    # Deferring is a hot path (batches of thousands): no per-job work nobody asked for.
    if logger.isEnabledFor(logging.DEBUG) or signals.job_deferred.receivers:
        _announce(
            [
                _record(spec, row, job_id)
                for spec, row, job_id in zip(specs, rows, ids, strict=True)
            ],
            sender,
            using,
        )
    return [Stored(job_id, now) for job_id in ids]


def _new_row(spec: jobs.JobSpec, now: datetime) -> NewJobRow:
    if spec.scheduled_at is not None:
        scheduled_at = spec.scheduled_at
    elif spec.delay_seconds is not None:
        scheduled_at, _ = durations.add_delay(now, max(spec.delay_seconds, 0.0))
    else:
        scheduled_at = now
    return NewJobRow(
        task_name=spec.task_name,
        task_kwargs=spec.task_kwargs_json
        or json.dumps(spec.task_kwargs, ensure_ascii=False, separators=(",", ":")),
        queue=spec.queue,
        priority=spec.priority,
        lock=spec.lock,
        queueing_lock=spec.queueing_lock,
        scheduled_at=scheduled_at,
        scheduled_later=scheduled_at > now,
        created_at=now,
        backend=spec.backend,
    )


def _insert(rows: list[NewJobRow], using: str) -> list[int]:
    connection = connections[using]
    if connection.vendor == "postgresql":
        return postgres.insert_jobs(connection, rows)
    if connection.vendor == "sqlite":
        return sqlite.insert_jobs(connection, rows)
    return _insert_models(rows, using)


def _insert_models(rows: list[NewJobRow], using: str) -> list[int]:
    """MySQL and MariaDB: one job by a plain INSERT, several through the ORM."""
    connection = connections[using]
    on_mysql = connection.vendor == "mysql"
    if on_mysql and len(rows) == 1:
        # A statement over MySQL's max_allowed_packet breaks the connection: refuse it.
        mysql.rows_per_insert(connection, [rows[0].task_kwargs])
        return [mysql.insert_job(connection, rows[0])]
    models = [Job(**row._asdict() | {"task_kwargs": json.loads(row.task_kwargs)}) for row in rows]
    # The ORM sends the arguments as json.dumps writes them: measured so, a batch that
    # would make too long a statement is split.
    texts = [json.dumps(model.task_kwargs) for model in models]
    batch_size = mysql.rows_per_insert(connection, texts) if on_mysql else None
    if len(models) == 1 or not connection.features.can_return_rows_from_bulk_insert:
        # MySQL (not MariaDB) gives no ids back from a multi-row INSERT: a row at a time,
        # still all or nothing in the caller's savepoint.
        for model in models:
            model.save(using=using, force_insert=True)
        return [model.pk for model in models]
    return [
        model.pk for model in Job.objects.using(using).bulk_create(models, batch_size=batch_size)
    ]


def _queueing_lock_conflict(error: IntegrityError) -> bool:
    text = str(error)
    return "retrytasks_one_waiting_per_qlock" in text or "queueing_lock" in text


def _record(spec: jobs.JobSpec, row: NewJobRow, job_id: int) -> jobs.Job:
    return jobs.Job(
        id=job_id,
        task_name=spec.task_name,
        task_kwargs=spec.task_kwargs,
        queue=spec.queue,
        priority=spec.priority,
        lock=spec.lock,
        queueing_lock=spec.queueing_lock,
        scheduled_at=row.scheduled_at,
        created_at=row.created_at,
    )


def _announce(records: list[jobs.Job], sender: Any, using: str) -> None:
    for record in records:
        logger.debug(
            "Job %s deferred: %s",
            record.id,
            record.task_name,
            extra=jobs.log_fields(record, action="job_deferred"),
        )
    if signals.job_deferred.receivers:
        transaction.on_commit(lambda: _send_deferred(records, sender), using=using)


def _send_deferred(records: list[jobs.Job], sender: Any) -> None:
    for record in records:
        signals.send(signals.job_deferred, sender=sender, job=record)


__all__ = ["NEW_JOB_COLUMNS", "Stored", "defer_jobs", "store_jobs"]
