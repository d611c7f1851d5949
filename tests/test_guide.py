"""The retry guide's examples, run by the real worker code against the real database.

Each test drives time by hand: ``run_due_jobs(now=...)`` runs what is due at that moment,
so a retry with a 5 s wait is shown not to run at +4.9 s and to run at +5 s.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection

from django_retrytasks import App, BaseRetryStrategy, Job, RetryDecision, RetryStrategy
from django_retrytasks.durations import LATEST_RETRY_AT
from django_retrytasks.models import Attempt
from django_retrytasks.models import Job as JobRow
from django_retrytasks.testing import run_due_jobs
from testproject.demo import tasks as demo
from tests.conftest import Clock

pytestmark = pytest.mark.django_db


@pytest.fixture
def always_unlucky(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide's tasks fail when ``random.random() > 0.9`` (or ``< fail_rate``): make them fail."""
    monkeypatch.setattr(random, "random", lambda: 0.95)


def run_one(clock: Clock, queues: list[str] | None = None) -> int:
    return run_due_jobs(now=clock(), max_runs=1, queues=queues)


def history(job_id: int) -> list[tuple[int, str, str]]:
    return [
        (a.number, a.outcome, a.error_type)
        for a in Attempt.objects.filter(job_id=job_id).order_by("number")
    ]


def test_retry_5_means_six_runs(clock: Clock, always_unlucky: None) -> None:
    job_id = demo.flaky_task.defer()
    for run in range(1, 7):
        assert run_one(clock) == 1
        job = JobRow.objects.get(pk=job_id)
        assert job.attempts == run
        assert job.status == ("todo" if run < 6 else "failed")
        assert len(history(job_id)) == run
        last = Attempt.objects.filter(job_id=job_id).order_by("-number").first()
        assert last is not None
        assert (last.outcome, last.error_type) == ("failed", "Exception")
        assert "Who could have seen this coming?" in last.error_message
        assert "Traceback (most recent call last)" in last.traceback
        assert 'raise Exception("Who could have seen this coming?")' in last.traceback
        if run < 6:
            assert last.retry_at == job.scheduled_at == clock()  # no delay
        else:
            assert last.retry_at is None
    assert run_one(clock) == 0


def test_success_on_first_run_counts_one_attempt(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.5)
    job_id = demo.flaky_task.defer()
    assert run_one(clock) == 1
    job = JobRow.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert history(job_id) == [(1, "succeeded", "")]


