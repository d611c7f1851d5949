"""Periodic schedules on the real database, driven by a hand-moved clock.

The periodic role (:class:`PeriodicDeferrer`) is driven through ``defer_due()``; each test has
its own :class:`App`, so no schedule leaks into the other tests' workers.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, transaction

from django_retrytasks import App, RetryStrategy
from django_retrytasks.models import Job, JobStatus, Schedule, ScheduleTick
from django_retrytasks.periodic import declared_schedules
from django_retrytasks.store import operations
from django_retrytasks.store import periodic as store
from django_retrytasks.store.periodic import TickResult
from django_retrytasks.worker import Worker
from django_retrytasks.worker.periodic import PeriodicDeferrer
from tests.conftest import Clock

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
NOON = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)  # 30 s past a tick of every schedule here


def schedule_app(
    cron: str, *, name: str = "periodic.report", **options: Any
) -> tuple[App, Callable[..., Any]]:
    app = App()

    @app.periodic(cron=cron, **options)
    @app.task(name=name)
    def report(timestamp: int, **kwargs: Any) -> None:
        pass

    return app, report


def started(cron: str, **options: Any) -> tuple[App, Clock, PeriodicDeferrer]:
    """A schedule, a clock at NOON and a worker's periodic role that stored the schedule then."""
    app, _ = schedule_app(cron, **options)
    clock = Clock(NOON)
    role = deferrer(app, clock)
    assert role.defer_due() == []  # a new schedule ticks from now on
    return app, clock, role


def deferrer(app: App, clock: Clock, **options: Any) -> PeriodicDeferrer:
    """A worker's periodic role, as a worker (re)starting now would make it."""
    return PeriodicDeferrer(schedules=declared_schedules(app), clock=clock, **options)


def deferred_ticks(task_name: str = "periodic.report") -> list[int]:
    return [
        kwargs["timestamp"]
        for kwargs in Job.objects.filter(task_name=task_name)
        .order_by("id")
        .values_list("task_kwargs", flat=True)
    ]


def walk(role: PeriodicDeferrer, clock: Clock, until: datetime, step: timedelta) -> None:
    """Move the clock in steps to ``until``, letting the role defer at each step.

    In UTC: adding minutes to a datetime in Paris would add wall-clock time.
    """
    clock.now = clock.now.astimezone(UTC)
    while clock.now < until:
        clock.now = min(clock.now + step, until)
        role.defer_due()


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


# --- one job per tick ------------------------------------------------------------------------------


def test_each_tick_defers_one_job_with_its_timestamp_and_kwargs() -> None:
    app, clock, role = started("*/10 * * * *", kwargs={"region": "eu"}, timezone="UTC")
    assert role.seconds_until_next_tick() == 570.0

    clock.advance(minutes=10)
    [handled] = role.defer_due()
    tick = ts(NOON) - 30 + 600
    assert (handled.tick, handled.result) == (tick, TickResult.DEFERRED)
    job = Job.objects.get(pk=handled.job_id)
    assert (job.task_name, job.task_kwargs, job.status) == (
        "periodic.report",
        {"timestamp": tick, "region": "eu"},
        JobStatus.TODO,
    )
    row = Schedule.objects.get(task_name="periodic.report")
    assert (row.periodic_id, row.last_tick, row.last_job_id) == ("", tick, job.pk)
    assert list(ScheduleTick.objects.values_list("tick", flat=True)) == [tick]
    assert role.defer_due() == []  # the same moment again: nothing more
    assert app.tasks["periodic.report"].defer(timestamp=0, region="us")  # a task as before


def test_several_workers_defer_each_tick_exactly_once() -> None:
    app, _ = schedule_app("* * * * *", timezone="UTC")
    clock = Clock(NOON)
    roles = [deferrer(app, clock, worker_name=f"w{index}") for index in range(3)]
    assert [role.defer_due() for role in roles] == [[], [], []]  # each worker starts
    for _ in range(5):
        clock.advance(minutes=1)
        results = [handled.result for role in roles for handled in role.defer_due()]
        assert sorted(result.value for result in results) == sorted(
            [TickResult.DEFERRED.value] + [TickResult.ALREADY_DEFERRED.value] * 2
        )
    start = ts(NOON) - 30
    assert deferred_ticks() == [start + 60 * minute for minute in range(1, 6)]


def test_the_database_refuses_a_second_row_for_a_tick() -> None:
    [row] = store.sync_schedules([("periodic.report", "")], now=NOON).values()
    ScheduleTick.objects.create(schedule=row, tick=ts(NOON))
    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduleTick.objects.create(schedule=row, tick=ts(NOON))
    ScheduleTick.objects.create(schedule=row, tick=ts(NOON) + 1)


