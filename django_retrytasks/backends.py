"""A backend for Django's task framework (``django.tasks``, Django 6.0+) with real retries.

``TASKS = {"default": {"BACKEND": "django_retrytasks.backends.RetryTasksBackend"}}`` makes
``@task`` functions durable jobs: ``enqueue()`` stores an ordinary
:class:`~django_retrytasks.models.Job` row (``backend`` holds the alias, ``task_name`` the
Task's ``module_path``, ``task_kwargs`` ``{"args": [...], "kwargs": {...}}``), ``runworker``
runs it, the admin shows it. ``@task(retry=...)`` takes the values ``app.task(retry=...)``
takes; ``OPTIONS["RETRY"]`` is the default for tasks that do not say.

The worker calls :func:`run_job` for every claimed job with a ``backend``; outcomes are
recorded by the worker through :mod:`django_retrytasks.services` like any other job's.
"""

from __future__ import annotations

import enum
import importlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import django

try:
    from django.tasks import task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import (
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        Task,
        TaskContext,
        TaskError,
        TaskResult,
        TaskResultStatus,
    )
    from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
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

from django_retrytasks import services, signals
from django_retrytasks.models import Attempt, Job, JobStatus, Outcome
from django_retrytasks.retry import BaseRetryStrategy, get_retry_strategy
from django_retrytasks.tasks import JobSpec, check_json

if TYPE_CHECKING:
    from django_retrytasks.worker import Worker

#: The options ``TASKS[alias]["OPTIONS"]`` understands.
KNOWN_OPTIONS = frozenset({"RETRY"})

#: Shown in ``worker_ids`` for a run whose worker is not known (it died during the run).
UNKNOWN_WORKER = "unknown"

_STATUSES = {
    JobStatus.TODO: TaskResultStatus.READY,
    JobStatus.DOING: TaskResultStatus.RUNNING,
    JobStatus.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    # django.tasks has four states; a job cancelled or aborted did not succeed.
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
    JobStatus.ABORTED: TaskResultStatus.FAILED,
}
_FAILED_OUTCOMES = (Outcome.FAILED, Outcome.LOST, Outcome.ABORTED)
# Runs that do not use up an attempt (``Job.attempts``) are not attempts for django.tasks either.
_UNCOUNTED_OUTCOMES = (Outcome.INTERRUPTED, Outcome.SNOOZED)
_RESULT_ID = re.compile(r"[0-9]{1,18}")
_MAX_TASK_PATH = Job._meta.get_field("task_name").max_length or 255
_MAX_QUEUE_NAME = Job._meta.get_field("queue").max_length or 128


class _Default(enum.Enum):
    BACKEND = "backend default"

    def __repr__(self) -> str:
        return "BACKEND_DEFAULT"


#: ``retry=`` left out: the task is retried as the backend's ``OPTIONS["RETRY"]`` says.
BACKEND_DEFAULT = _Default.BACKEND

RetryOption = bool | int | BaseRetryStrategy | None

