"""Every change of a job's state, each in one short transaction.

The worker, the admin and the command line all come here; nothing else writes to
:class:`~django_retrytasks.models.Job` or :class:`~django_retrytasks.models.Attempt`.
Functions take ``now`` from their caller so that tests control time.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from django_retrytasks import jobs, retry, signals, tasks
from django_retrytasks.exceptions import AlreadyEnqueued
from django_retrytasks.models import Attempt, Job, JobStatus, Outcome, record_from_row
from django_retrytasks.models import Worker as WorkerRow
from django_retrytasks.tasks import JobSpec

logger = logging.getLogger(__name__)

DEFAULT_DB = "default"


@contextmanager
def write_transaction(using: str = DEFAULT_DB) -> Iterator[None]:
    """A transaction for our own writes; on SQLite it begins with ``BEGIN IMMEDIATE``.

    A deferred SQLite transaction that reads, then writes, is refused at once ("database
    is locked") when another connection writes meanwhile; taking the write lock up front
    makes it wait its turn instead, whatever the project's OPTIONS say.
    """
    connection = connections[using]
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic(using=using):
            yield
        return
    connection.ensure_connection()
    previous = getattr(connection, "transaction_mode", None)
    connection.transaction_mode = "IMMEDIATE"  # type: ignore[attr-defined]
    try:
        with transaction.atomic(using=using):
            connection.transaction_mode = previous  # type: ignore[attr-defined]
            yield
    finally:
        connection.transaction_mode = previous  # type: ignore[attr-defined]


def log_fields(record: jobs.Job | Job, **more: Any) -> dict[str, Any]:
    """The ``extra`` keys every log line about a job carries (``action`` comes with ``more``).

    ``attempt`` is the number of the run the line is about: the current run for a
    worker, the next run for a job that waits.
    """
    return {
        "job_id": record.id,
        "task_name": record.task_name,
        "attempt": record.attempts + 1,
        "queue": record.queue,
        **more,
    }


def sender_of(task_name: str, app: tasks.App | None = None) -> tasks.Task | None:
    """The ``sender`` of a job's signals: its registered task, or ``None``."""
    return (app or tasks.app).tasks.get(task_name)


# --- wake-ups ------------------------------------------------------------------------------

_wake_callbacks: list[Callable[[], None]] = []
_wake_lock = threading.Lock()


def add_wake_callback(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever this process makes a job due now (a worker in the same process)."""
    with _wake_lock:
        _wake_callbacks.append(callback)


def remove_wake_callback(callback: Callable[[], None]) -> None:
    with _wake_lock:
        if callback in _wake_callbacks:
            _wake_callbacks.remove(callback)


def _wake_local_workers() -> None:
    with _wake_lock:
        callbacks = list(_wake_callbacks)
    for callback in callbacks:
        callback()


def _after_commit_wake(using: str) -> None:
    if _wake_callbacks:
        transaction.on_commit(_wake_local_workers, using=using)


# --- deferring -----------------------------------------------------------------------------


def _queueing_lock_conflict(error: IntegrityError) -> bool:
    text = str(error)
    return "retrytasks_one_waiting_per_qlock" in text or "queueing_lock" in text


def defer_jobs(specs: Sequence[JobSpec], *, using: str = DEFAULT_DB) -> list[int]:
    """Store jobs in one transaction (joining the caller's) and return their ids in order.

    Raises :class:`AlreadyEnqueued` when a queueing lock is taken; then nothing is stored
    and a surrounding transaction stays usable.
    """
    return [row.pk for row in defer_job_rows(specs, using=using)]


def defer_job_rows(specs: Sequence[JobSpec], *, using: str = DEFAULT_DB) -> list[Job]:
    """Like :func:`defer_jobs`, but return the stored rows (with ``created_at``)."""
    if not specs:
        return []
    now = timezone.now()
    rows = []
    for spec in specs:
        if spec.scheduled_at is not None:
            scheduled_at = spec.scheduled_at
        elif spec.delay_seconds is not None:
            scheduled_at, _ = retry.add_delay(now, max(spec.delay_seconds, 0.0))
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
        _after_commit_wake(using)
    # Deferring is a hot path (batches of thousands): no per-job work nobody asked for.
    if logger.isEnabledFor(logging.DEBUG):
        for row in created:
            logger.debug(
                "Job %s deferred: %s",
                row.pk,
                row.task_name,
                extra=log_fields(row, action="job_deferred"),
            )
    if signals.job_deferred.receivers:
        records = [row.as_record() for row in created]
        transaction.on_commit(lambda: _send_deferred(records), using=using)
    return created


def _send_deferred(records: list[jobs.Job]) -> None:
    for record in records:
        signals.send(signals.job_deferred, sender=sender_of(record.task_name), job=record)


def _insert(rows: list[Job], using: str) -> list[Job]:
    if len(rows) == 1 and connections[using].features.can_return_columns_from_insert:
        return [_insert_one(rows[0], using)]
    if len(rows) == 1:
        rows[0].save(using=using, force_insert=True)
        return rows
    return Job.objects.using(using).bulk_create(rows)


def _insert_one(row: Job, using: str) -> Job:
    """Store one job with one prepared statement.

    ``defer`` runs in the caller's request: ``Model.save`` spent more time in Python than
    the database spent storing the row. Like ``bulk_create``, this sends no model signals.
    """
    connection = connections[using]
    sql, fields = _insert_sql(connection)
    params = [field.get_db_prep_save(field.pre_save(row, True), connection) for field in fields]
    ((row.pk,),) = _execute_prepared(connection, sql, params)
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


# --- claiming ------------------------------------------------------------------------------

_CLAIM_COLUMNS = (
    "id",
    "task_name",
    "task_kwargs",
    "status",
    "queue",
    "priority",
    "lock",
    "queueing_lock",
    "scheduled_at",
    "attempts",
    "created_at",
    "backend",
)


@functools.lru_cache(maxsize=64)
def _claim_sql(vendor: str, queues: tuple[str, ...] | None) -> str:
    """One statement that marks up to ``limit`` due jobs ``doing`` and returns them.

    Its parameters: the claim's time, the worker's id, how many of the claimed jobs start
    at once (the rest are marked claimed ahead), then (PostgreSQL) the queues as one array
    or NULL and the limit, or (SQLite) the time again, one parameter per queue, the limit.
    Built once per database vendor and set of queues: the claim is the worker's hot path.

    PostgreSQL claims in a function (migration 0007) that skips rows other workers hold
    (``FOR UPDATE SKIP LOCKED``); on SQLite the single statement runs under the database's
    one write lock, so it cannot race either.
    """
    returning = ", ".join(_CLAIM_COLUMNS)
    if vendor == "postgresql":
        return f"SELECT {returning} FROM django_retrytasks_claim(%s, %s, %s, %s, %s)"
    table = Job._meta.db_table
    queue_filter = f"AND j.queue IN ({', '.join(['%s'] * len(queues))})" if queues else ""
    # A job whose lock is held by a running job, or by a job deferred before it that is
    # still waiting (even one scheduled for later), must wait its turn.
    # Two lookups of the partial index on (lock, id), whose condition each repeats so that
    # SQLite sees it applies; one OR-ed subquery made SQLite scan every waiting job.
    lock_filter = f"""
        AND (j.lock IS NULL OR (
            NOT EXISTS (
                SELECT 1 FROM {table} o
                WHERE o.lock = j.lock AND o.status = 'doing'
                  AND o.status IN ('todo', 'doing') AND o.lock IS NOT NULL
            )
            AND NOT EXISTS (
                SELECT 1 FROM {table} o
                WHERE o.lock = j.lock AND o.status = 'todo' AND o.id < j.id
                  AND o.status IN ('todo', 'doing') AND o.lock IS NOT NULL
            )
        ))"""
    index_hint = ""
    if not queues or len(queues) == 1:
        # Without statistics SQLite would sort every waiting job for each claim: walk the
        # partial index that is already in claiming order instead.
        index_hint = "INDEXED BY " + (
            "retrytasks_todo_queue_idx" if queues else "retrytasks_todo_idx"
        )
    return f"""
        UPDATE {table}
        SET status = 'doing', started_at = %s, worker_id = %s, abort_requested = FALSE,
            claimed_ahead = picked.rank > %s
        FROM (
            SELECT due.id, row_number() OVER (ORDER BY due.priority DESC, due.id) AS rank
            FROM (
                SELECT j.id, j.priority FROM {table} j {index_hint}
                WHERE j.status = 'todo' AND j.scheduled_later = 0
                  AND (j.scheduled_at IS NULL OR j.scheduled_at <= %s)
                  {queue_filter}
                  {lock_filter}
                ORDER BY j.priority DESC, j.id ASC
                LIMIT %s
            ) AS due
        ) AS picked
        WHERE {table}.id = picked.id
        RETURNING {", ".join(f"{table}.{column}" for column in _CLAIM_COLUMNS)}"""


@dataclass(frozen=True)
class Claim:
    """A job claimed by a worker: the record the task sees, and when the run started."""

    record: jobs.Job
    #: When it was claimed: the job's ``started_at``, which fences the run's outcome.
    started_at: datetime
    worker_id: int | None
    backend: str = ""
    #: When a runner began it, if later than the claim (a job claimed ahead waits for one).
    ran_from: datetime | None = None

    def run_from(self, moment: datetime) -> Claim:
        return replace(self, ran_from=moment if moment > self.started_at else None)

    @property
    def run_started_at(self) -> datetime:
        """When the run began, as its attempt row records it."""
        return self.ran_from or self.started_at


def claim_jobs(
    *,
    now: datetime,
    limit: int = 1,
    queues: Sequence[str] | None = None,
    worker_id: int | None = None,
    for_runners: int | None = None,
    using: str = DEFAULT_DB,
    connection: Any = None,
) -> list[Claim]:
    """Mark up to ``limit`` due jobs ``doing`` for ``worker_id`` and return them, best first.

    ``for_runners``: how many of them start at once (all by default); the others are
    marked claimed ahead, so that recovery knows such a run may never have started.
    ``connection``: a Django connection to claim on instead of this thread's ``using``.
    """
    if for_runners is None:
        for_runners = limit
    connection = connection or connections[using]
    queue_names = tuple(queues) if queues else None
    sql = _claim_sql(connection.vendor, queue_names)
    moment = connection.ops.adapt_datetimefield_value(now)
    params: list[Any]
    if connection.vendor == "postgresql":
        queue_array = list(queue_names) if queue_names else None
        params = [moment, worker_id, for_runners, queue_array, limit]
    else:
        _promote_due_jobs(connection, moment)  # the PostgreSQL claim function does this
        params = [moment, worker_id, for_runners, moment, *(queue_names or ()), limit]
    json_field = Job._meta.get_field("task_kwargs")
    rows: list[tuple[Any, ...]] = []
    for attempt in range(CLAIM_TRIES):
        try:
            rows = _fetch_all(connection, sql, params)
            break
        except IntegrityError:
            # Two claims raced for the first job of a lock group (ids committed out of
            # order): the unique index on running locks refused ours. Claim again.
            if attempt == CLAIM_TRIES - 1:
                raise
    claims = []
    for values in sorted(rows, key=lambda row: (-row[5], row[0])):
        row = dict(zip(_CLAIM_COLUMNS, values, strict=True))
        row["task_kwargs"] = json_field.from_db_value(row["task_kwargs"], None, connection)
        for name in ("scheduled_at", "created_at"):
            row[name] = _to_datetime(row[name], connection)
        claims.append(
            Claim(
                record=record_from_row({**row, "status": JobStatus.DOING}),
                started_at=now,
                worker_id=worker_id,
                backend=row["backend"],
            )
        )
    return claims


CLAIM_TRIES = 3


def _promote_due_jobs(connection: Any, moment: Any) -> None:
    """Let the jobs scheduled for later that are due at ``moment`` join the claiming indexes.

    Looked for first with reads, so that a claim with nothing to move does not take
    SQLite's write lock for it. Two range lookups of the index by time (an OR of both
    would scan it), the second for a row whose scheduled_at was set to NULL by hand.
    """
    table = Job._meta.db_table
    later = f"""
        SELECT id FROM {table} INDEXED BY retrytasks_later_idx
        WHERE status = 'todo' AND scheduled_later = 1"""
    for due, params in ((" AND scheduled_at <= %s", [moment]), (" AND scheduled_at IS NULL", [])):
        if _fetch_all(connection, later + due + " LIMIT 1", params):
            _fetch_all(
                connection,
                f"UPDATE {table} SET scheduled_later = 0 WHERE id IN ({later}{due} LIMIT 1000)",
                params,
            )


def _fetch_all(connection: Any, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run one statement in autocommit (one round trip), or in a savepoint inside a transaction."""
    if connection.in_atomic_block:
        with transaction.atomic(using=connection.alias):
            return _execute_prepared(connection, sql, params)
    return _execute_prepared(connection, sql, params)


def _execute_prepared(connection: Any, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Execute a hot-path statement and return its rows; errors come out as Django's.

    On PostgreSQL with server-side binding, and prepared at once when the project turned
    psycopg's prepared statements on (``OPTIONS["prepare_threshold"]``; Django turns them
    off by default, for connection poolers, and then nothing is prepared: the claim keeps
    its plans in a function instead, see migrations 0006 and 0007).
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return list(cursor.fetchall()) if cursor.description else []


def _to_datetime(value: Any, connection: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        if isinstance(value, datetime) and timezone.is_naive(value):
            return timezone.make_aware(value, UTC)
        return value
    converters = connection.ops.get_db_converters(Job._meta.get_field("scheduled_at").get_col(""))
    for converter in converters:
        value = converter(value, None, connection)
    converted: datetime | None = value
    return converted


def next_due_at(
    *, after: datetime, queues: Sequence[str] | None = None, using: str = DEFAULT_DB
) -> datetime | None:
    """Return the earliest ``scheduled_at`` later than ``after`` among waiting jobs.

    Jobs due already are left out: a worker asks right after claiming all it could, so
    those are waiting for a lock (and their holder's end wakes the worker), not for time.
    """
    waiting = Job.objects.using(using).filter(status=JobStatus.TODO, scheduled_at__gt=after)
    if queues:
        waiting = waiting.filter(queue__in=queues)
    earliest: datetime | None = waiting.aggregate(earliest=Min("scheduled_at"))["earliest"]
    return earliest


# --- recording outcomes --------------------------------------------------------------------


@dataclass
class RunReport:
    """How a run ended, as the worker observed it."""

    outcome: str
    finished_at: datetime
    worker_name: str = ""
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    return_value: Any = None
    notes: list[str] = field(default_factory=list)


class OutcomeDiscarded(Exception):
    """The job is no longer running for this worker (it was recovered elsewhere)."""


def _fenced(claim: Claim, using: str) -> Any:
    return Job.objects.using(using).filter(
        pk=claim.record.id, status=JobStatus.DOING, started_at=claim.started_at
    )


def _attempt_number(claim: Claim, using: str) -> int:
    return Attempt.objects.using(using).filter(job_id=claim.record.id).count() + 1


def _attempt(claim: Claim, report: RunReport, number: int, **extra: Any) -> Attempt:
    return Attempt(
        job_id=claim.record.id,
        number=number,
        started_at=claim.run_started_at,
        finished_at=report.finished_at,
        outcome=report.outcome,
        worker_name=report.worker_name,
        error_type=report.error_type[:255],
        error_message=report.error_message,
        traceback=report.traceback,
        **extra,
    )


def record_success(claim: Claim, report: RunReport, *, using: str = DEFAULT_DB) -> bool:
    """Record a run that returned: the job ends ``succeeded``. False if the outcome was fenced off.

    Workers store their successes in batches with :func:`record_successes`.
    """
    return record_successes([(claim, report)], using=using)[0]


def record_successes(
    finished: Sequence[tuple[Claim, RunReport]], *, using: str = DEFAULT_DB
) -> list[bool]:
    """Record runs that returned in one transaction; for each, False if it was fenced off.

    Fenced: a job is only marked ``succeeded`` (and its attempt row only written) while it
    is still ``doing`` for the same claim, so the outcome of a run whose job was recovered
    meanwhile never overwrites what the recovery wrote. One statement on PostgreSQL.
    """
    if not finished:
        return []
    connection = connections[using]
    quote = connection.ops.quote_name
    job_table = quote(Job._meta.db_table)
    attempt_table = quote(Attempt._meta.db_table)
    rows = [_success_row(claim, report, connection) for claim, report in finished]
    attempt_columns = _attempt_columns()
    insert_columns = ", ".join(quote(column) for column, _ in attempt_columns)
    insert_values = ", ".join(expression for _, expression in attempt_columns)
    update_sql = (
        f"UPDATE {job_table} SET status = 'succeeded', attempts = f.attempts, "
        "finished_at = f.finished_at, consecutive_losses = 0, return_value = f.return_value "
        "FROM {rows} WHERE {job}.id = f.id AND {job}.status = 'doing' "
        "AND {job}.started_at = f.started_at"
    ).replace("{job}", job_table)
    recorded: set[int] = set()
    if connection.vendor == "postgresql":
        casts = _success_casts(connection)
        row_sql = "(" + ", ".join(f"CAST(%s AS {cast})" for cast in casts) + ")"
        sql = (
            f"WITH f ({', '.join(_SUCCESS_FIELDS)}) AS (VALUES {', '.join([row_sql] * len(rows))}), "
            f"done AS ({update_sql.replace('{rows}', 'f')} RETURNING {job_table}.id) "
            f"INSERT INTO {attempt_table} ({insert_columns}) "
            f"SELECT {insert_values} FROM f JOIN done ON done.id = f.id RETURNING job_id"
        )
        recorded.update(
            job_id
            for (job_id,) in _execute_prepared(
                connection, sql, [value for row in rows for value in row]
            )
        )
    else:
        one_row = "(SELECT " + ", ".join(f"%s AS {name}" for name in _SUCCESS_FIELDS) + ") AS f"
        with write_transaction(using), connection.cursor() as cursor:
            for row in rows:
                cursor.execute(update_sql.replace("{rows}", one_row), row)
                if cursor.rowcount == 1:
                    cursor.execute(
                        f"INSERT INTO {attempt_table} ({insert_columns}) "
                        f"SELECT {insert_values} FROM {one_row}",
                        row,
                    )
                    recorded.add(row[0])
    results = []
    for claim, _ in finished:
        results.append(claim.record.id in recorded)
        if claim.record.id not in recorded:
            _log_discarded(claim)
    return results


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


def _success_row(claim: Claim, report: RunReport, connection: Any) -> list[Any]:
    return_value = Job._meta.get_field("return_value").get_db_prep_save(
        report.return_value, connection
    )
    return [
        claim.record.id,
        connection.ops.adapt_datetimefield_value(claim.started_at),
        connection.ops.adapt_datetimefield_value(claim.run_started_at),
        claim.record.attempts + 1,
        connection.ops.adapt_datetimefield_value(report.finished_at),
        return_value,
        report.worker_name,
        "; ".join(report.notes),
    ]


def _success_casts(connection: Any) -> list[str | None]:
    job_fields = Job._meta
    attempt_fields = Attempt._meta
    return [
        job_fields.pk.cast_db_type(connection),
        job_fields.get_field("started_at").cast_db_type(connection),
        job_fields.get_field("started_at").cast_db_type(connection),
        "integer",
        job_fields.get_field("finished_at").cast_db_type(connection),
        job_fields.get_field("return_value").cast_db_type(connection),
        attempt_fields.get_field("worker_name").cast_db_type(connection),
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


@dataclass(frozen=True)
class FailureResult:
    """What :func:`record_failure` wrote."""

    status: str
    retry_at: datetime | None
    decision_text: str
    clamped: bool = False


def record_failure(
    claim: Claim,
    report: RunReport,
    decision: retry.RetryDecision | None,
    *,
    now: datetime,
    decision_text: str = "",
    counts: bool = True,
    snoozed: bool = False,
    final_status: str = JobStatus.FAILED,
    using: str = DEFAULT_DB,
    also_set: dict[str, Any] | None = None,
) -> FailureResult | None:
    """Record a failed run and apply the retry decision, attempt row and job in ONE transaction.

    With a decision the job goes back to ``todo`` at the retry time with the decision's
    priority, queue and lock; without one it ends ``failed``. ``counts=False`` (an
    interrupted run) puts the job back without using up an attempt; ``snoozed=True`` also
    counts the run in ``Job.snoozes``; ``final_status`` is the status of a job not retried
    (``aborted`` for a run stopped at an operator's request). ``also_set`` names further
    fields to write (see :func:`record_lost`). Returns ``None`` when the job was no longer
    running for this claim.
    """
    record = claim.record
    clamped = False
    retry_at: datetime | None = None
    changes: dict[str, Any] = {"finished_at": report.finished_at}
    if counts:
        changes["attempts"] = record.attempts + 1
    if snoozed:
        changes["snoozes"] = F("snoozes") + 1
    if report.outcome == Outcome.FAILED:
        changes["consecutive_losses"] = 0  # the run finished: the job is not a poison job
    if decision is not None:
        retry_at, clamped = decision.resolve(now)
        changes.update(status=JobStatus.TODO, scheduled_at=retry_at, scheduled_later=retry_at > now)
        for name in ("priority", "queue", "lock"):
            value = getattr(decision, name)
            if value is not None:
                changes[name] = value
        if not decision_text:
            decision_text = decision.describe()
        if clamped:
            decision_text += f" (too far ahead: scheduled at {retry.LATEST_RETRY_AT.isoformat()})"
    else:
        changes["status"] = final_status
    changes.update(also_set or {})
    notes = list(report.notes)
    for clear_queueing_lock in (False, True):
        try:
            with write_transaction(using):
                if changes["status"] == JobStatus.TODO and record.queueing_lock:
                    holder = _queueing_lock_holder(record, using)
                    if holder is not None or clear_queueing_lock:
                        changes["queueing_lock"] = None
                        notes.append(
                            f"queueing lock {record.queueing_lock!r} is held by waiting job "
                            f"#{holder}; this retry was scheduled without it"
                        )
                number = _attempt_number(claim, using)
                _attempt(
                    claim,
                    report,
                    number,
                    retry_at=retry_at,
                    decision="; ".join(filter(None, [decision_text, *notes])),
                ).save(using=using)
                if not _fenced(claim, using).update(**changes):
                    raise OutcomeDiscarded
            break
        except OutcomeDiscarded:
            _log_discarded(claim)
            return None
        except IntegrityError:
            # Another process deferred a job with the same queueing lock in the meantime.
            if clear_queueing_lock or not record.queueing_lock:
                raise
            notes = list(report.notes)
    if changes["status"] == JobStatus.TODO and retry_at is not None and retry_at <= now:
        _after_commit_wake(using)
    return FailureResult(
        status=changes["status"], retry_at=retry_at, decision_text=decision_text, clamped=clamped
    )


def _queueing_lock_holder(record: jobs.Job, using: str) -> int | None:
    holder: int | None = (
        Job.objects.using(using)
        .filter(status=JobStatus.TODO, queueing_lock=record.queueing_lock)
        .exclude(pk=record.id)
        .values_list("pk", flat=True)
        .first()
    )
    return holder


def _log_discarded(claim: Claim) -> None:
    logger.warning(
        "Outcome of job %s discarded: it is no longer running for this worker "
        "(it was recovered or changed elsewhere)",
        claim.record.id,
        extra=log_fields(claim.record, action="outcome_discarded"),
    )


def abort_requested(job_id: int, *, using: str = DEFAULT_DB) -> bool:
    """Whether an operator asked the running job ``job_id`` to stop (one read by primary key)."""
    return Job.objects.using(using).filter(pk=job_id, abort_requested=True).exists()



# --- workers, heartbeats and lost runs -----------------------------------------------------


def register_worker(
    *,
    name: str,
    host: str,
    pid: int,
    queues: Sequence[str],
    concurrency: int,
    now: datetime,
    using: str = DEFAULT_DB,
) -> int:
    """Add a running worker to the table of workers and return its id."""
    row = WorkerRow.objects.using(using).create(
        name=name,
        host=host,
        pid=pid,
        queues=list(queues),
        concurrency=concurrency,
        started_at=now,
        last_heartbeat=now,
    )
    return row.pk


def heartbeat(worker_id: int, *, now: datetime, using: str = DEFAULT_DB) -> bool:
    """Mark a worker alive at ``now``; False when its row is gone (it was taken for dead)."""
    return bool(WorkerRow.objects.using(using).filter(pk=worker_id).update(last_heartbeat=now))


def unregister_worker(worker_id: int, *, using: str = DEFAULT_DB) -> None:
    WorkerRow.objects.using(using).filter(pk=worker_id).delete()


@dataclass(frozen=True)
class LostRun:
    """A run left ``doing`` by a worker that stopped heartbeating."""

    claim: Claim
    #: Runs of the job lost in a row before this one.
    consecutive_losses: int
    worker_name: str
    #: Claimed ahead of a free runner: the run may never have started.
    claimed_ahead: bool = False


def lost_runs(*, stale_before: datetime, using: str = DEFAULT_DB) -> list[LostRun]:
    """Jobs ``doing`` for a worker whose last heartbeat is older than ``stale_before``.

    A running job without a worker (its worker unregistered, or a test helper ran it)
    counts only once it started before ``stale_before`` too.
    """
    rows = (
        Job.objects.using(using)
        .filter(status=JobStatus.DOING)
        .filter(
            Q(worker__last_heartbeat__lt=stale_before)
            | Q(worker__isnull=True, started_at__lt=stale_before)
        )
        .select_related("worker")
        .order_by("id")
    )
    return [
        LostRun(
            claim=Claim(
                record=job.as_record(),
                started_at=job.started_at or stale_before,  # never NULL while doing
                worker_id=job.worker_id,
                backend=job.backend,
            ),
            consecutive_losses=job.consecutive_losses,
            worker_name=job.worker.name if job.worker else "",
            claimed_ahead=job.claimed_ahead,
        )
        for job in rows
    ]


def take_lost_run(lost: LostRun, *, worker_id: int | None, using: str = DEFAULT_DB) -> bool:
    """Make ``worker_id`` the one recovering a lost run; False if another worker took it first.

    So that two live workers finding the same lost run do not both report its recovery.
    Should this worker die too before recording it, the run is found lost again.
    """
    dead = lost.claim.worker_id
    same_worker = Q(worker__isnull=True) if dead is None else Q(worker_id=dead)
    still_lost = Job.objects.using(using).filter(
        same_worker,
        pk=lost.claim.record.id,
        status=JobStatus.DOING,
        started_at=lost.claim.started_at,
    )
    return bool(still_lost.update(worker_id=worker_id))


def forget_dead_workers(*, stale_before: datetime, using: str = DEFAULT_DB) -> int:
    """Delete the rows of workers silent since ``stale_before`` that run nothing any more."""
    running = Job.objects.using(using).filter(status=JobStatus.DOING, worker__isnull=False)
    dead = (
        WorkerRow.objects.using(using)
        .filter(last_heartbeat__lt=stale_before)
        .exclude(pk__in=running.values("worker_id"))
    )
    deleted, _ = dead.delete()
    return deleted


def record_lost(
    lost: LostRun,
    report: RunReport,
    decision: retry.RetryDecision | None,
    *,
    now: datetime,
    max_consecutive_losses: int | None,
    decision_text: str = "",
    counts: bool = True,
    using: str = DEFAULT_DB,
) -> FailureResult | None:
    """Record a run lost with its worker: counted, judged like a failure, held when poisonous.

    A job lost ``max_consecutive_losses`` times in a row (with no finished run between)
    is not retried again: it ends ``failed`` with ``held`` set, for an operator to look at.
    ``counts=False`` (a job claimed ahead, which may never have started) uses no attempt;
    the loss still counts towards the hold.
    """
    losses = lost.consecutive_losses + 1
    also_set: dict[str, Any] = {"consecutive_losses": losses}
    if (
        decision is not None
        and max_consecutive_losses is not None
        and losses >= max_consecutive_losses
    ):
        decision = None
        also_set["held"] = True
        decision_text = (
            f"held: lost with its worker {losses} times in a row (a poison job?); "
            "not retried until an operator retries it"
        )
    return record_failure(
        lost.claim,
        report,
        decision,
        now=now,
        decision_text=decision_text,
        counts=counts,
        using=using,
        also_set=also_set,
    )


def return_unstarted(claims: Sequence[Claim], *, using: str = DEFAULT_DB) -> list[int]:
    """Put jobs this worker claimed but never started back in the queue: no attempt, no count.

    Fenced like an outcome: a claim recovered meanwhile by another worker is left alone.
    """
    returned = []
    with write_transaction(using):
        for claim in claims:
            if _fenced(claim, using).update(status=JobStatus.TODO, worker=None):
                returned.append(claim.record.id)
    if returned:
        _after_commit_wake(using)
    return returned


def release_unstarted(*, worker_id: int, keep: Iterable[int], using: str = DEFAULT_DB) -> list[int]:
    """Return to the queue the jobs claimed for ``worker_id`` that it never received.

    A claim whose reply was lost with the connection is committed but unknown to the
    worker; ``keep`` are the jobs it does know. The run never started: no attempt.
    """
    with write_transaction(using):
        unknown = list(
            Job.objects.using(using)
            .filter(status=JobStatus.DOING, worker_id=worker_id)
            .exclude(pk__in=list(keep))
            .values_list("pk", flat=True)
        )
        if unknown:
            Job.objects.using(using).filter(
                pk__in=unknown, status=JobStatus.DOING, worker_id=worker_id
            ).update(status=JobStatus.TODO, worker=None)
    if unknown:
        _after_commit_wake(using)
    return unknown
