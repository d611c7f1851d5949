"""A backend for Django's task framework (``django.tasks``, Django 6.0+) with real retries.

``TASKS = {"default": {"BACKEND": "django_retrytasks.backends.RetryTasksBackend"}}`` makes
``@task`` functions durable jobs: ``enqueue()`` stores an ordinary
:class:`~django_retrytasks.models.Job` row (``backend`` holds the alias, ``task_name`` the
Task's ``module_path``, ``task_kwargs`` ``{"args": [...], "kwargs": {...}}``), ``runworker``
runs it, the admin shows it. ``@task(retry=...)`` takes the values ``app.task(retry=...)``
takes; ``OPTIONS["RETRY"]`` is the default for tasks that do not say.

The worker runs such a job through the handler :meth:`RetryTasksBackend.job_handler` makes
(see :mod:`django_retrytasks.handlers`), in the same job boundary as any other job.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import django

try:
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import (
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        Task,
        TaskResult,
        TaskResultStatus,
    )
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued
except ImportError as error:  # pragma: no cover - only on Django < 6.0
    raise ImportError(
        "django_retrytasks.backends is a backend for Django's task framework (django.tasks), "
        f"which Django 6.0 added; this is Django {django.get_version()}. Upgrade Django to use "
        "it, or take it out of the TASKS setting: the rest of django-retrytasks (app.task, "
        "defer(), runworker, the admin) works without it."
    ) from error

from asgiref.sync import sync_to_async
from django.apps import apps
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.json import normalize_json

from django_retrytasks import conf, limits, store
from django_retrytasks.backends.handler import DjangoTaskHandler
from django_retrytasks.backends.resolving import resolve_task, tasks_by_path
from django_retrytasks.backends.results import (
    UNKNOWN_WORKER,
    build_result,
    history,
    job_id_of,
)
from django_retrytasks.exceptions import ArgumentsNotSerializable
from django_retrytasks.jobs import JobSpec
from django_retrytasks.models import Job, JobStatus
from django_retrytasks.records import Claim
from django_retrytasks.retry import BaseRetryStrategy, get_retry_strategy

#: The options ``TASKS[alias]["OPTIONS"]`` understands.
KNOWN_OPTIONS = frozenset({"RETRY"})

_MAX_TASK_PATH = Job._meta.get_field("task_name").max_length or 255


class _Default(enum.Enum):
    BACKEND = "backend default"

    def __repr__(self) -> str:
        return "BACKEND_DEFAULT"


#: ``retry=`` left out: the task is retried as the backend's ``OPTIONS["RETRY"]`` says.
BACKEND_DEFAULT = _Default.BACKEND

RetryOption = bool | int | BaseRetryStrategy | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryTask(Task):
    """A ``django.tasks`` Task with a retry strategy: ``@task(retry=5)``.

    ``retry`` takes what ``app.task(retry=...)`` takes (``True``, an int, a
    :class:`~django_retrytasks.RetryStrategy` or any ``BaseRetryStrategy``, ``False``/``0``/
    ``None`` for never) and holds the strategy (or ``None``) once the task is defined;
    :data:`BACKEND_DEFAULT` when left out.
    """

    retry: RetryOption | _Default = BACKEND_DEFAULT
    #: Seconds a run may take (as ``app.task(timeout=...)``); ``None`` for no limit.
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or not math.isfinite(self.timeout)
            or self.timeout <= 0
        ):
            raise InvalidTask(
                f"Invalid timeout for task {self.module_path}: a number of seconds > 0, "
                f"got {self.timeout!r}"
            )
        if self.retry is not BACKEND_DEFAULT:
            try:
                strategy = get_retry_strategy(self.retry)
            except (TypeError, ValueError) as error:
                raise InvalidTask(f"Invalid retry for task {self.module_path}: {error}") from error
            object.__setattr__(self, "retry", strategy)
        # Zero-argument super() does not work in slotted dataclasses before Python 3.14.
        Task.__post_init__(self)
        # using() copies keep the first definition; a redefinition (another function, or
        # dataclasses.replace(task, retry=...) on Django 6.0) takes its place.
        known = tasks_by_path.get(self.module_path)
        if (
            known is None
            or known.func is not self.func
            or getattr(known, "retry", None) != self.retry
            or getattr(known, "timeout", None) != self.timeout
        ):
            tasks_by_path[self.module_path] = self

    @property
    def retry_strategy(self) -> BaseRetryStrategy | None:
        """The strategy that judges failed runs: ``retry``, else the backend's ``OPTIONS["RETRY"]``."""
        return retry_strategy_of(self)


def retry_strategy_of(task: Task) -> BaseRetryStrategy | None:
    option = getattr(task, "retry", BACKEND_DEFAULT)
    if option is BACKEND_DEFAULT:
        backend = task.get_backend()
        return backend.default_retry if isinstance(backend, RetryTasksBackend) else None
    return option if isinstance(option, BaseRetryStrategy) else None


