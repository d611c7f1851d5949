"""``manage.py demo``: defer a handful of the guide's jobs and watch the worker retry them."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand

from django_retrytasks import RetryStrategy, app
from django_retrytasks.models import Attempt, Job
from django_retrytasks.worker import Worker
from testproject.demo import tasks as demo


@app.task(retry=RetryStrategy(max_attempts=4, linear_wait=0.5), pass_context=True)
def demo_flaky_download(job_context: Any, url: str, failures: int) -> str:
    """Fail ``failures`` times with a network error, then succeed: linear backoff at work."""
    if job_context.job.attempts < failures:
        raise ConnectionError(f"{url}: connection reset (run {job_context.job.attempts + 1})")
    return f"downloaded {url}"


@app.task(retry=RetryStrategy(max_attempts=3, exponential_wait=1.5))
def demo_always_down(service: str) -> None:
    """Never succeeds: exponential backoff, then the job ends failed."""
    raise TimeoutError(f"{service} did not answer")


@app.task(
    retry=RetryStrategy(max_attempts=5, wait=0.3, retry_exceptions={ConnectionError, OSError})
)
def demo_bad_input(record_id: int) -> None:
    """A KeyError is not in retry_exceptions: no retry, the job fails at once."""
    raise KeyError(f"record {record_id} has no 'email'")


class Command(BaseCommand):
    help = "Defer a few demo jobs and run the worker until each reaches its final state."

    def handle(self, *args: Any, **options: Any) -> None:
        # The table below says it all; keep the worker's own log lines out of the way.
        logging.getLogger("django_retrytasks").setLevel(logging.CRITICAL)
        random.seed(2)
        demo.RandomRetryStrategy.min, demo.RandomRetryStrategy.max = 0.2, 1.0  # type: ignore[assignment]
        job_ids = [
            demo_flaky_download.defer(url="https://example.org/report.csv", failures=2),
            demo_always_down.defer(service="billing-api"),
            demo_bad_input.defer(record_id=7),
            demo.random_retry_task.defer(),
            demo.fail_times.defer(times=1),
            demo.noop.defer(),
        ]
        self.stdout.write(f"Deferred jobs {job_ids[0]}..{job_ids[-1]}; starting the worker.\n")
        worker = Worker(polling_interval=0.05, install_signal_handlers=False)
        thread = threading.Thread(target=worker.run, daemon=True)
        started = time.monotonic()
        thread.start()
        seen: set[int] = set()
        try:
            while time.monotonic() - started < 50:
                self._print_new_attempts(job_ids, seen, started)
                if not Job.objects.filter(pk__in=job_ids, status__in=["todo", "doing"]).exists():
                    break
                time.sleep(0.05)
            self._print_new_attempts(job_ids, seen, started)
        finally:
            worker.stop()
            thread.join(timeout=10)
        self._print_table(job_ids)

    def _print_new_attempts(self, job_ids: list[int], seen: set[int], started: float) -> None:
        attempts = (
            Attempt.objects.filter(job_id__in=job_ids)
            .exclude(pk__in=seen)
            .select_related("job")
            .order_by("finished_at", "pk")
        )
        for attempt in attempts:
            seen.add(attempt.pk)
            elapsed = time.monotonic() - started
            job = attempt.job
            line = f"{elapsed:6.2f}s  job {job.pk:>3} {job.task_name.rsplit('.', 1)[-1]:<22} run {attempt.number}: {attempt.outcome}"
            if attempt.error_type:
                line += f" ({attempt.error_type}: {attempt.error_message})"
            self.stdout.write(line)
            if attempt.decision:
                self.stdout.write(f"{'':9}-> {attempt.decision}")

    def _print_table(self, job_ids: list[int]) -> None:
        self.stdout.write("\nFinal state of the demo jobs:")
        header = f"{'job':>4}  {'task':<22} {'status':<10} {'attempts':>8}  {'queue':<14} {'priority':>8}  lock"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for job in Job.objects.filter(pk__in=job_ids).order_by("pk"):
            self.stdout.write(
                f"{job.pk:>4}  {job.task_name.rsplit('.', 1)[-1]:<22} {job.status:<10} "
                f"{job.attempts:>8}  {job.queue:<14} {job.priority:>8}  {job.lock or ''}"
            )
        total = Attempt.objects.filter(job_id__in=job_ids).count()
        self.stdout.write(f"\n{total} attempts recorded; see them in the admin or `Attempt` rows.")