def test_the_same_function_on_two_schedules_defers_for_each() -> None:
    app = App()

    @app.periodic(cron="*/2 * * * *", periodic_id="even", kwargs={"kind": "even"}, timezone="UTC")
    @app.periodic(cron="1-59/2 * * * *", periodic_id="odd", kwargs={"kind": "odd"}, timezone="UTC")
    @app.task(name="periodic.report")
    def report(timestamp: int, kind: str) -> None:
        pass

    clock = Clock(NOON)
    role = deferrer(app, clock)
    walk(role, clock, NOON + timedelta(minutes=4), timedelta(seconds=20))
    kinds = [
        (kwargs["timestamp"] - ts(NOON) + 30, kwargs["kind"])
        for kwargs in Job.objects.order_by("task_kwargs__timestamp").values_list(
            "task_kwargs", flat=True
        )
    ]
    assert kinds == [(60, "odd"), (120, "even"), (180, "odd"), (240, "even")]
    assert set(Schedule.objects.values_list("periodic_id", flat=True)) == {"even", "odd"}


# --- time zones and daylight saving time -----------------------------------------------------------


def test_ticks_across_the_autumn_change_in_paris() -> None:
    """Paris, 25 October 2026: 03:00 summer time becomes 02:00 winter time."""
    app = App()

    @app.periodic(cron="30 2 * * *", periodic_id="daily", timezone="Europe/Paris")
    @app.periodic(cron="0 * * * *", periodic_id="hourly", timezone="Europe/Paris")
    @app.task(name="periodic.report")
    def report(timestamp: int) -> None:
        pass

    start = datetime(2026, 10, 24, 12, tzinfo=PARIS)
    clock = Clock(start)
    role = deferrer(app, clock)
    walk(role, clock, datetime(2026, 10, 26, 12, tzinfo=PARIS), timedelta(minutes=5))

    ticks = [datetime.fromtimestamp(tick, PARIS).isoformat() for tick in deferred_ticks()]
    assert [tick for tick in ticks if tick[11:16] == "02:30"] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-26T02:30:00+01:00",
    ]
    hourly = [tick for tick in deferred_ticks() if datetime.fromtimestamp(tick, PARIS).minute == 0]
    assert len(hourly) == 49  # 48 real hours, both ends ticked: 02:00 comes twice on the 25th
    assert {later - earlier for earlier, later in itertools.pairwise(hourly)} == {3600}


def test_ticks_across_the_spring_change_follow_time_zone_setting(settings: Any) -> None:
    """Paris, 29 March 2026: 02:00 becomes 03:00; ``timezone`` left out means TIME_ZONE."""
    settings.TIME_ZONE = "Europe/Paris"
    app, _ = schedule_app("30 2 * * *")
    clock = Clock(datetime(2026, 3, 28, 12, tzinfo=PARIS))
    role = deferrer(app, clock)
    walk(role, clock, datetime(2026, 3, 30, 12, tzinfo=PARIS), timedelta(minutes=5))
    assert [datetime.fromtimestamp(tick, PARIS).isoformat() for tick in deferred_ticks()] == [
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist that night: the end of the gap
        "2026-03-30T02:30:00+02:00",
    ]


# --- missed ticks -------------------------------------------------------------------------------


def test_ticks_missed_while_no_worker_ran_are_caught_up_within_the_max_delay() -> None:
    app, clock, first_worker = started("*/10 * * * *", timezone="UTC")
    clock.advance(minutes=10)
    first_worker.defer_due()  # 12:10 deferred; then every worker stops

    clock.advance(minutes=15)  # 12:25:30: the 12:20 tick is 5.5 minutes old
    restarted = deferrer(app, clock)
    assert [(h.tick, h.result) for h in restarted.defer_due()] == [
        (ts(NOON) - 30 + 1200, TickResult.DEFERRED)
    ]
    assert deferred_ticks() == [ts(NOON) - 30 + 600, ts(NOON) - 30 + 1200]


