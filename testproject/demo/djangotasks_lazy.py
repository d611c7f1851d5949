"""A ``django.tasks`` task outside ``tasks.py``: ``RETRYTASKS_TASK_MODULES`` lists its module."""

from __future__ import annotations

from django.tasks import task


@task
def lazy_double(value: int) -> int:
    return value * 2
