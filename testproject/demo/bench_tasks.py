"""Tasks that the bench tests and tools drive.

Timing tasks take their start time from ``time.time()`` as their first statement and return
it, so the worker stores it as the job's ``return_value``: the bench reads it back from the
database instead of watching the worker's log.
"""

from __future__ import annotations

import time

from django_retrytasks import JobContext, RetryStrategy, app


@app.task
def nothing() -> None:
    """A no-op: what the drain and memory workloads measure is the queue itself."""


@app.task
def report_start(deferred_at: float) -> float:
    """Return when this run started; ``deferred_at`` is the caller's clock just before defer()."""
    return time.time()


@app.task(retry=RetryStrategy(max_attempts=2), pass_context=True)
def fail_twice(job_context: JobContext) -> None:
    """Fail the first two runs, succeed on the third; both retries are due at once."""
    if job_context.job.attempts < 2:
        raise RuntimeError(f"planned failure {job_context.job.attempts + 1} of 2")


@app.task(retry=RetryStrategy(max_attempts=1, wait=2), pass_context=True)
def fail_once_wait_two(job_context: JobContext, deferred_at: float) -> float:
    """Fail the first run (the retry is due 2 s later); the second run returns its start time."""
    started = time.time()
    if job_context.job.attempts == 0:
        raise RuntimeError("planned failure: retry in 2 s")
    return started
