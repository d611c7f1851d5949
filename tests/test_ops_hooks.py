"""Signals, the on_final_failure hook, snooze / give up, time budgets, Retry-After and logs.

Every test runs jobs for real (``run_due_jobs`` with a hand-moved clock) on the test
database, SQLite or PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.dispatch import Signal

from django_retrytasks import signals
from django_retrytasks.models import Attempt, Job
from django_retrytasks.store import operations
from django_retrytasks.testing import run_due_jobs
from testproject.demo import ops_tasks

from .conftest import Clock

pytestmark = pytest.mark.django_db

ALL_SIGNALS = {
    name: getattr(signals, name)
    for name in (
        "job_deferred",
        "job_started",
        "job_succeeded",
        "job_retry_scheduled",
        "job_snoozed",
        "job_failed",
        "job_recovered",
    )
}

#: The ``extra`` keys every log line about a job carries.
LOG_KEYS = ("action", "job_id", "task_name", "attempt", "queue")


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    ops_tasks.calls.clear()
    yield
    ops_tasks.calls.clear()


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every signal sent during the test, as (signal name, keyword arguments)."""
    log: list[tuple[str, dict[str, Any]]] = []
    receivers = {}
    for name, signal in ALL_SIGNALS.items():

        def receiver(sender: Any, *, _name: str = name, **kwargs: Any) -> None:
            log.append((_name, {"sender": sender, **kwargs}))

        receivers[name] = receiver
        signal.connect(receiver, weak=False)
    yield log
    for name, signal in ALL_SIGNALS.items():
        signal.disconnect(receivers[name])


def names(log: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in log]


def job_logs(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if getattr(record, "action", None) == action]


# --- signals -------------------------------------------------------------------------------


