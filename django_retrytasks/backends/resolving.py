"""Finding the ``django.tasks`` Task a stored job names, without importing anything for it.

A job row names its task by ``module_path``. Only two kinds of task run: one built by
this backend's ``@task`` (registered here when its module was imported), and a Task
object found in a module already imported at start-up: the ``tasks`` module of an
installed app, or a module ``RETRYTASKS_TASK_MODULES`` lists. No module is ever imported
because a row names it.
"""

from __future__ import annotations

import sys
from typing import Any

from django.apps import apps
from django.tasks import Task, task_backends
from django.tasks.exceptions import InvalidTask

from django_retrytasks import conf

# Tasks built with RetryTask, by module path: the worker finds what it may run here.
tasks_by_path: dict[str, Task] = {}


def backend_of(alias: str) -> Any:
    """The ``RetryTasksBackend`` configured as ``alias`` (``InvalidTask`` for any other backend)."""
    from django_retrytasks.backends import RetryTasksBackend

    backend = task_backends[alias]
    if not isinstance(backend, RetryTasksBackend):
        raise InvalidTask(f"Task backend {alias!r} is not a RetryTasksBackend.")
    return backend


def resolve_task(module_path: str, alias: str) -> Task:
    """Return the django.tasks Task stored as ``module_path`` by backend ``alias``.

    Anything but a Task of a registered or start-up module raises ``InvalidTask``.
    """
    backend_of(alias)
    task = find_task(module_path)
    return task if task.backend == alias else task.using(backend=alias)


def find_task(module_path: str) -> Task:
    """The django.tasks Task at ``module_path``, as defined (with its own backend)."""
    return tasks_by_path.get(module_path) or _task_of_startup_module(module_path)


def task_modules() -> set[str]:
    """The modules a stored task may come from: installed apps' ``tasks``, and the setting's."""
    found = {f"{config.name}.tasks" for config in apps.get_app_configs()}
    return found | set(conf.task_modules())


def _task_of_startup_module(module_path: str) -> Task:
    module_name, _, attribute = module_path.rpartition(".")
    module = sys.modules.get(module_name) if module_name in task_modules() else None
    if module is None:
        raise InvalidTask(
            f"{module_path!r} is not a registered task: only tasks defined in the tasks module "
            "of an installed app, or in a module RETRYTASKS_TASK_MODULES lists, run."
        )
    candidate = tasks_by_path.get(module_path) or getattr(module, attribute, None)
    if not isinstance(candidate, Task) or candidate.module_path != module_path:
        raise InvalidTask(f"{module_path!r} is not a django.tasks Task.")
    return candidate
