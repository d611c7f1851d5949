"""The ``RETRYTASKS_*`` settings, with typed defaults; none is required.

======================================  ==========================================  ======================
setting                                 meaning                                     default
======================================  ==========================================  ======================
``RETRYTASKS_RETENTION``                how long finished jobs are kept, by state;  succeeded 7 days,
                                        ``None`` keeps them for ever. Cancelled     failed 30 days
                                        and aborted jobs follow ``"failed"``
                                        unless given
``RETRYTASKS_PRUNE_INTERVAL``           seconds between the worker's own prunes     ``None`` (the worker
                                        (``None``: only ``retrytasks prune``        does not prune)
                                        prunes)
``RETRYTASKS_PRUNE_BATCH_SIZE``         jobs deleted per transaction when pruning   2000
``RETRYTASKS_MAX_SNOOZES``              snoozes a job may take before a snooze      100
                                        counts as a failure (a task's
                                        ``max_snoozes`` wins)
``RETRYTASKS_HEARTBEAT_INTERVAL``       seconds between a worker's heartbeats       10
                                        (each also looks for runs lost with dead
                                        workers)
``RETRYTASKS_HEARTBEAT_TIMEOUT``        seconds of silence after which a worker is  60
                                        taken for dead and its running jobs
                                        recovered
``RETRYTASKS_MAX_CONSECUTIVE_LOSSES``   runs in a row lost with their worker after  3
                                        which a job is held (``None``: never held)
``RETRYTASKS_TASK_MODULES``             modules to import at start-up, besides      ``[]``
                                        every installed app's ``tasks``: their
                                        tasks run
``RETRYTASKS_MAX_ARGUMENTS_SIZE``       bytes of a job's arguments as compact       1,048,576 (1 MiB)
                                        UTF-8 JSON; ``defer()`` refuses larger
                                        ones (``ArgumentsTooLarge``,
                                        docs/limits.md)
``RETRYTASKS_LISTEN_DATABASE``          the alias of a database connection          ``None`` (the worker's
                                        straight to PostgreSQL, for LISTEN, when    own; never through a
                                        the worker's own goes through a pooler      pooler)
``RETRYTASKS_SQLITE_WAL``               switch the SQLite databases the app writes  ``True``
                                        to to WAL (read by ``apps.py``; ``False``
                                        leaves every journal mode alone)
``RETRYTASKS_WATCH_INTERVAL``           seconds between an idle worker's looks for  ``None``: 0.01 on
                                        jobs other processes stored, on databases   SQLite, 0.02 on
                                        without NOTIFY (SQLite, MariaDB, MySQL)     MariaDB and MySQL
``RETRYTASKS_PERIODIC_MAX_DELAY``       seconds a periodic tick may be late and     600
                                        still be deferred (missed while no worker
                                        ran); older ticks are skipped and logged
``RETRYTASKS_PERIODIC_TASKS``           schedules declared without a decorator,     ``[]``
                                        such as of ``django.tasks`` tasks: dicts
                                        with ``task``, ``cron`` and optionally
                                        ``periodic_id``, ``kwargs``, ``timezone``
                                        (docs/periodic.md)
======================================  ==========================================  ======================

Settings are read when used, so ``override_settings`` works in tests. A value of the wrong
type raises ``ImproperlyConfigured`` naming the setting, and the system check
``django_retrytasks.E004`` reports it at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from django_retrytasks.jobs import Status
from django_retrytasks.limits import ARGUMENTS_SIZE_SETTING, DEFAULT_MAX_ARGUMENTS_SIZE

DEFAULT_RETENTION: dict[str, timedelta | None] = {
    Status.SUCCEEDED: timedelta(days=7),
    Status.FAILED: timedelta(days=30),
}
#: The finished states whose age limit defaults to that of ``"failed"``.
FOLLOW_FAILED = (Status.CANCELLED, Status.ABORTED)


@dataclass(frozen=True)
class RetryTasksSettings:
    #: Age limit per finished state (every state of ``Status.FINISHED`` is a key).
    retention: dict[str, timedelta | None]
    prune_interval: float | None
    prune_batch_size: int
    max_snoozes: int
    heartbeat_interval: float
    heartbeat_timeout: float
    max_consecutive_losses: int | None
    max_arguments_size: int
    #: Seconds a periodic tick may be late and still be deferred.
    periodic_max_delay: float = 600.0
    #: Modules imported when Django starts, besides each installed app's ``tasks``.
    task_modules: tuple[str, ...] = ()
    #: The alias workers LISTEN through (``None``: their own, unless behind a pooler).
    listen_database: str | None = None
    #: Seconds between an idle worker's looks for other processes' jobs (no NOTIFY);
    #: ``None``: the database's default (see :mod:`django_retrytasks.worker.listener`).
    watch_interval: float | None = None


def merge_retention(value: Any, *, name: str = "retention") -> dict[str, timedelta | None]:
    """Return the age limit of every finished state: ``value`` over the defaults."""
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"{name} must be a dict such as {{'succeeded': timedelta(days=7), "
            f"'failed': timedelta(days=30)}}, not {type(value).__name__}"
        )
    merged: dict[str, timedelta | None] = dict(DEFAULT_RETENTION)
    for state, age in value.items():
        if state not in Status.FINISHED:
            raise ImproperlyConfigured(
                f"{name} has an unknown key {state!r}; use any of {', '.join(Status.FINISHED)}"
            )
        if age is not None and not isinstance(age, timedelta):
            raise ImproperlyConfigured(
                f"{name}[{state!r}] must be a timedelta or None, not {type(age).__name__}"
            )
        if age is not None and age <= timedelta(0):
            raise ImproperlyConfigured(f"{name}[{state!r}] must be longer than zero, got {age}")
        merged[state] = age
    for state in FOLLOW_FAILED:
        merged.setdefault(state, merged[Status.FAILED])
    return merged


def _number(name: str, value: Any, *, allow_none: bool, integer: bool, minimum: float) -> Any:
    if value is None and allow_none:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value >= minimum:
        kind = "a whole number" if integer else "a number of seconds"
        raise ImproperlyConfigured(
            f"{name} must be {kind} >= {minimum:g}{' or None' if allow_none else ''}, got {value!r}"
        )
    return value


def _seconds_setting(name: str, default: float) -> float:
    seconds = _number(
        name, getattr(django_settings, name, default), allow_none=False, integer=False, minimum=0
    )
    if not seconds > 0:
        raise ImproperlyConfigured(f"{name} must be a number of seconds > 0, got {seconds!r}")
    return float(seconds)


def max_arguments_size() -> int:
    """``RETRYTASKS_MAX_ARGUMENTS_SIZE`` alone: ``defer()`` reads it at every call."""
    value = getattr(django_settings, ARGUMENTS_SIZE_SETTING, DEFAULT_MAX_ARGUMENTS_SIZE)
    size: int = _number(ARGUMENTS_SIZE_SETTING, value, allow_none=False, integer=True, minimum=1)
    return size


def get_settings() -> RetryTasksSettings:
    """Read and check the ``RETRYTASKS_*`` settings now."""
    heartbeat_interval = _seconds_setting("RETRYTASKS_HEARTBEAT_INTERVAL", 10.0)
    heartbeat_timeout = _seconds_setting("RETRYTASKS_HEARTBEAT_TIMEOUT", 60.0)
    if heartbeat_timeout <= heartbeat_interval:
        raise ImproperlyConfigured(
            f"RETRYTASKS_HEARTBEAT_TIMEOUT ({heartbeat_timeout:g}s) must be longer than "
            f"RETRYTASKS_HEARTBEAT_INTERVAL ({heartbeat_interval:g}s), or live workers would "
            "be taken for dead"
        )
    return RetryTasksSettings(
        retention=merge_retention(
            getattr(django_settings, "RETRYTASKS_RETENTION", {}), name="RETRYTASKS_RETENTION"
        ),
        prune_interval=_number(
            "RETRYTASKS_PRUNE_INTERVAL",
            getattr(django_settings, "RETRYTASKS_PRUNE_INTERVAL", None),
            allow_none=True,
            integer=False,
            minimum=1,
        ),
        prune_batch_size=_number(
            "RETRYTASKS_PRUNE_BATCH_SIZE",
            getattr(django_settings, "RETRYTASKS_PRUNE_BATCH_SIZE", 2000),
            allow_none=False,
            integer=True,
            minimum=1,
        ),
        max_snoozes=_number(
            "RETRYTASKS_MAX_SNOOZES",
            getattr(django_settings, "RETRYTASKS_MAX_SNOOZES", 100),
            allow_none=False,
            integer=True,
            minimum=0,
        ),
        heartbeat_interval=heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout,
        max_consecutive_losses=_number(
            name := "RETRYTASKS_MAX_CONSECUTIVE_LOSSES",
            getattr(django_settings, name, 3),
            allow_none=True,
            integer=True,
            minimum=1,
        ),
        task_modules=task_modules(),
        listen_database=listen_database(),
        max_arguments_size=max_arguments_size(),
        watch_interval=_number(
            name := "RETRYTASKS_WATCH_INTERVAL",
            getattr(django_settings, name, None),
            allow_none=True,
            integer=False,
            minimum=0.001,
        ),
        periodic_max_delay=float(
            _number(
                name := "RETRYTASKS_PERIODIC_MAX_DELAY",
                getattr(django_settings, name, 600),
                allow_none=False,
                integer=False,
                minimum=1,
            )
        ),
    )


def listen_database() -> str | None:
    """``RETRYTASKS_LISTEN_DATABASE``: an alias of ``DATABASES``, or ``None``."""
    name = "RETRYTASKS_LISTEN_DATABASE"
    alias = getattr(django_settings, name, None)
    if alias is not None and alias not in django_settings.DATABASES:
        raise ImproperlyConfigured(
            f"{name} must name a database of DATABASES ({', '.join(django_settings.DATABASES)}), "
            f"got {alias!r}"
        )
    return alias


def task_modules() -> tuple[str, ...]:
    """``RETRYTASKS_TASK_MODULES``, checked (read alone when Django starts)."""
    name = "RETRYTASKS_TASK_MODULES"
    value = getattr(django_settings, name, ())
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ImproperlyConfigured(
            f"{name} must be a list of module names such as ['myapp.jobs'], got {value!r}"
        )
    for module in value:
        if not isinstance(module, str) or not module:
            raise ImproperlyConfigured(f"{name} must hold module names (strings), got {module!r}")
    return tuple(value)


#: The keys of an entry of ``RETRYTASKS_PERIODIC_TASKS``, and whether each is required.
PERIODIC_ENTRY_KEYS = {
    "task": True,
    "cron": True,
    "periodic_id": False,
    "kwargs": False,
    "timezone": False,
}


def periodic_tasks() -> tuple[Mapping[str, Any], ...]:
    """``RETRYTASKS_PERIODIC_TASKS``, its shape checked (each entry's values are checked
    where the schedule is declared, see :mod:`django_retrytasks.periodic`)."""
    name = "RETRYTASKS_PERIODIC_TASKS"
    value = getattr(django_settings, name, ())
    example = "[{'task': 'myapp.tasks.report', 'cron': '0 3 * * *'}]"
    if isinstance(value, str | Mapping) or not isinstance(value, list | tuple):
        raise ImproperlyConfigured(
            f"{name} must be a list of dicts such as {example}, got {value!r}"
        )
    for index, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise ImproperlyConfigured(
                f"{name}[{index}] must be a dict such as {example[1:-1]}, got {entry!r}"
            )
        unknown = sorted(set(entry) - set(PERIODIC_ENTRY_KEYS), key=str)
        if unknown:
            raise ImproperlyConfigured(
                f"{name}[{index}] has unknown keys {', '.join(map(repr, unknown))}; use "
                f"{', '.join(PERIODIC_ENTRY_KEYS)}"
            )
        for key, required in PERIODIC_ENTRY_KEYS.items():
            if required and key not in entry:
                raise ImproperlyConfigured(f"{name}[{index}] needs a {key!r}")
        if not isinstance(entry["task"], str):
            raise ImproperlyConfigured(
                f"{name}[{index}]['task'] must be a task's name or a django.tasks task's "
                f"module path, got {entry['task']!r}"
            )
    return tuple(value)