def test_ticks_older_than_the_max_delay_are_skipped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, clock, first_worker = started("*/10 * * * *", timezone="UTC")
    clock.advance(minutes=10)
    first_worker.defer_due()  # 12:10

    clock.advance(minutes=35)  # 12:45:30: 12:20 and 12:30 are too old, 12:40 is not
    with caplog.at_level(logging.WARNING, logger="django_retrytasks"):
        restarted = deferrer(app, clock)
        handled = restarted.defer_due()
    start = ts(NOON) - 30
    assert [(h.tick, h.result) for h in handled] == [(start + 2400, TickResult.DEFERRED)]
    assert deferred_ticks() == [start + 600, start + 2400]
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert warning.action == "periodic_skipped"  # type: ignore[attr-defined]
    assert "Ticks of schedule periodic.report from 2026-06-01T12:20:00+00:00" in warning.message
    assert "RETRYTASKS_PERIODIC_MAX_DELAY (600s)" in warning.message


def test_the_max_delay_comes_from_the_setting(settings: Any) -> None:
    settings.RETRYTASKS_PERIODIC_MAX_DELAY = 1800
    app, clock, _ = started("*/10 * * * *", timezone="UTC")
    clock.advance(minutes=45)  # 12:45:30: 12:20 is 25.5 minutes old, within 30
    deferrer(app, clock).defer_due()
    start = ts(NOON) - 30
    assert deferred_ticks() == [start + 1200, start + 1800, start + 2400]


def test_a_worker_that_falls_behind_skips_what_became_too_old() -> None:
    app, _ = schedule_app("* * * * *", timezone="UTC")
    clock = Clock(NOON)
    role = deferrer(app, clock, max_delay=120)
    role.defer_due()
    clock.advance(minutes=5)  # stuck for five minutes (an outage): only two ticks are recent
    role.defer_due()
    start = ts(NOON) - 30
    assert deferred_ticks() == [start + 240, start + 300]


# --- pause, resume, run now -----------------------------------------------------------------------


def test_a_paused_schedule_defers_nothing_and_does_not_catch_up_when_resumed() -> None:
    app, clock, role = started("* * * * *", timezone="UTC")
    clock.advance(minutes=1)
    role.defer_due()  # 12:01
    row = Schedule.objects.get()

    assert store.pause([row.pk], now=clock()).done == [row.pk]
    assert store.pause([row.pk], now=clock()).skipped == {row.pk: "it is already paused"}
    clock.advance(minutes=1)
    assert [h.result for h in role.defer_due()] == [TickResult.PAUSED]  # 12:02
    clock.advance(minutes=2)
    assert [h.result for h in role.defer_due()] == [TickResult.PAUSED] * 2  # 12:03, 12:04

    assert store.resume([row.pk], now=clock()).done == [row.pk]  # at 12:04:30
    assert store.resume([row.pk], now=clock()).skipped == {row.pk: "it is not paused"}
    restarted = deferrer(app, clock)  # a worker starting now does not catch up the pause
    assert restarted.defer_due() == []
    clock.advance(minutes=1)
    assert [h.result for h in role.defer_due()] == [TickResult.DEFERRED]  # 12:05
    assert [h.result for h in restarted.defer_due()] == [TickResult.ALREADY_DEFERRED]
    start = ts(NOON) - 30
    assert deferred_ticks() == [start + 60, start + 300]


def test_run_now_defers_a_job_at_once_and_the_ticks_go_on() -> None:
    app, clock, role = started("*/10 * * * *", timezone="UTC", kwargs={"region": "eu"})
    [schedule] = declared_schedules(app)
    row = Schedule.objects.get()
    store.pause([row.pk], now=clock())

    report = store.run_now({row.pk: lambda: schedule.job_spec(ts(clock()))}, now=clock())
    assert report.done == [row.pk]
    job = Job.objects.get()
    assert job.task_kwargs == {"timestamp": ts(NOON), "region": "eu"}
    row.refresh_from_db()
    assert (row.last_job_id, row.last_tick) == (job.pk, None)  # not a tick

    store.resume([row.pk], now=clock())
    clock.advance(minutes=10)
    assert [h.result for h in role.defer_due()] == [TickResult.DEFERRED]
    assert store.run_now({123456: lambda: schedule.job_spec(0)}, now=clock()).skipped == {
        123456: "no such schedule"
    }


def test_a_queueing_lock_still_held_uses_the_tick_up_without_a_job() -> None:
    app = App()

    @app.periodic(cron="* * * * *", timezone="UTC")
    @app.task(name="periodic.report", queueing_lock="one-report")
    def report(timestamp: int) -> None:
        pass

    clock = Clock(NOON)
    role = deferrer(app, clock)
    role.defer_due()
    walk(role, clock, NOON + timedelta(minutes=2), timedelta(minutes=1))
    assert deferred_ticks() == [ts(NOON) + 30]  # the 12:01 job still waits at 12:02
    row = Schedule.objects.get()
    assert row.last_tick == ts(NOON) + 90  # 12:02 was used up


