"""``@app.periodic``: what it accepts, and the problems it names when a schedule is declared."""

from __future__ import annotations

from typing import Any

import pytest

from django_retrytasks import App, RetryStrategy
from django_retrytasks.exceptions import ArgumentsNotSerializable
from django_retrytasks.periodic import declared_schedules


def declare(app: App, **options: Any) -> Any:
    @app.periodic(**{"cron": "*/5 * * * *", **options})
    @app.task(name="periodic.sync")
    def sync(timestamp: int, region: str = "eu") -> None:
        pass

    return sync


def test_the_task_comes_back_unchanged_and_is_scheduled() -> None:
    app = App()
    task = declare(app, kwargs={"region": "us"}, timezone="Europe/Paris")
    assert app.tasks["periodic.sync"] is task
    assert task.retry is None
    [schedule] = app.schedules.values()
    assert (schedule.task_name, schedule.periodic_id, str(schedule.cron)) == (
        "periodic.sync",
        "",
        "*/5 * * * *",
    )
    assert (schedule.kwargs, schedule.zone_name) == ({"region": "us"}, "Europe/Paris")
    spec = schedule.job_spec(1_780_000_000)
    assert (spec.task_name, spec.task_kwargs, spec.queue) == (
        "periodic.sync",
        {"timestamp": 1_780_000_000, "region": "us"},
        "default",
    )


def test_the_default_time_zone_is_the_projects(settings: Any) -> None:
    app = App()
    declare(app)
    [schedule] = app.schedules.values()
    settings.TIME_ZONE = "America/New_York"
    assert schedule.zone_name == "America/New_York"
    assert str(schedule.zone()) == "America/New_York"


def test_the_jobs_take_the_tasks_options() -> None:
    app = App()

    @app.periodic(cron="0 * * * *")
    @app.task(name="periodic.options", queue="reports", priority=5, lock="reports", retry=3)
    def options(timestamp: int) -> None:
        pass

    spec = declared_schedules(app)[0].job_spec(0)
    assert (spec.queue, spec.priority, spec.lock) == ("reports", 5, "reports")
    assert options.retry == RetryStrategy(max_attempts=3)


def test_one_function_on_several_schedules_with_their_own_ids() -> None:
    app = App()

    @app.periodic(cron="0 8 * * *", periodic_id="morning", kwargs={"kind": "short"})
    @app.periodic(cron="0 18 * * *", periodic_id="evening", kwargs={"kind": "full"})
    @app.task(name="periodic.report")
    def report(timestamp: int, kind: str) -> None:
        pass

    assert sorted(app.schedules) == [
        ("periodic.report", "evening"),
        ("periodic.report", "morning"),
    ]
    assert [str(schedule) for schedule in declared_schedules(app)] == [
        "periodic.report[evening]",
        "periodic.report[morning]",
    ]


def test_declaring_the_same_schedule_again_is_harmless() -> None:
    """A module imported twice declares everything twice."""
    app = App()
    declare(app, kwargs={"region": "us"})
    declare(app, kwargs={"region": "us"})
    assert len(app.schedules) == 1


def test_a_second_schedule_with_the_same_id_is_refused() -> None:
    app = App()
    declare(app)
    with pytest.raises(ValueError) as raised:
        declare(app, cron="0 * * * *")
    assert str(raised.value) == (
        "task 'periodic.sync' already has a schedule with periodic_id '' (*/5 * * * *); give "
        "each schedule of a task its own periodic_id"
    )
    assert str(next(iter(app.schedules.values())).cron) == "*/5 * * * *"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"cron": "*/5 * * *"}, ValueError, "cron '*/5 * * *' has 4 fields; give 5 fields"),
        ({"cron": "0 0 30 2 *"}, ValueError, "names no moment that exists"),
        ({"cron": None}, TypeError, "cron must be a string"),
        ({"timezone": "Europe/Pariss"}, ValueError, "unknown time zone 'Europe/Pariss'"),
        ({"timezone": 1}, TypeError, "timezone must be an IANA time zone name"),
        ({"periodic_id": "x" * 129}, ValueError, "periodic_id is at most 128 characters"),
        ({"periodic_id": "a\x00b"}, ValueError, "periodic_id contains a NUL character"),
        ({"periodic_id": None}, ValueError, "periodic_id must be a non-empty string"),
        ({"kwargs": {"when": object()}}, ArgumentsNotSerializable, "job argument when is a object"),
        ({"kwargs": ["eu"]}, TypeError, "kwargs must be a dict of keyword arguments, got list"),
        (
            {"kwargs": {"timestamp": 1}},
            TypeError,
            "kwargs must not hold 'timestamp': every periodic job receives its tick",
        ),
        (
            {"kwargs": {"regoin": "eu"}},
            TypeError,
            "task 'periodic.sync' cannot take the arguments of its periodic jobs ('timestamp' and "
            "the schedule's kwargs): it got an unknown argument 'regoin' (did you mean 'region'?)",
        ),
    ],
)
def test_problems_are_named_when_declared(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    app = App()
    with pytest.raises(error) as raised:
        declare(app, **options)
    assert message in str(raised.value)
    assert app.schedules == {}


def test_a_function_without_timestamp_is_refused() -> None:
    app = App()
    with pytest.raises(TypeError, match="got an unknown argument 'timestamp'; the task takes no"):

        @app.periodic(cron="0 * * * *")
        @app.task(name="periodic.no_timestamp")
        def no_timestamp() -> None:
            pass


def test_a_required_argument_the_schedule_does_not_give_is_refused() -> None:
    app = App()
    with pytest.raises(TypeError, match="missing"):

        @app.periodic(cron="0 * * * *")
        @app.task(name="periodic.needs_region")
        def needs_region(timestamp: int, region: str) -> None:
            pass


def test_periodic_goes_above_task() -> None:
    app = App()
    with pytest.raises(TypeError) as raised:

        @app.periodic(cron="0 * * * *")
        def plain(timestamp: int) -> None:
            pass

    assert str(raised.value).startswith(
        "@app.periodic schedules a task: put it above @app.task, not on function "
    )
    assert str(raised.value).endswith("plain'")


def test_a_task_with_context_takes_timestamp_after_it() -> None:
    app = App()

    @app.periodic(cron="0 * * * *")
    @app.task(name="periodic.with_context", pass_context=True)
    def with_context(context: Any, timestamp: int) -> None:
        pass

    assert len(app.schedules) == 1
