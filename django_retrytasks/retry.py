"""Retry strategies and decisions: pure Python, no Django, no I/O.

A strategy looks at a failed run (the exception and the job as it was when the run
started) and returns a :class:`RetryDecision`, or ``None`` for "do not retry". The
worker turns the decision into a database write; nothing here touches storage, and
the only clock used is the ``now`` a caller passes to :meth:`RetryDecision.resolve`.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from django_retrytasks import limits
from django_retrytasks.durations import add_delay, check_aware, delay_to_seconds

if TYPE_CHECKING:
    from django_retrytasks.jobs import Job


class JobLike(Protocol):
    """What a strategy may read from a job: the fields of :class:`django_retrytasks.Job`."""

    @property
    def attempts(self) -> int: ...

    @property
    def priority(self) -> int: ...

    @property
    def created_at(self) -> datetime | None: ...

    @property
    def failed_at(self) -> datetime | None: ...


class RetryDecision:
    """What to do with a failed job: retry it (when, and with which priority, queue and lock).

    ``retry_in`` is a dict of timedelta arguments or a timedelta, ``retry_at`` an aware
    datetime; neither means "retry now". ``priority``, ``queue`` and ``lock`` left ``None``
    keep the job's current values. ``should_retry=False`` means "do not retry".
    """

    def __init__(
        self,
        *,
        retry_at: datetime | None = None,
        retry_in: Mapping[str, float] | timedelta | None = None,
        priority: int | None = None,
        queue: str | None = None,
        lock: str | None = None,
        should_retry: bool = True,
    ) -> None:
        if retry_at is not None and retry_in is not None:
            raise ValueError("RetryDecision takes retry_at or retry_in, not both")
        self.retry_at = None if retry_at is None else check_aware(retry_at, name="retry_at")
        #: The wait in seconds when the decision was given as ``retry_in``.
        self.retry_in_seconds = (
            None if retry_in is None else delay_to_seconds(retry_in, name="retry_in")
        )
        # Checked now, against what the job's columns hold: a decision that would not fit
        # fails in the strategy, not in the transaction that stores the retry.
        self.priority = None if priority is None else limits.check_priority(priority)
        self.queue = limits.check_name(
            queue, option="queue", max_length=limits.MAX_QUEUE_LENGTH, allow_none=True
        )
        self.lock = limits.check_name(
            lock, option="lock", max_length=limits.MAX_LOCK_LENGTH, allow_none=True
        )
        self.should_retry = bool(should_retry)

    @property
    def retry_in(self) -> timedelta | None:
        """The wait as a timedelta (``timedelta.max`` when it is longer than that)."""
        if self.retry_in_seconds is None:
            return None
        try:
            return timedelta(seconds=self.retry_in_seconds)
        except OverflowError:
            return timedelta.max

    def resolve(self, now: datetime) -> tuple[datetime, bool]:
        """Return the moment of the next run and whether it was clamped to :data:`LATEST_RETRY_AT`."""
        if self.retry_at is not None:
            return self.retry_at, False
        return add_delay(now, max(self.retry_in_seconds or 0.0, 0.0))

    def describe(self) -> str:
        parts = []
        if self.retry_at is not None:
            parts.append(f"retry at {self.retry_at.isoformat()}")
        elif self.retry_in_seconds:
            parts.append(f"retry in {self.retry_in_seconds:g}s")
        else:
            parts.append("retry now")
        for name in ("priority", "queue", "lock"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        if not self.should_retry:
            return "RetryDecision(should_retry=False)"
        return f"RetryDecision({self.describe()})"


class BaseRetryStrategy:
    """Subclass and override :meth:`get_retry_decision` to decide how a failed job is retried."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        """Return a decision for a failed run, or ``None`` to stop retrying.

        ``job.attempts`` counts the runs finished before the one that just failed.
        """
        if type(self).get_schedule_in is BaseRetryStrategy.get_schedule_in:
            raise NotImplementedError(
                f"{type(self).__name__} must implement get_retry_decision(*, exception, job)"
            )
        warnings.warn(
            f"{type(self).__name__}.get_schedule_in() is deprecated; "
            "implement get_retry_decision(*, exception, job) instead",
            DeprecationWarning,
            stacklevel=2,
        )
        seconds = self.get_schedule_in(exception=exception, attempts=job.attempts)
        if seconds is None:
            return None
        return RetryDecision(retry_in={"seconds": seconds})

    def get_schedule_in(self, *, exception: BaseException, attempts: int) -> float | None:
        """Deprecated: return the wait in seconds before the next run, or ``None`` for no retry."""
        raise NotImplementedError

    def is_last_attempt(self, job: Job) -> bool:
        """Return whether no failure of the current run of ``job`` could lead to a retry.

        The generic answer asks the strategy about a plain ``Exception``; strategies that
        know their budget (like :class:`RetryStrategy`) answer from it directly.
        """
        decision = self.get_retry_decision(exception=Exception(), job=job)
        return decision is None or not decision.should_retry

    def schedule_preview(self, *, attempts: int, count: int) -> list[float] | None:
        """Return the next ``count`` waits in seconds, or ``None`` when they cannot be known in advance."""
        return None

    def why_not_retried(self, *, exception: BaseException, job: Job) -> str:
        """Say, for an operator, why this strategy just declined to retry a failure."""
        return "the retry strategy returned no retry"


def _check_count(value: object, *, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be None or an int >= 0, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _check_optional_seconds(value: object, *, name: str) -> float | None:
    return None if value is None else _check_seconds(value, name=name)


def _check_seconds(value: object, *, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _check_exception_types(value: object, *, name: str) -> tuple[type[BaseException], ...] | None:
    if value is None:
        return None
    items: Iterable[object]
    if isinstance(value, type):
        items = (value,)
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
        items = value
    else:
        raise TypeError(f"{name} must be a collection of exception classes, got {value!r}")
    types = tuple(items)
    for item in types:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"{name} must hold exception classes, got {item!r}")
    return types  # type: ignore[return-value]


def _check_budget(value: Mapping[str, float] | timedelta) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise TypeError(
            "retry_for must be a dict of timedelta arguments (e.g. {'hours': 6}) or a timedelta, "
            f"not {type(value).__name__}"
        )
    seconds = delay_to_seconds(value, name="retry_for")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"retry_for must be a finite duration > 0, got {value!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"retry_for is longer than a datetime can hold: {value!r}") from None


def _moment_of_failure(job: JobLike) -> datetime:
    """When the judged run failed: the worker sets ``job.failed_at``; without it, the real time."""
    return job.failed_at or datetime.now(UTC)


def retry_after_of(exception: BaseException) -> float | datetime | None:
    """Return the ``retry_after`` an exception carries, as seconds or an aware datetime.

    Accepted: a number of seconds, a ``timedelta``, an aware ``datetime`` or a string of
    digits (an HTTP ``Retry-After`` header); anything else (missing, negative, a
    naive datetime) is ignored so that the strategy's own wait applies.
    """
    value = getattr(exception, "retry_after", None)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None and value.utcoffset() is not None else None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = float(value.strip())
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


@dataclass(frozen=True, eq=True)
class _Parameters:
    max_attempts: int | None
    wait: float
    linear_wait: float
    exponential_wait: float
    max_wait: float | None
    jitter: float


class RetryStrategy(BaseRetryStrategy):
    """Retry with fixed, linear and exponential waits added up, optionally capped and jittered.

    With ``a = job.attempts`` the wait before the next run is
    ``wait + linear_wait * (a + 1) + exponential_wait ** (a + 1)`` seconds (the last term
    only when ``exponential_wait`` is set), then capped at ``max_wait`` and spread by
    ``jitter`` (0.1 means plus or minus 10 percent). ``max_attempts`` is the number of
    retries: ``None`` for no limit, ``0`` for none at all.
    """

    def __init__(
        self,
        *,
        max_attempts: int | None = None,
        wait: float = 0,
        linear_wait: float = 0,
        exponential_wait: float = 0,
        retry_exceptions: Iterable[type[BaseException]] | None = None,
        no_retry_exceptions: Iterable[type[BaseException]] | None = None,
        max_wait: float | None = None,
        jitter: float = 0,
        rng: random.Random | None = None,
        retry_for: Mapping[str, float] | timedelta | None = None,
        respect_retry_after: bool = False,
    ) -> None:
        self.max_attempts = _check_count(max_attempts, name="max_attempts")
        self.wait = _check_seconds(wait, name="wait")
        self.linear_wait = _check_seconds(linear_wait, name="linear_wait")
        self.exponential_wait = _check_seconds(exponential_wait, name="exponential_wait")
        self.max_wait = _check_optional_seconds(max_wait, name="max_wait")
        self.jitter = _check_seconds(jitter, name="jitter")
        if self.jitter > 1:
            raise ValueError(f"jitter is a fraction between 0 and 1, got {jitter!r}")
        self.retry_exceptions = _check_exception_types(retry_exceptions, name="retry_exceptions")
        self.no_retry_exceptions = _check_exception_types(
            no_retry_exceptions, name="no_retry_exceptions"
        )
        self.retry_for = None if retry_for is None else _check_budget(retry_for)
        if not isinstance(respect_retry_after, bool):
            raise TypeError(
                f"respect_retry_after must be True or False, not {type(respect_retry_after).__name__}"
            )
        self.respect_retry_after = respect_retry_after
        self._rng = rng or random.Random()

    def base_wait(self, attempts: int) -> float:
        """Return the wait in seconds after ``attempts`` finished runs, before jitter."""
        exponent = attempts + 1
        total = float(self.wait or 0) + float(self.linear_wait or 0) * exponent
        if self.exponential_wait:
            # Past ~1e300 a float overflows; such a wait saturates at the latest date anyway.
            log_value = exponent * math.log(self.exponential_wait)
            total += math.inf if log_value > 690 else float(self.exponential_wait) ** exponent
        if self.max_wait is not None:
            total = min(total, float(self.max_wait))
        return total

    def will_retry(self, exception: BaseException, job: JobLike) -> bool:
        if self.max_attempts is not None and job.attempts >= self.max_attempts:
            return False
        if self.retry_exceptions is not None and not isinstance(exception, self.retry_exceptions):
            return False
        return not (
            self.no_retry_exceptions is not None and isinstance(exception, self.no_retry_exceptions)
        )

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if not self.will_retry(exception, job):
            return None
        asked = retry_after_of(exception) if self.respect_retry_after else None
        if isinstance(asked, datetime):
            if not self._within_budget(job, asked):
                return None
            return RetryDecision(retry_at=asked)
        if asked is not None:
            seconds = asked
        else:
            seconds = self.base_wait(job.attempts)
            if self.jitter and math.isfinite(seconds):
                seconds *= 1 + self._rng.uniform(-self.jitter, self.jitter)
        if self.retry_for is not None:
            failed_at = _moment_of_failure(job)
            if not self._within_budget(job, add_delay(failed_at, max(seconds, 0.0))[0]):
                return None
        return RetryDecision(retry_in={"seconds": seconds})

    def why_not_retried(self, *, exception: BaseException, job: Job) -> str:
        if self.max_attempts is not None and job.attempts >= self.max_attempts:
            return f"max_attempts ({self.max_attempts}) reached"
        kind = type(exception).__qualname__
        if self.retry_exceptions is not None and not isinstance(exception, self.retry_exceptions):
            return f"{kind} is not in retry_exceptions"
        if self.no_retry_exceptions is not None and isinstance(
            exception, self.no_retry_exceptions
        ):
            return f"{kind} is in no_retry_exceptions"
        if self.retry_for is not None:
            return f"the next run would start after the retry_for budget ({self.retry_for})"
        return super().why_not_retried(exception=exception, job=job)

    def _within_budget(self, job: JobLike, retry_at: datetime) -> bool:
        """Whether a run at ``retry_at`` still starts within ``retry_for`` of the job's creation."""
        if self.retry_for is None or job.created_at is None:
            return True
        return retry_at - job.created_at <= self.retry_for

    def is_last_attempt(self, job: Job) -> bool:
        if self.max_attempts is not None and job.attempts >= self.max_attempts:
            return True
        if self.retry_for is None or job.created_at is None:
            return False
        next_run, _ = add_delay(_moment_of_failure(job), self.base_wait(job.attempts))
        return not self._within_budget(job, next_run)

    @property
    def is_deterministic(self) -> bool:
        return not self.jitter

    def schedule_preview(self, *, attempts: int, count: int) -> list[float] | None:
        if not self.is_deterministic:
            return None  # jitter draws each wait when the failure happens
        waits = []
        for done in range(attempts, attempts + count):
            if self.max_attempts is not None and done >= self.max_attempts:
                break
            waits.append(self.base_wait(done))
        return waits

    def _parameters(self) -> _Parameters:
        return _Parameters(
            self.max_attempts,
            self.wait,
            self.linear_wait,
            self.exponential_wait,
            self.max_wait,
            self.jitter,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetryStrategy):
            return NotImplemented
        return (
            self._parameters() == other._parameters()
            and self.retry_exceptions == other.retry_exceptions
            and self.no_retry_exceptions == other.no_retry_exceptions
            and self.retry_for == other.retry_for
            and self.respect_retry_after == other.respect_retry_after
        )

    def __hash__(self) -> int:
        return hash(self._parameters())

    def __repr__(self) -> str:
        defaults = RetryStrategy.__init__.__kwdefaults__ or {}
        shown = [
            f"{name}={getattr(self, name)!r}"
            for name in (
                "max_attempts",
                "wait",
                "linear_wait",
                "exponential_wait",
                "max_wait",
                "jitter",
                "retry_exceptions",
                "no_retry_exceptions",
                "retry_for",
                "respect_retry_after",
            )
            if getattr(self, name) != defaults.get(name)
        ]
        return f"RetryStrategy({', '.join(shown)})"