def test_old_tick_rows_are_pruned_and_the_last_tick_still_holds() -> None:
    _, clock, role = started("*/10 * * * *", timezone="UTC")
    walk(role, clock, NOON + timedelta(hours=3), timedelta(minutes=5))
    kept = sorted(ScheduleTick.objects.values_list("tick", flat=True))
    assert len(deferred_ticks()) == 18
    assert kept == deferred_ticks()[-7:]  # the ticks of the last hour, both ends
    # The first tick's row is gone, but the schedule's last tick still stops a second job.
    outcome = store.defer_tick(
        Schedule.objects.get().pk,
        deferred_ticks()[0],
        lambda: pytest.fail("the job was made again"),
        now=clock(),
    )
    assert outcome.result is TickResult.ALREADY_DEFERRED


# --- the worker -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_burst_worker_defers_the_due_ticks_and_runs_them_with_their_retries() -> None:
    app = App()
    runs: list[tuple[int, int]] = []

    @app.periodic(cron="* * * * *", timezone="UTC")
    @app.task(name="periodic.report", retry=RetryStrategy(max_attempts=1), pass_context=True)
    def report(context: Any, timestamp: int) -> None:
        runs.append((timestamp, context.job.attempts))
        if context.job.attempts == 0:
            raise ConnectionError("first run fails")

    # Ahead of the real clock: the jobs deferred now are due at the hand-moved time.
    clock = Clock(datetime.now(UTC) + timedelta(seconds=30))
    active_since = clock.now - timedelta(minutes=2, seconds=30)
    store.sync_schedules([("periodic.report", "")], now=active_since)
    Worker(app=app, burst=True, clock=clock, install_signal_handlers=False, periodic=False).run()
    assert Job.objects.count() == 0  # --no-periodic

    Worker(app=app, burst=True, clock=clock, install_signal_handlers=False).run()
    minutes = [t for t in range(ts(active_since) + 1, ts(clock.now) + 1) if t % 60 == 0]
    assert deferred_ticks() == minutes
    assert sorted(runs) == sorted((tick, attempts) for tick in minutes for attempts in (0, 1))
    assert set(Job.objects.values_list("status", "attempts")) == {(JobStatus.SUCCEEDED, 2)}


def cancelled_last_job() -> tuple[Clock, PeriodicDeferrer, Any]:
    """A schedule whose one deferred job was cancelled: (clock, role, the tick handled)."""
    _, clock, role = started("* * * * *", timezone="UTC")
    clock.advance(minutes=1)
    [handled] = role.defer_due()
    assert handled.job_id is not None
    operations.cancel([handled.job_id])
    return clock, role, handled


def test_deleting_the_last_job_of_a_schedule_leaves_the_schedule() -> None:
    clock, role, handled = cancelled_last_job()
    assert operations.delete_finished([handled.job_id]).done == [handled.job_id]
    row = Schedule.objects.get()
    assert (row.last_job_id, row.last_tick) == (None, handled.tick)
    clock.advance(minutes=1)
    assert [h.result for h in role.defer_due()] == [TickResult.DEFERRED]


def test_retention_of_the_last_job_of_a_schedule_leaves_the_schedule() -> None:
    clock, _, handled = cancelled_last_job()
    report = operations.prune(
        now=clock() + timedelta(days=365), retention={"cancelled": timedelta(hours=1)}
    )
    assert (report.total, report.jobs["cancelled"]) == (1, 1)
    assert not Job.objects.exists()
    row = Schedule.objects.get()
    assert (row.last_job_id, row.last_tick) == (None, handled.tick)


def test_periodic_ids_that_differ_only_in_case_are_two_schedules() -> None:
    """Names compare exactly on every database (MariaDB's default collation folds case)."""
    app = App()

    @app.periodic(cron="* * * * *", periodic_id="Morning", timezone="UTC")
    @app.periodic(cron="* * * * *", periodic_id="morning", timezone="UTC")
    @app.periodic(cron="* * * * *", periodic_id="morning ", timezone="UTC")
    @app.task(name="periodic.report")
    def report(timestamp: int) -> None:
        pass

    clock = Clock(NOON)
    role = deferrer(app, clock)
    role.defer_due()
    clock.advance(minutes=1)
    assert [h.result for h in role.defer_due()] == [TickResult.DEFERRED] * 3
    assert sorted(Schedule.objects.values_list("periodic_id", flat=True)) == [
        "Morning",
        "morning",
        "morning ",
    ]
