"""A worker's upkeep: its row in the table of workers, recovering lost runs, pruning.

The heartbeat thread (:mod:`.heartbeat`) calls :meth:`Registration.ensure` and
:meth:`Recovery.recover_lost_jobs` on every beat; the claim loop calls
:meth:`Pruner.prune_if_due` on every pass. One job's bad data never stops either: what
cannot be recovered as judged is stored as a failure, and the next lost run goes on.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django_retrytasks import handlers, jobs, signals, store, tasks
from django_retrytasks.handlers import JobHandler
from django_retrytasks.records import LostRun
from django_retrytasks.store import operations
from django_retrytasks.worker import outages
from django_retrytasks.worker.announcing import Announcer
from django_retrytasks.worker.completer import store_verdicts
from django_retrytasks.worker.judging import judge_lost

logger = logging.getLogger("django_retrytasks.worker")


class Registration:
    """This worker's row in the table of workers, kept alive by heartbeats."""

    def __init__(
        self,
        *,
        name: str,
        queues: Sequence[str] | None,
        concurrency: int,
        using: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.name = name
        self.queues = list(queues or [])
        self.concurrency = concurrency
        self.using = using
        self.clock = clock
        self.worker_id: int | None = None
        # The claim loop and the heartbeat thread may both register again.
        self._lock = threading.Lock()

    def register(self) -> int:
        self.worker_id = store.register_worker(
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self.queues,
            concurrency=self.concurrency,
            now=self.clock(),
            using=self.using,
        )
        return self.worker_id

    def ensure(self, now: datetime) -> None:
        """Heartbeat; register again if another worker took us for dead and forgot us."""
        with self._lock:
            if store.heartbeat(self.worker_id or 0, now=now, using=self.using):
                return
            logger.warning(
                "Worker %s was taken for dead (silent for longer than the heartbeat timeout); "
                "registering again",
                self.name,
                extra={"action": "worker_reregister", "worker": self.name},
            )
            self.register()

    def unregister(self) -> None:
        if self.worker_id is not None:
            store.unregister_worker(self.worker_id, using=self.using)


class Recovery:
    """Takes over the runs that workers whose heartbeat stopped left ``doing``."""

    def __init__(
        self,
        *,
        app: tasks.App,
        registration: Registration,
        heartbeat_timeout: float,
        max_consecutive_losses: int | None,
        using: str,
    ) -> None:
        self.app = app
        self.registration = registration
        self.heartbeat_timeout = heartbeat_timeout
        self.max_consecutive_losses = max_consecutive_losses
        self.using = using
        # Recovery is rare: announced on the heartbeat thread, at once.
        self.announcer = Announcer(worker_name=registration.name)

    def recover_lost_jobs(self, *, now: datetime) -> int:
        """Judge runs left ``doing`` by dead workers as ``WorkerLost`` failures; return how many.

        A worker is dead when its last heartbeat is older than the heartbeat timeout. Each
        lost run is recorded as an attempt with outcome ``lost``, counted in ``attempts``,
        and judged by the task's retry strategy like any failure; a job lost too many times
        in a row is held (``max_consecutive_losses``). A job the dead worker had claimed
        ahead may never have started: it goes back to the queue without using an attempt.
        """
        stale_before = now - timedelta(seconds=self.heartbeat_timeout)
        recovered = 0
        for lost in store.lost_runs(stale_before=stale_before, using=self.using):
            try:
                recovered += self._recover(lost, now)
            except outages.OUTAGE_ERRORS:
                raise  # the next beat looks again
            except Exception:
                logger.exception(
                    "Could not recover job %s (skipped; the next heartbeat tries again)",
                    lost.claim.record.id,
                    extra=jobs.log_fields(lost.claim.record, action="recovery_error"),
                )
        store.forget_dead_workers(stale_before=stale_before, using=self.using)
        return recovered

    def _recover(self, lost: LostRun, now: datetime) -> int:
        worker_id = self.registration.worker_id
        if not store.take_lost_run(lost, worker_id=worker_id, using=self.using):
            return 0  # another live worker is recovering it
        record = lost.claim.record
        handler = self._handler(lost)
        where = f"worker {lost.worker_name!r}" if lost.worker_name else "its worker"
        logger.warning(
            "Job %s was running on %s, which stopped sending heartbeats: recovering it",
            record.id,
            where,
            extra=jobs.log_fields(record, action="job_recovered", worker=self.registration.name),
        )
        signals.send(
            signals.job_recovered,
            sender=handler.sender if handler is not None else None,
            job=record,
            worker_name=lost.worker_name,
        )
        verdict = judge_lost(
            lost,
            handler=handler,
            now=now,
            heartbeat_timeout=self.heartbeat_timeout,
            max_consecutive_losses=self.max_consecutive_losses,
        )
        [stored] = store_verdicts([verdict], using=self.using)
        if stored is None:
            return 0
        self.announcer.announce(stored)
        return 1

    def _handler(self, lost: LostRun) -> JobHandler | None:
        """The handler of the lost job, for its strategy and announcements; ``None`` if none."""
        try:
            return handlers.resolve(
                lost.claim, app=self.app, worker_name=self.registration.name, using=self.using
            )
        except Exception:  # judged without a strategy: not retried
            return None


class Pruner:
    """Deletes one small batch of expired finished jobs every ``interval`` seconds."""

    def __init__(self, *, interval: float | None, using: str, worker_name: str) -> None:
        self.interval = interval
        self.using = using
        self.worker_name = worker_name
        self._last = -math.inf

    def prune_if_due(self, now: datetime) -> None:
        if self.interval is None or time.monotonic() - self._last < self.interval:
            return
        self._last = time.monotonic()
        try:
            operations.prune(now=now, max_batches=1, using=self.using)
        except Exception:
            # Retention is housekeeping: a failure is logged and tried again next interval.
            logger.exception(
                "Pruning finished jobs failed",
                extra={"action": "prune_error", "worker": self.worker_name},
            )
