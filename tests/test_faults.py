"""Faults for real: killed workers, signals, a database that goes away, poison jobs, timeouts.

Workers run as ``manage.py runworker`` subprocesses against the test database, with
heartbeats in tenths of a second so that recovery takes a fraction of a second here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from django_retrytasks import store
from django_retrytasks.admin import JobAdmin
from django_retrytasks.models import Job, Worker
from django_retrytasks.store import operations
from django_retrytasks.testing import run_due_jobs
from django_retrytasks.worker import Worker as JobWorker
from django_retrytasks.worker.heartbeat import heartbeat_settings, max_consecutive_losses_setting
from testproject.demo import faults_tasks, tasks
from tests.conftest import ROOT, Clock, database_url, manage
from tests.docs_examples import compiled, python_blocks

ON_POSTGRES = str(settings.DATABASES["default"]["ENGINE"]).endswith("postgresql")
ON_MYSQL = str(settings.DATABASES["default"]["ENGINE"]).endswith("mysql")
FAST_HEARTBEAT = ["--heartbeat-interval", "0.1", "--heartbeat-timeout", "0.6"]
WORKER_LOST = "django_retrytasks.exceptions.WorkerLost"
JOB_TIMEOUT = "django_retrytasks.exceptions.JobTimeout"

subprocess_db = pytest.mark.django_db(transaction=True)


class WorkerProcess:
    """A ``runworker`` subprocess whose log goes to a file the test can read."""

    def __init__(self, log_dir: Path, name: str, *args: str, url: str | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        env = {
            **os.environ,
            "DATABASE_URL": url or database_url(),
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",  # SIGABRT prints every thread's stack (see wait())
        }
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "runworker", "--name", name, *args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # where is it stuck? into the log
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            raise AssertionError(f"worker {self.name} did not exit; its log:\n{self.log}") from None

    def stop(self) -> int:
        self.signal(signal.SIGTERM)
        return self.wait()


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[StartWorker]:
    started: list[WorkerProcess] = []

    def start(name: str, *args: str, url: str | None = None) -> WorkerProcess:
        worker = WorkerProcess(tmp_path, name, *args, url=url)
        started.append(worker)
        return worker

    yield start
    for worker in started:  # never leave a worker writing while the test database is flushed
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


def wait_for(condition: Callable[[], bool], *, timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def status(job_id: int) -> str:
    return Job.objects.get(pk=job_id).status


def outcomes(job_id: int) -> list[str]:
    return list(Job.objects.get(pk=job_id).attempt_history.values_list("outcome", flat=True))


def recoverer(**options: Any) -> JobWorker:
    """An in-process worker used only for :meth:`recover_lost_jobs`."""
    return JobWorker(
        heartbeat_interval=0.1,
        heartbeat_timeout=0.6,
        install_signal_handlers=False,
        name="recoverer",
        **options,
    )


def recover_once_stale(worker: JobWorker) -> None:
    """Recover the one lost run as soon as its worker's heartbeat is older than the timeout."""
    wait_for(
        lambda: worker.recover_lost_jobs(now=timezone.now()) == 1,
        timeout=5,
        what="the lost run to be recovered",
    )


# --- a worker killed with SIGKILL --------------------------------------------------------------


@subprocess_db
def test_job_of_a_killed_worker_is_recovered_as_lost_then_succeeds(workers: StartWorker) -> None:
    job_id = faults_tasks.hang_first_run.defer(seconds=30)
    first = workers("first", *FAST_HEARTBEAT)
    wait_for(lambda: status(job_id) == "doing", what="the first run to start")
    first.process.kill()
    assert first.wait() == -signal.SIGKILL

    second = workers("second", *FAST_HEARTBEAT)
    wait_for(lambda: status(job_id) == "succeeded", what="recovery and the second run")
    assert second.stop() == 0

    job = Job.objects.get(pk=job_id)
    assert job.attempts == 2
    assert job.consecutive_losses == 0
    assert job.return_value == "done in run 2"
    lost, succeeded = job.attempt_history.all()
    assert (lost.number, lost.outcome, lost.error_type) == (1, "lost", WORKER_LOST)
    assert lost.worker_name == "first"
    assert "'first' stopped" in lost.error_message
    assert lost.decision  # judged by the strategy: retry=2 retries it
    assert (succeeded.number, succeeded.outcome, succeeded.worker_name) == (
        2,
        "succeeded",
        "second",
    )
    # The dead worker was forgotten, the stopped one unregistered itself.
    assert not Worker.objects.exists()


