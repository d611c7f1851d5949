"""Which queues exist: those registered tasks declare and those stored jobs use.

``runworker --queues`` warns about a name in neither (a typo such as ``defualt`` would
otherwise leave a worker idle without a word).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings

from django_retrytasks import tasks
from django_retrytasks.models import Job


def known_queues() -> set[str]:
    """Queues of registered tasks, of the ``django.tasks`` backends' ``QUEUES``, and of jobs
    in the database (one indexed read of the distinct names)."""
    names = {task.queue for task in tasks.app.tasks.values()}
    backends: Any = getattr(settings, "TASKS", {}) or {}
    for options in backends.values():
        names.update(options.get("QUEUES") or ())
    names.update(Job.objects.order_by().values_list("queue", flat=True).distinct())
    return names


def unknown_queues(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(unknown, known)``: the ``names`` no task declares and no job uses, and every known
    queue, both sorted."""
    known = known_queues()
    return sorted(set(names) - known), sorted(known)