class RetryTasksBackend(BaseTaskBackend):
    """Stores tasks as django-retrytasks jobs; ``manage.py runworker`` runs them with retries."""

    task_class = RetryTask

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        try:
            self.default_retry = get_retry_strategy(self.options.get("RETRY"))
        except (TypeError, ValueError) as error:
            raise ImproperlyConfigured(f"TASKS[{alias!r}]['OPTIONS']['RETRY']: {error}") from error

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        if len(task.module_path) > _MAX_TASK_PATH:
            raise InvalidTask(
                f"Task path {task.module_path!r} is longer than {_MAX_TASK_PATH} characters."
            )
        try:
            limits.check_name(
                task.queue_name,
                option="queue_name",
                max_length=limits.MAX_QUEUE_LENGTH,
                allow_none=False,
            )
        except ValueError as error:
            raise InvalidTask(f"Invalid queue for task {task.module_path}: {error}") from error

    # --- enqueueing ---------------------------------------------------------------------------

    def enqueue(
        self, task: Task, args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskResult[Any, Any]:
        """Store a job (joining the caller's transaction) and return its READY result."""
        spec = self.job_spec(task, args, kwargs)
        arguments = spec.task_kwargs
        [row] = store.store_jobs([spec])
        task_result: TaskResult[Any, Any] = TaskResult(
            task=task,
            id=str(row.id),
            status=TaskResultStatus.READY,
            enqueued_at=row.created_at,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=arguments["args"],
            kwargs=arguments["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(sender=type(self), task_result=task_result)
        return task_result

    def job_spec(
        self, task: Task, args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any]
    ) -> JobSpec:
        """The job that runs ``task`` with ``args`` and ``kwargs``, checked as ``enqueue`` checks
        it (periodic schedules of django.tasks tasks store theirs through this too)."""
        self.validate_task(task)
        try:
            plain = {"args": normalize_json(list(args)), "kwargs": normalize_json(kwargs)}
        except RecursionError:  # Django's normalize_json recurses: refuse what it cannot walk
            raise ArgumentsNotSerializable(
                f"job arguments are nested too deep: more than {limits.MAX_JSON_DEPTH} levels"
            ) from None
        return JobSpec(
            task_name=task.module_path,
            task_kwargs=limits.check_arguments(plain, max_size=conf.max_arguments_size()),
            queue=task.queue_name,
            priority=task.priority,
            lock=None,
            queueing_lock=None,
            scheduled_at=task.run_after,
            delay_seconds=None,
            backend=self.alias,
        )

    async def aenqueue(
        self, task: Task, args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskResult[Any, Any]:
        # thread_sensitive: the insert uses the same connection (and transaction) as sync code.
        result: TaskResult[Any, Any] = await sync_to_async(self.enqueue, thread_sensitive=True)(
            task, args, kwargs
        )
        return result

    # --- results ------------------------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult[Any, Any]:
        """Return the current state of a job enqueued through this backend."""
        job_id = job_id_of(result_id)
        job = (
            Job.objects.select_related("worker").filter(pk=job_id, backend=self.alias).first()
            if job_id is not None
            else None
        )
        if job is None:
            raise TaskResultDoesNotExist(
                f"No task result with id {result_id!r} in task backend {self.alias!r}."
            )
        return self.result_of(job, store.DEFAULT_DB)

    async def aget_result(self, result_id: str) -> TaskResult[Any, Any]:
        result: TaskResult[Any, Any] = await sync_to_async(self.get_result, thread_sensitive=True)(
            result_id
        )
        return result

    def result_of(self, job: Job, using: str) -> TaskResult[Any, Any]:
        task = self.task_of(
            job.task_name,
            priority=job.priority,
            queue_name=job.queue,
            run_after=(
                job.scheduled_at
                if job.status == JobStatus.TODO
                and job.scheduled_at is not None
                and job.scheduled_at > job.created_at
                else None
            ),
        )
        running = None
        if job.status == JobStatus.DOING:
            worker_name = job.worker.name if job.worker is not None else UNKNOWN_WORKER
            running = (job.started_at or job.created_at, worker_name)
        return build_result(
            task,
            job_id=job.pk,
            status=job.status,
            enqueued_at=job.created_at,
            finished_at=job.finished_at,
            task_kwargs=job.task_kwargs,
            return_value=job.return_value,
            history=history(job.pk, using),
            running=running,
            alias=self.alias,
        )

    def task_of(
        self, module_path: str, *, priority: int, queue_name: str, run_after: datetime | None
    ) -> Task:
        """The Task at ``module_path`` as stored for a job (its priority, queue and wait)."""
        task = resolve_task(module_path, self.alias)
        # A retry decision may move a job outside what django.tasks accepts: keep the Task's own.
        return task.using(
            priority=min(max(priority, TASK_MIN_PRIORITY), TASK_MAX_PRIORITY),
            queue_name=queue_name if not self.queues or queue_name in self.queues else None,
            run_after=run_after,
        )

    # --- running ------------------------------------------------------------------------------

    def job_handler(self, claim: Claim, *, worker_name: str, using: str) -> DjangoTaskHandler:
        """What the worker runs for a claimed job of this backend (``CannotRun`` if nothing)."""
        return DjangoTaskHandler(self, claim, worker_name=worker_name, using=using)

    # --- checks -------------------------------------------------------------------------------

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        messages: list[checks.CheckMessage] = list(super().check(**kwargs))
        if not apps.is_installed("django_retrytasks"):
            messages.append(
                checks.Error(
                    f"Task backend {self.alias!r} stores tasks in django_retrytasks's tables, "
                    "but django_retrytasks is not in INSTALLED_APPS.",
                    hint="Add 'django_retrytasks' to INSTALLED_APPS and run manage.py migrate.",
                    id="django_retrytasks.E701",
                )
            )
        unknown = sorted(set(self.options) - KNOWN_OPTIONS)
        if unknown:
            messages.append(
                checks.Warning(
                    f"Task backend {self.alias!r} has unknown OPTIONS {', '.join(unknown)}.",
                    hint=f"RetryTasksBackend understands {', '.join(sorted(KNOWN_OPTIONS))}.",
                    id="django_retrytasks.W701",
                )
            )
        return messages


__all__ = [
    "BACKEND_DEFAULT",
    "RetryTask",
    "RetryTasksBackend",
    "resolve_task",
    "retry_strategy_of",
]
