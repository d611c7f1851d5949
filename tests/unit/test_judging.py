"""Judging runs: from a run's result and the task's strategy to one named transition (no database)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from django_retrytasks import Job, RetryDecision, RetryStrategy
from django_retrytasks.durations import LATEST_RETRY_AT
from django_retrytasks.exceptions import GiveUp, Snooze, SnoozeLimitReached
from django_retrytasks.records import Claim, Fail, Interrupt, LostRun, Retry, Succeed
from django_retrytasks.records import Snooze as Snoozed
from django_retrytasks.retry import BaseRetryStrategy
from django_retrytasks.worker.judging import (
    ABORTED_REASON,
    CLAIMED_AHEAD_REASON,
    UNSTORABLE_REASON,
    aborted,
    interrupted,
    judge,
    judge_lost,
)
from django_retrytasks.worker.results import ErrorText, RunKind, RunResult

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@dataclass
class FakeHandler:
    """Just what judging reads of a handler."""

    retry: BaseRetryStrategy | None = None
    max_snoozes: int | None = None
    name: str = "fake"
    sender: Any = None
    timeout: float | None = None
    is_async: bool = False
    calls: list[str] = field(default_factory=list)

    def call(self, claim: Claim, should_abort: Callable[[], bool]) -> Any:
        raise NotImplementedError

    def to_json(self, value: Any) -> Any:
        return value

    def started(self, claim: Claim) -> None:
        pass

    def finished(self, claim: Claim, **kwargs: Any) -> None:
        pass

    def final_failure(self, job: Job, error: BaseException) -> None:
        pass


def claim(*, attempts: int = 0, snoozes: int = 0, created_at: datetime | None = None) -> Claim:
    record = Job(id=7, task_name="t", attempts=attempts, status="doing", created_at=created_at)
    return Claim(record=record, started_at=NOW - timedelta(seconds=1), worker_id=1, snoozes=snoozes)


def raised(
    error: BaseException, retry: BaseRetryStrategy | None = None, **claim_options: Any
) -> RunResult:
    return RunResult(
        claim=claim(**claim_options),
        kind=RunKind.RAISED,
        finished_at=NOW,
        handler=FakeHandler(retry=retry),
        error=error,
        error_text=ErrorText.of(error),
    )


def test_a_run_that_returned_succeeds_and_uses_an_attempt() -> None:
    result = RunResult(claim(), RunKind.RETURNED, NOW, FakeHandler(), return_value={"a": 1})
    verdict = judge(result, worker_name="w")
    completion = verdict.completion
    assert completion.transition == Succeed({"a": 1})
    assert (completion.report.outcome, completion.report.worker_name) == ("succeeded", "w")
    assert completion.counted and verdict.error is None


def test_a_job_that_cannot_run_fails_with_its_reason() -> None:
    error = LookupError("no such task")
    result = RunResult(
        claim(), RunKind.CANNOT_RUN, NOW, None, error=error, error_text=ErrorText.of(error),
        reason="not retried: unknown task",
    )
    verdict = judge(result, worker_name="w")
    assert verdict.completion.transition == Fail("not retried: unknown task")
    assert verdict.cannot_run and verdict.completion.report.error_type == "LookupError"


def test_a_value_json_cannot_hold_fails_without_a_retry() -> None:
    error = TypeError("cannot be stored as JSON")
    result = RunResult(
        claim(), RunKind.UNSTORABLE, NOW, FakeHandler(retry=RetryStrategy()), error=error,
        error_text=ErrorText.of(error),
    )
    assert judge(result, worker_name="w").completion.transition == Fail(UNSTORABLE_REASON)


def test_an_abort_request_ends_a_run_that_raised_aborted() -> None:
    verdict = judge(raised(ValueError("x"), RetryStrategy()), worker_name="w")
    assert verdict.abortable and isinstance(verdict.completion.transition, Retry)
    stopped = aborted(verdict)
    assert stopped.completion.transition == Fail(ABORTED_REASON, status="aborted")
    assert (stopped.completion.report.outcome, stopped.completion.counted) == ("aborted", True)
    assert stopped.completion.report.error_type == "ValueError"


def test_a_snooze_after_an_abort_request_is_an_aborted_run() -> None:
    stopped = aborted(judge(raised(Snooze(30)), worker_name="w", max_snoozes=3))
    assert stopped.completion.transition == Fail(ABORTED_REASON, status="aborted")
    assert stopped.completion.report.error_type == "django_retrytasks.exceptions.Snooze"


def test_only_runs_that_raised_can_be_aborted() -> None:
    result = RunResult(claim(), RunKind.RETURNED, NOW, FakeHandler(), return_value=1)
    assert not judge(result, worker_name="w").abortable


def test_a_snooze_within_the_limit_uses_no_attempt() -> None:
    verdict = judge(raised(Snooze(30), snoozes=2), worker_name="w", max_snoozes=3)
    completion = verdict.completion
    assert completion.transition == Snoozed(
        NOW + timedelta(seconds=30), "snoozed for 30s (snooze 3 of 3); no attempt used"
    )
    assert not completion.counted
    assert (completion.report.outcome, completion.report.error_type) == ("snoozed", "")


def test_a_snooze_past_the_limit_is_a_failure_judged_by_the_strategy() -> None:
    verdict = judge(
        raised(Snooze(30), RetryStrategy(max_attempts=0), snoozes=3), worker_name="w", max_snoozes=3
    )
    assert isinstance(verdict.error, SnoozeLimitReached)
    assert verdict.completion.transition == Fail(
        "not retried: the snooze limit was reached and max_attempts (0) reached"
    )
    assert verdict.completion.report.error_type.endswith("SnoozeLimitReached")
    retried = judge(raised(Snooze(30), RetryStrategy(), snoozes=3), worker_name="w", max_snoozes=3)
    assert isinstance(retried.completion.transition, Retry)


@pytest.mark.parametrize(
    ("error", "strategy", "attempts", "reason"),
    [
        (GiveUp("card declined"), RetryStrategy(), 0, "the task gave up: card declined"),
        (ValueError("x"), None, 0, "the task has no retry strategy"),
        (ValueError("x"), RetryStrategy(max_attempts=2), 2, "max_attempts (2) reached"),
        (
            ValueError("x"),
            RetryStrategy(retry_exceptions=[ConnectionError]),
            0,
            "ValueError is not in retry_exceptions",
        ),
        (
            KeyError("x"),
            RetryStrategy(no_retry_exceptions=[LookupError]),
            0,
            "KeyError is in no_retry_exceptions",
        ),
    ],
)
def test_every_reason_not_to_retry_is_named(
    error: BaseException, strategy: BaseRetryStrategy | None, attempts: int, reason: str
) -> None:
    verdict = judge(raised(error, strategy, attempts=attempts), worker_name="w")
    assert verdict.completion.transition == Fail(f"not retried: {reason}")
    assert verdict.completion.counted


def test_a_time_budget_that_would_be_passed_is_named() -> None:
    strategy = RetryStrategy(wait=3600, retry_for={"hours": 2})
    verdict = judge(raised(ValueError("x"), strategy, created_at=NOW - timedelta(hours=1.5)), worker_name="w")
    assert verdict.completion.transition == Fail(
        "not retried: the next run would start after the retry_for budget (2:00:00)"
    )


class Declines(BaseRetryStrategy):
    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        return RetryDecision(should_retry=False)


class Explodes(BaseRetryStrategy):
    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        raise ZeroDivisionError("oops")


class Moves(BaseRetryStrategy):
    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        return RetryDecision(retry_in={"days": 10**7}, queue="slow", priority=-1, lock="l")


def test_a_custom_strategy_that_declines_is_named() -> None:
    verdict = judge(raised(ValueError("x"), Declines()), worker_name="w")
    assert verdict.completion.transition == Fail("not retried: the retry strategy returned no retry")


def test_a_strategy_that_raises_fails_the_job_and_its_traceback_is_kept() -> None:
    verdict = judge(raised(ValueError("x"), Explodes()), worker_name="w")
    assert verdict.completion.transition == Fail(
        "not retried: the retry strategy raised ZeroDivisionError: oops"
    )
    assert "The retry strategy raised:" in verdict.completion.report.traceback
    assert "ZeroDivisionError: oops" in verdict.completion.report.traceback


def test_a_retry_carries_the_decision_and_is_clamped_to_the_latest_time() -> None:
    verdict = judge(raised(ValueError("x"), Moves()), worker_name="w")
    transition = verdict.completion.transition
    assert isinstance(transition, Retry)
    assert (transition.retry_at, transition.clamped) == (LATEST_RETRY_AT, True)
    assert (transition.decision.queue, transition.decision.priority) == ("slow", -1)
    assert transition.reason.startswith("retry in ")
    assert "too far ahead" in transition.reason


def lost(*, losses: int = 0, ahead: bool = False) -> LostRun:
    return LostRun(claim(), consecutive_losses=losses, worker_name="dead", claimed_ahead=ahead)


def test_a_lost_run_is_judged_as_worker_lost_and_counts_the_loss() -> None:
    verdict = judge_lost(
        lost(), handler=FakeHandler(retry=RetryStrategy()), now=NOW, heartbeat_timeout=60,
        max_consecutive_losses=3,
    )
    completion = verdict.completion
    assert isinstance(completion.transition, Retry) and completion.counted
    assert completion.report.outcome == "lost"
    assert completion.report.error_type == "django_retrytasks.exceptions.WorkerLost"
    assert "worker 'dead' stopped (no heartbeat for over 60s)" in completion.report.error_message
    assert completion.lost is not None


def test_a_job_lost_too_often_is_held() -> None:
    verdict = judge_lost(
        lost(losses=2), handler=FakeHandler(retry=RetryStrategy()), now=NOW,
        heartbeat_timeout=60, max_consecutive_losses=3,
    )
    transition = verdict.completion.transition
    assert isinstance(transition, Fail) and transition.held
    assert transition.reason.startswith("held: lost with its worker 3 times in a row")


def test_a_job_claimed_ahead_goes_back_without_an_attempt() -> None:
    verdict = judge_lost(
        lost(ahead=True), handler=None, now=NOW, heartbeat_timeout=60, max_consecutive_losses=3
    )
    completion = verdict.completion
    assert completion.transition == Interrupt(CLAIMED_AHEAD_REASON)
    assert (completion.counted, completion.report.outcome) == (False, "interrupted")
    held = judge_lost(
        lost(ahead=True, losses=2), handler=None, now=NOW, heartbeat_timeout=60,
        max_consecutive_losses=3,
    )
    assert isinstance(held.completion.transition, Fail) and not held.completion.counted


def test_a_run_cut_short_by_shutdown_is_interrupted() -> None:
    verdict = interrupted(claim(), now=NOW, worker_name="w", reason="shutdown")
    assert verdict.completion.transition == Interrupt("shutdown")
    assert (verdict.completion.counted, verdict.completion.report.outcome) == (False, "interrupted")