def test_success_sends_deferred_started_succeeded(
    clock: Clock, received: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        job_id = ops_tasks.succeed.defer(value=21)
    assert names(received) == ["job_deferred"]
    run_due_jobs(now=clock())
    assert names(received) == ["job_deferred", "job_started", "job_succeeded"]
    for _, kwargs in received:
        assert kwargs["sender"] is ops_tasks.succeed
        assert kwargs["job"].id == job_id
    succeeded = received[-1][1]
    assert succeeded["job"].status == "succeeded"
    assert succeeded["job"].attempts == 1
    assert succeeded["return_value"] == 42
    assert succeeded["duration"] == 0


def test_deferred_signal_waits_for_the_commit(
    received: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ops_tasks.succeed.defer()
    # Not yet committed: a rolled back defer never announces a job that does not exist.
    assert names(received) == []
    for callback in callbacks:
        callback()
    assert names(received) == ["job_deferred"]


def test_retry_then_final_failure_signals_and_hook(clock: Clock, received: list[Any]) -> None:
    job_id = ops_tasks.always_fails.defer()
    for _ in range(3):
        run_due_jobs(now=clock())
    assert names(received) == [
        "job_started",
        "job_retry_scheduled",
        "job_started",
        "job_retry_scheduled",
        "job_started",
        "job_failed",
    ]
    retry = received[1][1]
    assert retry["job"].status == "todo"
    assert retry["job"].attempts == 1
    assert isinstance(retry["exception"], ValueError)
    assert retry["decision"].retry_in_seconds == 0
    assert retry["retry_at"] == clock()
    failed = received[-1][1]
    assert failed["job"].status == "failed"
    assert failed["job"].attempts == 3
    assert failed["reason"] == "not retried: max_attempts (2) reached"
    # The hook ran exactly once, after the last attempt, with the job as it ended.
    assert ops_tasks.calls == [("final_failure", (job_id, "failed", 3, "ValueError"))]


def test_raising_receivers_and_hook_break_nothing(
    clock: Clock, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    def explode(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    for signal in ALL_SIGNALS.values():
        signal.connect(explode, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            ok_id = ops_tasks.succeed.defer(value=1)
            retry_id = ops_tasks.always_fails.defer()
            bad_hook_id = ops_tasks.fails_with_broken_hook.defer()
        assert run_due_jobs(now=clock()) == 5  # the retries of always_fails are due at once too
    finally:
        for signal in ALL_SIGNALS.values():
            signal.disconnect(explode)
    assert Job.objects.get(pk=ok_id).status == "succeeded"
    assert Job.objects.get(pk=retry_id).attempts == 3
    assert Job.objects.get(pk=bad_hook_id).status == "failed"
    assert Attempt.objects.filter(job_id=bad_hook_id).count() == 1
    errors = job_logs(caplog, "signal_error")
    assert errors and all(record.levelno == logging.ERROR for record in errors)
    assert {record.job_id for record in errors} == {ok_id, retry_id, bad_hook_id}
    [hook_error] = job_logs(caplog, "hook_error")
    assert hook_error.job_id == bad_hook_id
    assert hook_error.exc_info is not None


def test_sender_filter_limits_a_receiver_to_one_task(clock: Clock) -> None:
    seen: list[int] = []

    def on_failed(sender: Any, job: Any, **kwargs: Any) -> None:
        seen.append(job.id)

    signals.job_failed.connect(on_failed, sender=ops_tasks.fails_with_broken_hook, weak=False)
    try:
        wanted = ops_tasks.fails_with_broken_hook.defer()
        ops_tasks.gives_up.defer()
        run_due_jobs(now=clock())
    finally:
        signals.job_failed.disconnect(on_failed, sender=ops_tasks.fails_with_broken_hook)
    assert seen == [wanted]


def test_unknown_task_sends_job_failed(clock: Clock, received: list[Any]) -> None:
    job = Job.objects.create(task_name="ops.no_such_task", task_kwargs={})
    run_due_jobs(now=clock())
    assert names(received) == ["job_failed"]
    assert received[0][1]["sender"] is None
    assert received[0][1]["job"].id == job.pk


# --- snooze and give up --------------------------------------------------------------------


def test_snooze_reschedules_without_using_an_attempt(clock: Clock, received: list[Any]) -> None:
    job_id = ops_tasks.snoozes.defer(seconds=30)
    assert run_due_jobs(now=clock()) == 1
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts, job.snoozes) == ("todo", 0, 1)
    assert job.scheduled_at == clock() + timedelta(seconds=30)
    attempt = job.attempt_history.get()
    assert attempt.outcome == "snoozed"
    assert attempt.retry_at == job.scheduled_at
    assert "no attempt used" in attempt.decision
    assert names(received) == ["job_started", "job_snoozed"]
    assert received[1][1]["snoozes"] == 1
    assert received[1][1]["retry_at"] == job.scheduled_at


def test_snooze_cap_turns_further_snoozes_into_failures(clock: Clock) -> None:
    job_id = ops_tasks.snoozes.defer(seconds=30)
    outcomes = []
    for _ in range(6):
        run_due_jobs(now=clock.advance(seconds=31))
    job = Job.objects.get(pk=job_id)
    outcomes = list(job.attempt_history.values_list("outcome", "error_type"))
    # max_snoozes=2, then each snooze is a failed run judged by retry=1: one retry, then failed.
    assert outcomes == [
        ("snoozed", ""),
        ("snoozed", ""),
        ("failed", "django_retrytasks.exceptions.SnoozeLimitReached"),
        ("failed", "django_retrytasks.exceptions.SnoozeLimitReached"),
    ]
    assert (job.status, job.attempts, job.snoozes) == ("failed", 2, 2)
    assert ops_tasks.calls == [("final_failure", (job_id, "failed", 2, "SnoozeLimitReached"))]


def test_snooze_from_the_job_context(clock: Clock) -> None:
    job_id = ops_tasks.snoozes_by_context.defer(until_snoozes=1)
    run_due_jobs(now=clock())
    assert Job.objects.get(pk=job_id).status == "todo"
    run_due_jobs(now=clock.advance(seconds=59))
    assert Job.objects.get(pk=job_id).status == "todo"
    run_due_jobs(now=clock.advance(seconds=1))
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts, job.snoozes, job.return_value) == ("succeeded", 1, 1, "done")
    # The run after the snooze still saw attempts == 0: a snooze is not a failure.
    assert ops_tasks.calls == [("snoozes_by_context", 0), ("snoozes_by_context", 0)]


@pytest.mark.parametrize("task", [ops_tasks.gives_up, ops_tasks.gives_up_by_context])
def test_give_up_ends_failed_now_with_the_reason(clock: Clock, task: Any) -> None:
    job_id = task.defer()
    run_due_jobs(now=clock())
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("failed", 1)  # retry=10 was not consulted
    attempt = job.attempt_history.get()
    assert attempt.error_type == "django_retrytasks.exceptions.GiveUp"
    assert attempt.decision.startswith("not retried: the task gave up: ")
    assert attempt.error_message in attempt.decision
    assert attempt.retry_at is None


def test_give_up_calls_the_final_failure_hook(clock: Clock) -> None:
    job_id = ops_tasks.gives_up.defer(reason="customer closed the account")
    run_due_jobs(now=clock())
    assert ops_tasks.calls == [("final_failure", (job_id, "failed", 1, "GiveUp"))]


# --- time budget and Retry-After ----------------------------------------------------------------


def test_retry_for_stops_retrying_when_the_time_budget_runs_out(clock: Clock) -> None:
    job_id = ops_tasks.time_budget.defer()
    Job.objects.filter(pk=job_id).update(created_at=clock())
    retry_times = []
    for _ in range(6):
        run_due_jobs(now=clock())
        job = Job.objects.get(pk=job_id)
        if job.status != "todo":
            break
        retry_times.append(job.scheduled_at)
        clock.now = job.scheduled_at
    # wait=3600 and retry_for 3 hours: retries at +1h, +2h, +3h; the next (+4h) is over budget.
    assert [(moment - retry_times[0]).total_seconds() for moment in retry_times] == [0, 3600, 7200]
    assert job.status == "failed"
    assert job.attempts == 4
    last = job.attempt_history.last()
    assert last is not None and last.decision == (
        "not retried: the next run would start after the retry_for budget (3:00:00)"
    )


@pytest.mark.parametrize(
    ("retry_after", "kind", "expected_wait"),
    [
        (120, "raw", 120.0),
        ("30", "raw", 30.0),  # an HTTP Retry-After header, as the client library left it
        (45, "timedelta", 45.0),
        (600, "datetime", 600.0),
        (-5, "raw", 5.0),  # nonsense: the strategy's own wait applies
    ],
)
def test_retry_after_of_the_exception_replaces_the_wait(
    clock: Clock, retry_after: Any, kind: str, expected_wait: float
) -> None:
    if kind == "datetime":
        retry_after = (clock() + timedelta(seconds=retry_after)).isoformat()
    job_id = ops_tasks.rate_limited.defer(retry_after=retry_after, kind=kind)
    run_due_jobs(now=clock())
    job = Job.objects.get(pk=job_id)
    assert job.status == "todo"
    assert (job.scheduled_at - clock()).total_seconds() == expected_wait


def test_retry_after_is_ignored_unless_the_strategy_respects_it(clock: Clock) -> None:
    job_id = ops_tasks.retry_after_ignored.defer()
    run_due_jobs(now=clock())
    job = Job.objects.get(pk=job_id)
    assert (job.scheduled_at - clock()).total_seconds() == 5


# --- logs ------------------------------------------------------------------------------------


def test_every_state_change_is_logged_once_with_stable_keys(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="django_retrytasks")
    ok_id = ops_tasks.succeed.defer()
    fail_id = ops_tasks.always_fails.defer()
    snooze_id = ops_tasks.snoozes.defer(seconds=10)
    run_due_jobs(now=clock())
    by_action: dict[str, list[logging.LogRecord]] = {}
    for record in caplog.records:
        if hasattr(record, "job_id"):
            by_action.setdefault(record.action, []).append(record)
    for action, records in by_action.items():
        for record in records:
            for key in LOG_KEYS:
                assert hasattr(record, key), f"{action} log lacks {key}"
    assert [r.job_id for r in by_action["job_deferred"]] == [ok_id, fail_id, snooze_id]
    assert all(r.levelno == logging.DEBUG for r in by_action["job_deferred"])
    [success] = by_action["job_success"]
    assert (success.levelno, success.job_id, success.attempt) == (logging.INFO, ok_id, 1)
    retries = by_action["job_error_retry"]
    assert [(r.job_id, r.attempt, r.wait, r.levelno) for r in retries] == [
        (fail_id, 1, 0.0, logging.INFO),
        (fail_id, 2, 0.0, logging.INFO),
    ]
    [final] = by_action["job_error"]
    assert (final.levelno, final.job_id, final.attempt) == (logging.ERROR, fail_id, 3)
    assert "Traceback" in final.getMessage() and "ValueError: no luck" in final.getMessage()
    [snoozed] = by_action["job_snoozed"]
    assert (snoozed.levelno, snoozed.job_id, snoozed.wait) == (logging.INFO, snooze_id, 10.0)
    assert {r.task_name for r in by_action["job_start"]} == {
        "ops.succeed",
        "ops.always_fails",
        "ops.snoozes",
    }
    assert all(r.queue == "default" for records in by_action.values() for r in records)


def test_operator_actions_are_logged(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:

    caplog.set_level(logging.INFO, logger="django_retrytasks")
    waiting = ops_tasks.succeed.defer()
    failed = ops_tasks.gives_up.defer()
    run_due_jobs(now=clock(), queues=["nothing"])  # keep "waiting" waiting
    Job.objects.filter(pk=failed).update(status="failed", attempts=1)
    operations.cancel([waiting])
    operations.retry_now([failed])
    [cancelled] = job_logs(caplog, "job_cancelled")
    [retried] = job_logs(caplog, "job_retry_now")
    assert (cancelled.job_id, cancelled.task_name, cancelled.attempt) == (waiting, "ops.succeed", 1)
    assert (retried.job_id, retried.attempt, retried.previous_status) == (failed, 2, "failed")
    for record in (cancelled, retried):
        for key in LOG_KEYS:
            assert hasattr(record, key)


def test_signal_module_exports_only_signals() -> None:
    assert all(isinstance(signal, Signal) for signal in ALL_SIGNALS.values())


# --- the pure parts: validation and the arithmetic of budgets -------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (3600, TypeError),
        ({"hours": -1}, ValueError),
        ({"hours": 0}, ValueError),
        ({"fortnights": 1}, TypeError),
        ("6h", TypeError),
        ({"days": 10**12}, ValueError),
    ],
)
def test_retry_for_is_validated_when_the_strategy_is_built(value: Any, error: type) -> None:
    from django_retrytasks import RetryStrategy

    with pytest.raises(error, match="retry_for"):
        RetryStrategy(retry_for=value)


def test_respect_retry_after_must_be_a_bool() -> None:
    from django_retrytasks import RetryStrategy

    with pytest.raises(TypeError, match="respect_retry_after"):
        RetryStrategy(respect_retry_after="yes")  # type: ignore[arg-type]


def test_retry_for_and_is_last_attempt_from_the_record_alone() -> None:
    from datetime import UTC, datetime

    from django_retrytasks import Job as Record
    from django_retrytasks import RetryStrategy

    created = datetime(2026, 1, 1, tzinfo=UTC)
    strategy = RetryStrategy(max_attempts=100, wait=600, retry_for=timedelta(hours=1))
    assert strategy.retry_for == timedelta(hours=1)
    early = Record(
        id=1, task_name="t", created_at=created, failed_at=created + timedelta(minutes=5)
    )
    late = early.evolve(failed_at=created + timedelta(minutes=55))
    assert strategy.get_retry_decision(exception=Exception(), job=early) is not None
    assert strategy.get_retry_decision(exception=Exception(), job=late) is None
    assert not strategy.is_last_attempt(early)
    assert strategy.is_last_attempt(late)
    # Without created_at (a record built by hand) only the count applies.
    assert strategy.get_retry_decision(exception=Exception(), job=late.evolve(created_at=None))


def test_bad_task_options_are_refused() -> None:
    from django_retrytasks import App

    local = App()
    with pytest.raises(TypeError, match="on_final_failure"):
        local.task(on_final_failure="alert")(lambda: None)
    with pytest.raises(ValueError, match="max_snoozes"):
        local.task(max_snoozes=-1)(lambda: None)
    with pytest.raises(ValueError, match="0 seconds or more"):
        from django_retrytasks import Snooze

        Snooze(seconds=-1)


def test_recovery_of_a_lost_run_sends_job_recovered_then_the_judgement(
    clock: Clock, received: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    from django_retrytasks.worker import Worker

    job_id = ops_tasks.always_fails.defer()
    # As a worker that died mid-run leaves it: doing, with no live worker.
    Job.objects.filter(pk=job_id).update(status="doing", started_at=clock(), worker=None)
    worker = Worker(clock=clock, install_signal_handlers=False)
    assert worker.recover_lost_jobs(now=clock.advance(minutes=5)) == 1
    assert names(received) == ["job_recovered", "job_retry_scheduled"]
    assert received[0][1]["job"].id == job_id
    assert received[0][1]["sender"] is ops_tasks.always_fails
    assert type(received[1][1]["exception"]).__name__ == "WorkerLost"
    [recovered] = job_logs(caplog, "job_recovered")
    assert recovered.levelno == logging.WARNING
    assert (recovered.job_id, recovered.task_name, recovered.attempt) == (
        job_id,
        "ops.always_fails",
        1,
    )
