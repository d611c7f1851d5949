"""Tasks that the tests of the worker's one job boundary drive: async tasks, poison jobs."""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

from django_retrytasks import BaseRetryStrategy, Job, JobContext, RetryDecision, app
from django_retrytasks.models import Job as JobRow

#: What the async tasks did, in order: a test reads it after running them.
ran: list[str] = []


@app.task(name="boundary.async_add")
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    ran.append(f"async_add({a}, {b})")
    return a + b


@app.task(name="boundary.async_flaky", retry=2, pass_context=True)
async def async_flaky(job_context: JobContext) -> str:
    await asyncio.sleep(0)
    run = job_context.job.attempts + 1
    ran.append(f"async_flaky run {run}")
    if run < 3:
        raise ConnectionError(f"run {run} fails")
    return f"done in run {run}"


@app.task(name="boundary.async_counts_jobs")
async def async_counts_jobs() -> int:
    """Uses the ORM's async API, as an async task would."""
    return await JobRow.objects.acount()


@app.task(name="boundary.async_too_slow", timeout=0.2)
async def async_too_slow() -> str:
    await asyncio.sleep(30)
    return "finished"


@app.task(name="boundary.sync_too_slow", timeout=0.2)
def sync_too_slow() -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "finished"


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@app.task(name="boundary.returns_deep")
def returns_deep(depth: int) -> Any:
    return nested(depth)


@app.task(name="boundary.echo")
def echo(value: Any) -> Any:
    return value


@app.task(name="boundary.returns_a_datetime", retry=3)
def returns_a_datetime() -> datetime.datetime:
    ran.append("returns_a_datetime")
    return datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken too")


@app.task(name="boundary.raises_unprintable", retry=1)
def raises_unprintable() -> None:
    raise UnprintableError()


@app.task(name="boundary.raises_huge_message")
def raises_huge_message(megabytes: int) -> None:
    raise ValueError("x" * (megabytes * 1024 * 1024))


@app.task(name="boundary.returns_megabytes")
def returns_megabytes(megabytes: int) -> str:
    return "x" * (megabytes * 1024 * 1024)


class OversizedPriority(BaseRetryStrategy):
    """A strategy whose decision no column can hold."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        return RetryDecision(priority=2**40)


class BrokenStrategy(BaseRetryStrategy):
    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        raise KeyError("a bug in the strategy")


@app.task(name="boundary.fails_with_oversized_decision", retry=OversizedPriority())
def fails_with_oversized_decision() -> None:
    raise ConnectionError("down")


@app.task(name="boundary.fails_with_broken_strategy", retry=BrokenStrategy())
def fails_with_broken_strategy() -> None:
    raise ConnectionError("down")


@app.task(name="boundary.takes_order_id", retry=5)
def takes_order_id(order_id: int) -> int:
    return order_id