# Tasks built with RetryTask, by module path: the worker finds what it may run here.
_tasks_by_path: dict[str, Task] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryTask(Task):
    """A ``django.tasks`` Task with a retry strategy: ``@task(retry=5)``.

    ``retry`` takes what ``app.task(retry=...)`` takes (``True``, an int, a
    :class:`~django_retrytasks.RetryStrategy` or any ``BaseRetryStrategy``, ``False``/``0``/
    ``None`` for never) and holds the strategy (or ``None``) once the task is defined;
    :data:`BACKEND_DEFAULT` when left out.
    """

    retry: RetryOption | _Default = BACKEND_DEFAULT

    def __post_init__(self) -> None:
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
        known = _tasks_by_path.get(self.module_path)
        if (
            known is None
            or known.func is not self.func
            or getattr(known, "retry", None) != self.retry
        ):
            _tasks_by_path[self.module_path] = self

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
        if len(task.queue_name) > _MAX_QUEUE_NAME:
            raise InvalidTask(f"Queue name is longer than {_MAX_QUEUE_NAME} characters.")

    # --- enqueueing ---------------------------------------------------------------------------

    def enqueue(
        self, task: Task, args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskResult[Any, Any]:
        """Store a job (joining the caller's transaction) and return its READY result."""
        self.validate_task(task)
        arguments = check_json(
            {"args": normalize_json(list(args)), "kwargs": normalize_json(kwargs)}
        )
        spec = JobSpec(
            task_name=task.module_path,
            task_kwargs=arguments,
            queue=task.queue_name,
            priority=task.priority,
            lock=None,
            queueing_lock=None,
            scheduled_at=task.run_after,
            delay_seconds=None,
            backend=self.alias,
        )
        [row] = services.defer_job_rows([spec])
        task_result: TaskResult[Any, Any] = TaskResult(
            task=task,
            id=str(row.pk),
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
        job_id = _job_id(result_id)
        job = (
            Job.objects.select_related("worker").filter(pk=job_id, backend=self.alias).first()
            if job_id is not None
            else None
        )
        if job is None:
            raise TaskResultDoesNotExist(
                f"No task result with id {result_id!r} in task backend {self.alias!r}."
            )
        return self._result_of(job, services.DEFAULT_DB)

    async def aget_result(self, result_id: str) -> TaskResult[Any, Any]:
        result: TaskResult[Any, Any] = await sync_to_async(self.get_result, thread_sensitive=True)(
            result_id
        )
        return result

    def _result_of(self, job: Job, using: str) -> TaskResult[Any, Any]:
        task = self._task_of(
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
        return _build_result(
            task,
            job_id=job.pk,
            status=job.status,
            enqueued_at=job.created_at,
            finished_at=job.finished_at,
            task_kwargs=job.task_kwargs,
            return_value=job.return_value,
            history=_history(job.pk, using),
            running=running,
            alias=self.alias,
        )

    def _task_of(
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


# --- finding the Task of a job ----------------------------------------------------------------


def resolve_task(module_path: str, alias: str) -> Task:
    """Return the django.tasks Task stored as ``module_path`` by backend ``alias``.

    Only a Task object runs: one built by this backend's ``@task`` (known once its module
    is imported, as every installed app's ``tasks.py`` is), else one found by importing its
    module, and only a module of an installed app. Anything else raises ``InvalidTask``.
    """
    _backend(alias)
    task = _tasks_by_path.get(module_path) or _import_task(module_path)
    return task if task.backend == alias else task.using(backend=alias)


def _backend(alias: str) -> RetryTasksBackend:
    backend = task_backends[alias]
    if not isinstance(backend, RetryTasksBackend):
        raise InvalidTask(f"Task backend {alias!r} is not a RetryTasksBackend.")
    return backend


def _import_task(module_path: str) -> Task:
    module_name, _, attribute = module_path.rpartition(".")
    if not module_name or apps.get_containing_app_config(module_name) is None:
        raise InvalidTask(
            f"{module_path!r} is not in an installed app; only tasks of installed apps run."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InvalidTask(f"Cannot import the module of task {module_path!r}: {error}") from error
    candidate = _tasks_by_path.get(module_path) or getattr(module, attribute, None)
    if not isinstance(candidate, Task) or candidate.module_path != module_path:
        raise InvalidTask(f"{module_path!r} is not a django.tasks Task.")
    return candidate


def _arguments(task_kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    if (
        isinstance(task_kwargs, dict)
        and set(task_kwargs) <= {"args", "kwargs"}
        and isinstance(task_kwargs.get("args", []), list)
        and isinstance(task_kwargs.get("kwargs", {}), dict)
    ):
        return list(task_kwargs.get("args", [])), dict(task_kwargs.get("kwargs", {}))
    raise InvalidTask(
        'The arguments of a django.tasks job must be {"args": [...], "kwargs": {...}}.'
    )


def _job_id(result_id: object) -> int | None:
    if isinstance(result_id, int) and not isinstance(result_id, bool):
        result_id = str(result_id)
    if isinstance(result_id, str) and _RESULT_ID.fullmatch(result_id):
        return int(result_id)
    return None


# --- building results ---------------------------------------------------------------------


def _history(job_id: int, using: str) -> list[Attempt]:
    return list(Attempt.objects.using(using).filter(job_id=job_id).order_by("number", "id"))


def _exception_class_path(error_type: str) -> str:
    # The core names built-in exceptions without their module ("ValueError").
    if not error_type:
        return "builtins.Exception"
    return error_type if "." in error_type else f"builtins.{error_type}"


def _build_result(
    task: Task,
    *,
    job_id: int,
    status: str,
    enqueued_at: datetime | None,
    finished_at: datetime | None,
    task_kwargs: Any,
    return_value: Any,
    history: list[Attempt],
    running: tuple[datetime, str] | None,
    alias: str,
) -> TaskResult[Any, Any]:
    """A TaskResult from a job's row and its attempts (plus the run going on, if any).

    Runs cut short by a graceful shutdown, and snoozes, are not counted, as in ``Job.attempts``:
    ``worker_ids`` (and so ``attempts``) has one entry per counted run, ``errors`` one
    per failed one.
    """
    counted = [attempt for attempt in history if attempt.outcome not in _UNCOUNTED_OUTCOMES]
    worker_ids = [attempt.worker_name or UNKNOWN_WORKER for attempt in counted]
    starts = [attempt.started_at for attempt in history]
    if running is not None:
        starts.append(running[0])
        worker_ids.append(running[1])
    errors = [
        TaskError(
            exception_class_path=_exception_class_path(attempt.error_type),
            traceback=attempt.traceback or f"{attempt.error_type}: {attempt.error_message}",
        )
        for attempt in counted
        if attempt.outcome in _FAILED_OUTCOMES
    ]
    task_status = _STATUSES[JobStatus(status)]
    args, kwargs = _arguments(task_kwargs)
    task_result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=str(job_id),
        status=task_status,
        enqueued_at=enqueued_at,
        started_at=starts[0] if starts else None,
        finished_at=finished_at
        if task_status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
        else None,
        last_attempted_at=starts[-1] if starts else None,
        args=args,
        kwargs=kwargs,
        backend=alias,
        errors=errors,
        worker_ids=worker_ids,
    )
    if task_status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(task_result, "_return_value", return_value)
    return task_result


# --- the worker side --------------------------------------------------------------------------


def _json_return_value(value: Any) -> Any:
    try:
        return check_json({"value": normalize_json(value)})["value"]
    except TypeError as error:
        raise TypeError(f"The task's return value cannot be stored as JSON: {error}") from error


def run_job(worker: Worker, claim: services.Claim) -> None:
    """Run a claimed job enqueued through a RetryTasksBackend; ``Worker.process`` calls this."""
    record = claim.record
    try:
        backend = _backend(claim.backend)
        task = backend._task_of(
            record.task_name, priority=record.priority, queue_name=record.queue, run_after=None
        )
        args, kwargs = _arguments(record.task_kwargs)
    except (InvalidTask, InvalidTaskBackend) as error:
        worker.fail_without_running(
            claim, error, reason="not retried: not a django.tasks task of this backend"
        )
        return
    task_result = _build_result(
        task,
        job_id=record.id,
        status=JobStatus.DOING,
        enqueued_at=record.created_at,
        finished_at=None,
        task_kwargs=record.task_kwargs,
        return_value=None,
        # No counted run before (the common first run): no attempt row to read for the
        # result the task sees (only an interrupted or snoozed run's start would be missing).
        history=_history(record.id, worker.using) if record.attempts else [],
        running=(claim.run_started_at, worker.name),
        alias=claim.backend,
    )
    # Sent robustly, as the worker's own signals: a failing receiver is logged, the job goes on.
    signals.send(signals.job_started, sender=None, job=record, worker_name=worker.name)
    signals.send(task_started, sender=type(backend), task_result=task_result)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=task_result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        return_value = _json_return_value(value)
    except BaseException as error:  # the job boundary, as in Worker.process
        # Inside the handler: task_finished (sent when this ends the job) logs the traceback.
        worker.record_failed_run(claim, error)
        return

    def send_finished(finished_at: datetime) -> None:
        # The running result plus what the success wrote: no need to read the job back.
        for name, value in (
            ("status", TaskResultStatus.SUCCESSFUL),
            ("finished_at", finished_at),
            ("_return_value", return_value),
        ):
            object.__setattr__(task_result, name, value)
        signals.send(task_finished, sender=type(backend), task_result=task_result)

    worker.record_successful_run(claim, return_value, then=send_finished)


def retry_strategy_for(claim: services.Claim) -> BaseRetryStrategy | None:
    """The strategy that judges a failed run of a django.tasks job (``None``: never retried)."""
    try:
        task = resolve_task(claim.record.task_name, claim.backend)
    except (InvalidTask, InvalidTaskBackend):
        return None
    return retry_strategy_of(task)


def send_task_finished(claim: services.Claim, *, using: str) -> None:
    """Send ``task_finished`` with the job's final state, read back from the database."""
    try:
        backend = _backend(claim.backend)
        job = Job.objects.using(using).select_related("worker").get(pk=claim.record.id)
        task_result = backend._result_of(job, using)
    except (InvalidTask, InvalidTaskBackend, Job.DoesNotExist):
        return
    signals.send(task_finished, sender=type(backend), task_result=task_result)
