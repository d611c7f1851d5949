"""Tasks and the registry: ``app.task`` turns a function into a :class:`Task`.

Nothing here touches the database at import time: ``defer`` reaches the storage layer
lazily, so tasks can be declared in any module, before Django's apps are ready.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from django_retrytasks import durations, limits
from django_retrytasks import retry as retry_module
from django_retrytasks.exceptions import UnknownTask
from django_retrytasks.jobs import JobSpec

if TYPE_CHECKING:
    from django_retrytasks.periodic import PeriodicSchedule

DEFAULT_QUEUE = "default"


def check_json(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``kwargs`` as plain JSON data after checking both databases store it alike."""
    return limits.check_json(kwargs)


def _check_name(value: object, *, option: str, allow_none: bool) -> str | None:
    return limits.check_name(
        value, option=option, max_length=_MAX_LENGTHS[option], allow_none=allow_none
    )


_MAX_LENGTHS = {
    "name": limits.MAX_TASK_NAME_LENGTH,
    "queue": limits.MAX_QUEUE_LENGTH,
    "lock": limits.MAX_LOCK_LENGTH,
    "queueing_lock": limits.MAX_LOCK_LENGTH,
}


_check_priority = limits.check_priority


class Deferrer:
    """Defers jobs of one task with options set by :meth:`Task.configure`."""

    def __init__(
        self,
        task: Task,
        *,
        schedule_at: datetime | None = None,
        schedule_in: Mapping[str, float] | timedelta | None = None,
        priority: int | None = None,
        queue: str | None = None,
        lock: str | None = None,
        queueing_lock: str | None = None,
    ) -> None:
        if schedule_at is not None and schedule_in is not None:
            raise ValueError("configure() takes schedule_at or schedule_in, not both")
        self.task = task
        self.schedule_at = (
            None
            if schedule_at is None
            else durations.check_aware(schedule_at, name="schedule_at")
        )
        self.delay_seconds = (
            None
            if schedule_in is None
            else durations.delay_to_seconds(schedule_in, name="schedule_in")
        )
        self.priority = task.priority if priority is None else _check_priority(priority)
        self.queue = (
            task.queue if queue is None else _check_name(queue, option="queue", allow_none=False)
        )
        self.lock = task.lock if lock is None else _check_name(lock, option="lock", allow_none=True)
        self.queueing_lock = (
            task.queueing_lock
            if queueing_lock is None
            else _check_name(queueing_lock, option="queueing_lock", allow_none=True)
        )

    def spec(self, kwargs: Mapping[str, Any], *, max_size: int) -> JobSpec:
        """The job to store, once ``kwargs`` are known to suit the task and both databases."""
        assert self.queue is not None
        arguments, text = limits.checked_arguments(kwargs, max_size=max_size)
        self.task.check_call(arguments)
        return JobSpec(
            task_name=self.task.name,
            task_kwargs=arguments,
            task_kwargs_json=text,
            queue=self.queue,
            priority=self.priority,
            lock=self.lock,
            queueing_lock=self.queueing_lock,
            scheduled_at=self.schedule_at,
            delay_seconds=self.delay_seconds,
        )

    def defer(self, **kwargs: Any) -> int:
        """Store one job and return its id."""
        from django_retrytasks import conf, store

        spec = self.spec(kwargs, max_size=conf.max_arguments_size())
        return store.defer_jobs([spec], sender=self.task)[0]

    def batch_defer(self, *kwargs_list: Mapping[str, Any]) -> list[int]:
        """Store one job per dict of arguments, all or nothing, and return their ids."""
        from django_retrytasks import conf, store

        max_size = conf.max_arguments_size()
        specs = [self.spec(kwargs, max_size=max_size) for kwargs in kwargs_list]
        return store.defer_jobs(specs, sender=self.task)