def freeze(worker: WorkerProcess) -> None:
    """SIGSTOP the worker at a moment it holds no SQLite write lock nor InnoDB row lock.

    A process frozen inside a write transaction blocks every writer of a SQLite
    database until it runs again (see the README), and on MariaDB every writer of the
    rows it locked, for up to ``innodb_lock_wait_timeout``; here we test a worker frozen
    between two transactions, so we stop it again until the database shows none of its.
    """
    for _ in range(100):
        worker.signal(signal.SIGSTOP)
        if ON_POSTGRES or (mysql_has_no_other_transaction() if ON_MYSQL else sqlite_is_writable()):
            return
        worker.signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the worker always held a lock")


def mysql_has_no_other_transaction() -> bool:
    """No connection to the test database but ours is inside a transaction.

    InnoDB refreshes what ``innodb_trx`` shows at most every 0.1 s: look once the
    frozen worker's state is older than that.
    """
    time.sleep(0.15)
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT COUNT(*) FROM information_schema.innodb_trx t
            JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id
            WHERE p.db = DATABASE() AND p.id <> CONNECTION_ID()""")
        (open_transactions,) = cursor.fetchone()
    return bool(open_transactions == 0)


def sqlite_is_writable() -> bool:
    probe = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.5)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


@subprocess_db
def test_a_frozen_worker_taken_for_dead_comes_back_without_a_second_outcome(
    workers: StartWorker, tmp_path: Path
) -> None:
    flag, job_id, frozen = start_long_job(workers, tmp_path, "frozen", *FAST_HEARTBEAT)
    freeze(frozen)  # a long GC pause, a suspended VM
    try:
        other = workers("other", *FAST_HEARTBEAT)
        wait_for(lambda: outcomes(job_id) == ["lost"], what="the frozen worker's run recovered")
        flag.touch()
        wait_for(lambda: status(job_id) == "succeeded", what="the second run")
    finally:
        frozen.signal(signal.SIGCONT)
    # Thawed, its run returns too: that late outcome is discarded, and it registers again.
    wait_for(lambda: "registering again" in frozen.log, what="the frozen worker to re-register")
    wait_for(lambda: "Outcome of job" in frozen.log, what="its late outcome to be discarded")
    assert other.stop() == 0
    next_job = tasks.noop.defer()
    wait_for(lambda: status(next_job) == "succeeded", what="the thawed worker to work again")
    assert frozen.stop() == 0

    assert outcomes(job_id) == ["lost", "succeeded"]
    job = Job.objects.get(pk=job_id)
    assert [attempt.worker_name for attempt in job.attempt_history.all()] == ["frozen", "other"]
    assert Job.objects.get(pk=next_job).attempt_history.get().worker_name == "frozen"


# --- graceful shutdown -----------------------------------------------------------------------


def start_long_job(
    workers: StartWorker, tmp_path: Path, name: str, *args: str
) -> tuple[Path, int, WorkerProcess]:
    """Start a worker on a job that runs a minute unless its flag file appears.

    Returns once the task's body runs: a job is ``doing`` from its claim, a moment
    before a runner takes it.
    """
    flag, started = tmp_path / "release", tmp_path / "started"
    job_id = faults_tasks.sleep_until_released.defer(
        flag=str(flag), seconds=60, started=str(started)
    )
    worker = workers(name, *args)
    wait_for(started.exists, what="the run to start")
    return flag, job_id, worker


def release_and_finish(flag: Path, job_id: int) -> None:
    flag.touch()
    assert manage("runworker", "--burst").returncode == 0
    assert status(job_id) == "succeeded"


@subprocess_db
def test_sigterm_lets_a_running_job_finish_within_the_shutdown_timeout(
    workers: StartWorker, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    job_id = faults_tasks.sleep_until_released.defer(
        flag=str(tmp_path / "never"), seconds=0.5, started=str(started)
    )
    worker = workers("patient", "--shutdown-timeout", "20")
    wait_for(started.exists, what="the run to start")  # a claim not yet started goes back
    assert worker.stop() == 0
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts, job.return_value) == ("succeeded", 1, "slept")
    assert outcomes(job_id) == ["succeeded"]
    assert not Worker.objects.exists()


@subprocess_db
def test_sigterm_returns_a_job_still_running_at_the_shutdown_timeout(
    workers: StartWorker, tmp_path: Path
) -> None:
    flag, job_id, worker = start_long_job(workers, tmp_path, "hasty", "--shutdown-timeout", "0.3")
    started = time.monotonic()
    assert worker.stop() == 0
    assert time.monotonic() - started < 10
    job = Job.objects.get(pk=job_id)
    # Back in the queue, and the interrupted run did not use up a retry.
    assert (job.status, job.attempts) == ("todo", 0)
    [interrupted] = job.attempt_history.all()
    assert (interrupted.outcome, interrupted.worker_name) == ("interrupted", "hasty")

    release_and_finish(flag, job_id)
    job.refresh_from_db()
    assert (job.attempts, job.return_value) == (1, "released")
    assert outcomes(job_id) == ["interrupted", "succeeded"]


@subprocess_db
def test_a_run_that_ends_during_the_drain_is_stored_at_once_and_a_second_signal_returns_the_rest(
    workers: StartWorker, tmp_path: Path
) -> None:
    short_flag, long_flag = tmp_path / "short", tmp_path / "long"
    started = [tmp_path / "short-started", tmp_path / "long-started"]
    short, long = (
        faults_tasks.sleep_until_released.defer(flag=str(flag), seconds=60, started=str(marker))
        for flag, marker in zip((short_flag, long_flag), started, strict=True)
    )
    worker = workers("draining", "--concurrency", "2", *FAST_HEARTBEAT)
    # Running, not only claimed: a claim no runner took yet goes back at the first signal.
    wait_for(lambda: all(marker.exists() for marker in started), what="both runs to start")
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "finishing running jobs" in worker.log, what="the first signal handled")

    short_flag.touch()
    returned = time.monotonic()
    # Stored while the other run goes on: finished means stored, within a second.
    wait_for(lambda: status(short) == "succeeded", timeout=1, what="the success stored")
    assert time.monotonic() - returned < 1
    assert status(long) == "doing"

    worker.signal(signal.SIGINT)
    interrupted_at = time.monotonic()
    assert worker.wait(timeout=5) == 0
    assert time.monotonic() - interrupted_at < 2  # about a second, not the heartbeat timeout
    job = Job.objects.get(pk=long)
    # Back in the queue at once, without using up an attempt, for the next worker to start.
    assert (job.status, job.attempts) == ("todo", 0)
    assert outcomes(long) == ["interrupted"]
    assert "exiting" in worker.log

    long_flag.touch()
    assert manage("runworker", "--burst").returncode == 0
    assert outcomes(long) == ["interrupted", "succeeded"]
    # The run that had returned never ran again.
    assert outcomes(short) == ["succeeded"]
    assert Job.objects.get(pk=short).attempts == 1


# --- poison jobs -------------------------------------------------------------------------------


@subprocess_db
def test_a_job_that_keeps_killing_its_worker_is_held() -> None:
    job_id = faults_tasks.kill_own_worker.defer()  # retry=True: it would be retried for ever
    for loss in (1, 2, 3):
        result = manage("runworker", "--burst")
        assert result.returncode == -signal.SIGKILL, result.stderr
        recover_once_stale(recoverer(max_consecutive_losses=3))
        job = Job.objects.get(pk=job_id)
        assert (job.attempts, job.consecutive_losses) == (loss, loss)
        if loss < 3:
            assert (job.status, job.held) == ("todo", False)

    assert (job.status, job.held) == ("failed", True)
    assert "failed, held" in JobAdmin(Job, admin.site).status_badge(job)
    history = list(job.attempt_history.all())
    assert [attempt.outcome for attempt in history] == ["lost", "lost", "lost"]
    assert {attempt.error_type for attempt in history} == {WORKER_LOST}
    assert "held: lost with its worker 3 times in a row" in history[-1].decision
    # Nothing runs it again until an operator does.
    assert manage("runworker", "--burst").returncode == 0
    assert status(job_id) == "failed"
    assert operations.retry_now([job_id]).done == [job_id]
    job.refresh_from_db()
    assert (job.status, job.held) == ("todo", False)


@pytest.mark.django_db
def test_a_finished_run_resets_the_count_of_losses(clock: Clock) -> None:
    job_id = faults_tasks.hang_first_run.defer(seconds=0)
    never_retried = tasks.noop.defer()
    store.claim_jobs(now=clock(), limit=2)  # claimed by a process that then died
    lost = recoverer().recover_lost_jobs(now=clock.advance(seconds=5))
    assert lost == 2
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts, job.consecutive_losses) == ("todo", 1, 1)
    # A lost run is judged by the strategy like any failure: no strategy, no retry.
    orphan = Job.objects.get(pk=never_retried)
    assert (orphan.status, orphan.attempts, orphan.held) == ("failed", 1, False)
    assert orphan.attempt_history.get().error_type == WORKER_LOST

    assert run_due_jobs(now=clock()) == 1
    job.refresh_from_db()
    assert (job.status, job.attempts, job.consecutive_losses) == ("succeeded", 2, 0)


@pytest.mark.django_db
def test_two_workers_finding_the_same_lost_run_recover_it_once(clock: Clock) -> None:
    job_id = tasks.noop.defer()
    store.claim_jobs(now=clock(), limit=1)  # by a process that then died
    first, second = (
        store.register_worker(
            name=name, host="h", pid=1, queues=[], concurrency=1, now=clock.advance(seconds=5)
        )
        for name in ("first", "second")
    )
    stale_before = clock() - timedelta(seconds=1)
    [found_by_first] = store.lost_runs(stale_before=stale_before)
    [found_by_second] = store.lost_runs(stale_before=stale_before)
    assert store.take_lost_run(found_by_first, worker_id=first)
    assert not store.take_lost_run(found_by_second, worker_id=second)
    assert Job.objects.get(pk=job_id).worker_id == first


@pytest.mark.django_db
def test_a_run_still_going_is_not_taken_for_lost(clock: Clock) -> None:
    job_id = tasks.noop.defer()
    store.claim_jobs(now=clock(), limit=1)
    assert recoverer().recover_lost_jobs(now=clock.advance(seconds=0.3)) == 0
    assert status(job_id) == "doing"


def test_heartbeat_settings_are_checked(settings: Any) -> None:
    assert heartbeat_settings() == (10.0, 60.0)
    assert max_consecutive_losses_setting() == 3
    settings.RETRYTASKS_HEARTBEAT_INTERVAL = 2
    settings.RETRYTASKS_MAX_CONSECUTIVE_LOSSES = None
    assert heartbeat_settings(timeout=5) == (2.0, 5.0)
    assert max_consecutive_losses_setting() is None
    assert max_consecutive_losses_setting(4) == 4
    with pytest.raises(ValueError, match="must be longer than the heartbeat interval"):
        heartbeat_settings(interval=5, timeout=5)
    with pytest.raises(ValueError, match="heartbeat_timeout must be > 0"):
        heartbeat_settings(timeout=-1)
    with pytest.raises(ValueError, match="max_consecutive_losses"):
        max_consecutive_losses_setting(0)
    settings.RETRYTASKS_HEARTBEAT_TIMEOUT = 1
    with pytest.raises(ImproperlyConfigured, match=r"RETRYTASKS_HEARTBEAT_TIMEOUT .* longer"):
        heartbeat_settings()


def test_runworker_rejects_a_timeout_shorter_than_the_interval() -> None:
    result = manage("runworker", "--heartbeat-interval", "5", "--heartbeat-timeout", "2")
    assert result.returncode != 0
    assert "must be longer than the heartbeat interval" in result.stderr


# --- task timeouts -----------------------------------------------------------------------------


def test_the_guides_timeout_example_runs() -> None:
    namespace: dict[str, Any] = {"__name__": "readme"}
    guide = "docs/howto/deployment.md"
    for block in python_blocks(guide, "Task timeouts"):
        exec(compiled(guide, block), namespace)
    import_feed = namespace["import_feed"]
    assert (import_feed.timeout, import_feed.retry.max_attempts) == (30, 3)


@pytest.mark.django_db
def test_a_run_longer_than_the_timeout_fails_with_job_timeout(clock: Clock) -> None:
    job_id = faults_tasks.busy_past_timeout.defer(seconds=30)
    started = time.monotonic()
    assert run_due_jobs(now=clock()) == 2  # retry=1: the timeout goes through the strategy
    assert time.monotonic() - started < 5
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("failed", 2)
    history = list(job.attempt_history.all())
    assert {attempt.error_type for attempt in history} == {JOB_TIMEOUT}
    assert "timeout of 0.2s" in history[0].error_message
    assert "sleep_in_slices" in history[0].traceback  # where the task was when time ran out


@pytest.mark.django_db
def test_a_task_that_swallows_the_timeout_still_fails(clock: Clock) -> None:
    job_id = faults_tasks.swallows_timeout.defer(seconds=30)
    run_due_jobs(now=clock())
    job = Job.objects.get(pk=job_id)
    assert job.status == "failed"
    assert job.attempt_history.get().error_type == JOB_TIMEOUT


@pytest.mark.django_db
def test_a_quick_run_is_not_disturbed_by_its_timeout(clock: Clock) -> None:
    job_id = faults_tasks.quick_with_timeout.defer()
    run_due_jobs(now=clock())
    assert status(job_id) == "succeeded"
    time.sleep(0.05)  # a timer that was not cancelled would fire into this thread by now
    assert Job.objects.get(pk=job_id).return_value == "quick"


# --- a database outage (PostgreSQL: through a TCP proxy the test cuts) -------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the database; ``cut()`` drops every connection until
    ``restore()``, like a network outage without restarting the server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.cut_off = threading.Event()
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.cut_off.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            self._close(end)

    def _close(self, end: socket.socket) -> None:
        with self.lock:
            self.sockets.discard(end)
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        end.close()

    def cut(self) -> None:
        self.cut_off.set()
        with self.lock:
            open_sockets = list(self.sockets)
        for end in open_sockets:
            self._close(end)

    def restore(self) -> None:
        self.cut_off.clear()

    def close(self) -> None:
        self.cut()
        self.server.close()

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = f"{parts.username or ''}@127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))


if ON_POSTGRES or ON_MYSQL:  # SQLite has no connection to cut; every other fault runs on all

    @subprocess_db
    def test_a_worker_survives_a_database_outage(workers: StartWorker, tmp_path: Path) -> None:
        runs = tmp_path / "runs.log"
        job_ids = faults_tasks.logged_run.batch_defer(
            *({"log": str(runs), "seconds": 0.05} for _ in range(60))
        )
        parts = urlsplit(database_url())
        proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or (3306 if ON_MYSQL else 5432)))
        try:
            worker = workers(
                "through-proxy",
                "--concurrency",
                "2",
                "--heartbeat-interval",
                "0.2",
                "--heartbeat-timeout",
                "10",
                url=proxy.url(database_url()),
            )

            def succeeded() -> int:
                return Job.objects.filter(status="succeeded").count()

            wait_for(lambda: succeeded() >= 10, what="some jobs done before the outage")
            proxy.cut()
            # Keep the database away until the worker has met the outage (no fixed wait).
            wait_for(
                lambda: "Database unavailable" in worker.log or "Heartbeat failed" in worker.log,
                what="the worker to meet the outage",
            )
            proxy.restore()
            wait_for(lambda: succeeded() == len(job_ids), timeout=30, what="every job done")
            assert worker.stop() == 0
        finally:
            proxy.close()

        log = worker.log
        assert "Database unavailable" in log or "Heartbeat failed" in log, log
        for job in Job.objects.filter(pk__in=job_ids):
            assert (job.status, job.attempts) == ("succeeded", 1), job
            assert outcomes(job.pk) == ["succeeded"]
        # Each job ran exactly once: the outage neither lost a run nor repeated one.
        events = Counter(tuple(line.split()[::2][:2]) for line in runs.read_text().splitlines())
        assert events == Counter(
            {(str(job_id), event): 1 for job_id in job_ids for event in ("start", "end")}
        )
