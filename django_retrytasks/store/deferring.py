"""Storing new jobs: one, or many in one round trip, joining the caller's transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from django_retrytasks import durations, jobs, signals
from django_retrytasks.exceptions import AlreadyEnqueued
from django_retrytasks.models import Job
from django_retrytasks.store import mysql
from django_retrytasks.store.sql import DEFAULT_DB, execute
from django_retrytasks.store.wake import wake_after_commit

logger = logging.getLogger(__name__)


def defer_jobs(
    specs: Sequence[jobs.JobSpec], *, sender: Any = None, using: str = DEFAULT_DB
) -> list[int]:
    """Store jobs in one transaction (joining the caller's) and return their ids in order.

    Raises :class:`AlreadyEnqueued` when a queueing lock is taken; then nothing is stored
    and a surrounding transaction stays usable. ``sender`` is the ``job_deferred`` signal's.
    """
    return [row.pk for row in defer_job_rows(specs, sender=sender, using=using)]


def defer_job_rows(
    specs: Sequence[jobs.JobSpec], *, sender: Any = None, using: str = DEFAULT_DB
) -> list[Job]:
    """Like :func:`defer_jobs`, but return the stored rows (with ``created_at``)."""
    if not specs:
        return []
    now = timezone.now()
    rows = []
    for spec in specs:
        if spec.scheduled_at is not None:
            scheduled_at = spec.scheduled_at
        elif spec.delay_seconds is not None:
            scheduled_at, _ = durations.add_delay(now, max(spec.delay_seconds, 0.0))
        else:
            scheduled_at = now
        rows.append(
            Job(
                task_name=spec.task_name,
                task_kwargs=spec.task_kwargs,
                queue=spec.queue,
                priority=spec.priority,
                lock=spec.lock,
                queueing_lock=spec.queueing_lock,
                scheduled_at=scheduled_at,
                scheduled_later=scheduled_at > now,
                created_at=now,
                backend=spec.backend,
            )
        )
    # A savepoint keeps the caller's transaction usable when a queueing lock is taken.
    needs_savepoint = len(rows) > 1 or any(spec.queueing_lock for spec in specs)
    try:
        if needs_savepoint:
            with transaction.atomic(using=using):
                created = _insert(rows, using)
        else:
            created = _insert(rows, using)
    except IntegrityError as error:
        if _queueing_lock_conflict(error):
            taken = sorted({spec.queueing_lock for spec in specs if spec.queueing_lock})
            raise AlreadyEnqueued(
                f"a job with queueing lock {', '.join(map(repr, taken))} is already waiting; "
                "nothing was stored"
            ) from error
        raise
    if any(row.scheduled_at is None or row.scheduled_at <= now for row in created):
        wake_after_commit(using)
    # Deferring is a hot path (batches of thousands): no per-job work nobody asked for.
    if logger.isEnabledFor(logging.DEBUG):
        for row in created:
            logger.debug(
                "Job %s deferred: %s",
                row.pk,
                row.task_name,
                extra=jobs.log_fields(row, action="job_deferred"),
            )
    if signals.job_deferred.receivers:
        records = [row.as_record() for row in created]
        transaction.on_commit(lambda: _send_deferred(records, sender), using=using)
    return created


def _queueing_lock_conflict(error: IntegrityError) -> bool:
    text = str(error)
    return "retrytasks_one_waiting_per_qlock" in text or "queueing_lock" in text


def _send_deferred(records: list[jobs.Job], sender: Any) -> None:
    for record in records:
        signals.send(signals.job_deferred, sender=sender, job=record)


def _insert(rows: list[Job], using: str) -> list[Job]:
    connection = connections[using]
    features = connection.features
    # A statement over MySQL's max_allowed_packet breaks the connection: refuse such a job,
    # and split a batch that would make one.
    batch_size = mysql.rows_per_insert(connection, rows) if connection.vendor == "mysql" else None
    if len(rows) == 1 and features.can_return_columns_from_insert:
        return [_insert_one(rows[0], using)]
    if len(rows) == 1 or not features.can_return_rows_from_bulk_insert:
        # MySQL (not MariaDB) gives no ids back from a multi-row INSERT: a row at a time,
        # still all or nothing in the caller's savepoint.
        for row in rows:
            row.save(using=using, force_insert=True)
        return rows
    return Job.objects.using(using).bulk_create(rows, batch_size=batch_size)


def _insert_one(row: Job, using: str) -> Job:
    """Store one job with one prepared statement.

    ``defer`` runs in the caller's request: ``Model.save`` spent more time in Python than
    the database spent storing the row. Like ``bulk_create``, this sends no model signals.
    """
    connection = connections[using]
    sql, fields = _insert_sql(connection)
    params = [field.get_db_prep_save(field.pre_save(row, True), connection) for field in fields]
    ((row.pk,),) = execute(connection, sql, params)
    row._state.adding = False
    row._state.db = using
    return row


#: The INSERT of one job, per database vendor: built once, it is on every defer's path.
_insert_statements: dict[str, tuple[str, tuple[Any, ...]]] = {}


def _insert_sql(connection: Any) -> tuple[str, tuple[Any, ...]]:
    statement = _insert_statements.get(connection.vendor)
    if statement is None:
        quote = connection.ops.quote_name
        fields = tuple(field for field in Job._meta.local_concrete_fields if not field.primary_key)
        columns = ", ".join(quote(str(field.column)) for field in fields)
        statement = (
            f"INSERT INTO {quote(Job._meta.db_table)} ({columns}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"RETURNING {quote(str(Job._meta.pk.column))}",
            fields,
        )
        _insert_statements[connection.vendor] = statement
    return statement
