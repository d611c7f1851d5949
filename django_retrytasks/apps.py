from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, router
from django.db.backends.signals import connection_created
from django.utils.module_loading import autodiscover_modules

from django_retrytasks import conf

logger = logging.getLogger(__name__)

#: Aliases whose switch to WAL has been logged by this process.
_announced: set[str] = set()


def written_databases() -> set[str]:
    """The database aliases the app writes to: where the routers send its models, and the
    alias its store writes to unless told otherwise."""
    from django_retrytasks.models import Attempt, Job, Worker

    aliases = {router.db_for_write(model) or DEFAULT_DB_ALIAS for model in (Job, Attempt, Worker)}
    return aliases | {DEFAULT_DB_ALIAS}


def use_wal_on_sqlite(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Switch the SQLite databases the app writes to to write-ahead logging.

    In SQLite's default journal mode a reader blocks a writer's commit, so a worker
    recording outcomes while web processes read (or defer) meets "database is locked".
    WAL lets readers and one writer proceed together; it is a persistent, widely
    recommended setting, and changes the database file for every program that opens it:
    other SQLite databases of the project are left alone. ``RETRYTASKS_SQLITE_WAL = False``
    leaves the journal mode of every database alone.
    """
    if connection.vendor != "sqlite" or not getattr(settings, "RETRYTASKS_SQLITE_WAL", True):
        return
    if connection.is_in_memory_db() or connection.alias not in written_databases():
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            before = str(cursor.fetchone()[0]).lower()
            if before == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            after = str(cursor.fetchone()[0]).lower()
    except OperationalError:
        return  # another connection holds a lock; the next connection tries again
    if after == "wal" and connection.alias not in _announced:
        _announced.add(connection.alias)
        logger.info(
            "SQLite database %r (%s) switched from journal mode %s to WAL, so that readers "
            "do not block the worker's writes; RETRYTASKS_SQLITE_WAL = False leaves it alone",
            connection.alias,
            connection.settings_dict.get("NAME"),
            before,
        )


class RetryTasksConfig(AppConfig):
    name = "django_retrytasks"
    label = "django_retrytasks"
    verbose_name = "Retry tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        connection_created.connect(use_wal_on_sqlite, dispatch_uid="django_retrytasks_wal")
        # Import every installed app's tasks.py, and the modules the settings name, so the
        # worker and the admin know their tasks (a job row never makes anything import).
        autodiscover_modules("tasks")
        for module in conf.task_modules():
            import_module(module)
        from django_retrytasks import checks  # noqa: F401 (registers the system checks)