class Task:
    """A registered function with its retry strategy and default job options."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        app: App,
        name: str | None = None,
        retry: bool | int | retry_module.BaseRetryStrategy | None = None,
        pass_context: bool = False,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        lock: str | None = None,
        queueing_lock: str | None = None,
        timeout: float | None = None,
        on_final_failure: Callable[[Any, BaseException], Any] | None = None,
        max_snoozes: int | None = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"a task must be a callable, not {type(func).__name__}")
        self.func = func
        self.app = app
        self.name: str = (
            _check_name(
                name or f"{func.__module__}.{func.__name__}", option="name", allow_none=False
            )
            or ""
        )
        self.retry = retry_module.get_retry_strategy(retry)
        self.pass_context = bool(pass_context)
        self.queue: str = _check_name(queue, option="queue", allow_none=False) or DEFAULT_QUEUE
        self.priority = _check_priority(priority)
        self.lock = _check_name(lock, option="lock", allow_none=True)
        self.queueing_lock = _check_name(queueing_lock, option="queueing_lock", allow_none=True)
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.timeout = timeout
        if on_final_failure is not None and not callable(on_final_failure):
            raise TypeError(
                "on_final_failure must be a callable taking (job, exception), not "
                f"{type(on_final_failure).__name__}"
            )
        #: Called as ``on_final_failure(job, exception)`` once, when the job ends failed.
        self.on_final_failure = on_final_failure
        if max_snoozes is not None and (
            isinstance(max_snoozes, bool) or not isinstance(max_snoozes, int) or max_snoozes < 0
        ):
            raise ValueError(f"max_snoozes must be None or an int >= 0, got {max_snoozes!r}")
        #: How many snoozes a job may take; ``None`` means the RETRYTASKS_MAX_SNOOZES setting.
        self.max_snoozes = max_snoozes
        #: The keyword arguments the function accepts (None: its signature cannot be read).
        self.call_shape = limits.call_shape(func, pass_context=self.pass_context)
        functools.update_wrapper(self, func)

    @property
    def retry_strategy(self) -> retry_module.BaseRetryStrategy | None:
        """The same object as :attr:`retry` (the name Procrastinate uses)."""
        return self.retry

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def check_call(self, kwargs: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` naming the problem if a job with ``kwargs`` could not call the
        function (a missing required argument, an unknown name)."""
        problem = None if self.call_shape is None else self.call_shape.problem(kwargs)
        if problem is not None:
            raise TypeError(f"task {self.name!r} {problem}; nothing was stored")

    def configure(
        self,
        *,
        schedule_at: datetime | None = None,
        schedule_in: Mapping[str, float] | timedelta | None = None,
        priority: int | None = None,
        queue: str | None = None,
        lock: str | None = None,
        queueing_lock: str | None = None,
    ) -> Deferrer:
        return Deferrer(
            self,
            schedule_at=schedule_at,
            schedule_in=schedule_in,
            priority=priority,
            queue=queue,
            lock=lock,
            queueing_lock=queueing_lock,
        )

    def defer(self, **kwargs: Any) -> int:
        """Store a job that runs this task with ``kwargs`` and return its id."""
        return Deferrer(self).defer(**kwargs)

    def batch_defer(self, *kwargs_list: Mapping[str, Any]) -> list[int]:
        return Deferrer(self).batch_defer(*kwargs_list)

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


class App:
    """The registry of tasks. ``django_retrytasks.app`` is the one most projects need."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        #: The schedules ``@app.periodic`` declared, by (task name, periodic_id).
        self.schedules: dict[tuple[str, str], PeriodicSchedule] = {}

    @overload
    def task(self, func: Callable[..., Any], /) -> Task: ...

    @overload
    def task(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        retry: bool | int | retry_module.BaseRetryStrategy | None = None,
        pass_context: bool = False,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        lock: str | None = None,
        queueing_lock: str | None = None,
        timeout: float | None = None,
        on_final_failure: Callable[[Any, BaseException], Any] | None = None,
        max_snoozes: int | None = None,
    ) -> Callable[[Callable[..., Any]], Task]: ...

    def task(
        self, func: Callable[..., Any] | None = None, /, **options: Any
    ) -> Task | Callable[[Callable[..., Any]], Task]:
        """Register a function as a task; usable bare (``@app.task``) or with options."""

        def register(function: Callable[..., Any]) -> Task:
            task = Task(function, app=self, **options)
            existing = self.tasks.get(task.name)
            if existing is not None and existing.func is not function:
                _duplicate_names.add(task.name)
            self.tasks[task.name] = task
            return task

        if func is not None:
            return register(func)
        return register

    def periodic(
        self,
        *,
        cron: str,
        periodic_id: str = "",
        kwargs: Mapping[str, Any] | None = None,
        timezone: str | None = None,
    ) -> Callable[[Task], Task]:
        """Defer a job of the task below at every tick of ``cron``; stack it on ``@app.task``.

        Each job receives ``timestamp`` (the tick as Unix seconds) and ``kwargs``.
        ``cron`` has 5 fields, or 6 with seconds last; ``timezone`` is an IANA name (the
        project's ``TIME_ZONE`` when left out). Everything is checked here: a bad
        expression, an unknown time zone, arguments that are not JSON or that the function
        cannot take, or a second schedule of the task with the same ``periodic_id`` raise
        ``ValueError`` or ``TypeError``. The task is returned unchanged.
        """
        from django_retrytasks import periodic as periodic_module

        def schedule(task: Task) -> Task:
            if not isinstance(task, Task):
                raise TypeError(
                    f"@app.periodic schedules a task: put it above @app.task, not on "
                    f"{type(task).__name__} {getattr(task, '__qualname__', task)!r}"
                )
            declared = periodic_module.for_task(
                task,
                cron_expression=cron,
                periodic_id=periodic_id,
                kwargs=kwargs,
                timezone=timezone,
            )
            periodic_module.add(self.schedules, declared)
            return task

        return schedule

    def get_task(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownTask(
                f"no task is registered under the name {name!r}; is its module imported "
                "(a tasks.py of an installed app), and did the name change?"
            ) from None


#: Names registered twice for different functions; reported by the system checks.
_duplicate_names: set[str] = set()

app = App()
