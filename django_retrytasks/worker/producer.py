"""The claim loop: keeps the runners fed, claims when a NOTIFY comes, rides out outages.

Each pass stores the runs that finished since the last one (through the batch
completer), gives back jobs claimed ahead that waited too long, claims as many jobs as
the pace of runs asks for (see :mod:`.pace`), then sleeps until a runner ends, a job is
deferred here or elsewhere, or the next waiting job is due.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError

from django_retrytasks import store
from django_retrytasks.records import Claim
from django_retrytasks.worker import outages
from django_retrytasks.worker.completer import BatchCompleter
from django_retrytasks.worker.judging import Verdict
from django_retrytasks.worker.ledger import Ledger
from django_retrytasks.worker.listener import CommitWatcher
from django_retrytasks.worker.maintenance import Registration
from django_retrytasks.worker.pace import (
    PREFETCH_MAX_WAIT,
    ClaimSize,
    Holding,
    RunPace,
    claim_size,
    store_wait,
)

logger = logging.getLogger("django_retrytasks.worker")

#: Wake this long after a job's ``scheduled_at`` so the claim does not come a hair early.
DUE_MARGIN = 0.0003


#: A burst worker whose claim came back empty while a plain read still finds a claimable job
#: looks again after this many seconds, at most this many times in a row.
BURST_RECHECK_WAIT = 0.02
BURST_RECHECKS = 50


class Producer:
    """Claims jobs for a worker's runners until stopped (in burst mode, until none is due)."""

    def __init__(
        self,
        *,
        ledger: Ledger[Verdict],
        pace: RunPace,
        completer: BatchCompleter,
        registration: Registration,
        clock: Callable[[], datetime],
        queues: Sequence[str] | None,
        concurrency: int,
        using: str,
        polling_interval: float,
        burst: bool = False,
        claimed_ahead_max_wait: float = PREFETCH_MAX_WAIT,
        each_pass: Callable[[], None] = lambda: None,
    ) -> None:
        self.ledger = ledger
        self.pace = pace
        self.completer = completer
        self.registration = registration
        self.clock = clock
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency
        self.using = using
        self.polling_interval = polling_interval
        self.burst = burst
        #: Seconds a job claimed ahead may wait for a runner before it goes back to the queue.
        self.claimed_ahead_max_wait = claimed_ahead_max_wait
        self.each_pass = each_pass
        #: Set to wake the loop: a runner ended, a job was deferred, the worker stops.
        self.wake = threading.Event()
        self.stopping = threading.Event()
        # Held while sizing and making a claim: by the loop, and by the listening thread,
        # which claims on its own connection when a NOTIFY arrives.
        self._claim_lock = threading.Lock()
        # Set when a claim on the listening connection failed: its reply may be lost.
        self._claims_unsure = threading.Event()
        self._commit_watcher = CommitWatcher.for_database(using)
        self._burst_rechecks = 0

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    @property
    def claims_unsure(self) -> bool:
        """Whether a claim may have committed with its reply lost (see :meth:`release_unacknowledged`)."""
        return self._claims_unsure.is_set()

    def run(self) -> None:
        """Claim until stopped; through a database outage, back off and reconnect."""
        backoff = outages.Backoff()
        while True:
            try:
                self._loop()
                return
            except outages.OUTAGE_ERRORS as error:
                wait = backoff.next_wait()
                logger.warning(
                    "Database unavailable while claiming (%s: %s); trying again in %.2gs",
                    type(error).__name__,
                    str(error).strip(),
                    wait,
                    extra={"action": "db_outage", "what": "claim", "wait": wait},
                )
                outages.drop_connection(self.using)
                if self.stopping.wait(wait):
                    return
            except IntegrityError:
                # A worker that took us for dead (silent past the heartbeat timeout) deleted
                # our row while this claim ran; the claim was rolled back. Register again.
                self.registration.ensure(self.clock())
                continue
            try:
                self.release_unacknowledged()
            except outages.OUTAGE_ERRORS:
                outages.drop_connection(self.using)
                continue  # still down: the claim loop fails again and waits longer
            backoff.reset()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            # Cleared before claiming: a runner that ends, a NOTIFY or a local defer from
            # now on makes the wait below return at once.
            self.wake.clear()
            self.each_pass()
            self._return_stale_claims()
            if self._claims_unsure.is_set():
                self._claims_unsure.clear()
                self.release_unacknowledged()
            now = self.clock()
            with self._claim_lock:
                size, holding = self._size()
                if store_wait(holding) == 0:
                    self.completer.flush()
                    size, holding = self._size()
                held_before = holding.held
                claimed = self._claim(now, size) if size.wanted > 0 else None
            if claimed is None:
                self._wait(self.polling_interval)  # enough held: wait for a runner
                continue
            if len(claimed) == size.wanted:
                continue  # as many as it should hold
            if claimed:
                self._burst_rechecks = 0
            elif self.burst and held_before == 0:
                # A claim skips the rows another worker's claim locks for a moment, so an
                # empty claim does not prove the queue empty: stop once a plain read agrees
                # (or after a few looks, should the two ever disagree for good).
                if self._burst_rechecks >= BURST_RECHECKS or not store.any_claimable(
                    now=now, queues=self.queues, using=self.using
                ):
                    return
                self._burst_rechecks += 1
                self._wait(BURST_RECHECK_WAIT)
                continue
            if self.burst:
                # Only jobs due now count: wait for a runner (its retry may be due at once).
                self._wait(self.polling_interval)
                continue
            self._wait_idle(self.idle_wait(now))

    def _wait(self, seconds: float) -> None:
        """Sleep until woken or ``seconds`` passed, or until the held outcomes are to be stored."""
        due = store_wait(self.ledger.holding())
        self.wake.wait(seconds if due is None else min(seconds, due))

    def _size(self) -> tuple[ClaimSize, Holding]:
        holding = self.ledger.holding()
        target = self.pace.target(running_for=holding.longest_running)
        return claim_size(holding, target=target, concurrency=self.concurrency), holding

    def _claim(self, now: datetime, size: ClaimSize, connection: Any = None) -> list[Claim]:
        """Claim up to ``size.wanted`` jobs and hand them to the runners."""
        claimed = store.claim_jobs(
            now=now,
            limit=size.wanted,
            for_runners=size.for_runners,
            queues=self.queues,
            worker_id=self.registration.worker_id,
            using=self.using,
            connection=connection,
        )
        if claimed:
            self.ledger.hand_over(claimed)
            # Let a runner take the GIL now: this thread's next steps are Python work that
            # would otherwise hold it for up to the interpreter's switch interval (5 ms).
            time.sleep(0)
        return claimed

    def claim_on_notify(self, connection: Any) -> None:
        """A job was stored waiting: claim on the listening connection, which is awake.

        Called on the listening thread. When the claim loop is claiming already, or the
        runners are busy, the loop takes it from there.
        """
        if self.stopping.is_set() or not self._claim_lock.acquire(blocking=False):
            self.wake.set()
            return
        try:
            size, _ = self._size()
            if size.wanted <= 0:
                return  # a runner that finishes wakes the claim loop
            claimed = self._claim(self.clock(), size, connection)
            if len(claimed) == size.wanted:
                self.wake.set()  # more may be waiting
        except Exception as error:
            # The claim loop claims instead, and returns jobs whose claim committed while
            # the reply was lost; the listener reconnects if its connection broke.
            logger.debug("Claiming on the listening connection failed: %s", error)
            self._claims_unsure.set()
            self.wake.set()
        finally:
            self._claim_lock.release()

    def take_waiting(self) -> list[Claim]:
        """Stop: take back every claim no runner started (to return it to the queue)."""
        with self._claim_lock:  # a claim on the listening thread is handed over first
            return self.ledger.take_waiting()

    def _return_stale_claims(self) -> None:
        """Give back jobs claimed ahead that waited too long (a job before them ran slow)."""
        stale = self.ledger.take_waiting(longer_than=self.claimed_ahead_max_wait)
        if stale:
            # Lost with an outage, they are still ``doing`` for us and unknown to the
            # worker: the outage handling returns them then (release_unacknowledged).
            store.return_unstarted(stale, using=self.using)

    def release_unacknowledged(self) -> list[int]:
        """Requeue jobs a failed claim marked ``doing`` for us while its reply was lost."""
        worker_id = self.registration.worker_id
        if worker_id is None:
            return []
        with self._claim_lock:  # no claim is half handed over while we look
            released = store.release_unstarted(
                worker_id=worker_id, keep=self.ledger.job_ids(), using=self.using
            )
        if released:
            logger.warning(
                "Returned jobs %s to the queue: claimed while the connection broke, never run",
                released,
                extra={"action": "claims_released", "worker": self.registration.name},
            )
        return released

    def idle_wait(self, now: datetime) -> float:
        """Seconds until the next waiting job is due, ``polling_interval`` at most.

        Asked with free runners after a claim that took every job due at ``now``, so a
        retry due in 80 ms is started on time rather than at the next poll.
        """
        earliest = store.next_due_at(after=now, queues=self.queues, using=self.using)
        if earliest is None:
            return self.polling_interval
        seconds = (earliest - self.clock()).total_seconds() + DUE_MARGIN
        return min(max(seconds, 0.0), self.polling_interval)

    def _wait_idle(self, seconds: float) -> None:
        """Sleep until woken or ``seconds`` passed; on SQLite, also until another commit."""
        due = store_wait(self.ledger.holding())
        if due is not None:
            seconds = min(seconds, due)
        if self._commit_watcher is None:
            self.wake.wait(seconds)
        else:
            self._commit_watcher.wait(self.wake, seconds)
