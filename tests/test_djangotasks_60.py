"""django.tasks on Django 6.0, whose ``@task`` takes no ``retry=``: the backend's
``OPTIONS["RETRY"]`` and ``dataclasses.replace(task(f), retry=...)`` set the retries.

Collected on Django 6.0 only (tests/conftest.py); on 6.1 and later test_djangotasks.py covers
all of this and ``@task(retry=...)`` too.
"""

from __future__ import annotations

import pytest
from django.tasks import TaskResultStatus, task_backends
from django.test import override_settings

from django_retrytasks import RetryStrategy
from django_retrytasks.backends import RetryTask, RetryTasksBackend
from django_retrytasks.models import Job
from django_retrytasks.testing import run_due_jobs
from testproject.demo import djangotasks_60 as tasks

from .conftest import Clock

pytestmark = pytest.mark.django_db

BACKEND = "django_retrytasks.backends.RetryTasksBackend"


def test_the_backend_runs_tasks_and_keeps_their_results(clock: Clock) -> None:
    assert isinstance(task_backends["default"], RetryTasksBackend)
    assert isinstance(tasks.fails_then_counts, RetryTask)
    result = tasks.fails_then_counts.enqueue(failures=0)
    assert result.status == TaskResultStatus.READY
    assert run_due_jobs(now=clock()) == 1
    result.refresh()
    assert (result.status, result.return_value, result.attempts) == (
        TaskResultStatus.SUCCESSFUL,
        1,
        1,
    )


def test_options_retry_retries_a_task_that_does_not_say(clock: Clock) -> None:
    with override_settings(
        TASKS={"default": {"BACKEND": BACKEND, "QUEUES": [], "OPTIONS": {"RETRY": 2}}}
    ):
        result = tasks.fails_then_counts.enqueue(failures=2)
        assert run_due_jobs(now=clock(), advance=True) == 3
        result.refresh()
        assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
        assert [error.exception_class_path for error in result.errors] == [
            "builtins.ConnectionError"
        ] * 2


def test_without_options_retry_a_failed_run_is_final(clock: Clock) -> None:
    result = tasks.fails_then_counts.enqueue(failures=1)
    assert run_due_jobs(now=clock(), advance=True) == 1
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert Job.objects.get(pk=int(result.id)).attempts == 1


def test_dataclasses_replace_gives_one_task_its_own_retries(clock: Clock) -> None:
    assert tasks.retried_twice.retry == RetryStrategy(max_attempts=2)
    result = tasks.retried_twice.enqueue()
    assert run_due_jobs(now=clock(), advance=True) == 3
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
