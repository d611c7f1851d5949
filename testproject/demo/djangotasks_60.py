"""``django.tasks`` tasks written as on Django 6.0, whose ``@task`` takes no ``retry=``.

A task without ``retry`` follows the backend's ``OPTIONS["RETRY"]``; one task gets its own
strategy with ``dataclasses.replace``. Valid on Django 6.0 and later; tests/test_djangotasks_60.py
drives them on 6.0.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.tasks import TaskContext, task


@task(takes_context=True)
def fails_then_counts(context: TaskContext[Any, Any], failures: int) -> int:
    """Fail the first ``failures`` runs, then return the run's number."""
    if context.attempt <= failures:
        raise ConnectionError(f"planned failure {context.attempt} of {failures}")
    return context.attempt


def _retried_twice(context: TaskContext[Any, Any]) -> int:
    if context.attempt < 3:
        raise ConnectionError(f"planned failure {context.attempt}")
    return context.attempt


retried_twice = replace(task(takes_context=True)(_retried_twice), retry=2)  # type: ignore[call-arg]
