"""A ``django.tasks`` task in a module nothing imports at start-up: the worker imports it."""

from __future__ import annotations

from django.tasks import task


@task
def lazy_double(value: int) -> int:
    return value * 2
