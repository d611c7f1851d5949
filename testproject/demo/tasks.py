"""The retry guide's examples, on django-retrytasks, plus small tasks the tests drive.

Each guide example keeps the guide's name and body; only the imports differ
(``django_retrytasks`` instead of ``procrastinate``).
"""

from __future__ import annotations

import random

import django_retrytasks
from django_retrytasks import Job, RetryDecision, RetryStrategy, app

# --- the guide: simple strategies -------------------------------------------------------


@app.task(retry=5)
def flaky_task() -> None:
    if random.random() > 0.9:
        raise Exception("Who could have seen this coming?")
    print("Hello world")


@app.task(retry=True)
def flaky_task_forever() -> None:
    if random.random() > 0.9:
        raise Exception("Who could have seen this coming?")
    print("Hello world")


# --- the guide: advanced strategies -------------------------------------------------------


@app.task(
    retry=django_retrytasks.RetryStrategy(
        max_attempts=10, wait=5, retry_exceptions={ConnectionError, IOError}
    )
)
def my_other_task() -> None:
    print("Hello world")


# --- the guide: your own strategy ------------------------------------------------------------


class RandomRetryStrategy(django_retrytasks.BaseRetryStrategy):
    max_attempts = 3
    min = 1
    max = 10

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision:
        if job.attempts >= self.max_attempts:
            return RetryDecision(should_retry=False)

        wait = random.uniform(self.min, self.max)

        return RetryDecision(
            retry_in={"seconds": wait},  # or retry_at (a datetime object)
            priority=job.priority + 1,  # optional
            queue="another_queue",  # optional
            lock="another_lock",  # optional
        )


@app.task(retry=RandomRetryStrategy())
def random_retry_task(fail: bool = True) -> None:
    if fail:
        raise ConnectionError("the other network is down")


# --- the guide: knowing whether a job is on its last attempt ---------------------------------

last_attempt_warnings: list[int] = []


@app.task(retry=10, pass_context=True)
def my_task(job_context: django_retrytasks.JobContext, fail_rate: float = 0.9) -> None:
    job = job_context.job
    task = job_context.task
    assert task.retry is not None
    if task.retry.get_retry_decision(exception=Exception(), job=job) is None:
        print("Warning: last attempt!")
        last_attempt_warnings.append(job.id)

    if random.random() < fail_rate:
        raise Exception


# --- deterministic tasks for tests and the demo -------------------------------------------------


@app.task(retry=RetryStrategy(max_attempts=5), pass_context=True)
def fail_times(
    job_context: django_retrytasks.JobContext, times: int, error: str = "ValueError"
) -> str:
    """Fail the first ``times`` runs with the named built-in exception, then succeed."""
    if job_context.job.attempts < times:
        raise {"ValueError": ValueError, "KeyError": KeyError, "ConnectionError": ConnectionError}[
            error
        ](f"planned failure {job_context.job.attempts + 1} of {times}")
    return f"succeeded after {times} failures"


GUIDE_STRATEGY = RetryStrategy(max_attempts=10, wait=5, retry_exceptions={ConnectionError, IOError})


@app.task(retry=GUIDE_STRATEGY, pass_context=True)
def fetch_resource(job_context: django_retrytasks.JobContext, error: str, times: int = 1) -> None:
    """The guide's exception filter with a failure the caller chooses."""
    if job_context.job.attempts < times:
        raise {"ConnectionError": ConnectionError, "OSError": OSError, "KeyError": KeyError}[error](
            "planned"
        )


@app.task(retry=RetryStrategy(max_attempts=3, linear_wait=5))
def linear_backoff() -> None:
    raise TimeoutError("still down")


@app.task(retry=RetryStrategy(max_attempts=3, exponential_wait=5))
def exponential_backoff() -> None:
    raise TimeoutError("still down")


@app.task
def noop() -> None:
    """Do nothing: the unit of throughput."""


@app.task(retry=3, pass_context=True)
def always_fails(job_context: django_retrytasks.JobContext) -> None:
    raise RuntimeError(f"failure in run {job_context.job.attempts + 1}")


# Tasks that the tests of each area drive live in their own modules, registered here.
from testproject.demo import (  # noqa: E402
    admin_tasks,
    bench_tasks,
    boundary_tasks,
    concurrency_tasks,
    djangotasks_tasks,
    faults_tasks,
    ops_tasks,
)

__all__ = [
    "admin_tasks",
    "bench_tasks",
    "boundary_tasks",
    "concurrency_tasks",
    "djangotasks_tasks",
    "faults_tasks",
    "ops_tasks",
]
