"""docs/periodic.md: every Python example runs as written, and does what the page says."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from django_retrytasks import App, app, conf
from django_retrytasks.models import Job, JobStatus
from django_retrytasks.periodic import declared_schedules
from django_retrytasks.store import periodic as store
from django_retrytasks.testing import run_due_jobs
from django_retrytasks.worker.periodic import PeriodicDeferrer
from tests.conftest import Clock
from tests.docs_examples import python_blocks

PAGE = Path(__file__).resolve().parent.parent / "docs" / "periodic.md"
MODULE = "periodic_docs"


def periodic_blocks() -> list[str]:
    return python_blocks("docs/periodic.md")


def blocks_with(text: str) -> list[str]:
    return [block for block in periodic_blocks() if text in block]


def test_every_python_example_is_run_here() -> None:
    run_here = blocks_with("@app.periodic") + blocks_with("RETRYTASKS_") + blocks_with("@task")
    assert sorted(run_here) == sorted(periodic_blocks())


@pytest.fixture
def page_tasks() -> Iterator[dict[str, Any]]:
    """The page's decorator examples, run on the project's app, taken away afterwards."""
    namespace: dict[str, Any] = {"__name__": MODULE}
    yield namespace
    for key in [key for key in app.schedules if key[0].startswith(f"{MODULE}.")]:
        del app.schedules[key]
    for name in [name for name in app.tasks if name.startswith(f"{MODULE}.")]:
        del app.tasks[name]


@pytest.mark.django_db
def test_the_decorator_examples_schedule_and_their_jobs_run(
    page_tasks: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    for block in blocks_with("@app.periodic"):
        exec(compile(block, str(PAGE), "exec"), page_tasks)
    scheduled = {str(schedule): str(schedule.cron) for schedule in app.schedules.values()}
    assert scheduled == {
        f"{MODULE}.sync_rates": "*/5 * * * *",
        f"{MODULE}.send_report[morning]": "0 8 * * mon-fri",
        f"{MODULE}.send_report[evening]": "0 18 * * mon-fri",
        f"{MODULE}.poll_inbox": "* * * * * */10",
    }  # the broken ones were refused
    assert page_tasks["sync_rates"].retry.max_attempts == 3

    # A Monday: ten minutes from 17:55 Paris time.
    clock = Clock(datetime(2026, 11, 30, 16, 55, tzinfo=UTC))
    role = PeriodicDeferrer(schedules=declared_schedules(app), clock=clock)
    role.defer_due()
    for _ in range(60):
        clock.advance(seconds=10)
        role.defer_due()
    counts = {
        name: Job.objects.filter(task_name=f"{MODULE}.{name}").count()
        for name in ("sync_rates", "send_report", "poll_inbox")
    }
    assert counts == {"sync_rates": 2, "send_report": 1, "poll_inbox": 60}
    report = Job.objects.get(task_name=f"{MODULE}.send_report")
    assert report.task_kwargs == {"timestamp": 1796058000, "kind": "full"}  # 18:00 in Paris
    assert report.queue == "reports"

    run_due_jobs(now=max(clock.now, datetime.now(UTC)) + timedelta(seconds=1))
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}
    assert "full report for 1796058000" in capsys.readouterr().out


def test_the_max_delay_setting_example() -> None:
    [block] = blocks_with("RETRYTASKS_PERIODIC_MAX_DELAY =")
    settings_module: dict[str, Any] = {}
    exec(compile(block, str(PAGE), "exec"), settings_module)
    with override_settings(
        RETRYTASKS_PERIODIC_MAX_DELAY=settings_module["RETRYTASKS_PERIODIC_MAX_DELAY"]
    ):
        assert conf.get_settings().periodic_max_delay == 3600
    assert conf.get_settings().periodic_max_delay == 600


@pytest.fixture
def myapp_tasks() -> Iterator[types.ModuleType]:
    """The page's ``myapp/tasks.py``, as a module of that name."""
    module = types.ModuleType("myapp.tasks")
    sys.modules["myapp.tasks"] = module
    yield module
    del sys.modules["myapp.tasks"]


@pytest.mark.needs_django(6, 0)  # django.tasks came with Django 6.0
@pytest.mark.django_db
def test_the_django_tasks_example_schedules_and_runs(
    myapp_tasks: types.ModuleType, settings: Any
) -> None:
    [tasks_block] = blocks_with("from django.tasks import task")
    exec(compile(tasks_block, str(PAGE), "exec"), myapp_tasks.__dict__)
    [settings_block] = blocks_with("RETRYTASKS_PERIODIC_TASKS =")
    settings_module: dict[str, Any] = {}
    exec(compile(settings_block, str(PAGE), "exec"), settings_module)
    settings.RETRYTASKS_PERIODIC_TASKS = settings_module["RETRYTASKS_PERIODIC_TASKS"]
    call_command("check")  # E005 has nothing to say

    schedules = declared_schedules(App())
    assert [(str(s), str(s.cron), s.zone_name) for s in schedules] == [
        ("myapp.tasks.nightly_report", "0 3 * * *", "Europe/Paris"),
        ("myapp.tasks.nightly_report[noon]", "0 12 * * *", "UTC"),
    ]
    start = datetime(2026, 11, 30, 1, 55, tzinfo=UTC)  # 02:55 in Paris
    clock = Clock(start)
    role = PeriodicDeferrer(schedules=schedules, clock=clock)
    role.defer_due()
    clock.advance(minutes=10)
    [handled] = role.defer_due()
    assert handled.result is store.TickResult.DEFERRED
    job = Job.objects.get()
    assert (job.task_name, job.backend, job.task_kwargs) == (
        "myapp.tasks.nightly_report",
        "default",
        {"args": [], "kwargs": {"timestamp": int(start.timestamp()) + 300}},
    )
    run_due_jobs(now=datetime.now(UTC) + timedelta(seconds=1))
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
