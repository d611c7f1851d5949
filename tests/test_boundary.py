"""The worker's one job boundary: async tasks, return values, errors and poison jobs.

Whatever one job carries, that job ends failed (or is retried by its strategy) with its
error recorded, and every worker keeps running. On SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from django_retrytasks import store
from django_retrytasks.models import Attempt, Job, JobStatus, UndecodableJSON
from django_retrytasks.store import mysql
from django_retrytasks.testing import run_due_jobs
from django_retrytasks.worker import Worker
from testproject.demo import boundary_tasks, djangotasks_django, tasks

from .conftest import Clock, manage

JOB_TIMEOUT = "django_retrytasks.exceptions.JobTimeout"
UNSTORABLE = (
    "not retried: the run returned a value that cannot be stored as JSON "
    "(running it again would repeat its work)"
)


@pytest.fixture(autouse=True)
def _forget_runs() -> Any:
    boundary_tasks.ran.clear()
    djangotasks_django.calls.clear()
    yield
    boundary_tasks.ran.clear()
    djangotasks_django.calls.clear()


def history(job_id: int) -> list[Attempt]:
    return list(Attempt.objects.filter(job_id=job_id).order_by("number"))


def job(job_id: int) -> Job:
    return Job.objects.get(pk=job_id)


# --- async tasks ---------------------------------------------------------------------------------


def test_an_async_task_runs_to_its_end_and_its_value_is_stored(db: None, clock: Clock) -> None:
    job_id = boundary_tasks.async_add.defer(a=2, b=3)
    assert run_due_jobs(now=clock()) == 1
    assert boundary_tasks.ran == ["async_add(2, 3)"]
    assert (job(job_id).status, job(job_id).return_value) == (JobStatus.SUCCEEDED, 5)


def test_an_async_task_that_raises_is_retried_by_its_strategy(db: None, clock: Clock) -> None:
    job_id = boundary_tasks.async_flaky.defer()
    assert run_due_jobs(now=clock()) == 3
    assert boundary_tasks.ran == ["async_flaky run 1", "async_flaky run 2", "async_flaky run 3"]
    done = job(job_id)
    assert (done.status, done.attempts, done.return_value) == ("succeeded", 3, "done in run 3")
    outcomes = [(a.outcome, a.error_type) for a in history(job_id)]
    assert outcomes == [("failed", "ConnectionError"), ("failed", "ConnectionError"), ("succeeded", "")]


def test_an_async_task_uses_the_orm_on_the_workers_connection(db: None, clock: Clock) -> None:
    job_id = boundary_tasks.async_counts_jobs.defer()
    tasks.noop.defer()
    assert run_due_jobs(now=clock(), max_runs=1) == 1
    assert job(job_id).return_value == 2  # it saw the jobs of this (test) transaction


def test_calling_an_async_task_directly_returns_its_coroutine() -> None:
    coroutine = boundary_tasks.async_add(a=1, b=2)
    assert inspect.iscoroutine(coroutine)
    assert asyncio.run(coroutine) == 3


@pytest.mark.django_db(transaction=True)
def test_a_burst_worker_awaits_async_tasks_on_its_runner_threads() -> None:
    job_ids = [boundary_tasks.async_add.defer(a=n, b=n) for n in range(4)]
    Worker(burst=True, concurrency=2, install_signal_handlers=False).run()
    assert [job(job_id).return_value for job_id in job_ids] == [0, 2, 4, 6]


# --- timeouts: app.task and django.tasks, plain and async, alike -------------------------------


@pytest.mark.parametrize(
    "defer",
    [
        lambda: boundary_tasks.sync_too_slow.defer(),
        lambda: boundary_tasks.async_too_slow.defer(),
        lambda: int(djangotasks_django.too_slow.enqueue().id),
        lambda: int(djangotasks_django.async_too_slow.enqueue().id),
    ],
    ids=["app.task", "async app.task", "django.tasks", "async django.tasks"],
)
def test_every_kind_of_task_times_out_alike(db: None, clock: Clock, defer: Any) -> None:
    job_id = defer()
    started = time.monotonic()
    assert run_due_jobs(now=clock()) == 1
    assert time.monotonic() - started < 5
    [attempt] = history(job_id)
    assert (job(job_id).status, attempt.error_type) == ("failed", JOB_TIMEOUT)
    assert "timeout of 0.2s" in attempt.error_message


# --- return values -------------------------------------------------------------------------------


def test_a_return_value_json_cannot_hold_fails_both_kinds_alike_without_a_retry(
    db: None, clock: Clock
) -> None:
    native = boundary_tasks.returns_a_datetime.defer()  # retry=3: still not run again
    through_django = int(djangotasks_django.returns_a_datetime.enqueue().id)
    assert run_due_jobs(now=clock()) == 2
    assert boundary_tasks.ran == ["returns_a_datetime"]
    assert djangotasks_django.calls == ["returns_a_datetime ran"]
    for job_id in (native, through_django):
        [attempt] = history(job_id)
        assert (job(job_id).status, job(job_id).attempts) == ("failed", 1)
        assert (attempt.error_type, attempt.decision) == ("TypeError", UNSTORABLE)
        assert "cannot be stored as JSON" in attempt.error_message


def test_a_return_value_nested_too_deep_fails_the_run(db: None, clock: Clock) -> None:
    job_id = boundary_tasks.returns_deep.defer(depth=5_000)
    assert run_due_jobs(now=clock()) == 1
    [attempt] = history(job_id)
    assert (job(job_id).status, attempt.decision) == ("failed", UNSTORABLE)
    assert "nested too deep" in attempt.error_message


# --- errors ----------------------------------------------------------------------------------------


def test_an_exception_whose_str_raises_is_recorded_and_judged(db: None, clock: Clock) -> None:
    job_id = boundary_tasks.raises_unprintable.defer()
    assert run_due_jobs(now=clock()) == 2  # retry=1
    first, second = history(job_id)
    assert first.error_type == "testproject.demo.boundary_tasks.UnprintableError"
    assert first.error_message == (
        "<testproject.demo.boundary_tasks.UnprintableError whose str() raised RuntimeError>"
    )
    assert "raises_unprintable" in first.traceback
    assert (job(job_id).status, second.decision) == ("failed", "not retried: max_attempts (1) reached")


def test_stored_error_text_is_bounded(db: None, clock: Clock) -> None:
    job_id = boundary_tasks.raises_huge_message.defer(megabytes=10)
    assert run_due_jobs(now=clock()) == 1
    [attempt] = history(job_id)
    assert len(attempt.error_message) <= 64 * 1024
    kept, marker = attempt.error_message.split("… [cut: ")
    assert marker.endswith(" more characters]")
    assert len(kept) + int(marker.split()[0].replace(",", "")) == 10 * 1024 * 1024
    assert len(attempt.traceback) <= 256 * 1024
    assert attempt.traceback.startswith("[cut: ")  # its end, where the error is, is kept
    assert attempt.traceback.rstrip().endswith("xxxx")


# --- poison jobs: each ends failed, nothing else stops -------------------------------------------


def test_a_decision_no_column_can_hold_fails_the_job_naming_the_strategys_error(
    db: None, clock: Clock
) -> None:
    job_id = boundary_tasks.fails_with_oversized_decision.defer()
    assert run_due_jobs(now=clock()) == 1
    [attempt] = history(job_id)
    assert job(job_id).status == "failed"
    assert attempt.decision == (
        "not retried: the retry strategy raised ValueError: priority must fit in 32 bits, "
        "got 1099511627776"
    )
    assert "The retry strategy raised" in attempt.traceback


def test_a_strategy_that_raises_fails_the_job(db: None, clock: Clock) -> None:
    job_id = boundary_tasks.fails_with_broken_strategy.defer()
    assert run_due_jobs(now=clock()) == 1
    [attempt] = history(job_id)
    assert attempt.decision == (
        "not retried: the retry strategy raised KeyError: 'a bug in the strategy'"
    )


def test_stored_arguments_that_do_not_fit_the_function_fail_without_retries(
    db: None, clock: Clock
) -> None:
    # Stored around defer() (which refuses them): the task has retry=5, but no run can work.
    job_id = Job.objects.create(task_name="boundary.takes_order_id", task_kwargs={"order_idd": 1}).pk
    assert run_due_jobs(now=clock()) == 1
    [attempt] = history(job_id)
    assert (job(job_id).status, attempt.error_type) == ("failed", "TypeError")
    assert attempt.decision == "not retried: the stored arguments do not fit the task's signature"
    assert attempt.error_message == (
        "task 'boundary.takes_order_id' got an unknown argument 'order_idd' "
        "(did you mean 'order_id'?); the task takes order_id"
    )


def test_arguments_and_return_values_nested_40_deep_are_stored_on_every_database(
    db: None, clock: Clock
) -> None:
    # MariaDB's own JSON parser stops at 32 levels: its JSON columns are plain text, so
    # it stores whatever the other databases store.
    deep = boundary_tasks.nested(40)
    job_id = boundary_tasks.echo.defer(value=deep)
    assert job(job_id).task_kwargs == {"value": deep}
    assert run_due_jobs(now=clock()) == 1
    assert (job(job_id).status, job(job_id).return_value) == ("succeeded", deep)


def one_statement_limit() -> int | None:
    """Bytes the database takes in one statement, when a test can reach it (MySQL's packet)."""
    return mysql.max_packet(connection) if connection.vendor == "mysql" else None


#: RETRYTASKS_MAX_ARGUMENTS_SIZE raised past what MariaDB and MySQL take in one statement.
ABOVE_ONE_STATEMENT = override_settings(RETRYTASKS_MAX_ARGUMENTS_SIZE=256 * 2**20)


@ABOVE_ONE_STATEMENT
def test_arguments_larger_than_one_statement_takes_are_refused_at_defer(db: None) -> None:
    limit = one_statement_limit()
    value = "x" * (limit + 1 if limit else 2 * 1024 * 1024)
    if limit is None:  # PostgreSQL and SQLite take it
        job_id = boundary_tasks.echo.defer(value=value)
        assert job(job_id).task_kwargs == {"value": value}
        return
    with pytest.raises(ValueError, match=r"max_allowed_packet = [\d,]+ bytes.*nothing was stored"):
        boundary_tasks.echo.defer(value=value)
    # Refused before it was sent: nothing stored, and the connection still works.
    assert Job.objects.count() == 0
    assert boundary_tasks.echo.defer(value="small")


@ABOVE_ONE_STATEMENT
def test_a_batch_too_large_for_one_statement_is_stored_whole(db: None) -> None:
    limit = one_statement_limit() or 2 * 1024 * 1024
    values = [str(index) * (limit // 2) for index in range(3)]  # each fits, together not
    ids = boundary_tasks.echo.batch_defer(*({"value": value} for value in values))
    assert [job(job_id).task_kwargs["value"] for job_id in ids] == values


@pytest.mark.django_db(transaction=True)  # as a worker: MySQL drops the connection then
def test_a_return_value_larger_than_one_statement_takes_fails_its_run(clock: Clock) -> None:
    limit = one_statement_limit()
    megabytes = limit // 2**20 + 1 if limit else 2
    job_id = boundary_tasks.returns_megabytes.defer(megabytes=megabytes)
    after = tasks.noop.defer()
    assert run_due_jobs(now=clock()) == 2
    assert job(after).status == "succeeded"  # the worker went on
    if limit is None:
        assert len(job(job_id).return_value) == megabytes * 2**20
        return
    [attempt] = history(job_id)
    assert job(job_id).status == "failed"
    assert "max_allowed_packet" in attempt.error_message
    assert attempt.decision.startswith("not retried: the outcome could not be stored")


def store_undecodable_arguments(job_id: int) -> None:
    """Store arguments nested deeper than Python reads back.

    On SQLite past the column's JSON_VALID check, which refuses more than 2,000 levels: Python
    3.13 reads that deep (3.12 stopped near 1,000), so nothing the check accepts is too deep.
    """
    table = Job._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            text = "[" * 10_000 + "]" * 10_000
            cursor.execute(
                f"UPDATE {table} SET task_kwargs = %s::jsonb WHERE id = %s", [text, job_id]
            )
            return
        if connection.vendor != "sqlite":  # MariaDB, MySQL: deeper than Python 3.12 reads
            text = "[" * 1_990 + "]" * 1_990
            cursor.execute(f"UPDATE {table} SET task_kwargs = %s WHERE id = %s", [text, job_id])
            return
        text = "[" * 100_000 + "]" * 100_000
        cursor.execute("PRAGMA ignore_check_constraints = ON")
        try:
            cursor.execute(f"UPDATE {table} SET task_kwargs = %s WHERE id = %s", [text, job_id])
        finally:
            cursor.execute("PRAGMA ignore_check_constraints = OFF")


def test_arguments_that_cannot_be_read_back_fail_the_job(db: None, clock: Clock) -> None:
    job_id = tasks.noop.defer()
    store_undecodable_arguments(job_id)
    assert isinstance(job(job_id).task_kwargs, UndecodableJSON)  # reading the row is safe
    assert run_due_jobs(now=clock()) == 1
    [attempt] = history(job_id)
    assert job(job_id).status == "failed"
    assert attempt.decision == "not retried: the stored arguments cannot be read back"
    assert "nested too deep" in attempt.error_message


def test_a_lost_run_of_a_poison_job_is_recovered_and_recovery_goes_on(
    db: None, clock: Clock
) -> None:
    oversized = boundary_tasks.fails_with_oversized_decision.defer()
    undecodable = tasks.noop.defer()
    ordinary = tasks.fail_times.defer(times=1)  # retry=3
    store_undecodable_arguments(undecodable)
    store.claim_jobs(now=clock(), limit=3)  # by a worker that then died
    rescuer = Worker(clock=clock, install_signal_handlers=False, name="rescuer")
    assert rescuer.recover_lost_jobs(now=clock.advance(minutes=5)) == 3
    assert job(oversized).status == "failed"
    assert "the retry strategy raised ValueError" in history(oversized)[0].decision
    assert job(undecodable).status == "failed"  # noop has no retry strategy
    assert (job(ordinary).status, job(ordinary).attempts) == ("todo", 1)


@pytest.mark.django_db(transaction=True)
def test_poison_jobs_stop_no_worker_and_the_next_worker_starts(clock: Clock) -> None:
    poison = [
        boundary_tasks.fails_with_oversized_decision.defer(),
        boundary_tasks.fails_with_broken_strategy.defer(),
        boundary_tasks.raises_unprintable.defer(),
        boundary_tasks.returns_deep.defer(depth=5_000),
        Job.objects.create(task_name="boundary.takes_order_id", task_kwargs={"order_idd": 1}).pk,
        Job.objects.create(task_name="gone.away", task_kwargs={}).pk,
        Job.objects.create(
            task_name="testproject.demo.djangotasks_unlisted.boom", task_kwargs={}, backend="default"
        ).pk,
    ]
    undecodable = tasks.noop.defer()
    store_undecodable_arguments(undecodable)
    poison.append(undecodable)
    ordinary = boundary_tasks.async_add.defer(a=20, b=22)
    first = manage("runworker", "--burst", "--concurrency", "2")
    assert first.returncode == 0, first.stderr
    assert {job(job_id).status for job_id in poison} == {"failed"}
    assert job(ordinary).return_value == 42
    assert Job.objects.filter(status="doing").count() == 0

    after = tasks.noop.defer()
    second = manage("runworker", "--burst")
    assert second.returncode == 0, second.stderr
    assert job(after).status == "succeeded"
    # Each ran once (the unprintable error twice: its strategy retries it once).
    assert [job(job_id).attempts for job_id in poison] == [1, 1, 2, 1, 1, 1, 1, 1]
