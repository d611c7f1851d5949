"""Workers behind PgBouncer in transaction pooling mode (``make test-pgbouncer``).

The whole PostgreSQL suite runs through the pooler in that session; these tests add what
only a pooler shows: no LISTEN through it, pickup by polling within the promise, LISTEN
on a direct connection when ``RETRYTASKS_LISTEN_DATABASE`` names one, and nothing in
PgBouncer's log about session state (notifications for no client, missing statements).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from django_retrytasks.models import Job
from django_retrytasks.worker.listener import pooled
from testproject.demo.tasks import noop
from tests.test_faults import StartWorker, WorkerProcess, status, wait_for, workers

__all__ = ["workers"]  # the fixture, used by name

LOG = Path(os.environ.get("PGBOUNCER_LOG", "/tmp/retrytasks-pgbouncer/pgbouncer.log"))
SESSION_STATE_ERRORS = ("not linked", "prepared statement")

subprocess_db = pytest.mark.django_db(transaction=True)


def direct_url() -> str:
    """The test database, straight to PostgreSQL (not through the pooler)."""
    settings = connection.settings_dict
    parts = urlsplit(f"postgres://{settings['USER'] or 'postgres'}@127.0.0.1/{settings['NAME']}")
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:5432"))


@pytest.fixture
def pgbouncer_log() -> Iterator[Callable[[], str]]:
    start = LOG.stat().st_size

    def read() -> str:
        with LOG.open() as log:
            log.seek(start)
            return log.read()

    yield read
    assert not [
        line for line in read().splitlines() if any(error in line for error in SESSION_STATE_ERRORS)
    ]


def test_the_connection_is_seen_to_go_through_a_pooler(db: None) -> None:
    connection.ensure_connection()
    assert pooled(connection.connection)


def picked_up_within(seconds: float) -> None:
    job_id = noop.defer()
    deferred = time.monotonic()
    wait_for(lambda: status(job_id) == "succeeded", timeout=seconds, what="the job picked up")
    assert Job.objects.get(pk=job_id).attempts == 1
    assert time.monotonic() - deferred < seconds


@subprocess_db
def test_a_worker_behind_the_pooler_polls_and_picks_up_within_a_second(
    workers: StartWorker, pgbouncer_log: Callable[[], str]
) -> None:
    worker: WorkerProcess = workers("pooled")
    wait_for(lambda: "Not listening for new jobs" in worker.log, what="the pooler noticed")
    for _ in range(3):
        picked_up_within(1.0)
    assert worker.stop() == 0
    assert "LISTEN" not in pgbouncer_log()


@subprocess_db
def test_a_worker_listens_on_the_direct_connection_the_setting_names(
    workers: StartWorker, pgbouncer_log: Callable[[], str]
) -> None:
    os.environ["LISTEN_DATABASE_URL"] = direct_url()
    try:
        # Polling every 30 s: a job picked up at once came by NOTIFY.
        worker = workers("listening", "--polling-interval", "30")
    finally:
        del os.environ["LISTEN_DATABASE_URL"]
    wait_for(lambda: "Listening for new jobs (database 'listen')" in worker.log, what="LISTEN")
    for _ in range(3):
        picked_up_within(5.0)
    assert "Not listening" not in worker.log
    assert worker.stop() == 0
