"""Periodic schedules: what ``@app.periodic`` and the ``RETRYTASKS_PERIODIC_TASKS`` setting declare.

A :class:`PeriodicSchedule` is checked when it is declared (cron expression, time zone,
arguments against the function's signature) and makes the job of each tick. The worker's
periodic role (:mod:`django_retrytasks.worker.periodic`) defers those jobs through
:mod:`django_retrytasks.store.periodic`, which keeps exactly one job per tick.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ImproperlyConfigured

from django_retrytasks import conf, cron, limits
from django_retrytasks.jobs import JobSpec

if TYPE_CHECKING:
    from django_retrytasks.tasks import App, Task

#: Characters of a ``periodic_id`` (its column).
MAX_PERIODIC_ID_LENGTH = 128
#: The argument every periodic job receives: its tick as Unix seconds.
TIMESTAMP = "timestamp"
#: The setting that schedules tasks without a decorator (``django.tasks`` tasks among them).
SETTING = "RETRYTASKS_PERIODIC_TASKS"


@dataclass(frozen=True, eq=False)
class PeriodicSchedule:
    """One declared schedule: a task, when it ticks, and the arguments of its jobs."""

    task_name: str
    periodic_id: str
    cron: cron.Cron
    #: The keyword arguments of every job, besides ``timestamp``.
    kwargs: dict[str, Any]
    #: The IANA time zone given when declared; ``None`` follows the project's ``TIME_ZONE``.
    timezone: str | None
    #: Makes the job for the given arguments (``timestamp`` included), checked as ``defer()``
    #: checks them.
    build_job: Callable[[dict[str, Any]], JobSpec] = field(repr=False)

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the schedule in the database: its task and its ``periodic_id``."""
        return (self.task_name, self.periodic_id)

    @property
    def zone_name(self) -> str:
        if self.timezone is not None:
            return self.timezone
        from django.conf import settings

        return str(settings.TIME_ZONE or "UTC")

    def zone(self) -> ZoneInfo:
        return cron.zone(self.zone_name)

    def job_spec(self, tick: int) -> JobSpec:
        """The job of one tick."""
        return self.build_job({TIMESTAMP: tick, **self.kwargs})

    def upcoming(self, now: datetime, *, last_tick: int | None = None, count: int = 1) -> list[int]:
        """The next ``count`` ticks after ``now`` (and after ``last_tick``, when one was later)."""
        after = max(math.floor(now.timestamp()), last_tick or 0)
        return list(itertools.islice(cron.ticks_after(self.cron, self.zone(), after), count))

    def same_as(self, other: PeriodicSchedule) -> bool:
        """Whether ``other`` declares the very same schedule (a module imported twice)."""
        return (self.key, str(self.cron), self.kwargs, self.timezone) == (
            other.key,
            str(other.cron),
            other.kwargs,
            other.timezone,
        )

    def __str__(self) -> str:
        return f"{self.task_name}[{self.periodic_id}]" if self.periodic_id else self.task_name


def declare(
    *,
    task_name: str,
    cron_expression: object,
    periodic_id: object = "",
    kwargs: Mapping[str, Any] | None = None,
    timezone: object = None,
    call_problem: Callable[[dict[str, Any]], str | None],
    build_job: Callable[[dict[str, Any]], JobSpec],
) -> PeriodicSchedule:
    """Check a schedule's parts and return it; ``TypeError``/``ValueError`` naming a problem.

    ``call_problem`` tells why the task's function could not take the given arguments
    (``None`` when it can).
    """
    checked_cron = cron.parse(cron_expression)
    if periodic_id != "":
        limits.check_name(
            periodic_id,
            option="periodic_id",
            max_length=MAX_PERIODIC_ID_LENGTH,
            allow_none=False,
        )
    if timezone is not None:
        cron.zone(timezone)
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs must be a dict of keyword arguments, got {type(kwargs).__name__}")
    arguments = limits.check_json(dict(kwargs or {}))
    if TIMESTAMP in arguments:
        raise TypeError(
            f"kwargs must not hold {TIMESTAMP!r}: every periodic job receives its tick as "
            f"{TIMESTAMP!r}"
        )
    problem = call_problem({TIMESTAMP: 0, **arguments})
    if problem is not None:
        raise TypeError(
            f"task {task_name!r} cannot take the arguments of its periodic jobs ({TIMESTAMP!r} "
            f"and the schedule's kwargs): it {problem}"
        )
    return PeriodicSchedule(
        task_name=task_name,
        periodic_id=str(periodic_id),
        cron=checked_cron,
        kwargs=arguments,
        timezone=None if timezone is None else str(timezone),
        build_job=build_job,
    )


def for_task(
    task: Task,
    *,
    cron_expression: object,
    periodic_id: object = "",
    kwargs: Mapping[str, Any] | None = None,
    timezone: object = None,
) -> PeriodicSchedule:
    """The schedule of an ``app.task`` task: its jobs are what ``task.defer(...)`` stores."""
    return declare(
        task_name=task.name,
        cron_expression=cron_expression,
        periodic_id=periodic_id,
        kwargs=kwargs,
        timezone=timezone,
        call_problem=lambda arguments: (
            None if task.call_shape is None else task.call_shape.problem(arguments)
        ),
        build_job=lambda arguments: task.configure().spec(
            arguments, max_size=conf.max_arguments_size()
        ),
    )


def add(schedules: dict[tuple[str, str], PeriodicSchedule], schedule: PeriodicSchedule) -> None:
    """Add ``schedule``; ``ValueError`` if another schedule has its task and ``periodic_id``."""
    known = schedules.get(schedule.key)
    if known is not None and not known.same_as(schedule):
        raise ValueError(
            f"task {schedule.task_name!r} already has a schedule with periodic_id "
            f"{schedule.periodic_id!r} ({known.cron}); give each schedule of a task its own "
            "periodic_id"
        )
    schedules[schedule.key] = schedule


def declared_schedules(app: App) -> list[PeriodicSchedule]:
    """Every schedule of ``app`` and of the ``RETRYTASKS_PERIODIC_TASKS`` setting.

    A problem in the setting raises ``ImproperlyConfigured`` naming the entry.
    """
    schedules = dict(app.schedules)
    for index, entry in enumerate(conf.periodic_tasks()):
        where = f"{SETTING}[{index}]"
        try:
            add(schedules, _from_setting(app, entry))
        except (TypeError, ValueError) as error:
            raise ImproperlyConfigured(f"{where}: {error}") from error
    return sorted(schedules.values(), key=lambda schedule: schedule.key)


def _from_setting(app: App, entry: Mapping[str, Any]) -> PeriodicSchedule:
    options = {
        "cron_expression": entry["cron"],
        "periodic_id": entry.get("periodic_id", ""),
        "kwargs": entry.get("kwargs"),
        "timezone": entry.get("timezone"),
    }
    name = entry["task"]
    if name in app.tasks:
        return for_task(app.tasks[name], **options)
    try:
        from django_retrytasks.backends.periodic import django_task_schedule
    except ImportError:  # Django < 6.0: no django.tasks
        raise ValueError(
            f"{name!r} is neither an app.task task's name nor a django.tasks task (this "
            "Django has no django.tasks)"
        ) from None
    return django_task_schedule(name, **options)
