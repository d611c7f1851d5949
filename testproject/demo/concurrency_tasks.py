"""Tasks that the concurrency tests and ``bench/quick_concurrency.py`` drive."""

from __future__ import annotations

import os
import time
from typing import Any

from django_retrytasks import BaseRetryStrategy, Job, JobContext, RetryDecision, RetryStrategy, app

#: Job ids in the order their runs started, for tests that run a worker in their own process.
started_order: list[int] = []


@app.task(name="concurrency.noop")
def noop(**kwargs: Any) -> None:
    """Does nothing: what throughput is measured with."""


@app.task(name="concurrency.pickup")
def pickup(deferred_at: float) -> float:
    """Return how long after ``deferred_at`` (``time.time()`` of the deferring process) it started."""
    return time.time() - deferred_at


@app.task(
    name="concurrency.fail_first_run",
    retry=RetryStrategy(max_attempts=1, wait=1),
    pass_context=True,
)
def fail_first_run(job_context: JobContext) -> None:
    """Fails its first run; the retry is due one second later."""
    if job_context.job.attempts == 0:
        raise RuntimeError("first run fails")


@app.task(name="concurrency.record_order", pass_context=True)
def record_order(job_context: JobContext) -> None:
    started_order.append(job_context.job.id)


@app.task(name="concurrency.logged_run", pass_context=True, retry=1)
def logged_run(job_context: JobContext, log_dir: str, fail_once: bool = False) -> None:
    """Append this run's job id, attempt, start and end (system-wide monotonic) to a log file.

    Each process writes its own file with single ``O_APPEND`` writes; the test reads them
    all and checks that runs of one job, and of one lock group, never overlapped.
    """
    started = time.monotonic_ns()
    job = job_context.job
    time.sleep(0.0005)  # long enough for an overlap to show, short enough for thousands
    ended = time.monotonic_ns()
    line = f"{job.id} {job.attempts} {job.lock or '-'} {started} {ended} {os.getpid()}\n"
    descriptor = os.open(
        os.path.join(log_dir, f"runs-{os.getpid()}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND
    )
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)
    if fail_once and job.attempts == 0:
        raise RuntimeError("fails once, as planned")


class MoveOnRetry(BaseRetryStrategy):
    """Retries once, a minute later, under another lock, priority and queue."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if job.attempts >= 1:
            return None
        return RetryDecision(retry_in={"seconds": 60}, lock="lock-b", priority=5, queue="moved")


@app.task(name="concurrency.move_on_retry", retry=MoveOnRetry(), pass_context=True)
def move_on_retry(job_context: JobContext) -> None:
    started_order.append(job_context.job.id)
    if job_context.job.attempts == 0:
        raise RuntimeError("moves to lock-b")


@app.task(name="concurrency.fail_then_retry_now", retry=1, pass_context=True)
def fail_then_retry_now(job_context: JobContext) -> None:
    started_order.append(job_context.job.id)
    if job_context.job.attempts == 0:
        raise RuntimeError("retried at once")
