"""Stopping on SIGTERM and SIGINT: the first drains, the second returns what still runs.

The handler runs on the main thread between two bytecodes, possibly while that thread
holds the lock inside a ``threading.Event`` it waits on. Setting that event from the
handler would then deadlock, so the handler only sets events the main thread never waits
on, and a watcher thread calls the worker.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger("django_retrytasks.worker")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalHandlers:
    """Installed for the time of a worker's run: first signal ``drain``, second ``stop_now``."""

    def __init__(
        self, *, worker_name: str, drain: Callable[[], None], stop_now: Callable[[], None]
    ) -> None:
        self.worker_name = worker_name
        self.drain = drain
        self.stop_now = stop_now
        self._first = threading.Event()
        self._second = threading.Event()
        self._done = threading.Event()
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (only the main thread can)."""
        if threading.current_thread() is not threading.main_thread():
            return
        threading.Thread(
            target=self._watch, name=f"{self.worker_name}-signals", daemon=True
        ).start()
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        self._done.set()
        self._first.set()  # lets the watcher thread end

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._first.is_set():
            logger.warning(
                "Second signal %s: returning unfinished runs to the queue and exiting",
                signum,
                extra={"action": "worker_exit_now", "worker": self.worker_name},
            )
            self._second.set()
            return
        logger.info(
            "Signal %s: finishing running jobs, then stopping",
            signum,
            extra={"action": "worker_stopping", "worker": self.worker_name},
        )
        self._first.set()

    def _watch(self) -> None:
        self._first.wait()
        if self._done.is_set():
            return
        self.drain()
        while not self._second.wait(0.05):
            if self._done.is_set():
                return
        self.stop_now()
