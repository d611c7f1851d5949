"""Tasks that the admin tests and tools drive."""

from __future__ import annotations

from django_retrytasks import JobContext, RetryStrategy, app


@app.task(retry=RetryStrategy(max_attempts=3, wait=240), queue="mail")
def admin_flaky(message: str = "the mail server said no") -> None:
    """Fail every run; retried 3 times, 4 minutes apart."""
    raise ConnectionError(message)


@app.task
def admin_broken(message: str = "bad input") -> None:
    """Fail at once and for good: no retry strategy."""
    raise ValueError(message)


@app.task
def admin_ok(**kwargs: object) -> dict[str, object]:
    return {"echo": kwargs}


@app.task(retry=RetryStrategy(max_attempts=4, wait=60, jitter=0.5))
def admin_jittery() -> None:
    raise TimeoutError("slow as ever")


@app.task(retry=5, pass_context=True)
def admin_stoppable(job_context: JobContext, steps: int = 3) -> str:
    """Work in steps, checking between them whether an operator asked to stop."""
    for step in range(steps):
        if job_context.should_abort():
            raise RuntimeError(f"stopped at the operator's request before step {step + 1}")
    return f"finished {steps} steps"
