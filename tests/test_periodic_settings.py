"""``RETRYTASKS_PERIODIC_TASKS``: schedules from the settings, django.tasks tasks among them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_retrytasks import App
from django_retrytasks.checks import check_periodic_schedules, check_settings
from django_retrytasks.models import Job, JobStatus
from django_retrytasks.periodic import declared_schedules
from django_retrytasks.testing import run_due_jobs
from django_retrytasks.worker.periodic import PeriodicDeferrer
from tests.conftest import Clock

# The test project's django.tasks tasks need Django 6.1: left out before (see conftest.py).
needs_django_tasks = pytest.mark.needs_django(6, 1)
ECHO = "testproject.demo.djangotasks_django.echo"
START = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)


def e005(settings: Any, value: Any) -> list[str]:
    settings.RETRYTASKS_PERIODIC_TASKS = value
    messages = check_periodic_schedules()
    assert {message.id for message in messages} <= {"django_retrytasks.E005"}
    return [message.msg for message in messages]


def one_tick(schedules: Any) -> int:
    """Let a worker defer the first tick of a minute-long schedule; return the tick."""
    clock = Clock(START)
    role = PeriodicDeferrer(schedules=schedules, clock=clock)
    role.defer_due()
    clock.advance(minutes=1)
    [handled] = role.defer_due()
    return handled.tick


@needs_django_tasks
@pytest.mark.django_db
def test_a_django_tasks_task_on_a_schedule(settings: Any) -> None:
    settings.RETRYTASKS_PERIODIC_TASKS = [
        {"task": ECHO, "cron": "* * * * *", "kwargs": {"label": "hello"}, "periodic_id": "echo"}
    ]
    [schedule] = declared_schedules(App())
    assert str(schedule) == f"{ECHO}[echo]"
    tick = one_tick([schedule])
    job = Job.objects.get()
    assert (job.backend, job.queue, job.task_kwargs) == (
        "default",
        "default",
        {"args": [], "kwargs": {"timestamp": tick, "label": "hello"}},
    )
    run_due_jobs(now=datetime.now(UTC) + timedelta(seconds=1))
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.return_value == {"args": [], "kwargs": {"timestamp": tick, "label": "hello"}}


@pytest.mark.django_db
def test_an_app_task_may_be_scheduled_from_the_settings_too(settings: Any) -> None:
    settings.RETRYTASKS_PERIODIC_TASKS = [{"task": "concurrency.noop", "cron": "* * * * *"}]
    app = App()
    from testproject.demo.concurrency_tasks import noop

    app.tasks[noop.name] = noop
    [schedule] = declared_schedules(app)
    tick = one_tick([schedule])
    assert Job.objects.get().task_kwargs == {"timestamp": tick}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("myapp.tasks.report", "RETRYTASKS_PERIODIC_TASKS must be a list of dicts"),
        ([("myapp.tasks.report", "* * * * *")], "RETRYTASKS_PERIODIC_TASKS[0] must be a dict"),
        ([{"cron": "* * * * *"}], "RETRYTASKS_PERIODIC_TASKS[0] needs a 'task'"),
        ([{"task": ECHO, "cron": "* * * * *", "when": 1}], "has unknown keys 'when'"),
        ([{"task": 42, "cron": "* * * * *"}], "['task'] must be a task's name"),
        (
            [{"task": "no.such.task", "cron": "* * * * *"}],
            "RETRYTASKS_PERIODIC_TASKS[0]: 'no.such.task' is neither an app.task task's name nor "
            "a django.tasks task",
        ),
    ],
)
def test_problems_of_the_setting_are_reported_by_e005(
    settings: Any, value: Any, message: str
) -> None:
    [reported] = e005(settings, value)
    assert message in reported
    with pytest.raises(ImproperlyConfigured):
        declared_schedules(App())


@needs_django_tasks
@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"cron": "* * *"}, "RETRYTASKS_PERIODIC_TASKS[0]: cron '* * *' has 3 fields"),
        ({"timezone": "Nowhere/City"}, "unknown time zone 'Nowhere/City'"),
        (
            {"task": "testproject.demo.djangotasks_django.add"},
            "cannot take the arguments of its periodic jobs ('timestamp' and the schedule's "
            "kwargs): it got an unknown argument 'timestamp'",
        ),
        ({"kwargs": {"timestamp": 5}}, "kwargs must not hold 'timestamp'"),
    ],
)
def test_problems_of_a_django_tasks_schedule_are_reported_by_e005(
    settings: Any, entry: dict[str, Any], message: str
) -> None:
    [reported] = e005(settings, [{"task": ECHO, "cron": "* * * * *", **entry}])
    assert message in reported


@needs_django_tasks
def test_a_schedule_given_twice_with_one_id_is_reported(settings: Any) -> None:
    [reported] = e005(
        settings,
        [{"task": ECHO, "cron": "* * * * *"}, {"task": ECHO, "cron": "0 * * * *"}],
    )
    assert reported.startswith(f"RETRYTASKS_PERIODIC_TASKS[1]: task '{ECHO}' already has a")


def test_no_setting_no_message(settings: Any) -> None:
    assert e005(settings, []) == []


@pytest.mark.parametrize("value", [0, -5, "600", None, True])
def test_a_bad_max_delay_is_named_by_e004(settings: Any, value: Any) -> None:
    settings.RETRYTASKS_PERIODIC_MAX_DELAY = value
    [reported] = check_settings()
    assert reported.id == "django_retrytasks.E004"
    assert reported.msg == (
        f"RETRYTASKS_PERIODIC_MAX_DELAY must be a number of seconds >= 1, got {value!r}"
    )
