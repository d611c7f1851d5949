"""Periodic schedules of ``django.tasks`` tasks, declared in ``RETRYTASKS_PERIODIC_TASKS``.

``{"task": "myapp.tasks.nightly_report", "cron": "0 3 * * *"}`` schedules the Task defined at
that module path (in an installed app's ``tasks`` module, or one ``RETRYTASKS_TASK_MODULES``
lists) on the backend it names, which must be a ``RetryTasksBackend``: each tick stores the
job ``enqueue(timestamp=..., **kwargs)`` would store.
"""

from __future__ import annotations

from typing import Any

from django.tasks.exceptions import InvalidTask, InvalidTaskBackend

from django_retrytasks import limits, periodic
from django_retrytasks.backends.resolving import backend_of, find_task


def django_task_schedule(module_path: str, **options: Any) -> periodic.PeriodicSchedule:
    """The schedule of the django.tasks Task at ``module_path``; ``ValueError`` naming a
    problem (options as :func:`django_retrytasks.periodic.declare` takes them)."""
    try:
        task = find_task(module_path)
        backend = backend_of(task.backend)
        backend.validate_task(task)
    except (InvalidTask, InvalidTaskBackend) as error:
        raise ValueError(
            f"{module_path!r} is neither an app.task task's name nor a django.tasks task of a "
            f"RetryTasksBackend: {error}"
        ) from None
    shape = limits.call_shape(task.func, pass_context=task.takes_context)
    return periodic.declare(
        task_name=task.module_path,
        call_problem=lambda arguments: None if shape is None else shape.problem(arguments),
        build_job=lambda arguments: backend.job_spec(task, (), arguments),
        **options,
    )
