"""Wake-ups within one process: a worker here is told at once when a job becomes due now.

Other processes learn it from NOTIFY (PostgreSQL) or ``PRAGMA data_version`` (SQLite);
see :mod:`django_retrytasks.notify`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import transaction

_callbacks: list[Callable[[], None]] = []
_lock = threading.Lock()


def add_wake_callback(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever this process makes a job due now."""
    with _lock:
        _callbacks.append(callback)


def remove_wake_callback(callback: Callable[[], None]) -> None:
    with _lock:
        if callback in _callbacks:
            _callbacks.remove(callback)


def _wake_all() -> None:
    with _lock:
        callbacks = list(_callbacks)
    for callback in callbacks:
        callback()


def wake_after_commit(using: str) -> None:
    """Wake this process's workers once the current transaction commits (at once outside one)."""
    if _callbacks:
        transaction.on_commit(_wake_all, using=using)
