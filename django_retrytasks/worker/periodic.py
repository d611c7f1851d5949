"""The periodic role: defers the jobs of periodic schedules at their ticks, on a thread of its own.

Every worker runs it (unless started with ``--no-periodic``); the database keeps it to one
job per tick (see :mod:`django_retrytasks.store.periodic`). The thread sleeps until the next
tick of any schedule, looking at the clock at least every :data:`WAKE_SECONDS`, so a
seconds-level schedule ticks on time and a moved clock is noticed. Its own database
connection is the thread's; an outage is waited out, and the ticks it delayed are deferred
afterwards while they are at most ``RETRYTASKS_PERIODIC_MAX_DELAY`` seconds old.

Each schedule has a cursor, the last tick this worker handled, from which the next ticks are
found. It starts at the schedule's last deferred tick (or when the schedule became active),
so ticks missed while no worker ran are caught up when one starts, unless they are too old.
Tests drive :meth:`PeriodicDeferrer.defer_due` with a hand-moved clock.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.db import connections

from django_retrytasks import conf, cron
from django_retrytasks.periodic import PeriodicSchedule
from django_retrytasks.store import periodic as store
from django_retrytasks.worker import outages

logger = logging.getLogger(__name__)

#: The longest the thread sleeps without looking at the clock.
WAKE_SECONDS = 1.0


@dataclass
class _Cursor:
    """Where one schedule stands for this worker."""

    schedule: PeriodicSchedule
    zone: ZoneInfo
    row_id: int
    #: The last tick handled (deferred here or elsewhere, skipped), or where to start.
    after: int
    #: The first tick after :attr:`after`, found once per move of the cursor.
    next_tick: int

    def move_to(self, tick: int) -> None:
        self.after = tick
        self.next_tick = cron.next_tick(self.schedule.cron, self.zone, tick)


@dataclass(frozen=True)
class Deferred:
    """One tick handled by :meth:`PeriodicDeferrer.defer_due`."""

    schedule: PeriodicSchedule
    tick: int
    #: ``None`` when the job could not be made (see the log).
    result: store.TickResult | None
    job_id: int | None = None


class PeriodicDeferrer:
    """Defers the ticks of ``schedules`` as ``clock`` reaches them."""

    def __init__(
        self,
        *,
        schedules: Sequence[PeriodicSchedule],
        clock: Callable[[], datetime],
        worker_name: str = "",
        using: str = store.DEFAULT_DB,
        max_delay: float | None = None,
    ) -> None:
        self.schedules = list(schedules)
        self.clock = clock
        self.worker_name = worker_name
        self.using = using
        self.max_delay = conf.get_settings().periodic_max_delay if max_delay is None else max_delay
        self._cursors: list[_Cursor] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one pass ------------------------------------------------------------------------------

    def defer_due(self) -> list[Deferred]:
        """Defer every tick due at the clock's time; skip (and log) ticks older than the
        max delay. The first call places each schedule after its last deferred tick."""
        cursors = self._cursors if self._cursors is not None else self._place()
        now = self.clock()
        handled: list[Deferred] = []
        for cursor in cursors:
            if cursor.next_tick > now.timestamp():
                continue
            due = cron.due_ticks(
                cursor.schedule.cron,
                cursor.zone,
                after=cursor.after,
                now=now.timestamp(),
                max_delay=self.max_delay,
            )
            if due.skipped_from is not None:
                self._log_skipped(cursor.schedule, due.skipped_from, due.resume_after)
                cursor.move_to(due.resume_after)
            for tick in due.ticks:
                handled.append(self._defer(cursor, tick, now))
                cursor.move_to(tick)
        return handled

    def seconds_until_next_tick(self) -> float:
        """Seconds from the clock's time to the next tick of any schedule (0 when one is due)."""
        if not self._cursors:
            return WAKE_SECONDS
        soonest = min(cursor.next_tick for cursor in self._cursors)
        return max(soonest - self.clock().timestamp(), 0.0)

    def _place(self) -> list[_Cursor]:
        rows = store.sync_schedules(
            [schedule.key for schedule in self.schedules], now=self.clock(), using=self.using
        )
        cursors = []
        for schedule in self.schedules:
            row = rows[schedule.key]
            # A tick at or before the moment the schedule became active is never deferred.
            after = max(math.floor(row.active_since.timestamp()), row.last_tick or 0)
            zone = schedule.zone()
            cursors.append(
                _Cursor(
                    schedule=schedule,
                    zone=zone,
                    row_id=row.pk,
                    after=after,
                    next_tick=cron.next_tick(schedule.cron, zone, after),
                )
            )
        self._cursors = cursors
        return cursors

    def _defer(self, cursor: _Cursor, tick: int, now: datetime) -> Deferred:
        schedule = cursor.schedule
        try:
            outcome = store.defer_tick(
                cursor.row_id,
                tick,
                lambda: schedule.job_spec(tick),
                now=now,
                using=self.using,
            )
        except outages.OUTAGE_ERRORS:
            raise  # the cursor stays: the tick is tried again while it is recent enough
        except Exception as error:  # a job the checks refuse: this tick is lost, not the next
            logger.exception(
                "Could not defer tick %s of schedule %s: %s",
                cron.moment(tick, cursor.zone).isoformat(),
                schedule,
                error,
                extra=self._log_fields(schedule, tick, action="periodic_error"),
            )
            return Deferred(schedule, tick, None)
        if outcome.result is store.TickResult.DEFERRED:
            assert outcome.job_id is not None and outcome.job is not None
            logger.info(
                "Periodic job %s deferred: %s at %s",
                outcome.job_id,
                schedule,
                cron.moment(tick, cursor.zone).isoformat(),
                extra=store.log_fields(
                    outcome.job_id,
                    outcome.job,
                    **self._log_fields(schedule, tick, action="periodic_deferred"),
                ),
            )
        elif outcome.result is store.TickResult.QUEUEING_LOCK_TAKEN:
            logger.warning(
                "Tick %s of schedule %s deferred no job: a job with its queueing lock is "
                "still waiting",
                cron.moment(tick, cursor.zone).isoformat(),
                schedule,
                extra=self._log_fields(schedule, tick, action="periodic_queueing_lock_taken"),
            )
        elif outcome.result is store.TickResult.GONE:
            self._cursors = None  # its row was deleted: made again on the next pass
        return Deferred(schedule, tick, outcome.result, outcome.job_id)

    def _log_skipped(self, schedule: PeriodicSchedule, first: int, last_before: int) -> None:
        zone = schedule.zone()
        logger.warning(
            "Ticks of schedule %s from %s to %s skipped: older than "
            "RETRYTASKS_PERIODIC_MAX_DELAY (%gs) when a worker could defer them",
            schedule,
            cron.moment(first, zone).isoformat(),
            cron.moment(last_before, zone).isoformat(),
            self.max_delay,
            extra=self._log_fields(schedule, first, action="periodic_skipped"),
        )

    def _log_fields(
        self, schedule: PeriodicSchedule, tick: int, *, action: str
    ) -> dict[str, object]:
        return {
            "action": action,
            "task_name": schedule.task_name,
            "periodic_id": schedule.periodic_id,
            "tick": tick,
            "worker": self.worker_name,
        }

    # --- the thread --------------------------------------------------------------------------

    def start(self) -> None:
        """Defer on a thread of its own until :meth:`stop`."""
        self._thread = threading.Thread(
            target=self._run, name=f"{self.worker_name}-periodic", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> None:
        """One pass on the calling thread (``--burst``); an outage is logged, not raised."""
        try:
            self.defer_due()
        except outages.OUTAGE_ERRORS:
            logger.exception("Could not defer periodic jobs", extra={"action": "periodic_error"})
            outages.drop_connection(self.using)

    def _run(self) -> None:
        backoff = outages.Backoff(cap=WAKE_SECONDS * 5)
        try:
            while not self._stop.is_set():
                try:
                    self.defer_due()
                    wait = min(self.seconds_until_next_tick(), WAKE_SECONDS)
                    backoff.reset()
                except outages.OUTAGE_ERRORS as error:
                    wait = backoff.next_wait()
                    if backoff.failures == 1:
                        logger.warning(
                            "Deferring periodic jobs failed (%s: %s); trying again until the "
                            "database answers",
                            type(error).__name__,
                            str(error).strip(),
                            extra={"action": "periodic_error"},
                        )
                    outages.drop_connection(self.using)
                except Exception:
                    logger.exception(
                        "Deferring periodic jobs failed", extra={"action": "periodic_error"}
                    )
                    wait = WAKE_SECONDS
                self._stop.wait(wait)
        finally:
            connections.close_all()
