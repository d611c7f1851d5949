"""Tasks that the faults tests and ``bench/chaos.py`` drive."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from django_retrytasks import JobContext, RetryStrategy, app


def sleep_in_slices(seconds: float, *, until: Path | None = None) -> bool:
    """Sleep ``seconds`` in short slices (so a timeout can stop it); True if ``until`` appeared."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if until is not None and until.exists():
            return True
        time.sleep(0.01)
    return False


def log_run(log: str, job_id: int, event: str) -> None:
    """Append one line per run event; lines this short are written whole even from many processes."""
    with open(log, "a") as file:
        file.write(f"{job_id} {os.getpid()} {event} {time.time():.6f}\n")


@app.task(retry=2, pass_context=True)
def hang_first_run(job_context: JobContext, seconds: float = 30.0) -> str:
    """The first run hangs (for the test to kill its worker); later runs return at once."""
    if job_context.job.attempts == 0:
        sleep_in_slices(seconds)
    return f"done in run {job_context.job.attempts + 1}"


@app.task(retry=2)
def sleep_until_released(flag: str, seconds: float, started: str = "") -> str:
    """Sleep ``seconds``, or less once the file ``flag`` exists; first touch ``started``."""
    if started:
        Path(started).touch()
    released = sleep_in_slices(seconds, until=Path(flag))
    return "released" if released else "slept"


@app.task(retry=True)
def kill_own_worker() -> None:
    """A poison job: every run kills the process running it, leaving no error behind."""
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(retry=1, timeout=0.2)
def busy_past_timeout(seconds: float) -> str:
    sleep_in_slices(seconds)
    return "finished"


@app.task(timeout=0.2)
def swallows_timeout(seconds: float) -> str:
    """Catches everything, the timeout included: the run is still recorded as timed out."""
    try:
        sleep_in_slices(seconds)
    except Exception:
        return "swallowed"
    return "finished"


@app.task(timeout=5)
def quick_with_timeout() -> str:
    return "quick"


@app.task(retry=3, pass_context=True)
def logged_run(job_context: JobContext, log: str, seconds: float) -> None:
    """A run that writes when it starts and ends, so tests can check no run overlapped another."""
    log_run(log, job_context.job.id, "start")
    time.sleep(seconds)
    log_run(log, job_context.job.id, "end")


@app.task(retry=RetryStrategy(max_attempts=30), pass_context=True)
def chaos_step(job_context: JobContext, log: str, fail_rate: float, max_seconds: float) -> None:
    """Sleep a little, then fail at random; every start and end is logged."""
    log_run(log, job_context.job.id, "start")
    time.sleep(random.uniform(0, max_seconds))
    failed = random.random() < fail_rate
    log_run(log, job_context.job.id, "fail" if failed else "end")
    if failed:
        raise RuntimeError("random chaos failure")
