"""The worker: claims due jobs, runs them on its threads, stores how each run ended.

A plain class with an injected ``clock``; ``manage.py runworker`` only builds one and calls
:meth:`Worker.run`. The work is done by roles, each in its own module:

- :mod:`.producer`: the claim loop (how many to claim, claiming ahead, idle waits,
  claims on NOTIFY, outages), feeding the :mod:`.ledger`;
- :mod:`.processing`: a runner's work for one job: :mod:`.executor` runs it,
  :mod:`.judging` turns the run into one named transition;
- :mod:`.completer`: stores verdicts (batched by the claim loop), :mod:`.announcing`
  tells logs, signals and hooks;
- :mod:`.maintenance`: registration, heartbeats (:mod:`.heartbeat`), lost-run recovery,
  pruning;
- :mod:`.periodic`: the jobs of periodic schedules, deferred at their ticks on a thread
  of its own;
- :mod:`.shutdown`: SIGTERM and SIGINT.

This module assembles them and owns the order of starting and stopping.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from django.db import connections
from django.utils import timezone

from django_retrytasks import conf, jobs, store, tasks
from django_retrytasks.periodic import declared_schedules
from django_retrytasks.records import Claim
from django_retrytasks.worker import heartbeat, outages
from django_retrytasks.worker.announcing import Announcer, QueuedAnnouncer
from django_retrytasks.worker.completer import BatchCompleter, store_verdicts
from django_retrytasks.worker.judging import Verdict, interrupted, judge
from django_retrytasks.worker.ledger import Ledger
from django_retrytasks.worker.listener import Listener
from django_retrytasks.worker.maintenance import Pruner, Recovery, Registration
from django_retrytasks.worker.pace import PREFETCH_MAX_WAIT, RunPace
from django_retrytasks.worker.periodic import PeriodicDeferrer
from django_retrytasks.worker.processing import Processor
from django_retrytasks.worker.producer import Producer
from django_retrytasks.worker.results import ErrorText, RunKind, RunResult
from django_retrytasks.worker.shutdown import SignalHandlers

logger = logging.getLogger(__name__)

DEFAULT_POLLING_INTERVAL = 0.5
#: While draining, the worker stores finished runs at least this often (and whenever a run ends).
DRAIN_FLUSH_SECONDS = 0.2
#: After a second signal, the worker tries this long to store what finished and return the rest.
STOP_NOW_SECONDS = 1.0
INTERRUPTED_REASON = "returned to the queue: worker shutdown"


class Worker:
    """Runs jobs from the database until stopped (or, in burst mode, until none is due)."""

    def __init__(
        self,
        *,
        app: tasks.App = tasks.app,
        queues: Sequence[str] | None = None,
        concurrency: int = 1,
        burst: bool = False,
        polling_interval: float = DEFAULT_POLLING_INTERVAL,
        shutdown_timeout: float | None = None,
        heartbeat_interval: float | None = None,
        heartbeat_timeout: float | None = None,
        max_consecutive_losses: int | None = heartbeat.FROM_SETTINGS,
        name: str | None = None,
        using: str = store.DEFAULT_DB,
        clock: Callable[[], datetime] = timezone.now,
        install_signal_handlers: bool = True,
        pace: RunPace | None = None,
        claimed_ahead_max_wait: float = PREFETCH_MAX_WAIT,
        periodic: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if polling_interval <= 0:
            raise ValueError(f"polling_interval must be > 0, got {polling_interval}")
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency
        self.burst = burst
        self.shutdown_timeout = shutdown_timeout
        self.using = using
        self.clock = clock
        self.install_signal_handlers = install_signal_handlers
        # Left None, they come from the settings (see django_retrytasks.conf).
        self.heartbeat_interval, self.heartbeat_timeout = heartbeat.heartbeat_settings(
            heartbeat_interval, heartbeat_timeout
        )
        self.registration = Registration(
            name=self.name, queues=self.queues, concurrency=concurrency, using=using, clock=clock
        )
        self.recovery = Recovery(
            app=app,
            registration=self.registration,
            heartbeat_timeout=self.heartbeat_timeout,
            max_consecutive_losses=heartbeat.max_consecutive_losses_setting(
                max_consecutive_losses
            ),
            using=using,
        )
        self.ledger: Ledger[Verdict] = Ledger()
        self.announcer = QueuedAnnouncer(worker_name=self.name)
        self.completer = BatchCompleter(ledger=self.ledger, announcer=self.announcer, using=using)
        self.pace = pace or RunPace(concurrency)
        self.pruner = Pruner(interval=None, using=using, worker_name=self.name)
        self.producer = Producer(
            ledger=self.ledger,
            pace=self.pace,
            completer=self.completer,
            registration=self.registration,
            clock=clock,
            queues=self.queues,
            concurrency=concurrency,
            using=using,
            polling_interval=polling_interval,
            burst=burst,
            claimed_ahead_max_wait=claimed_ahead_max_wait,
            each_pass=self._each_pass,
        )
        self.processor = Processor(app=app, worker_name=self.name, using=using, clock=clock)
        schedules = declared_schedules(app) if periodic else []
        #: Defers the jobs of periodic schedules (None: none declared, or ``periodic=False``).
        self.periodic = (
            PeriodicDeferrer(schedules=schedules, clock=clock, worker_name=self.name, using=using)
            if schedules
            else None
        )
        self._runners: list[threading.Thread] = []
        self._heartbeat: heartbeat.Heartbeat | None = None
        self._stop_now = threading.Event()
        # Set when the last writes of a shutdown must stop waiting through an outage.
        self._give_up = threading.Event()

    @property
    def worker_id(self) -> int | None:
        return self.registration.worker_id

    @property
    def abandoned_runs(self) -> bool:
        """Whether runs are still going on runner threads after :meth:`run` returned."""
        return any(thread.is_alive() for thread in self._runners)

    # --- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; running jobs finish (within ``shutdown_timeout``), then :meth:`run` returns."""
        self.producer.stop()

    def stop_now(self) -> None:
        """Store what finished, return what still runs to the queue, and let :meth:`run` return."""
        self._stop_now.set()
        self._give_up_after(STOP_NOW_SECONDS)
        self.producer.stop()

    # --- running ---------------------------------------------------------------------------

    def run(self) -> None:
        # Read once: the claim loop would otherwise read Django's settings on every pass.
        self.pruner.interval = conf.get_settings().prune_interval
        signal_handlers = SignalHandlers(
            worker_name=self.name, drain=self.stop, stop_now=self.stop_now
        )
        if self.install_signal_handlers:
            signal_handlers.install()
        try:
            self.registration.register()
        except BaseException:
            signal_handlers.restore()
            raise
        store.add_wake_callback(self.producer.wake.set)
        try:
            self._beat()  # lost runs are recovered before the first claim (also in burst mode)
        except outages.OUTAGE_ERRORS:
            logger.exception(
                "Recovering lost runs failed; the heartbeat tries again",
                extra={"action": "heartbeat_error", "worker": self.name},
            )
        self._heartbeat = heartbeat.Heartbeat(
            self._beat,
            interval=self.heartbeat_interval,
            name=f"{self.name}-heartbeat",
            using=self.using,
        )
        self._heartbeat.start()
        logger.info(
            "Worker %s started: queues=%s concurrency=%s burst=%s periodic schedules=%s",
            self.name,
            ",".join(self.queues) if self.queues else "all",
            self.concurrency,
            self.burst,
            len(self.periodic.schedules) if self.periodic is not None else 0,
            extra={"action": "worker_start", "worker": self.name},
        )
        listener = Listener.start_for(
            using=self.using,
            queues=self.queues,
            wake=self.producer.wake.set,
            notified=self.producer.claim_on_notify,
        )
        for index in range(self.concurrency):
            runner = threading.Thread(
                target=self._run_jobs, name=f"{self.name}-runner-{index}", daemon=True
            )
            runner.start()
            self._runners.append(runner)
        try:
            if self.periodic is not None and self.burst:
                self.periodic.run_once()  # before the claims: the ticks due now run in this burst
            elif self.periodic is not None:
                self.periodic.start()
            self.producer.run()
        finally:
            self.producer.stopping.set()
            if self.periodic is not None:
                self.periodic.stop()
            # No runner may start a job claimed ahead once the worker stops, not even
            # while the listener takes its time to stop.
            unstarted = self.producer.take_waiting()
            self.ledger.stop_runners(len(self._runners))
            if listener is not None:
                listener.stop()
            self._shut_down(unstarted)
            store.remove_wake_callback(self.producer.wake.set)
            signal_handlers.restore()
            logger.info(
                "Worker %s stopped", self.name, extra={"action": "worker_stop", "worker": self.name}
            )

    def recover_lost_jobs(self, *, now: datetime) -> int:
        """Recover the runs dead workers left (see :meth:`Recovery.recover_lost_jobs`)."""
        return self.recovery.recover_lost_jobs(now=now)

    def _each_pass(self) -> None:
        if self._heartbeat is not None and not self._heartbeat.is_alive():
            logger.error("The heartbeat thread stopped", extra={"action": "heartbeat_dead"})
        self.pruner.prune_if_due(self.clock())

    def _beat(self) -> None:
        """One heartbeat: mark this worker alive, recover lost runs."""
        if self.registration.worker_id is None:
            return
        now = self.clock()
        self.registration.ensure(now)
        self.recovery.recover_lost_jobs(now=now)

    def _run_jobs(self) -> None:
        """A runner thread: run claims until told to stop; it never dies of a job."""
        try:
            while (claim := self.ledger.next_for_runner(self.clock)) is not None:
                began = time.monotonic()
                try:
                    verdict = self.processor.process(claim)
                except BaseException as error:  # a bug of ours: the job fails, the runner lives
                    logger.exception(
                        "Running job %s failed in the worker itself",
                        claim.record.id,
                        extra=jobs.log_fields(claim.record, action="record_error", worker=self.name),
                    )
                    verdict = self._crashed(claim, error)
                self.pace.ran(time.monotonic() - began)
                self.completer.complete(verdict)
                self.producer.wake.set()
        finally:
            connections.close_all()
            self.producer.wake.set()  # a draining worker looks whether any runner is left

    def _crashed(self, claim: Claim, error: BaseException) -> Verdict:
        result = RunResult(
            claim=claim,
            kind=RunKind.CANNOT_RUN,
            finished_at=self.clock(),
            error=error,
            error_text=ErrorText.of(error),
            reason="not retried: the worker could not run it",
        )
        return judge(result, worker_name=self.name)

    # --- shutting down ---------------------------------------------------------------------

    def _shut_down(self, unstarted: list[Claim]) -> None:
        give_up_at = None if self.shutdown_timeout is None else time.monotonic() + self.shutdown_timeout
        if unstarted:
            self._give_back(unstarted)
        self._drain(give_up_at)
        if give_up_at is not None:
            self._give_up_after(give_up_at - time.monotonic())
        if self._stop_now.is_set() or self.abandoned_runs:
            finished, unfinished = self.ledger.close()
        else:
            finished, unfinished = self.ledger.take_finished(), []
        self._store_last(finished)
        if self._heartbeat is not None:
            self._heartbeat.stop()
        # Last before exiting: a run returned to the queue keeps running on its thread
        # until the process ends, so that moment must be as short as it can be.
        for claim in unfinished:
            self._interrupt(claim)
        self.announcer.close(timeout=STOP_NOW_SECONDS if self._stop_now.is_set() else None)
        try:
            self.registration.unregister()
        except outages.OUTAGE_ERRORS:
            logger.exception(
                "Could not unregister worker %s; other workers will forget it",
                self.name,
                extra={"action": "unregister_error", "worker": self.name},
            )
        outages.drop_connection(self.using)

    def _give_up_after(self, seconds: float) -> None:
        timer = threading.Timer(max(seconds, 0.0), self._give_up.set)
        timer.daemon = True
        timer.start()

    def _drain(self, give_up_at: float | None) -> None:
        """Store runs as they finish until no runner runs (or time is up, or a second signal)."""
        backoff = outages.Backoff()
        while self.abandoned_runs and not self._stop_now.is_set():
            if give_up_at is not None and time.monotonic() >= give_up_at:
                return
            self.producer.wake.clear()
            wait = DRAIN_FLUSH_SECONDS
            try:
                self.completer.flush()
                backoff.reset()
            except outages.OUTAGE_ERRORS:
                outages.drop_connection(self.using)
                wait = backoff.next_wait()
            if give_up_at is not None:
                wait = min(wait, max(give_up_at - time.monotonic(), 0.0))
            self.producer.wake.wait(wait)

    def _store_last(self, finished: list[Verdict]) -> None:
        """Store the last finished runs, through an outage until the shutdown gives up."""
        if not finished:
            return
        try:
            stored = outages.persist(
                lambda: store_verdicts(finished, using=self.using),
                what="the outcome of the last finished jobs",
                using=self.using,
                give_up=self._give_up,
            )
        except outages.OUTAGE_ERRORS:
            logger.exception(
                "Could not store the outcomes of jobs %s before exiting; they will be recovered "
                "as lost",
                sorted(verdict.job_id for verdict in finished),
                extra={"action": "record_error", "worker": self.name},
            )
            return
        for verdict in stored:
            if verdict is not None:
                self.announcer.announce(verdict)

    def _give_back(self, unstarted: list[Claim]) -> None:
        try:
            store.return_unstarted(unstarted, using=self.using)
        except outages.OUTAGE_ERRORS:
            logger.exception(
                "Could not return the unstarted jobs %s to the queue; they will be recovered "
                "as lost",
                [claim.record.id for claim in unstarted],
                extra={"action": "interrupt_error", "worker": self.name},
            )

    def _interrupt(self, claim: Claim) -> None:
        """Put a job still running at shutdown back in the queue without using up an attempt."""
        verdict = interrupted(
            claim, now=self.clock(), worker_name=self.name, reason=INTERRUPTED_REASON
        )
        try:
            [stored] = store_verdicts([verdict], using=self.using)
        except outages.OUTAGE_ERRORS:
            logger.exception(
                "Could not return job %s to the queue; it will be recovered as lost",
                claim.record.id,
                extra=jobs.log_fields(claim.record, action="interrupt_error", worker=self.name),
            )
            return
        if stored is not None:
            Announcer(worker_name=self.name).announce(stored)


__all__ = ["DEFAULT_POLLING_INTERVAL", "Worker"]
