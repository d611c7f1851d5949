"""``django.tasks`` tasks run by django-retrytasks' backend (``TASKS`` in the settings)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from django.tasks import TaskContext, task
from django.utils import timezone

from django_retrytasks import BaseRetryStrategy, Job, RetryDecision, RetryStrategy, Snooze

#: Labels of the runs of :func:`record_call`, in the order they ran.
calls: list[str] = []


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task(queue_name="emails")
def record_call(label: str) -> None:
    calls.append(label)


@task(retry=5, takes_context=True)  # type: ignore[call-overload]
def flaky(context: TaskContext[Any, Any], failures: int) -> int:
    """Fail the first ``failures`` runs, then return the attempt number."""
    if context.attempt <= failures:
        raise ValueError(f"planned failure {context.attempt} of {failures}")
    return context.attempt


@task(retry=2)  # type: ignore[call-overload]
def always_fails() -> None:
    raise RuntimeError("this task never works")


@task(retry=RetryStrategy(max_attempts=5, retry_exceptions={ConnectionError}))  # type: ignore[call-overload]
def only_connection_errors(kind: str) -> None:
    raise {"connection": ConnectionError, "key": KeyError}[kind](kind)


@task(retry=RetryStrategy(max_attempts=3, linear_wait=5), takes_context=True)  # type: ignore[call-overload]
def linear_waits(context: TaskContext[Any, Any]) -> str:
    if context.attempt <= 2:
        raise OSError("not yet")
    return "done"


@task
def uses_backend_default() -> None:
    raise RuntimeError("retried as OPTIONS['RETRY'] says")


@task(retry=0)  # type: ignore[call-overload]
def never_retried() -> None:
    raise RuntimeError("not retried whatever the backend default")


class MoveToEmails(BaseRetryStrategy):
    """Retry once, one priority step up, on the emails queue."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if job.attempts >= 1:
            return None
        return RetryDecision(priority=job.priority + 1, queue="emails")


@task(retry=MoveToEmails(), takes_context=True)  # type: ignore[call-overload]
def moved_on_retry(context: TaskContext[Any, Any]) -> int:
    if context.attempt == 1:
        raise ValueError("first run fails")
    return context.task_result.task.priority


@task
def returns_a_set() -> set[int]:
    return {1, 2}


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(retry=1, takes_context=True)  # type: ignore[call-overload]
async def async_flaky(context: TaskContext[Any, Any]) -> int:
    await asyncio.sleep(0)
    if context.attempt == 1:
        raise ConnectionError("first run fails")
    return context.attempt


def not_a_task() -> str:
    """A plain function: a job naming it must never run it."""
    calls.append("not_a_task ran")
    return "ran"


@task(takes_context=True)
def snoozes_once(context: TaskContext[Any, Any]) -> int:
    """Ask to run again in 30 s the first time (no attempt used), then return the attempt."""
    if "snoozed" not in calls:
        calls.append("snoozed")
        raise Snooze(seconds=30)
    return context.attempt


def retried_once_the_django_6_0_way() -> None:
    raise RuntimeError("Django 6.0's @task takes no retry=: dataclasses.replace sets it")


retried_once_the_django_6_0_way = replace(  # type: ignore[assignment]
    task(retried_once_the_django_6_0_way),
    retry=1,  # type: ignore[call-arg]
)


@task(timeout=0.2)  # type: ignore[call-overload]
def too_slow() -> str:
    """Runs past its timeout (RetryTask's, as app.task's)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "finished"


@task(timeout=0.2)  # type: ignore[call-overload]
async def async_too_slow() -> str:
    await asyncio.sleep(30)
    return "finished"


@task
def returns_a_datetime() -> Any:
    calls.append("returns_a_datetime ran")
    return timezone.now()
