"""Surviving database outages: recognise a lost connection, back off, reconnect, go on.

A worker must outlive a database that goes away and comes back. Each of its threads has
its own connection (Django's connections are per thread); when a statement fails because
the connection broke, the thread closes it, waits a little longer each time, and tries
again, and Django opens a new connection on the next statement.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from django.db import InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)

#: What a broken or unreachable database raises (also SQLite's "database is locked").
OUTAGE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)

FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0


class Backoff:
    """Waits that double from ``first`` up to ``cap`` seconds, with jitter so workers spread out."""

    def __init__(self, first: float = FIRST_BACKOFF, cap: float = MAX_BACKOFF) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def next_wait(self) -> float:
        wait = min(self.cap, self.first * 2**self.failures)
        self.failures += 1
        return wait * random.uniform(0.75, 1.0)

    def reset(self) -> None:
        self.failures = 0


def drop_connection(using: str) -> None:
    """Close this thread's connection so that the next statement opens a fresh one."""
    try:
        connections[using].close()
    except Exception:  # closing a dead connection may raise; it is closed either way
        logger.debug("closing the broken connection raised", exc_info=True)


def persist[T](
    write: Callable[[], T],
    *,
    what: str,
    using: str,
    give_up: threading.Event | None = None,
) -> T:
    """Call ``write`` until it gets through the database outage; return its result.

    Only a write outside any transaction is retried (inside one, the caller's transaction
    is lost with the connection, so the error is raised). ``give_up`` set during an
    outage makes the last error propagate.
    """
    backoff = Backoff()
    while True:
        try:
            result = write()
        except OUTAGE_ERRORS as error:
            if connections[using].in_atomic_block or (give_up is not None and give_up.is_set()):
                raise
            wait = backoff.next_wait()
            logger.warning(
                "Database unavailable while writing %s (%s: %s); trying again in %.2gs",
                what,
                type(error).__name__,
                str(error).strip(),
                wait,
                extra={"action": "db_outage", "what": what, "wait": wait},
            )
            drop_connection(using)
            if give_up is not None:
                give_up.wait(wait)
            else:
                time.sleep(wait)
            continue
        if backoff.failures:
            logger.warning(
                "Database back: wrote %s",
                what,
                extra={"action": "db_back", "what": what},
            )
        return result
