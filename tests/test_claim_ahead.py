"""Short jobs claimed ahead, outcomes stored in batches by the claim loop, claims on NOTIFY."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections

from django_retrytasks import signals, store
from django_retrytasks.models import Attempt, Job, JobStatus
from django_retrytasks.worker import Worker
from django_retrytasks.worker.pace import RunPace
from testproject.demo.concurrency_tasks import noop
from testproject.demo.faults_tasks import sleep_until_released

from .conftest import Clock, run_claim

# --- a worker that claims ahead --------------------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def statuses(job_ids: list[int]) -> set[str]:
    return set(Job.objects.filter(pk__in=job_ids).values_list("status", flat=True))


@pytest.fixture
def slow_then_quick(tmp_path: Path) -> Iterator[tuple[int, list[int], Path]]:
    """A job that runs until ``flag`` exists, then five no-op jobs behind it."""
    flag = tmp_path / "release"
    slow = sleep_until_released.defer(flag=str(flag), seconds=20)
    quick = noop.batch_defer(*({} for _ in range(5)))
    yield slow, quick, flag
    flag.touch()


@contextmanager
def worker_holding(
    slow: int, quick: list[int], *, max_wait: float
) -> Iterator[tuple[Worker, threading.Thread]]:
    """A worker running ``slow`` with ``quick`` claimed ahead; stopped on the way out."""
    pace = RunPace(1)
    pace.ran(0.000_1)  # as after a run of short jobs: it claims ahead from the start
    worker = Worker(
        install_signal_handlers=False,
        polling_interval=0.02,
        pace=pace,
        claimed_ahead_max_wait=max_wait,
    )

    def run() -> None:
        try:
            worker.run()
        finally:
            connections.close_all()

    started: set[int] = set()

    def note_start(sender: Any, job: Any, **kwargs: Any) -> None:
        started.add(job.id)

    signals.job_started.connect(note_start)
    thread = threading.Thread(target=run, name="worker-under-test")
    thread.start()
    try:
        wait_for(lambda: statuses([slow, *quick]) == {JobStatus.DOING}, "all claimed at once")
        wait_for(lambda: slow in started, "the slow job running")
        yield worker, thread
    finally:
        signals.job_started.disconnect(note_start)
        worker.stop()
        thread.join(20)


def assert_untouched(job_ids: list[int]) -> None:
    """Back in the queue as if never claimed: no attempt used, no worker, no attempt row."""
    jobs = Job.objects.filter(pk__in=job_ids)
    assert {(job.status, job.attempts, job.worker_id) for job in jobs} == {
        (JobStatus.TODO, 0, None)
    }
    assert not Attempt.objects.filter(job_id__in=job_ids).exists()


@pytest.mark.django_db(transaction=True)
def test_jobs_claimed_ahead_of_a_slow_job_go_back_to_the_queue_and_run_later(
    slow_then_quick: tuple[int, list[int], Path],
) -> None:
    slow, quick, flag = slow_then_quick
    with worker_holding(slow, quick, max_wait=0.3):
        wait_for(lambda: statuses(quick) == {JobStatus.TODO}, "the waiting ones given back")
        assert statuses([slow]) == {JobStatus.DOING}
        # Not claimed again while the slow job shows that jobs here are not short.
        time.sleep(0.1)
        assert_untouched(quick)
        flag.touch()
        wait_for(lambda: statuses([slow, *quick]) == {JobStatus.SUCCEEDED}, "all succeeded")
    slow_attempt = Attempt.objects.get(job_id=slow)
    assert slow_attempt.finished_at is not None
    for attempt in Attempt.objects.filter(job_id__in=quick):
        assert attempt.number == 1
        assert attempt.started_at >= slow_attempt.finished_at


@pytest.mark.django_db(transaction=True)
def test_a_stopping_worker_returns_the_jobs_it_claimed_ahead_untouched(
    slow_then_quick: tuple[int, list[int], Path],
) -> None:
    slow, quick, flag = slow_then_quick
    with worker_holding(slow, quick, max_wait=60) as (worker, thread):
        worker.stop()
        flag.touch()  # the running job finishes within the shutdown
        thread.join(20)
    assert not thread.is_alive()
    assert Job.objects.get(pk=slow).status == JobStatus.SUCCEEDED
    assert_untouched(quick)


@pytest.mark.django_db(transaction=True)
def test_a_claimed_ahead_job_records_when_its_run_began_not_when_it_was_claimed(
    slow_then_quick: tuple[int, list[int], Path],
) -> None:
    slow, quick, flag = slow_then_quick
    with worker_holding(slow, quick, max_wait=60):
        claimed_at = Job.objects.get(pk=quick[0]).started_at
        time.sleep(0.05)
        flag.touch()
        wait_for(lambda: statuses(quick) == {JobStatus.SUCCEEDED}, "the quick jobs succeeded")
    attempt = Attempt.objects.get(job_id=quick[0])
    slow_attempt = Attempt.objects.get(job_id=slow)
    assert claimed_at is not None and slow_attempt.finished_at is not None
    assert attempt.started_at >= slow_attempt.finished_at > claimed_at


# --- successes recorded by the claim loop -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_successes_are_stored_once_each_and_signalled_after_they_are_stored() -> None:
    job_ids = noop.batch_defer(*({} for _ in range(300)))
    seen: dict[int, str] = {}

    def on_success(sender: Any, job: Any, **kwargs: Any) -> None:
        seen[job.id] = Job.objects.get(pk=job.id).status

    signals.job_succeeded.connect(on_success)
    try:
        Worker(burst=True, install_signal_handlers=False, concurrency=2).run()
    finally:
        signals.job_succeeded.disconnect(on_success)
    assert seen == {job_id: JobStatus.SUCCEEDED for job_id in job_ids}
    assert statuses(job_ids) == {JobStatus.SUCCEEDED}
    numbers = list(Attempt.objects.filter(job_id__in=job_ids).values_list("number", "outcome"))
    assert sorted(numbers) == [(1, "succeeded")] * 300


@pytest.mark.django_db(transaction=True)
def test_a_worker_processing_outside_its_run_loop_stores_the_success_itself(clock: Clock) -> None:
    job_id = noop.defer()
    (claim,) = store.claim_jobs(now=clock(), limit=1)
    run_claim(claim, clock=clock)
    assert Job.objects.get(pk=job_id).status == JobStatus.SUCCEEDED


# --- claiming on the listening connection ---------------------------------------------------


def separate_connection(**changes: Any) -> Any:
    wrapper = connections.create_connection("default")
    wrapper.settings_dict = {**wrapper.settings_dict, **changes}
    return wrapper


@pytest.mark.django_db(transaction=True)
def test_a_notification_claims_on_the_connection_that_received_it(clock: Clock) -> None:
    job_id = noop.defer()
    worker = Worker(install_signal_handlers=False, clock=clock)
    listening = separate_connection()
    try:
        worker.producer.claim_on_notify(listening)
    finally:
        listening.close()
    assert worker.ledger.job_ids() == {job_id}
    assert Job.objects.get(pk=job_id).status == JobStatus.DOING


@pytest.mark.django_db(transaction=True)
def test_a_failed_claim_on_notify_leaves_the_claim_loop_to_return_lost_claims(
    clock: Clock, tmp_path: Path
) -> None:
    worker = Worker(install_signal_handlers=False, clock=clock)
    worker.registration.register()
    noop.defer()
    unreachable = separate_connection(
        NAME=str(tmp_path / "missing" / "db.sqlite3")
        if connection.vendor == "sqlite"
        else "retrytasks_no_such_database"
    )
    worker.producer.claim_on_notify(unreachable)
    assert worker.producer.claims_unsure
    assert worker.ledger.job_ids() == set()
    # A claim that committed while its reply was lost: ``doing`` for this worker, unknown to it.
    (lost,) = store.claim_jobs(now=clock(), limit=1, worker_id=worker.worker_id)
    assert worker.producer.release_unacknowledged() == [lost.record.id]
    assert Job.objects.get(pk=lost.record.id).status == JobStatus.TODO


# --- a worker that dies holding jobs claimed ahead ----------------------------------------------


def rescuer() -> Worker:
    return Worker(
        heartbeat_interval=0.1,
        heartbeat_timeout=0.6,
        install_signal_handlers=False,
        name="rescuer",
    )


@pytest.mark.django_db
def test_jobs_a_dead_worker_claimed_ahead_go_back_without_using_an_attempt(clock: Clock) -> None:
    running, waiting = noop.defer(), noop.defer()
    # Claimed by a process that then died: one for a free runner, one ahead of its runners.
    store.claim_jobs(now=clock(), limit=1)
    store.claim_jobs(now=clock(), limit=1, for_runners=0)
    assert rescuer().recover_lost_jobs(now=clock.advance(seconds=5)) == 2
    ran = Job.objects.get(pk=running)
    assert (ran.status, ran.attempts) == (JobStatus.FAILED, 1)  # noop has no retry strategy
    ahead = Job.objects.get(pk=waiting)
    assert (ahead.status, ahead.attempts, ahead.consecutive_losses) == (JobStatus.TODO, 0, 1)
    attempt = ahead.attempt_history.get()
    assert (attempt.outcome, attempt.error_type) == (
        "interrupted",
        "django_retrytasks.exceptions.WorkerLost",
    )
    assert "claimed ahead by a worker that stopped" in attempt.decision


@pytest.mark.django_db
def test_a_job_lost_ahead_three_times_in_a_row_is_held_like_any_poison_job(clock: Clock) -> None:
    job_id = noop.defer()
    for _ in range(3):
        store.claim_jobs(now=clock(), limit=1, for_runners=0)
        assert rescuer().recover_lost_jobs(now=clock.advance(seconds=5)) == 1
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts, job.held) == (JobStatus.FAILED, 0, True)


@pytest.mark.django_db
def test_a_claim_marks_the_jobs_beyond_its_free_runners_as_claimed_ahead(clock: Clock) -> None:
    low = noop.defer()
    high = noop.configure(priority=5).defer()
    later = noop.defer()
    claimed = store.claim_jobs(now=clock(), limit=3, for_runners=1)
    assert [claim.record.id for claim in claimed] == [high, low, later]
    marks = dict(Job.objects.values_list("id", "claimed_ahead"))
    assert marks == {high: False, low: True, later: True}
    assert store.claim_jobs(now=clock(), limit=3) == []