def test_retry_true_retries_until_it_passes(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes: Iterator[float] = iter([0.95] * 25 + [0.1])
    monkeypatch.setattr(random, "random", lambda: next(outcomes))
    job_id = demo.flaky_task_forever.defer()
    assert run_due_jobs(now=clock()) == 26
    job = JobRow.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("succeeded", 26)


def test_exception_filter_and_fixed_wait(clock: Clock) -> None:
    retried = demo.fetch_resource.defer(error="ConnectionError", times=2)
    io_error = demo.fetch_resource.defer(error="OSError", times=1)
    not_retried = demo.fetch_resource.defer(error="KeyError", times=1)
    assert run_due_jobs(now=clock()) == 3
    assert JobRow.objects.get(pk=not_retried).status == "failed"
    assert history(not_retried) == [(1, "failed", "KeyError")]
    for job_id in (retried, io_error):
        job = JobRow.objects.get(pk=job_id)
        assert (job.status, job.attempts, job.scheduled_at) == (
            "todo",
            1,
            clock() + timedelta(seconds=5),
        )
    first_failure = clock()
    clock.advance(seconds=4.9)
    assert run_due_jobs(now=clock()) == 0  # not due yet
    clock.now = first_failure + timedelta(seconds=5)
    assert run_due_jobs(now=clock()) == 2
    assert JobRow.objects.get(pk=io_error).status == "succeeded"
    assert JobRow.objects.get(pk=retried).scheduled_at == clock() + timedelta(seconds=5)
    clock.advance(seconds=5)
    assert run_due_jobs(now=clock()) == 1
    job = JobRow.objects.get(pk=retried)
    assert (job.status, job.attempts) == ("succeeded", 3)
    assert [outcome for _, outcome, _ in history(retried)] == ["failed", "failed", "succeeded"]


def test_the_guide_strategy_runs_eleven_times_at_most(clock: Clock) -> None:
    job_id = demo.fetch_resource.defer(error="ConnectionError", times=100)
    for _ in range(11):
        assert run_due_jobs(now=clock()) == 1
        clock.advance(seconds=5)
    job = JobRow.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("failed", 11)
    assert run_due_jobs(now=clock() + timedelta(days=1)) == 0


@pytest.mark.parametrize(
    ("task", "waits"),
    [(demo.linear_backoff, [5, 10, 15]), (demo.exponential_backoff, [5, 25, 125])],
)
def test_backoff_waits_land_in_the_schedule(clock: Clock, task: object, waits: list[int]) -> None:
    job_id = task.defer()  # type: ignore[attr-defined]
    for wait in waits:
        assert run_due_jobs(now=clock()) == 1
        job = JobRow.objects.get(pk=job_id)
        assert job.scheduled_at == clock() + timedelta(seconds=wait)
        last = Attempt.objects.filter(job_id=job_id).order_by("-number")[0]
        assert last.retry_at == job.scheduled_at
        assert f"retry in {wait}s" in last.decision
        clock.advance(seconds=wait - 0.001)
        assert run_due_jobs(now=clock()) == 0
        clock.advance(seconds=0.001)
    assert run_due_jobs(now=clock()) == 1
    job = JobRow.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("failed", 4)


def test_custom_strategy_moves_queue_priority_and_lock(clock: Clock) -> None:
    random.seed(4)
    job_id = demo.random_retry_task.defer()
    assert run_due_jobs(now=clock(), queues=["default"]) == 1
    job = JobRow.objects.get(pk=job_id)
    assert (job.status, job.queue, job.priority, job.lock) == (
        "todo",
        "another_queue",
        1,
        "another_lock",
    )
    assert job.scheduled_at is not None
    wait = (job.scheduled_at - clock()).total_seconds()
    assert 1 <= wait <= 10
    clock.advance(seconds=10)
    assert run_due_jobs(now=clock(), queues=["default"]) == 0  # it moved queue
    for runs in (2, 3):
        assert run_due_jobs(now=clock(), queues=["another_queue"]) == 1
        job = JobRow.objects.get(pk=job_id)
        assert (job.attempts, job.priority) == (runs, runs)
        clock.advance(seconds=10)
    assert run_due_jobs(now=clock(), queues=["another_queue"]) == 1
    job = JobRow.objects.get(pk=job_id)
    # attempts reached max_attempts = 3: RetryDecision(should_retry=False) ends it.
    assert (job.status, job.attempts) == ("failed", 4)
    last = Attempt.objects.filter(job_id=job_id).order_by("-number")[0]
    assert last.decision == "not retried: the retry strategy returned no retry"


def test_last_attempt_recipe_fires_exactly_once(
    clock: Clock,
    last_attempt_log: list[int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.0)
    job_id = demo.my_task.defer()
    assert run_due_jobs(now=clock()) == 11
    assert last_attempt_log == [job_id]
    assert capsys.readouterr().out.count("Warning: last attempt!") == 1
    job = JobRow.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("failed", 11)


def test_is_last_attempt_helper_with_an_exception_filter(clock: Clock) -> None:
    seen: list[bool] = []
    local = App()

    @local.task(
        retry=RetryStrategy(max_attempts=2, retry_exceptions=[ConnectionError]),
        pass_context=True,
        name="helper",
    )
    def helper(job_context: object) -> None:
        seen.append(job_context.is_last_attempt)  # type: ignore[attr-defined]
        raise ConnectionError

    helper.defer()
    assert run_due_jobs(now=clock(), app=local) == 3
    assert seen == [False, False, True]


def test_job_context_carries_job_and_task(clock: Clock) -> None:
    received: list[object] = []
    local = App()

    @local.task(pass_context=True, name="ctx", queue="q", priority=3)
    def ctx(job_context: object, value: int) -> None:
        received.append(job_context)

    job_id = ctx.defer(value=7)
    run_due_jobs(now=clock(), app=local)
    [context] = received
    job = context.job  # type: ignore[attr-defined]
    assert isinstance(job, Job)
    assert (job.id, job.task_name, job.task_kwargs, job.queue, job.priority, job.attempts) == (
        job_id,
        "ctx",
        {"value": 7},
        "q",
        3,
        0,
    )
    assert context.task is ctx  # type: ignore[attr-defined]


def test_unknown_task_fails_and_the_worker_goes_on(clock: Clock) -> None:
    unknown = JobRow.objects.create(task_name="nowhere.to_be_found", task_kwargs={})
    known = demo.noop.defer()
    assert run_due_jobs(now=clock()) == 2
    job = JobRow.objects.get(pk=unknown.pk)
    assert (job.status, job.attempts) == ("failed", 1)
    [attempt] = Attempt.objects.filter(job_id=unknown.pk)
    assert attempt.error_type == "django_retrytasks.exceptions.UnknownTask"
    assert "nowhere.to_be_found" in attempt.error_message
    assert JobRow.objects.get(pk=known).status == "succeeded"


def test_a_raising_strategy_fails_the_job_and_the_worker_goes_on(clock: Clock) -> None:
    class Broken(BaseRetryStrategy):
        def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision:
            raise ZeroDivisionError("bad maths in the strategy")

    local = App()
    broken = local.task(retry=Broken(), name="broken")(lambda: 1 / 0)
    fine = local.task(name="fine")(lambda: None)
    broken_id, fine_id = broken.defer(), fine.defer()
    assert run_due_jobs(now=clock(), app=local) == 2
    job = JobRow.objects.get(pk=broken_id)
    assert (job.status, job.attempts) == ("failed", 1)
    [attempt] = Attempt.objects.filter(job_id=broken_id)
    assert attempt.error_type == "ZeroDivisionError"
    assert "retry strategy raised ZeroDivisionError: bad maths in the strategy" in attempt.decision
    assert "The retry strategy raised" in attempt.traceback
    assert JobRow.objects.get(pk=fine_id).status == "succeeded"


def test_legacy_strategy_runs_with_a_deprecation_warning(clock: Clock) -> None:
    class Legacy(BaseRetryStrategy):
        def get_schedule_in(self, *, exception: BaseException, attempts: int) -> int | None:
            return 30 if attempts < 1 else None

    local = App()
    task = local.task(retry=Legacy(), name="legacy")(lambda: 1 / 0)
    job_id = task.defer()
    with pytest.warns(DeprecationWarning, match="get_schedule_in"):
        run_due_jobs(now=clock(), app=local)
    job = JobRow.objects.get(pk=job_id)
    assert (job.status, job.scheduled_at) == ("todo", clock() + timedelta(seconds=30))
    with pytest.warns(DeprecationWarning):
        run_due_jobs(now=clock() + timedelta(seconds=30), app=local)
    assert JobRow.objects.get(pk=job_id).status == "failed"


def test_a_delay_too_large_parks_the_job_at_the_latest_date(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    local = App()
    task = local.task(retry=RetryStrategy(exponential_wait=10), name="far")(lambda: 1 / 0)
    job_id = task.defer()
    JobRow.objects.filter(pk=job_id).update(attempts=400)
    with caplog.at_level(logging.WARNING, logger="django_retrytasks"):
        assert run_due_jobs(now=clock(), app=local) == 1
    job = JobRow.objects.get(pk=job_id)
    assert (job.status, job.attempts, job.scheduled_at) == ("todo", 401, LATEST_RETRY_AT)
    assert any(getattr(r, "action", "") == "job_retry_clamped" for r in caplog.records)


REFUSALS = {
    # The job's update to a retry is refused: the attempt row of that retry must not stay.
    "job update": (
        "BEFORE UPDATE ON {job}",
        "NEW.status = 'todo' AND OLD.status = 'doing'",
    ),
    # The attempt row of the retry is refused: the job's update to a retry must not stay.
    "attempt insert": ("BEFORE INSERT ON {attempt}", "NEW.retry_at IS NOT NULL"),
}


@contextmanager
def refusing_trigger(event: str, condition: str) -> Iterator[None]:
    """A trigger that makes the database refuse the write ``event`` when ``condition`` holds.

    Dropped afterwards: MySQL commits a CREATE TRIGGER at once, so no rollback removes it.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("""
                CREATE FUNCTION refuse_retry() RETURNS trigger AS $$
                BEGIN RAISE EXCEPTION 'refused by test trigger'; END $$ LANGUAGE plpgsql""")
            cursor.execute(f"""
                CREATE TRIGGER refuse_retry {event} FOR EACH ROW
                WHEN ({condition}) EXECUTE FUNCTION refuse_retry()""")
        elif connection.vendor == "mysql":
            cursor.execute(f"""
                CREATE TRIGGER refuse_retry {event} FOR EACH ROW
                BEGIN
                    IF {condition} THEN
                        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by test trigger';
                    END IF;
                END""")
        else:
            cursor.execute(f"""
                CREATE TRIGGER refuse_retry {event} WHEN {condition}
                BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END""")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                table = event.rsplit(" ", 1)[-1]
                cursor.execute(f"DROP TRIGGER refuse_retry ON {table}")
                cursor.execute("DROP FUNCTION refuse_retry()")
            else:
                cursor.execute("DROP TRIGGER refuse_retry")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("refused", REFUSALS)
def test_attempt_and_job_update_share_one_transaction(clock: Clock, refused: str) -> None:
    """Make half of a retry's write fail inside the database: the other half must not stay.

    The worker then stores the run as failed instead, naming the database's error.
    """
    event, condition = REFUSALS[refused]
    event = event.format(job=JobRow._meta.db_table, attempt=Attempt._meta.db_table)
    job_id = demo.fail_times.defer(times=1)
    with refusing_trigger(event, condition):
        assert run_due_jobs(now=clock()) == 1
    job = JobRow.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("failed", 1)
    [attempt] = Attempt.objects.filter(job_id=job_id)
    assert (attempt.outcome, attempt.retry_at, attempt.error_type) == ("failed", None, "ValueError")
    assert attempt.decision.startswith("not retried: the outcome could not be stored (")
    assert "refused by test trigger" in attempt.decision


def test_priority_then_age(clock: Clock) -> None:
    order: list[str] = []
    local = App()
    task = local.task(name="mark")(lambda label: order.append(label))
    task.defer(label="old-low")
    task.configure(priority=5).defer(label="high")
    task.defer(label="new-low")
    task.configure(priority=-1).defer(label="negative")
    run_due_jobs(now=clock(), app=local)
    assert order == ["high", "old-low", "new-low", "negative"]


def test_lock_holds_back_later_jobs_until_the_failing_one_ends(clock: Clock) -> None:
    order: list[str] = []
    local = App()

    @local.task(name="locked", retry=RetryStrategy(max_attempts=1, wait=60))
    def locked(label: str) -> None:
        order.append(label)
        if label == "first":
            raise ValueError

    locked.configure(lock="account-1").defer(label="first")
    locked.configure(lock="account-1", priority=10).defer(label="second")
    locked.configure(lock="account-2").defer(label="other")
    assert run_due_jobs(now=clock(), app=local) == 2
    # "first" failed and waits 60 s for its retry: "second" waits behind it despite its priority.
    assert order == ["first", "other"]
    clock.advance(seconds=60)
    assert run_due_jobs(now=clock(), app=local) == 2
    assert order == ["first", "other", "first", "second"]
