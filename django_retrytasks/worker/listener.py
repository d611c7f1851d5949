"""Waking an idle worker when a job is stored in another process.

On PostgreSQL, :class:`Listener` LISTENs on its own connection for the trigger's NOTIFY
(see :mod:`django_retrytasks.notify`); a worker wakes only for its own queues. SQLite,
MariaDB and MySQL have no NOTIFY: an idle worker there watches a value that moves when
another process stores a job (:class:`CommitWatcher`). Either way the worker still polls,
so a lost connection only costs latency.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections

from django_retrytasks import conf
from django_retrytasks.models import Job
from django_retrytasks.notify import CHANNEL

logger = logging.getLogger(__name__)

#: How often the listening thread looks up from the socket to see whether it must stop.
STOP_CHECK_SECONDS = 0.2
RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)


class Listener:
    """A thread that LISTENs on its own connection and calls ``notified`` for relevant jobs.

    ``notified`` gets the listening connection (a Django ``DatabaseWrapper`` in autocommit)
    and may run statements on it: its server process has just sent the notification and
    answers faster than one that has been idle (on the 2-core bench machine, a claim there
    took 0.6 ms instead of 1.7). It defaults to calling ``wake``.
    """

    def __init__(
        self,
        *,
        using: str,
        queues: Sequence[str] | None,
        wake: Callable[[], None],
        notified: Callable[[Any], None] | None = None,
        trust_connection: bool = False,
    ) -> None:
        self.using = using
        #: The connection was named for LISTEN (``RETRYTASKS_LISTEN_DATABASE``): it is used
        #: even where it looks pooled.
        self.trust_connection = trust_connection
        #: Set when the connection turned out to go through a pooler: nothing is listened to.
        self.pooled = threading.Event()
        self._listened = False
        self.queues = frozenset(queues) if queues else None
        self.wake = wake
        self.notified = notified or (lambda connection: wake())
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retrytasks-listener", daemon=True)

    @classmethod
    def start_for(
        cls,
        *,
        using: str,
        queues: Sequence[str] | None,
        wake: Callable[[], None],
        notified: Callable[[Any], None] | None = None,
    ) -> Listener | None:
        """Start listening if the database can (PostgreSQL); else return ``None``.

        Through ``RETRYTASKS_LISTEN_DATABASE`` when set, else through ``using``'s own kind of
        connection, unless that turns out to go through a pooler (see :func:`pooled`).
        """
        listen_alias = conf.listen_database()
        alias = listen_alias or using
        if connections[alias].vendor != "postgresql":
            return None
        listener = cls(
            using=alias,
            queues=queues,
            wake=wake,
            notified=notified,
            trust_connection=listen_alias is not None,
        )
        listener._thread.start()
        return listener

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(STOP_CHECK_SECONDS * 5)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            wrapper = connections.create_connection(self.using)
            try:
                wrapper.connect()
                wrapper.set_autocommit(True)
                raw = wrapper.connection
                if not self.trust_connection and pooled(raw):
                    self._give_up_behind_a_pooler()
                    return
                raw.execute(f"LISTEN {CHANNEL}")
                if failures or not self._listened:
                    logger.info(
                        "Listening for new jobs (database %r)",
                        self.using,
                        extra={"action": "listen_start"},
                    )
                self._listened = True
                self.listening.set()
                failures = 0
                # Jobs may have come while we were not listening: look once.
                self.wake()
                while not self._stop.is_set():
                    relevant = False
                    # Ends after the first packet with a notification, so that ``notified``
                    # may use the connection; what arrives meanwhile is kept for the next.
                    for notification in raw.notifies(timeout=STOP_CHECK_SECONDS, stop_after=1):
                        if self.queues is None or notification.payload in self.queues:
                            relevant = True
                    if relevant and not self._stop.is_set():
                        self.notified(wrapper)
            except Exception as error:
                self.listening.clear()
                wait = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                logger.warning(
                    "Not listening for new jobs (%s: %s); polling meanwhile, reconnecting in %gs",
                    type(error).__name__,
                    error,
                    wait,
                    extra={"action": "listen_error"},
                )
                self._stop.wait(wait)
            finally:
                self.listening.clear()
                try:
                    wrapper.close()
                except Exception:
                    logger.debug("Closing the listening connection failed", exc_info=True)


    def _give_up_behind_a_pooler(self) -> None:
        self.pooled.set()
        logger.warning(
            "Not listening for new jobs: the database connection goes through a connection "
            "pooler, where LISTEN cannot work; polling instead. For instant pickup, set "
            "RETRYTASKS_LISTEN_DATABASE to the alias of a connection straight to PostgreSQL",
            extra={"action": "listen_pooled"},
        )


def pooled(raw: Any) -> bool:
    """Whether the psycopg connection ``raw`` goes through a pooler such as PgBouncer.

    A pooler answers the connection's start with a process id of its own making (the key
    for cancelling queries through it), so it differs from the server process that runs
    the queries; in transaction pooling, two transactions may also run in two processes.
    """
    first = raw.execute("SELECT pg_backend_pid()").fetchone()[0]
    second = raw.execute("SELECT pg_backend_pid()").fetchone()[0]
    return bool(raw.info.backend_pid != first or first != second)


#: How often an idle worker looks whether another process stored a job, by default: on
#: SQLite a read of a counter in shared memory; on MariaDB and MySQL a round trip to the
#: server, so less often (see ``RETRYTASKS_WATCH_INTERVAL``).
SQLITE_WATCH_SECONDS = 0.01
MYSQL_WATCH_SECONDS = 0.02
#: The watched value before the first read (an empty table's highest id is NULL).
_NOT_READ = object()


class CommitWatcher:
    """The stand-in for NOTIFY where there is none: an idle worker reads a value that moves
    when another process stores a job, every few milliseconds.

    On SQLite it is ``PRAGMA data_version``, which changes whenever another connection
    commits (a read of a counter, no disk access). On MariaDB and MySQL it is the highest
    job id, one lookup at the end of the primary key: a new job moves it once committed.
    Jobs that become due without a new row (a retry, a job put back by a stopping worker,
    "retry now") reach other processes' workers at their next poll (``--polling-interval``).
    """

    def __init__(self, using: str, probe: str, step: float) -> None:
        self.using = using
        self.probe = probe
        self.step = step
        self._version: Any = _NOT_READ

    @classmethod
    def for_database(cls, using: str) -> CommitWatcher | None:
        vendor = connections[using].vendor
        interval = conf.get_settings().watch_interval
        if vendor == "sqlite":
            return cls(using, "PRAGMA data_version", interval or SQLITE_WATCH_SECONDS)
        if vendor == "mysql":
            probe = f"SELECT MAX(id) FROM {Job._meta.db_table}"
            return cls(using, probe, interval or MYSQL_WATCH_SECONDS)
        return None  # PostgreSQL has LISTEN/NOTIFY

    def changed(self) -> bool:
        with connections[self.using].cursor() as cursor:
            cursor.execute(self.probe)
            version = cursor.fetchone()[0]
        changed = self._version is not _NOT_READ and version != self._version
        self._version = version
        return changed

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``event`` or for a commit of another connection.

        Compared with the value of the previous look, not with one read now: a job stored
        after the worker's last look (during its claim, say) ends the wait at once.
        """
        remaining = seconds
        while remaining > 0:
            step = min(remaining, self.step)
            if event.wait(step):
                return True
            if self.changed():
                return True
            remaining -= step
        return False
