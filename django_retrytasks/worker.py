"""The worker: claims due jobs, runs them on its threads, records how each run ended.

A plain class with injected ``clock``; ``manage.py runworker`` only builds one and calls
:meth:`Worker.run`. Claims and outcomes go through :mod:`django_retrytasks.services`,
each in its own short transaction; a task never runs inside one of ours.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import FrameType, ModuleType
from typing import Any

from django.db import IntegrityError, connections
from django.utils import timezone

from django_retrytasks import (
    conf,
    handoff,
    heartbeat,
    notify,
    outages,
    retry,
    services,
    signals,
    tasks,
)
from django_retrytasks.exceptions import GiveUp, Snooze, SnoozeLimitReached, UnknownTask, WorkerLost
from django_retrytasks.jobs import Job as JobRecord
from django_retrytasks.jobs import JobContext
from django_retrytasks.models import Job, JobStatus, Outcome
from django_retrytasks.store import operations
from django_retrytasks.timeouts import Deadline

logger = logging.getLogger(__name__)

DEFAULT_POLLING_INTERVAL = 0.5
#: Wake this long after a job's ``scheduled_at`` so the claim does not come a hair early.
DUE_MARGIN = 0.0003


def error_type_name(error: BaseException) -> str:
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def plain_json(value: Any) -> Any:
    """Return ``value`` if it can be stored as JSON, else ``None``."""
    try:
        return tasks.check_json({"value": value})["value"]
    except TypeError:
        return None


def _django_tasks_backends() -> ModuleType | None:
    """The django.tasks backend module, or ``None`` on Django versions without django.tasks."""
    if importlib.util.find_spec("django.tasks") is None:
        return None
    from django_retrytasks import backends

    return backends


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
        using: str = services.DEFAULT_DB,
        clock: Callable[[], datetime] = timezone.now,
        install_signal_handlers: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if polling_interval <= 0:
            raise ValueError(f"polling_interval must be > 0, got {polling_interval}")
        self.app = app
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency
        self.burst = burst
        self.polling_interval = polling_interval
        self.shutdown_timeout = shutdown_timeout
        # Left None, they come from the settings (see django_retrytasks.conf).
        self.heartbeat_interval, self.heartbeat_timeout = heartbeat.heartbeat_settings(
            heartbeat_interval, heartbeat_timeout
        )
        self.max_consecutive_losses = heartbeat.max_consecutive_losses_setting(
            max_consecutive_losses
        )
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.using = using
        self.clock = clock
        self.install_signal_handlers = install_signal_handlers
        self.worker_id: int | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._buffer = handoff.ClaimBuffer()
        self._finished = handoff.FinishedRuns()
        self._pace = handoff.RunPace(concurrency)
        #: Seconds a job claimed ahead may wait for a runner before it goes back to the queue.
        self.claimed_ahead_max_wait = handoff.PREFETCH_MAX_WAIT
        # Inside run(), the claim loop records the successes of its runners, many in one
        # statement; a job processed outside run() records its own.
        self._pipelined = False
        # job id -> (claim, time.monotonic() when its run began)
        self._running: dict[int, tuple[services.Claim, float]] = {}
        self._in_flight = 0  # claimed and not yet finished running (waiting or running)
        # Held while deciding how many to claim and claiming: by the claim loop, and by the
        # listening thread, which claims on its own connection when a NOTIFY arrives.
        self._claim_lock = threading.Lock()
        # Set when a claim on the listening connection failed: its reply may be lost.
        self._claims_unsure = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._commit_watcher = notify.CommitWatcher.for_database(using)
        self._heartbeat: heartbeat.Heartbeat | None = None
        self._registration_lock = threading.Lock()
        self._signal_received = threading.Event()
        self._last_prune = -math.inf
        self._prune_interval: float | None = None

    # --- lifecycle --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; running jobs finish (within ``shutdown_timeout``), then :meth:`run` returns."""
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        # Read once: the claim loop would otherwise read Django's settings on every pass.
        self._prune_interval = conf.get_settings().prune_interval
        previous_handlers = self._install_signals() if self.install_signal_handlers else {}
        services.add_wake_callback(self._wake.set)
        self._register()
        self._beat()  # lost runs are recovered before the first claim (also in burst mode)
        self._heartbeat = heartbeat.Heartbeat(
            self._beat,
            interval=self.heartbeat_interval,
            name=f"{self.name}-heartbeat",
            using=self.using,
        )
        self._heartbeat.start()
        self._pipelined = True
        logger.info(
            "Worker %s started: queues=%s concurrency=%s burst=%s",
            self.name,
            ",".join(self.queues) if self.queues else "all",
            self.concurrency,
            self.burst,
            extra={"action": "worker_start", "worker": self.name},
        )
        listener = notify.Listener.start_for(
            using=self.using,
            queues=self.queues,
            wake=self._wake.set,
            notified=self._claim_on_notify,
        )
        for index in range(self.concurrency):
            thread = threading.Thread(
                target=self._runner, name=f"{self.name}-runner-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        try:
            self._claim_until_stopped()
        finally:
            self._stopping.set()
            with self._claim_lock:  # a claim on the listening thread is handed over first
                # No runner may start a job claimed ahead once the worker stops, not even
                # while the listener takes its time to stop.
                unstarted = self._buffer.take_waiting()
                self._buffer.stop_runners(len(self._threads))
            if listener is not None:
                listener.stop()
            self._shut_down(unstarted)
            services.remove_wake_callback(self._wake.set)
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            self._signal_received.set()  # lets the watcher thread end
            logger.info(
                "Worker %s stopped", self.name, extra={"action": "worker_stop", "worker": self.name}
            )

    def _loop(self) -> None:
        while not self._stopping.is_set():
            # Cleared before claiming: a runner that ends, a NOTIFY or a local defer from
            # now on makes the wait below return at once.
            self._wake.clear()
            self._housekeeping()
            self._record_finished()
            self._return_stale_claims()
            if self._claims_unsure.is_set():
                self._claims_unsure.clear()
                self._release_unacknowledged_claims()
            now = self.clock()
            with self._claim_lock:
                wanted, for_runners, held_before = self._claims_wanted()
                claimed = self._claim(now, wanted, for_runners) if wanted > 0 else None
            if claimed is None:
                self._wake.wait(self.polling_interval)  # enough held: wait for a runner
                continue
            if len(claimed) == wanted:
                continue  # as many as it should hold
            if not claimed and self.burst and held_before == 0:
                return
            if self.burst:
                # Only jobs due now count: wait for a runner (its retry may be due at once).
                self._wake.wait(self.polling_interval)
                continue
            self._wait_idle(self._idle_wait(now))

    def _claims_wanted(self) -> tuple[int, int, int]:
        """How many jobs to claim now, how many of those for idle runners, how many are held.

        Held: claimed and not yet recorded (waiting for a runner, running, or returned and
        waiting for the claim loop to record them). For short jobs the worker holds more
        than its runners (see :class:`handoff.RunPace`) and claims again in batches: when a
        runner would otherwise go idle, or when half of the jobs claimed ahead are taken.
        """
        now = time.monotonic()
        with self._lock:
            in_flight = self._in_flight
            running = len(self._running)
            longest = max((now - began for _, began in self._running.values()), default=0.0)
        held = in_flight + len(self._finished)
        waiting = in_flight - running
        target = self._pace.target(running_for=longest)
        ahead = target - self.concurrency
        idle = self.concurrency - running
        if held >= target or (waiting >= idle and waiting > ahead // 2):
            return 0, 0, held
        return target - held, max(idle - waiting, 0), held

    def _claim(
        self, now: datetime, wanted: int, for_runners: int, connection: Any = None
    ) -> list[services.Claim]:
        """Claim up to ``wanted`` jobs and hand them to the runners.

        The first ``for_runners`` start at once; the rest are claimed ahead and marked so
        for recovery (a worker that dies holding them may never have started them).
        """
        claimed = services.claim_jobs(
            now=now,
            limit=wanted,
            for_runners=for_runners,
            queues=self.queues,
            worker_id=self.worker_id,
            using=self.using,
            connection=connection,
        )
        self._hand_over(claimed)
        return claimed

    def _hand_over(self, claimed: list[services.Claim]) -> None:
        if not claimed:
            return
        with self._lock:
            self._in_flight += len(claimed)
        self._buffer.put(claimed)
        # Let a runner take the GIL now: this thread's next steps are Python work that
        # would otherwise hold it for up to the interpreter's switch interval (5 ms).
        time.sleep(0)

    def _claim_on_notify(self, connection: Any) -> None:
        """A job was stored waiting: claim on the listening connection, which is awake.

        Called on the listening thread. When the claim loop is claiming already, or the
        runners are busy, the loop takes it from there.
        """
        if self._stopping.is_set() or not self._claim_lock.acquire(blocking=False):
            self._wake.set()
            return
        try:
            wanted, for_runners, _ = self._claims_wanted()
            if wanted <= 0:
                return  # a runner that finishes wakes the claim loop
            claimed = self._claim(self.clock(), wanted, for_runners, connection)
            if len(claimed) == wanted:
                self._wake.set()  # more may be waiting
        except Exception as error:
            # The claim loop claims instead, and returns jobs whose claim committed while
            # the reply was lost; the listener reconnects if its connection broke.
            logger.debug("Claiming on the listening connection failed: %s", error)
            self._claims_unsure.set()
            self._wake.set()
        finally:
            self._claim_lock.release()

    def _record_finished(self) -> None:
        """Record the successes the runners handed over since the last pass, in one statement."""
        finished = self._finished.take()
        if not finished:
            return
        try:
            recorded = services.record_successes(
                [(run.claim, run.report) for run in finished], using=self.using
            )
        except outages.OUTAGE_ERRORS:
            self._finished.put_back(finished)  # written once the database is back
            raise
        except Exception:
            # Not an outage: writing them again would fail again. They stay running
            # and are recovered as lost runs (and retried) by the heartbeat.
            logger.exception(
                "Could not record the successes of jobs %s; they will be recovered",
                [run.claim.record.id for run in finished],
                extra={"action": "record_error", "worker": self.name},
            )
            return
        for run, stored in zip(finished, recorded, strict=True):
            run.then(stored)

    def _return_stale_claims(self) -> None:
        """Give back jobs claimed ahead that waited too long (a job before them ran slow)."""
        stale = self._buffer.take_waiting(longer_than=self.claimed_ahead_max_wait)
        if not stale:
            return
        with self._lock:
            self._in_flight -= len(stale)
        # Lost with an outage, they are still ``doing`` for us and unknown to the worker:
        # the outage handling returns them then (see _release_unacknowledged_claims).
        services.return_unstarted(stale, using=self.using)

    def _wait_idle(self, seconds: float) -> None:
        """Sleep until woken or ``seconds`` passed; on SQLite, also until another commit."""
        if self._commit_watcher is None:
            self._wake.wait(seconds)
        else:
            self._commit_watcher.wait(self._wake, seconds)

    def _idle_wait(self, now: datetime) -> float:
        """Seconds until the next waiting job is due, ``polling_interval`` at most.

        Called with free slots after a claim that took every job due at ``now``, so a
        retry due in 80 ms is started on time rather than at the next poll.
        """
        earliest = services.next_due_at(after=now, queues=self.queues, using=self.using)
        if earliest is None:
            return self.polling_interval
        seconds = (earliest - self.clock()).total_seconds() + DUE_MARGIN
        return min(max(seconds, 0.0), self.polling_interval)

    def _shut_down(self, unstarted: list[services.Claim]) -> None:
        deadline = None if self.shutdown_timeout is None else self.shutdown_timeout
        if unstarted:
            with self._lock:
                self._in_flight -= len(unstarted)
            self._give_back_at_shutdown(unstarted)
        waited_until = None if deadline is None else timezone.now() + timedelta(seconds=deadline)
        for thread in self._threads:
            if waited_until is None:
                thread.join()
            else:
                thread.join(max((waited_until - timezone.now()).total_seconds(), 0))
        self._record_finished_at_shutdown(waited_until)
        self._pipelined = False
        if self._heartbeat is not None:
            self._heartbeat.stop()
        # Last before exiting: a run returned to the queue keeps running on its thread
        # until the process ends, so that moment must be as short as it can be.
        with self._lock:
            unfinished = [claim for claim, _ in self._running.values()]
        for claim in unfinished:
            try:
                self._interrupt(claim)
            except outages.OUTAGE_ERRORS:
                logger.exception(
                    "Could not return job %s to the queue; it will be recovered as lost",
                    claim.record.id,
                    extra=self._log_extra(claim, action="interrupt_error"),
                )
        try:
            self._unregister()
        except outages.OUTAGE_ERRORS:
            logger.exception(
                "Could not unregister worker %s; other workers will forget it",
                self.name,
                extra={"action": "unregister_error", "worker": self.name},
            )
        outages.drop_connection(self.using)

    def _give_back_at_shutdown(self, unstarted: list[services.Claim]) -> None:
        try:
            services.return_unstarted(unstarted, using=self.using)
        except outages.OUTAGE_ERRORS:
            logger.exception(
                "Could not return the unstarted jobs %s to the queue; they will be recovered "
                "as lost",
                [claim.record.id for claim in unstarted],
                extra={"action": "interrupt_error", "worker": self.name},
            )

    def _record_finished_at_shutdown(self, waited_until: datetime | None) -> None:
        """Record the last successes, through an outage until the shutdown timeout."""
        give_up = threading.Event()
        timer = None
        if waited_until is not None:
            seconds = max((waited_until - timezone.now()).total_seconds(), 0.0)
            timer = threading.Timer(seconds, give_up.set)
            timer.daemon = True
            timer.start()
        try:
            outages.persist(
                self._record_finished,
                what="the outcome of the last finished jobs",
                using=self.using,
                give_up=give_up,
            )
        except outages.OUTAGE_ERRORS:
            logger.exception(
                "Could not record the successes of jobs %s before the shutdown timeout; "
                "they will be recovered as lost",
                sorted(self._finished.ids()),
                extra={"action": "record_error", "worker": self.name},
            )
        finally:
            if timer is not None:
                timer.cancel()

    def _claim_until_stopped(self) -> None:
        """Run the claim loop; through a database outage, back off and reconnect."""
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
                if self._stopping.wait(wait):
                    return
            except IntegrityError:
                # A worker that took us for dead (silent past the heartbeat timeout) deleted
                # our row while this claim ran; the claim was rolled back. Register again.
                self._ensure_registered(self.clock())
                continue
            try:
                self._release_unacknowledged_claims()
            except outages.OUTAGE_ERRORS:
                outages.drop_connection(self.using)
                continue  # still down: the claim loop fails again and waits longer
            backoff.reset()

    def _release_unacknowledged_claims(self) -> None:
        """Requeue jobs a failed claim marked ``doing`` for us while its reply was lost."""
        if self.worker_id is None:
            return
        with self._claim_lock:  # no claim is half handed over while we look
            self._release_unknown_claims()

    def _release_unknown_claims(self) -> None:
        assert self.worker_id is not None
        known = self._known_claim_ids()
        if known is None:
            return  # runners are busy handing claims over; look again after the next outage
        released = services.release_unstarted(
            worker_id=self.worker_id, keep=known, using=self.using
        )
        if released:
            logger.warning(
                "Returned jobs %s to the queue: claimed while the connection broke, never run",
                released,
                extra={"action": "claims_released", "worker": self.name},
            )

    def _known_claim_ids(self) -> set[int] | None:
        """Ids of the jobs this worker holds (queued for a runner or running), once consistent."""
        for _ in range(200):
            with self._lock:
                running = set(self._running)
                in_flight = self._in_flight
            known = running | self._buffer.ids()
            # A claim between the buffer and the running table is in neither: wait for it.
            if len(known) >= in_flight:
                # Read last: a runner hands its success over before leaving the table.
                return known | self._finished.ids()
            time.sleep(0.005)
        return None

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        # The handler runs on the main thread between two bytecodes, possibly while that
        # thread holds the lock inside ``self._wake`` (Event.wait). Setting that event from
        # the handler would then deadlock, so the handler only sets an event the main thread
        # never waits on, and a watcher thread does the stopping.
        received = self._signal_received

        def watch() -> None:
            received.wait()
            self.stop()

        threading.Thread(target=watch, name=f"{self.name}-signals", daemon=True).start()

        def handle(signum: int, frame: FrameType | None) -> None:
            if received.is_set():
                logger.warning(
                    "Second signal %s: exiting at once; running jobs will be recovered",
                    signum,
                    extra={"action": "worker_exit_now", "worker": self.name},
                )
                os._exit(0)
            logger.info(
                "Signal %s: finishing running jobs, then stopping",
                signum,
                extra={"action": "worker_stopping", "worker": self.name},
            )
            received.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handle)
        return previous

    # --- registration, heartbeat and recovery -------------------------------------------

    def _register(self) -> None:
        self.worker_id = services.register_worker(
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self.queues or [],
            concurrency=self.concurrency,
            now=self.clock(),
            using=self.using,
        )

    def _unregister(self) -> None:
        if self.worker_id is not None:
            services.unregister_worker(self.worker_id, using=self.using)

    def _housekeeping(self) -> None:
        """Called by the claim loop; the heartbeat runs on its own thread (see :meth:`_beat`)."""
        if self._heartbeat is not None and not self._heartbeat.is_alive():
            logger.error("The heartbeat thread stopped", extra={"action": "heartbeat_dead"})
        if self._prune_interval is not None:
            self._prune_if_due(self.clock())

    def _beat(self) -> None:
        """One heartbeat (on the heartbeat thread): mark this worker alive, recover lost runs."""
        if self.worker_id is None:
            return
        now = self.clock()
        self._ensure_registered(now)
        self.recover_lost_jobs(now=now)

    def _ensure_registered(self, now: datetime) -> None:
        """Heartbeat; register again if another worker took us for dead and forgot us."""
        with self._registration_lock:  # the claim loop and the heartbeat thread both call this
            if services.heartbeat(self.worker_id or 0, now=now, using=self.using):
                return
            logger.warning(
                "Worker %s was taken for dead (silent for longer than the heartbeat timeout); "
                "registering again",
                self.name,
                extra={"action": "worker_reregister", "worker": self.name},
            )
            self._register()

    def _prune_if_due(self, now: datetime) -> None:
        """Delete one small batch of expired finished jobs every RETRYTASKS_PRUNE_INTERVAL."""
        interval = self._prune_interval
        if interval is None or time.monotonic() - self._last_prune < interval:
            return
        self._last_prune = time.monotonic()
        try:
            operations.prune(now=now, max_batches=1, using=self.using)
        except Exception:
            # Retention is housekeeping: a failure is logged and tried again next interval.
            logger.exception(
                "Pruning finished jobs failed", extra={"action": "prune_error", "worker": self.name}
            )

    def recover_lost_jobs(self, *, now: datetime) -> int:
        """Judge runs left ``doing`` by dead workers as ``WorkerLost`` failures; return how many.

        A worker is dead when its last heartbeat is older than ``heartbeat_timeout``. Each
        lost run is recorded as an attempt with outcome ``lost``, counted in ``attempts``,
        and judged by the task's retry strategy like any failure; a job lost too many times
        in a row is held (``max_consecutive_losses``). A job the dead worker had claimed
        ahead may never have started: it goes back to the queue without using an attempt.
        """
        stale_before = now - timedelta(seconds=self.heartbeat_timeout)
        recovered = 0
        for lost in services.lost_runs(stale_before=stale_before, using=self.using):
            if not services.take_lost_run(lost, worker_id=self.worker_id, using=self.using):
                continue  # another live worker is recovering it
            claim = lost.claim
            worker_text = f"worker {lost.worker_name!r}" if lost.worker_name else "its worker"
            logger.warning(
                "Job %s was running on %s, which stopped sending heartbeats: recovering it",
                claim.record.id,
                worker_text,
                extra=self._log_extra(claim, action="job_recovered"),
            )
            signals.send(
                signals.job_recovered,
                sender=self.app.tasks.get(claim.record.task_name),
                job=claim.record,
            )
            error = WorkerLost(
                f"{worker_text} stopped (no heartbeat for over {self.heartbeat_timeout:g}s) "
                "before recording the outcome of this run"
            )
            report = services.RunReport(
                outcome=Outcome.LOST,
                finished_at=now,
                worker_name=lost.worker_name,
                error_type=error_type_name(error),
                error_message=str(error),
            )
            if lost.claimed_ahead:
                report.outcome = Outcome.INTERRUPTED  # like a run returned at shutdown
                result = services.record_lost(
                    lost,
                    report,
                    retry.RetryDecision(),
                    now=now,
                    max_consecutive_losses=self.max_consecutive_losses,
                    decision_text="returned to the queue: claimed ahead by a worker that "
                    "stopped, so it may never have started; no attempt used",
                    counts=False,
                    using=self.using,
                )
            else:
                result = self._judge_failure(claim, report, error, now=now, lost=lost)
            if result is not None:
                recovered += 1
        services.forget_dead_workers(stale_before=stale_before, using=self.using)
        return recovered

    # --- running jobs ---------------------------------------------------------------------

    def _runner(self) -> None:
        try:
            while True:
                claim = self._buffer.get()
                if claim is None:
                    return
                claim = claim.run_from(self.clock())
                began = time.monotonic()
                with self._lock:
                    self._running[claim.record.id] = (claim, began)
                try:
                    self.process(claim)
                except BaseException:
                    # Whatever escapes, this thread must live on: a dead runner would keep
                    # its slot counted as busy and the worker would stop taking jobs.
                    logger.exception(
                        "Could not record the outcome of job %s; it stays running and will be "
                        "recovered",
                        claim.record.id,
                        extra={"action": "record_error", "job_id": claim.record.id},
                    )
                finally:
                    self._pace.ran(time.monotonic() - began)
                    with self._lock:
                        self._running.pop(claim.record.id, None)
                        self._in_flight -= 1
                    self._wake.set()
        finally:
            connections.close_all()

    def process(self, claim: services.Claim) -> None:
        """Run one claimed job and record its outcome."""
        if claim.backend:
            self._process_django_task(claim)
            return
        record = claim.record
        task = self.app.tasks.get(record.task_name)
        log_extra = self._log_extra(claim)
        if task is None:
            error = UnknownTask(
                f"no task is registered under the name {record.task_name!r}; "
                "only registered tasks run"
            )
            self.fail_without_running(claim, error, reason="not retried: unknown task")
            return
        logger.debug("Job %s started", record.id, extra={**log_extra, "action": "job_start"})
        signals.send(signals.job_started, sender=task, job=record, worker_name=self.name)
        deadline = Deadline(task.timeout)
        try:
            with deadline:
                if task.pass_context:
                    context = JobContext(
                        job=record,
                        task=task,
                        worker_name=self.name,
                        should_abort=functools.partial(
                            services.abort_requested, record.id, using=self.using
                        ),
                    )
                    result = task.func(context, **record.task_kwargs)
                else:
                    result = task.func(**record.task_kwargs)
            if deadline.expired:
                # The task swallowed the timeout or was stuck in C code: still too late.
                raise deadline.error()
        except BaseException as caught:  # the job boundary: every failure is recorded
            self.record_failed_run(
                claim, deadline.error() if deadline.expired else caught, task=task
            )
        else:
            self.record_successful_run(claim, plain_json(result), task=task)
        finally:
            self._check_connection()

    def record_successful_run(
        self,
        claim: services.Claim,
        return_value: Any,
        *,
        task: tasks.Task | None = None,
        then: Callable[[datetime], Any] | None = None,
    ) -> None:
        """Record that the run returned ``return_value`` (JSON).

        Once it is stored, ``job_succeeded`` is sent and ``then`` called with when the run
        finished; neither happens when the outcome was fenced off (the job is no longer
        running for us). Inside :meth:`run` the claim loop stores it, together with other
        runs that returned meanwhile, and this returns at once.
        """
        report = services.RunReport(
            outcome=Outcome.SUCCEEDED,
            finished_at=self.clock(),
            worker_name=self.name,
            return_value=return_value,
        )
        finished = handoff.FinishedRun(
            claim,
            report,
            then=functools.partial(self._after_success, claim, report, task, then),
        )
        if self._pipelined:
            self._finished.add(finished)
            return
        finished.then(
            self._persist(claim, lambda: services.record_success(claim, report, using=self.using))
        )

    def _after_success(
        self,
        claim: services.Claim,
        report: services.RunReport,
        task: tasks.Task | None,
        then: Callable[[datetime], Any] | None,
        stored: bool,
    ) -> None:
        if not stored:
            return
        record = claim.record
        duration = (report.finished_at - claim.run_started_at).total_seconds()
        logger.info(
            "Job %s succeeded in %.3gs",
            record.id,
            duration,
            extra={**self._log_extra(claim), "action": "job_success", "duration": duration},
        )
        signals.send(
            signals.job_succeeded,
            sender=task,
            job=record.evolve(status=JobStatus.SUCCEEDED, attempts=record.attempts + 1),
            return_value=report.return_value,
            duration=duration,
        )
        if then is not None:
            then(report.finished_at)

    def record_failed_run(
        self, claim: services.Claim, error: BaseException, *, task: tasks.Task | None = None
    ) -> services.FailureResult | None:
        """Record the run that raised ``error``; call it from the ``except`` block."""
        finished_at = self.clock()
        report = services.RunReport(
            outcome=Outcome.FAILED,
            finished_at=finished_at,
            worker_name=self.name,
            error_type=error_type_name(error),
            error_message=str(error),
            traceback=traceback.format_exc(),
        )
        if services.abort_requested(claim.record.id, using=self.using):
            return self._record_aborted(claim, report)
        return self._judge_failure(claim, report, error, now=finished_at, task=task)

    def _record_aborted(
        self, claim: services.Claim, report: services.RunReport
    ) -> services.FailureResult | None:
        """A run that raised after an operator asked it to stop ends ``aborted``, not retried."""
        report.outcome = Outcome.ABORTED
        result = services.record_failure(
            claim,
            report,
            None,
            now=report.finished_at,
            decision_text="not retried: aborted at an operator's request",
            final_status=JobStatus.ABORTED,
            using=self.using,
        )
        logger.warning(
            "Job %s aborted at an operator's request",
            claim.record.id,
            extra={**self._log_extra(claim), "action": "job_aborted"},
        )
        return result

    def fail_without_running(self, claim: services.Claim, error: Exception, *, reason: str) -> None:
        """End a job whose task cannot run at all (unknown task): ``failed``, never retried."""
        record = claim.record
        report = services.RunReport(
            outcome=Outcome.FAILED,
            finished_at=self.clock(),
            worker_name=self.name,
            error_type=error_type_name(error),
            error_message=str(error),
        )
        self._persist(
            claim,
            lambda: services.record_failure(
                claim, report, None, now=report.finished_at, decision_text=reason, using=self.using
            ),
        )
        logger.error(
            "Job %s failed: %s",
            record.id,
            error,
            extra={**self._log_extra(claim), "action": "job_unknown_task"},
        )
        signals.send(
            signals.job_failed,
            sender=None,
            job=record.evolve(status=JobStatus.FAILED, attempts=record.attempts + 1),
            exception=error,
            reason=reason,
        )

    # --- jobs enqueued through Django's task framework (django.tasks, Django >= 6.0) -------
    # backends.py finds their Task, calls it and sends django.tasks' signals; outcomes are
    # recorded here like any other job's.

    def _process_django_task(self, claim: services.Claim) -> None:
        backends = _django_tasks_backends()
        if backends is None:
            error = UnknownTask(
                f"job {claim.record.id} was enqueued through django.tasks (backend "
                f"{claim.backend!r}), which this Django version does not have"
            )
            self.fail_without_running(claim, error, reason="not retried: no django.tasks")
            return
        try:
            backends.run_job(self, claim)
        finally:
            self._check_connection()

    def _retry_strategy(
        self, claim: services.Claim, task: tasks.Task | None
    ) -> retry.BaseRetryStrategy | None:
        if claim.backend:
            backends = _django_tasks_backends()
            return backends.retry_strategy_for(claim) if backends else None
        return task.retry if task is not None else None

    def _django_task_finished(self, claim: services.Claim) -> None:
        """Send django.tasks' ``task_finished`` for a job that just failed for good."""
        backends = _django_tasks_backends()
        if backends is not None:
            backends.send_task_finished(claim, using=self.using)

    def _judge_failure(
        self,
        claim: services.Claim,
        report: services.RunReport,
        error: BaseException,
        *,
        now: datetime,
        task: tasks.Task | None = None,
        lost: services.LostRun | None = None,
    ) -> services.FailureResult | None:
        """Ask the task's strategy about a failure (outside any transaction), then record both.

        A :class:`Snooze` puts the job back without using up an attempt (until the
        task's ``max_snoozes``); a :class:`GiveUp` ends it failed whatever the strategy.
        A ``lost`` run (found by recovery) is not retried here through a database outage:
        the next heartbeat looks again. Returns ``None`` when nothing was written.
        """
        record = claim.record
        if task is None and not claim.backend:
            task = self.app.tasks.get(record.task_name)
        strategy = self._retry_strategy(claim, task)
        decision: retry.RetryDecision | None = None
        decision_text = ""
        snoozed = False
        if isinstance(error, Snooze):
            snoozed, decision, decision_text, error = self._snooze(claim, report, error, task)
        if snoozed:
            pass
        elif isinstance(error, GiveUp):
            decision_text = f"not retried: the task gave up: {error.reason}"
        else:
            try:
                decision = retry.decide(strategy, exception=error, job=record.evolve(failed_at=now))
            except Exception as strategy_error:
                decision_text = (
                    f"not retried: the retry strategy raised {error_type_name(strategy_error)}: "
                    f"{strategy_error}"
                )
                report.traceback += "\nThe retry strategy raised:\n" + traceback.format_exc()
            if decision is None and not decision_text:
                decision_text = (
                    "not retried: the task has no retry strategy"
                    if strategy is None
                    else "not retried: the retry strategy gave up"
                )
        if lost is not None:
            result = services.record_lost(
                lost,
                report,
                decision,
                now=now,
                max_consecutive_losses=self.max_consecutive_losses,
                decision_text=decision_text,
                using=self.using,
            )
        else:
            result = self._persist(
                claim,
                lambda: services.record_failure(
                    claim,
                    report,
                    decision,
                    now=now,
                    decision_text=decision_text,
                    counts=not snoozed,
                    snoozed=snoozed,
                    using=self.using,
                ),
            )
        if result is None:
            return None
        after = self._after_failure(record, result, decision, counted=not snoozed)
        log_extra = {**self._log_extra(claim), "outcome": report.outcome}
        wait = (result.retry_at - now).total_seconds() if result.retry_at else 0.0
        if result.clamped:
            logger.warning(
                "Job %s: retry delay too large, scheduled at %s",
                record.id,
                result.retry_at,
                extra={**log_extra, "action": "job_retry_clamped"},
            )
        if snoozed:
            logger.info(
                "Job %s snoozed; runs again in %.3gs without using up an attempt",
                record.id,
                wait,
                extra={**log_extra, "action": "job_snoozed", "wait": wait},
            )
            signals.send(
                signals.job_snoozed,
                sender=task,
                job=after,
                retry_at=result.retry_at,
                snoozes=self._snoozes_of(record.id),
            )
        elif result.status == JobStatus.TODO:
            logger.info(
                "Job %s failed (%s: %s); retry in %.3gs",
                record.id,
                report.error_type,
                report.error_message,
                wait,
                extra={**log_extra, "action": "job_error_retry", "wait": wait},
            )
            signals.send(
                signals.job_retry_scheduled,
                sender=task,
                job=after,
                exception=error,
                decision=decision,
                retry_at=result.retry_at,
            )
        else:
            logger.error(
                "Job %s failed for good (%s: %s): %s\n%s",
                record.id,
                report.error_type,
                report.error_message,
                result.decision_text,
                report.traceback,
                extra={**log_extra, "action": "job_error", "reason": result.decision_text},
            )
            signals.send(
                signals.job_failed,
                sender=task,
                job=after,
                exception=error,
                reason=result.decision_text,
            )
            if task is not None and task.on_final_failure is not None:
                self._call_final_failure_hook(task, after, error)
            if claim.backend:
                self._django_task_finished(claim)
        return result

    def _persist[T](self, claim: services.Claim, write: Callable[[], T]) -> T:
        """Write the outcome of a run, waiting through a database outage until it is written."""
        return outages.persist(
            write, what=f"the outcome of job {claim.record.id}", using=self.using
        )

    def _snooze(
        self,
        claim: services.Claim,
        report: services.RunReport,
        request: Snooze,
        task: tasks.Task | None,
    ) -> tuple[bool, retry.RetryDecision | None, str, BaseException]:
        """Grant a snooze, or turn it into a :class:`SnoozeLimitReached` failure past the cap."""
        limit = conf.get_settings().max_snoozes
        if task is not None and task.max_snoozes is not None:
            limit = task.max_snoozes
        taken = self._snoozes_of(claim.record.id)
        if taken < limit:
            report.outcome = Outcome.SNOOZED
            report.error_type = ""
            report.error_message = ""
            report.traceback = ""
            text = (
                f"snoozed for {request.seconds:g}s (snooze {taken + 1} of {limit}); no attempt used"
            )
            return True, retry.RetryDecision(retry_in={"seconds": request.seconds}), text, request
        error = SnoozeLimitReached(
            f"the task snoozed {taken} times, its limit (max_snoozes={limit}); "
            "this snooze counts as a failed run"
        )
        report.error_type = error_type_name(error)
        report.error_message = str(error)
        return False, None, "", error

    def _snoozes_of(self, job_id: int) -> int:
        taken = Job.objects.using(self.using).filter(pk=job_id).values_list("snoozes", flat=True)
        return taken.first() or 0

    @staticmethod
    def _after_failure(
        record: JobRecord,
        result: services.FailureResult,
        decision: retry.RetryDecision | None,
        *,
        counted: bool,
    ) -> JobRecord:
        """The job record as :func:`services.record_failure` left it."""
        changes: dict[str, Any] = {
            "status": result.status,
            "attempts": record.attempts + (1 if counted else 0),
        }
        if result.status == JobStatus.TODO:
            changes["scheduled_at"] = result.retry_at
            if decision is not None:
                for name in ("priority", "queue", "lock"):
                    if getattr(decision, name) is not None:
                        changes[name] = getattr(decision, name)
        return record.evolve(**changes)

    def _call_final_failure_hook(
        self, task: tasks.Task, job: JobRecord, error: BaseException
    ) -> None:
        assert task.on_final_failure is not None
        try:
            task.on_final_failure(job, error)
        except Exception:
            logger.exception(
                "The on_final_failure hook of task %s raised (ignored; the job stays failed)",
                task.name,
                extra=services.log_fields(job, action="hook_error", worker=self.name),
            )

    def _interrupt(self, claim: services.Claim) -> None:
        """Put a job still running at shutdown back in the queue without using up an attempt."""
        now = self.clock()
        report = services.RunReport(
            outcome=Outcome.INTERRUPTED,
            finished_at=now,
            worker_name=self.name,
            error_type="Interrupted",
            error_message="the worker shut down before the run finished",
        )
        decision = retry.RetryDecision()
        services.record_failure(
            claim,
            report,
            decision,
            now=now,
            decision_text="returned to the queue: worker shutdown",
            counts=False,
            using=self.using,
        )
        logger.warning(
            "Job %s interrupted by shutdown and returned to the queue",
            claim.record.id,
            extra={**self._log_extra(claim), "action": "job_interrupted"},
        )

    def _check_connection(self) -> None:
        """Drop this thread's connection if the task left it broken; keep it open otherwise.

        Unlike a web request we keep the connection across jobs whatever ``CONN_MAX_AGE``
        says: reconnecting for every job would cost more than most jobs.
        """
        for connection in connections.all(initialized_only=True):
            if connection.errors_occurred:
                if not connection.is_usable():
                    connection.close()
                connection.errors_occurred = False

    def _log_extra(self, claim: services.Claim, **more: Any) -> dict[str, Any]:
        return services.log_fields(claim.record, worker=self.name, **more)
