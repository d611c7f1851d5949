"""Claiming due jobs for a worker, and giving back the ones it never started.

The claim is one statement on PostgreSQL and SQLite (see :mod:`.postgres` and
:mod:`.sqlite`), one short transaction on MySQL and MariaDB (:mod:`.mysql`); this module
turns its rows into :class:`~django_retrytasks.records.Claim` records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connections
from django.db.models import Exists, Min, OuterRef, Q

from django_retrytasks import jobs
from django_retrytasks.models import Job, JobStatus, UndecodableJSON
from django_retrytasks.records import Claim
from django_retrytasks.store import mysql, postgres, sqlite
from django_retrytasks.store.sql import DEFAULT_DB, fetch_all, to_datetime, write_transaction
from django_retrytasks.store.wake import wake_after_commit

#: The columns a claim returns, in order.
CLAIM_COLUMNS = (
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
    "snoozes",
)
#: A claim that lost a race for the first job of a lock group is tried again this often.
CLAIM_TRIES = 3


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
    moment = connection.ops.adapt_datetimefield_value(now)
    rows: list[tuple[Any, ...]] = []
    for attempt in range(CLAIM_TRIES):
        try:
            rows = _claim_rows(connection, moment, worker_id, for_runners, queue_names, limit)
            break
        except IntegrityError:
            # Two claims raced for the first job of a lock group (ids committed out of
            # order): the unique index on running locks refused ours. Claim again.
            if attempt == CLAIM_TRIES - 1:
                raise
    claims = [_claim_of(values, now, worker_id, connection) for values in rows]
    claims.sort(key=lambda claim: (-claim.record.priority, claim.record.id))
    return claims


def _claim_rows(
    connection: Any,
    moment: Any,
    worker_id: int | None,
    for_runners: int,
    queues: tuple[str, ...] | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    """The claimed jobs' ``CLAIM_COLUMNS``, by the database's own claim."""
    if connection.vendor == "mysql":
        return mysql.claim(
            connection,
            moment=moment,
            worker_id=worker_id,
            for_runners=for_runners,
            queues=queues,
            limit=limit,
            columns=CLAIM_COLUMNS,
        )
    dialect = postgres if connection.vendor == "postgresql" else sqlite
    if dialect is sqlite:
        sqlite.promote_due_jobs(connection, moment)  # the PostgreSQL claim function does this
    sql = dialect.claim_sql(queues, CLAIM_COLUMNS)
    params = dialect.claim_params(moment, worker_id, for_runners, queues or (), limit)
    return fetch_all(connection, sql, params)


def _claim_of(
    values: tuple[Any, ...], now: datetime, worker_id: int | None, connection: Any
) -> Claim:
    row = dict(zip(CLAIM_COLUMNS, values, strict=True))
    kwargs = Job._meta.get_field("task_kwargs").from_db_value(row["task_kwargs"], None, connection)
    undecodable = ""
    if isinstance(kwargs, UndecodableJSON) or not isinstance(kwargs, dict):
        undecodable = (
            str(kwargs)
            if isinstance(kwargs, UndecodableJSON)
            else (f"the stored arguments are a JSON {type(kwargs).__name__}, not an object")
        )
        kwargs = {}
    scheduled_field = Job._meta.get_field("scheduled_at")
    record = jobs.Job(
        id=row["id"],
        task_name=row["task_name"],
        task_kwargs=kwargs,
        status=JobStatus.DOING,
        queue=row["queue"],
        priority=row["priority"],
        lock=row["lock"],
        queueing_lock=row["queueing_lock"],
        scheduled_at=to_datetime(row["scheduled_at"], connection, scheduled_field),
        attempts=row["attempts"],
        created_at=to_datetime(row["created_at"], connection, scheduled_field),
    )
    return Claim(
        record=record,
        started_at=now,
        worker_id=worker_id,
        backend=row["backend"],
        snoozes=row["snoozes"],
        undecodable=undecodable,
    )


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


def any_claimable(
    *, now: datetime, queues: Sequence[str] | None = None, using: str = DEFAULT_DB
) -> bool:
    """Whether a job is due at ``now`` that a claim may take, by a plain read.

    The claim's own rules (a lock's jobs in their order, one at a time) without its row
    locks: a claim skips rows another worker's claim has locked for a moment, so finding
    nothing there does not prove that nothing is left. A burst worker asks this before
    it stops.
    """
    todo = Job.objects.using(using).filter(status=JobStatus.TODO)
    same_lock = Job.objects.using(using).filter(lock=OuterRef("lock"))
    due = todo.filter(Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=now)).filter(
        Q(lock__isnull=True)
        | (
            ~Exists(same_lock.filter(status=JobStatus.DOING))
            & ~Exists(same_lock.filter(status=JobStatus.TODO, pk__lt=OuterRef("pk")))
        )
    )
    if queues:
        due = due.filter(queue__in=queues)
    return due.exists()


def fenced(claim: Claim, using: str) -> Any:
    """The job's row while it is still ``doing`` for this claim (and no other)."""
    return Job.objects.using(using).filter(
        pk=claim.record.id, status=JobStatus.DOING, started_at=claim.started_at
    )


def return_unstarted(claims: Sequence[Claim], *, using: str = DEFAULT_DB) -> list[int]:
    """Put jobs this worker claimed but never started back in the queue: no attempt, no count.

    Fenced like an outcome: a claim recovered meanwhile by another worker is left alone.
    """
    returned = []
    with write_transaction(using):
        for claim in claims:
            if fenced(claim, using).update(status=JobStatus.TODO, worker=None):
                returned.append(claim.record.id)
    if returned:
        wake_after_commit(using)
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
        wake_after_commit(using)
    return unknown
