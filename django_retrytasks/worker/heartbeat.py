"""Worker liveness: the heartbeat thread and its settings.

Each worker beats on a thread of its own with its own database connection, so a long
claim, a busy runner or a slow task never delays it. On each beat it also looks for runs
left ``doing`` by workers whose heartbeat is older than the timeout and has them judged
as lost (see :meth:`django_retrytasks.worker.Worker.recover_lost_jobs`).

Settings (see :mod:`django_retrytasks.conf`; every worker of a project should use the
same values): ``RETRYTASKS_HEARTBEAT_INTERVAL`` (10 s), ``RETRYTASKS_HEARTBEAT_TIMEOUT``
(60 s) and ``RETRYTASKS_MAX_CONSECUTIVE_LOSSES`` (3). With the defaults a job left
running by a killed worker is recovered within 70 s.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from django.db import connections

from django_retrytasks import conf
from django_retrytasks.worker import outages

logger = logging.getLogger(__name__)

#: "Not given": take the value from the settings (``None`` is a value: never hold).
FROM_SETTINGS: Any = object()


def _seconds(value: object, *, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
    return float(value)


def heartbeat_settings(
    interval: float | None = None, timeout: float | None = None
) -> tuple[float, float]:
    """Return ``(interval, timeout)``: the arguments, else the settings."""
    if interval is None or timeout is None:
        settings = conf.get_settings()
        interval = settings.heartbeat_interval if interval is None else interval
        timeout = settings.heartbeat_timeout if timeout is None else timeout
    interval = _seconds(interval, name="heartbeat_interval")
    timeout = _seconds(timeout, name="heartbeat_timeout")
    if timeout <= interval:
        raise ValueError(
            f"the heartbeat timeout ({timeout:g}s) must be longer than the heartbeat interval "
            f"({interval:g}s), or live workers would be taken for dead"
        )
    return interval, timeout


def max_consecutive_losses_setting(value: int | None = FROM_SETTINGS) -> int | None:
    """The argument, else ``RETRYTASKS_MAX_CONSECUTIVE_LOSSES``; ``None`` holds never."""
    if value is FROM_SETTINGS:
        return conf.get_settings().max_consecutive_losses
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_consecutive_losses must be an int >= 1 or None, got {value!r}")
    return value


class Heartbeat:
    """Calls ``beat`` every ``interval`` seconds on its own thread until stopped.

    A database error in it is logged and the connection
    dropped; the next beat reconnects. The thread closes its connection when it ends.
    """

    def __init__(self, beat: Callable[[], None], *, interval: float, name: str, using: str) -> None:
        self.beat = beat
        self.interval = interval
        self.using = using
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            # A beat stuck on an unanswered connection must not hold up the shutdown.
            self._thread.join(self.interval + 5)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            backoff = outages.Backoff(cap=self.interval)
            wait = self.interval  # the worker beat once itself before starting us
            while not self._stop.wait(wait):
                wait = self.interval
                try:
                    self.beat()
                except outages.OUTAGE_ERRORS as error:
                    wait = min(self.interval, backoff.next_wait())
                    if not self._failing:
                        logger.warning(
                            "Heartbeat failed (%s: %s); trying again until the database answers",
                            type(error).__name__,
                            str(error).strip(),
                            extra={"action": "heartbeat_error"},
                        )
                    self._failing = True
                    outages.drop_connection(self.using)
                except Exception:
                    logger.exception(
                        "Heartbeat or recovery failed", extra={"action": "heartbeat_error"}
                    )
                else:
                    if self._failing:
                        logger.warning("Heartbeat back", extra={"action": "heartbeat_back"})
                    self._failing = False
                    backoff.reset()
        finally:
            connections.close_all()
