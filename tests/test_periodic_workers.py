"""Real ``runworker`` processes and a schedule every second: each tick deferred exactly once.

The workers run ``testproject.periodic_settings``, whose only difference is the schedule of
``testproject.demo.periodic_tasks``; these are the only tests that wait on the real clock,
for a few ticks.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_retrytasks.models import Job, JobStatus, Schedule, ScheduleTick
from django_retrytasks.models import Worker as WorkerRow
from django_retrytasks.store import periodic as store
from tests.conftest import manage
from tests.test_faults import StartWorker, wait_for, workers  # noqa: F401 (a fixture)

TASK = "periodic.every_second"
TICKS_WATCHED = 5


@pytest.fixture
def periodic_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "testproject.periodic_settings")


def ticks_deferred() -> list[int]:
    return sorted(
        Job.objects.filter(task_name=TASK).values_list("task_kwargs__timestamp", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_three_workers_defer_every_tick_exactly_once(
    workers: StartWorker,  # noqa: F811
    periodic_settings: None,
) -> None:
    started = [workers(f"periodic-{index}", "--concurrency", "2") for index in range(3)]
    wait_for(lambda: WorkerRow.objects.count() == 3, timeout=60, what="three workers")
    all_running = timezone.now().timestamp()
    wait_for(
        lambda: len([tick for tick in ticks_deferred() if tick > all_running]) >= TICKS_WATCHED,
        timeout=30,
        what=f"{TICKS_WATCHED} ticks deferred while three workers run",
    )
    for worker in started:
        worker.signal(signal.SIGTERM)
    assert [worker.wait() for worker in started] == [0, 0, 0]

    ticks = ticks_deferred()
    assert len(ticks) == len(set(ticks)), "a tick was deferred twice"
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), "a tick was missed"
    assert sorted(ScheduleTick.objects.values_list("tick", flat=True)) == ticks
    row = Schedule.objects.get(task_name=TASK, periodic_id="every-second")
    assert row.last_tick == ticks[-1]
    # On time: once every worker runs, each job is stored within a second of its tick.
    late = {
        tick: (created - datetime.fromtimestamp(tick, UTC)).total_seconds()
        for tick, created in Job.objects.filter(task_name=TASK).values_list(
            "task_kwargs__timestamp", "created_at"
        )
        if tick > all_running
    }
    assert max(late.values()) < 1.0, late
    # The jobs ran like any other (the last ones may still wait: the workers stopped).
    statuses = list(Job.objects.filter(task_name=TASK).values_list("status", flat=True))
    assert set(statuses) <= {JobStatus.SUCCEEDED, JobStatus.TODO}
    assert statuses.count(JobStatus.SUCCEEDED) >= len(ticks) - 3
    for worker in started:
        assert "periodic schedules=1" in worker.log
        assert "Traceback" not in worker.log, worker.log


@pytest.mark.django_db(transaction=True)
def test_runworker_burst_catches_up_and_no_periodic_opts_out(periodic_settings: Any) -> None:
    now = timezone.now().replace(microsecond=0)
    store.sync_schedules([(TASK, "every-second")], now=now - timedelta(seconds=5))

    result = manage("runworker", "--burst", "--no-periodic")
    assert result.returncode == 0, result.stderr
    assert "periodic schedules=0" in result.stderr
    assert ticks_deferred() == []

    result = manage("runworker", "--burst")
    assert result.returncode == 0, result.stderr
    ticks = ticks_deferred()
    assert ticks[0] == int(now.timestamp()) - 4  # every tick since the schedule was stored
    assert ticks == list(range(ticks[0], ticks[-1] + 1))
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}
