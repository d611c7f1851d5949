from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db import OperationalError
from django.db.backends.signals import connection_created
from django.utils.module_loading import autodiscover_modules

from django_retrytasks import conf


def use_wal_on_sqlite(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Switch SQLite databases to write-ahead logging.

    In SQLite's default journal mode a reader blocks a writer's commit, so a worker
    recording outcomes while web processes read (or defer) meets "database is locked".
    WAL lets readers and one writer proceed together; it is a persistent, widely
    recommended setting. ``RETRYTASKS_SQLITE_WAL = False`` leaves the journal mode alone.
    """
    if connection.vendor != "sqlite" or not getattr(settings, "RETRYTASKS_SQLITE_WAL", True):
        return
    if connection.is_in_memory_db():
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
    except OperationalError:
        pass  # another connection holds a lock; the next connection tries again


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
