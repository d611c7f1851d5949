"""Retry arithmetic: strategies and their delays, no database needed."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from django_retrytasks import BaseRetryStrategy, Job, RetryDecision, RetryStrategy
from django_retrytasks.durations import LATEST_RETRY_AT
from django_retrytasks.retry import decide, get_retry_strategy

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(attempts: int, priority: int = 0) -> Job:
    return Job(id=1, task_name="t", attempts=attempts, priority=priority)


def delays(
    strategy: BaseRetryStrategy | None, *, exception: BaseException | None = None, upto: int = 6
) -> list[float | None]:
    """The wait in seconds after attempts 0..upto, None where no retry is decided."""
    result: list[float | None] = []
    for attempts in range(upto + 1):
        decision = decide(strategy, exception=exception or Exception("x"), job=job(attempts))
        result.append(None if decision is None else decision.retry_in_seconds)
    return result


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        # retry=5: five retries with no wait, then none (6 runs).
        (get_retry_strategy(5), [0, 0, 0, 0, 0, None, None]),
        (get_retry_strategy(1), [0, None, None, None, None, None, None]),
        (get_retry_strategy(True), [0, 0, 0, 0, 0, 0, 0]),
        (RetryStrategy(wait=5), [5, 5, 5, 5, 5, 5, 5]),
        # linear_wait * (a + 1): 5, 10, 15, ... as the guide says.
        (RetryStrategy(linear_wait=5), [5, 10, 15, 20, 25, 30, 35]),
        # exponential_wait ** (a + 1): 5, 25, 125, ...
        (RetryStrategy(exponential_wait=5), [5, 25, 125, 625, 3125, 15625, 78125]),
        # The three add up: 2 + 3*(a+1) + 2**(a+1) -> a=0: 2+3+2 = 7, a=1: 2+6+4 = 12, ...
        (RetryStrategy(wait=2, linear_wait=3, exponential_wait=2), [7, 12, 19, 30, 49, 84, 151]),
        (RetryStrategy(exponential_wait=1), [1, 1, 1, 1, 1, 1, 1]),
        (RetryStrategy(max_attempts=3, wait=1), [1, 1, 1, None, None, None, None]),
        (RetryStrategy(max_attempts=0, wait=1), [None] * 7),
        # max_wait caps after the formula.
        (RetryStrategy(exponential_wait=2, max_wait=10), [2, 4, 8, 10, 10, 10, 10]),
        (RetryStrategy(wait=0.5, linear_wait=0.25), [0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]),
    ],
)
def test_delays_by_attempts(strategy: BaseRetryStrategy, expected: list[float | None]) -> None:
    assert delays(strategy) == expected


@pytest.mark.parametrize("retry", [False, 0, None])
def test_never_retried(retry: object) -> None:
    assert get_retry_strategy(retry) is None  # type: ignore[arg-type]


def test_retry_int_is_max_attempts() -> None:
    assert get_retry_strategy(5) == RetryStrategy(max_attempts=5)


def test_retry_true_never_stops() -> None:
    strategy = get_retry_strategy(True)
    assert strategy is not None
    assert decide(strategy, exception=Exception(), job=job(10_000)) is not None


def test_retry_five_gives_six_runs() -> None:
    strategy = get_retry_strategy(5)
    runs, attempts = 0, 0
    while True:
        runs += 1
        if decide(strategy, exception=Exception(), job=job(attempts)) is None:
            break
        attempts += 1
    assert runs == 6


def test_instance_used_as_is() -> None:
    strategy = RetryStrategy(wait=1)
    assert get_retry_strategy(strategy) is strategy


def test_exception_filter() -> None:
    strategy = RetryStrategy(max_attempts=10, wait=5, retry_exceptions={ConnectionError, IOError})
    assert delays(strategy, exception=ConnectionError(), upto=2) == [5, 5, 5]
    assert delays(strategy, exception=ConnectionResetError(), upto=0) == [5]  # a subclass
    assert delays(strategy, exception=KeyError(), upto=2) == [None, None, None]
    assert delays(strategy, exception=Exception(), upto=0) == [None]


def test_no_retry_exceptions() -> None:
    strategy = RetryStrategy(no_retry_exceptions=[KeyError])
    assert delays(strategy, exception=KeyError(), upto=0) == [None]
    assert delays(strategy, exception=ValueError(), upto=0) == [0]


def test_max_attempts_checked_before_exception_filter() -> None:
    strategy = RetryStrategy(max_attempts=1, retry_exceptions=[ValueError])
    assert delays(strategy, exception=ValueError(), upto=1) == [0, None]


def test_jitter_stays_within_bounds() -> None:
    strategy = RetryStrategy(wait=100, jitter=0.1, rng=random.Random(7))
    waits = [strategy.get_retry_decision(exception=Exception(), job=job(0)) for _ in range(500)]
    seconds = [decision.retry_in_seconds for decision in waits if decision]
    assert all(90 <= value <= 110 for value in seconds)
    assert max(seconds) - min(seconds) > 10  # it really spreads
    assert (
        RetryStrategy(wait=100)
        .get_retry_decision(exception=Exception(), job=job(0))
        .retry_in_seconds
        == 100
    )  # type: ignore[union-attr]


def test_parameters_kept_as_attributes() -> None:
    strategy = RetryStrategy(
        max_attempts=3, wait=1, linear_wait=2, exponential_wait=3, retry_exceptions=[ValueError]
    )
    assert (
        strategy.max_attempts,
        strategy.wait,
        strategy.linear_wait,
        strategy.exponential_wait,
    ) == (3, 1, 2, 3)
    assert strategy.retry_exceptions == (ValueError,)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_attempts": -1}, ValueError),
        ({"max_attempts": "3"}, TypeError),
        ({"max_attempts": True}, TypeError),
        ({"max_attempts": 1.5}, TypeError),
        ({"wait": -10}, ValueError),
        ({"wait": "5"}, TypeError),
        ({"wait": True}, TypeError),
        ({"wait": math.inf}, ValueError),
        ({"wait": math.nan}, ValueError),
        ({"linear_wait": -1}, ValueError),
        ({"exponential_wait": -2}, ValueError),
        ({"max_wait": -1}, ValueError),
        ({"jitter": 1.5}, ValueError),
        ({"jitter": -0.1}, ValueError),
        ({"retry_exceptions": ["ValueError"]}, TypeError),
        ({"retry_exceptions": 3}, TypeError),
        ({"no_retry_exceptions": [int]}, TypeError),
    ],
)
def test_bad_parameters_rejected_when_built(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error) as caught:
        RetryStrategy(**kwargs)  # type: ignore[arg-type]
    assert next(iter(kwargs)) in str(caught.value)


@pytest.mark.parametrize("retry", [-1, "5", 1.5])
def test_bad_retry_option(retry: object) -> None:
    with pytest.raises((TypeError, ValueError), match="retry"):
        get_retry_strategy(retry)  # type: ignore[arg-type]


def test_decision_retry_in_and_retry_at() -> None:
    assert RetryDecision(retry_in={"seconds": 10}).resolve(NOW) == (
        NOW + timedelta(seconds=10),
        False,
    )
    assert RetryDecision(retry_in=timedelta(minutes=1)).resolve(NOW)[0] == NOW + timedelta(
        minutes=1
    )
    later = NOW + timedelta(days=1)
    assert RetryDecision(retry_at=later).resolve(NOW) == (later, False)
    assert RetryDecision().resolve(NOW) == (NOW, False)
    with pytest.raises(ValueError, match="both"):
        RetryDecision(retry_at=later, retry_in={"seconds": 1})
    with pytest.raises(ValueError, match="aware"):
        RetryDecision(retry_at=datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="unknown unit"):
        RetryDecision(retry_in={"secs": 1})


def test_decision_keeps_overrides() -> None:
    decision = RetryDecision(retry_in={"seconds": 1}, priority=3, queue="q", lock="l")
    assert (decision.priority, decision.queue, decision.lock, decision.should_retry) == (
        3,
        "q",
        "l",
        True,
    )
    assert RetryDecision().priority is None


def test_should_retry_false_means_no_retry() -> None:
    class Never(BaseRetryStrategy):
        def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision:
            return RetryDecision(should_retry=False)

    assert decide(Never(), exception=Exception(), job=job(0)) is None


def test_huge_delay_saturates_instead_of_overflowing() -> None:
    strategy = RetryStrategy(exponential_wait=5)
    decision = strategy.get_retry_decision(exception=Exception(), job=job(40))
    assert decision is not None
    assert decision.resolve(NOW) == (LATEST_RETRY_AT, True)
    endless = strategy.get_retry_decision(exception=Exception(), job=job(100_000))
    assert endless is not None and endless.resolve(NOW) == (LATEST_RETRY_AT, True)


def test_legacy_get_schedule_in_still_works_with_a_warning() -> None:
    class Legacy(BaseRetryStrategy):
        def get_schedule_in(self, *, exception: BaseException, attempts: int) -> int | None:
            return 10 * (attempts + 1) if attempts < 2 else None

    with pytest.warns(DeprecationWarning, match="get_schedule_in"):
        assert delays(Legacy(), upto=3) == [10, 20, None, None]


def test_strategy_without_any_method_says_so() -> None:
    class Empty(BaseRetryStrategy):
        pass

    with pytest.raises(NotImplementedError, match="get_retry_decision"):
        Empty().get_retry_decision(exception=Exception(), job=job(0))


def test_wrong_return_type_is_an_error() -> None:
    class Wrong(BaseRetryStrategy):
        def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision:
            return 5  # type: ignore[return-value]

    with pytest.raises(TypeError, match="RetryDecision"):
        decide(Wrong(), exception=Exception(), job=job(0))


def test_last_attempt_recipe_and_helper() -> None:
    strategy = get_retry_strategy(10)
    assert strategy is not None
    last = [
        a
        for a in range(15)
        if strategy.get_retry_decision(exception=Exception(), job=job(a)) is None
    ]
    assert last[0] == 10  # the 11th run is the last permitted one
    filtered = RetryStrategy(max_attempts=3, retry_exceptions=[ConnectionError])
    # The recipe reports every run as the last; the helper answers properly.
    assert filtered.get_retry_decision(exception=Exception(), job=job(0)) is None
    assert [filtered.is_last_attempt(job(a)) for a in range(4)] == [False, False, False, True]


def test_schedule_preview_is_none_with_jitter() -> None:
    assert RetryStrategy(wait=10, jitter=0.1).schedule_preview(attempts=0, count=3) is None


def test_schedule_preview() -> None:
    assert RetryStrategy(max_attempts=3, exponential_wait=2).schedule_preview(
        attempts=0, count=5
    ) == [2, 4, 8]


def test_retry_module_imports_no_django() -> None:
    code = (
        "import sys; import django_retrytasks.retry; "
        "print(sorted(m for m in sys.modules if m.startswith('django.')))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
