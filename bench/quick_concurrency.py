"""Quick figures for the concurrency work: drain rate, pickup latency, retry lateness.

    .venv/bin/python bench/quick_concurrency.py --db postgres://postgres@127.0.0.1:5432/rt_bench_q
    .venv/bin/python bench/quick_concurrency.py --db sqlite:////tmp/rt-bench-q.sqlite3

The full benchmark lives in ``bench/`` (``make bench``); this script only checks the worker's
hot path while working on it. It empties the job tables of the database it is given.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    sys.path.insert(0, str(ROOT))
    parts = urlsplit(url)
    if parts.scheme.startswith("postgres"):
        import psycopg

        name = parts.path.lstrip("/")
        with psycopg.connect(
            host=parts.hostname,
            port=parts.port or 5432,
            user=parts.username,
            dbname="postgres",
            autocommit=True,
        ) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                admin.execute(f'CREATE DATABASE "{name}"')
    import django

    django.setup()
    import logging

    logging.getLogger("django_retrytasks").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def empty() -> None:
    from django_retrytasks.models import Attempt, Job, Worker

    Attempt.objects.all().delete()
    Job.objects.all().delete()
    Worker.objects.all().delete()


def drain(jobs: int, concurrency: int) -> float:
    from django_retrytasks.worker import Worker
    from testproject.demo.concurrency_tasks import noop

    empty()
    for start in range(0, jobs, 1000):
        noop.batch_defer(*({} for _ in range(min(1000, jobs - start))))
    worker = Worker(concurrency=concurrency, burst=True, install_signal_handlers=False)
    began = time.perf_counter()
    worker.run()
    elapsed = time.perf_counter() - began
    from django_retrytasks.models import Job

    left = Job.objects.exclude(status="succeeded").count()
    assert left == 0, f"{left} jobs not succeeded"
    return jobs / elapsed


def start_worker(url: str, concurrency: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "runworker",
            f"--concurrency={concurrency}",
            "-v0",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
    )
    from django_retrytasks.models import Worker

    deadline = time.monotonic() + 20
    while not Worker.objects.exists():
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.05)
    time.sleep(0.3)
    return process


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def pickup(url: str, samples: int) -> list[float]:
    from django_retrytasks.models import Job
    from testproject.demo.concurrency_tasks import pickup as pickup_task

    empty()
    process = start_worker(url, 1)
    try:
        for _ in range(samples):
            pickup_task.defer(deferred_at=time.time())
            time.sleep(0.03)
        deadline = time.monotonic() + 20
        while Job.objects.filter(status="succeeded").count() < samples:
            assert time.monotonic() < deadline, "pickup jobs did not all run"
            time.sleep(0.05)
    finally:
        stop_worker(process)
    started = Job.objects.values_list("return_value", flat=True)
    return [float(value) * 1000 for value in started if value is not None]


def retry_lateness(url: str, samples: int) -> list[float]:
    from django_retrytasks.models import Attempt, Job
    from testproject.demo.concurrency_tasks import fail_first_run

    empty()
    process = start_worker(url, 4)
    try:
        for _ in range(samples):
            fail_first_run.defer()
            time.sleep(0.037)
        deadline = time.monotonic() + 30
        while Job.objects.filter(status="succeeded").count() < samples:
            assert time.monotonic() < deadline, "retried jobs did not all run"
            time.sleep(0.05)
    finally:
        stop_worker(process)
    lateness = []
    for job_id in Job.objects.values_list("pk", flat=True):
        first, second = Attempt.objects.filter(job_id=job_id).order_by("number")
        assert first.retry_at is not None
        lateness.append((second.started_at - first.retry_at).total_seconds() * 1000)
    return lateness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="postgres://... or sqlite:////path")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--only", choices=["drain", "pickup", "retry"], default=None)
    options = parser.parse_args()
    setup(options.db)
    if options.only in (None, "drain"):
        for concurrency in options.concurrency:
            rate = drain(options.jobs, concurrency)
            print(f"drain {options.jobs} no-op jobs, concurrency {concurrency}: {rate:.0f} jobs/s")
    if options.only in (None, "pickup"):
        values = pickup(options.db, options.samples)
        print(
            f"pickup latency, idle worker: median {statistics.median(values):.2f} ms, "
            f"p95 {percentile(values, 0.95):.2f} ms, max {max(values):.2f} ms"
        )
    if options.only in (None, "retry"):
        values = retry_lateness(options.db, options.samples)
        print(
            f"retry lateness (start - due), wait=1s: median {statistics.median(values):.2f} ms, "
            f"p95 {percentile(values, 0.95):.2f} ms, max {max(values):.2f} ms"
        )


if __name__ == "__main__":
    main()