def get_retry_strategy(retry: bool | int | BaseRetryStrategy | None) -> BaseRetryStrategy | None:
    """Turn the ``retry=`` option of a task into a strategy (or ``None`` for never)."""
    if retry is None or retry is False:
        return None
    if retry is True:
        return RetryStrategy()
    if isinstance(retry, BaseRetryStrategy):
        return retry
    if isinstance(retry, int):
        if retry < 0:
            raise ValueError(f"retry must be >= 0 (the number of retries), got {retry}")
        return RetryStrategy(max_attempts=retry) if retry else None
    raise TypeError(
        "retry must be True, False, None, an int (the number of retries) or a "
        f"BaseRetryStrategy instance, not {type(retry).__name__}"
    )


def decide(
    strategy: BaseRetryStrategy | None, *, exception: BaseException, job: Job
) -> RetryDecision | None:
    """Ask ``strategy`` about a failure; ``None`` and ``should_retry=False`` both mean no retry."""
    if strategy is None:
        return None
    decision = strategy.get_retry_decision(exception=exception, job=job)
    if decision is None:
        return None
    if not isinstance(decision, RetryDecision):
        raise TypeError(
            f"{type(strategy).__name__}.get_retry_decision returned {decision!r}; "
            "expected a RetryDecision or None"
        )
    return decision if decision.should_retry else None
