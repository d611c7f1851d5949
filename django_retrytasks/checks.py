"""System checks (``manage.py check``, and before ``runworker`` and ``migrate``).

======================== ===============================================================
id                       problem
======================== ===============================================================
django_retrytasks.E001   two different functions registered under one task name
django_retrytasks.E002   a task's retry strategy whose parameters cannot work
django_retrytasks.E003   a database without what the worker needs (SQLite >= 3.35 for
                         RETURNING; MariaDB >= 10.6 and MySQL >= 8.0 for SKIP LOCKED;
                         only SQLite, PostgreSQL, MariaDB and MySQL are supported)
django_retrytasks.E004   a RETRYTASKS_* setting of the wrong type or value
django_retrytasks.E005   a periodic schedule of RETRYTASKS_PERIODIC_TASKS that cannot
                         work (unknown task, bad cron expression or time zone,
                         arguments the task cannot take, a duplicate)
======================== ===============================================================
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from django.core.checks import CheckMessage, Error, register
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from django_retrytasks import conf, periodic, tasks
from django_retrytasks.retry import BaseRetryStrategy, RetryStrategy

#: The oldest SQLite with ``UPDATE ... RETURNING``, which claiming a job needs.
MIN_SQLITE = (3, 35, 0)
#: The oldest MariaDB and MySQL with ``SELECT ... FOR UPDATE SKIP LOCKED``.
MIN_MARIADB = (10, 6)
MIN_MYSQL = (8, 0, 1)
SUPPORTED_VENDORS = ("sqlite", "postgresql", "mysql")


@register()
def check_task_names(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(
            f"Two different functions are registered as the task {name!r}; only the last one runs.",
            hint="Give one of them another name: @app.task(name='...').",
            obj=tasks.app.tasks.get(name),
            id="django_retrytasks.E001",
        )
        for name in sorted(tasks._duplicate_names)
    ]


def strategy_problems(strategy: BaseRetryStrategy) -> list[str]:
    """Reasons why ``strategy`` cannot work as its parameters suggest (empty when fine)."""
    kind = type(strategy)
    if (
        kind.get_retry_decision is BaseRetryStrategy.get_retry_decision
        and kind.get_schedule_in is BaseRetryStrategy.get_schedule_in
    ):
        return [f"{kind.__name__} implements neither get_retry_decision nor get_schedule_in"]
    if not isinstance(strategy, RetryStrategy):
        return []
    problems = []
    if strategy.retry_exceptions == ():
        problems.append("retry_exceptions is empty, so no exception is ever retried")
    for retried in strategy.retry_exceptions or ():
        if strategy.no_retry_exceptions and issubclass(retried, strategy.no_retry_exceptions):
            problems.append(
                f"{retried.__name__} is in retry_exceptions but also excluded by "
                "no_retry_exceptions, so it is never retried"
            )
    if (
        strategy.retry_for is not None
        and strategy.max_attempts != 0
        and strategy.base_wait(0) * (1 - strategy.jitter) > strategy.retry_for.total_seconds()
    ):
        problems.append(
            f"the first retry waits {strategy.base_wait(0):g}s, longer than retry_for "
            f"({strategy.retry_for}), so no retry ever fits in the time budget"
        )
    return problems


@register()
def check_strategies(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for task in tasks.app.tasks.values():
        if task.retry is None:
            continue
        messages.extend(
            Error(
                f"The retry strategy of task {task.name!r} cannot work: {problem}.",
                hint="Fix the strategy's parameters where the task is declared.",
                obj=task,
                id="django_retrytasks.E002",
            )
            for problem in strategy_problems(task.retry)
        )
    return messages


def database_problems(
    vendor: str,
    sqlite_version: tuple[int, ...] = (),
    server: tuple[str, tuple[int, ...]] | None = None,
) -> list[str]:
    """What the database lacks; ``server`` is MySQL's flavour ("MariaDB" or "MySQL") and version."""
    if vendor not in SUPPORTED_VENDORS:
        return [
            f"the {vendor!r} database is not supported; use SQLite, PostgreSQL, MariaDB or MySQL"
        ]
    if vendor == "sqlite" and tuple(sqlite_version) < MIN_SQLITE:
        found = ".".join(map(str, sqlite_version))
        return [f"SQLite {found} lacks UPDATE ... RETURNING, which claiming jobs needs (3.35+)"]
    if vendor == "mysql" and server is not None:
        flavour, version = server
        oldest = MIN_MARIADB if flavour == "MariaDB" else MIN_MYSQL
        if tuple(version) < oldest:
            return [
                f"{flavour} {'.'.join(map(str, version))} lacks SELECT ... FOR UPDATE SKIP "
                f"LOCKED, which claiming jobs needs ({'.'.join(map(str, oldest))}+)"
            ]
    return []


def mysql_server(connection: Any) -> tuple[str, tuple[int, ...]]:
    """("MariaDB" or "MySQL", its version): this connects to the server."""
    flavour = "MariaDB" if connection.mysql_is_mariadb else "MySQL"
    return flavour, tuple(connection.mysql_version)


@register()
def check_database(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    # The vendor is known without connecting; the SQLite version is the linked library's.
    # A MySQL server's version needs a connection: only checks that may use the database
    # (``migrate``, ``check --database default``) read it.
    connection = connections["default"]
    server = None
    if connection.vendor == "mysql" and "default" in (databases or ()):
        server = mysql_server(connection)
    return [
        Error(
            f"The default database cannot run django-retrytasks: {problem}.",
            id="django_retrytasks.E003",
        )
        for problem in database_problems(connection.vendor, sqlite3.sqlite_version_info, server)
    ]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        conf.get_settings()
    except ImproperlyConfigured as error:
        return [Error(str(error), hint="See django_retrytasks.conf.", id="django_retrytasks.E004")]
    return []


@register()
def check_periodic_schedules(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # @app.periodic raises when declared; the setting's schedules are checked here.
    try:
        periodic.declared_schedules(tasks.app)
    except ImproperlyConfigured as error:
        return [
            Error(str(error), hint="See docs/periodic.md.", id="django_retrytasks.E005"),
        ]
    return []
