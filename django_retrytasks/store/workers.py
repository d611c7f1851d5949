"""The table of running workers: registration, heartbeats, and the runs dead workers left.

A worker whose last heartbeat is older than the timeout is dead; the jobs it left
``doing`` are lost runs, which a live worker takes over (:func:`take_lost_run`) and
completes like any run (see :mod:`.completing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db.models import Q

from django_retrytasks.models import Job, JobStatus, UndecodableJSON
from django_retrytasks.models import Worker as WorkerRow
from django_retrytasks.records import Claim, LostRun
from django_retrytasks.store.sql import DEFAULT_DB


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
    lost = []
    for job in rows:
        record = job.as_record()
        undecodable = ""
        if isinstance(record.task_kwargs, UndecodableJSON):
            undecodable = str(record.task_kwargs)
            record = record.evolve(task_kwargs={})
        lost.append(
            LostRun(
                claim=Claim(
                    record=record,
                    started_at=job.started_at or stale_before,  # never NULL while doing
                    worker_id=job.worker_id,
                    backend=job.backend,
                    snoozes=job.snoozes,
                    undecodable=undecodable,
                ),
                consecutive_losses=job.consecutive_losses,
                worker_name=job.worker.name if job.worker else "",
                claimed_ahead=job.claimed_ahead,
            )
        )
    return lost


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
