"""Tasks that the ops tests and tools drive."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django_retrytasks import GiveUp, Job, JobContext, RetryStrategy, Snooze, app

#: What the tasks and hooks below saw, for the tests to read (cleared by the tests).
calls: list[tuple[str, Any]] = []


class RateLimited(Exception):
    """An HTTP 429 as a client library might raise it, with the server's Retry-After."""

    def __init__(self, retry_after: Any) -> None:
        super().__init__(f"429 Too Many Requests (Retry-After: {retry_after})")
        self.retry_after = retry_after


def record_final_failure(job: Job, exception: BaseException) -> None:
    calls.append(("final_failure", (job.id, job.status, job.attempts, type(exception).__name__)))


def broken_hook(job: Job, exception: BaseException) -> None:
    raise RuntimeError("the alerting service is down")


@app.task(name="ops.succeed")
def succeed(value: int = 1) -> int:
    return value * 2


@app.task(name="ops.always_fails", retry=2, on_final_failure=record_final_failure)
def always_fails() -> None:
    raise ValueError("no luck")


@app.task(name="ops.fails_with_broken_hook", on_final_failure=broken_hook)
def fails_with_broken_hook() -> None:
    raise ValueError("no luck")


@app.task(name="ops.snoozes", retry=1, max_snoozes=2, on_final_failure=record_final_failure)
def snoozes(seconds: float = 30) -> None:
    raise Snooze(seconds=seconds)


@app.task(name="ops.snoozes_by_context", pass_context=True)
def snoozes_by_context(context: JobContext, until_snoozes: int = 1) -> str:
    calls.append(("snoozes_by_context", context.job.attempts))
    if len(calls) <= until_snoozes:
        context.snooze(minutes=1)
    return "done"


@app.task(name="ops.gives_up", retry=10, on_final_failure=record_final_failure)
def gives_up(reason: str = "the invoice was deleted") -> None:
    raise GiveUp(reason)


@app.task(name="ops.gives_up_by_context", retry=10, pass_context=True)
def gives_up_by_context(context: JobContext) -> None:
    context.give_up("nothing left to do")


@app.task(name="ops.time_budget", retry=RetryStrategy(wait=3600, retry_for={"hours": 3}))
def time_budget() -> None:
    raise ConnectionError("the partner API is down")


@app.task(
    name="ops.rate_limited",
    retry=RetryStrategy(max_attempts=3, wait=5, respect_retry_after=True),
)
def rate_limited(retry_after: Any = 120, kind: str = "raw") -> None:
    """Raise a 429 whose ``retry_after`` is ``retry_after`` as is, a timedelta or a datetime."""
    if kind == "timedelta":
        retry_after = timedelta(seconds=retry_after)
    elif kind == "datetime":
        retry_after = datetime.fromisoformat(retry_after)
    raise RateLimited(retry_after)


@app.task(name="ops.retry_after_ignored", retry=RetryStrategy(max_attempts=3, wait=5))
def retry_after_ignored() -> None:
    raise RateLimited(120)


@app.task(name="ops.flaky_twice", retry=RetryStrategy(max_attempts=5, wait=60))
def flaky_twice(key: str = "k") -> str:
    calls.append(("flaky_twice", key))
    if sum(1 for name, seen in calls if name == "flaky_twice" and seen == key) <= 2:
        raise ConnectionError("not yet")
    return "ok"
