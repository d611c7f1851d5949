"""The bench's harness, shared by its workloads: the queue's tables and real workers.

Importing it sets Django up for ``DATABASE_URL`` (the bench database the session runs on).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.databases import ROOT, BenchError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
sys.path.insert(0, str(ROOT))

import django

django.setup()

from django.apps import apps  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count, Max, Min  # noqa: E402

from django_retrytasks import search_index  # noqa: E402
from django_retrytasks.models import Attempt, Job  # noqa: E402
from django_retrytasks.models import Worker as WorkerRow  # noqa: E402

SEED_CHUNK = 1000


def log(message: str) -> None:
    print(f"[{connection.vendor}] {message}", file=sys.stderr, flush=True)


# --- the queue's tables -------------------------------------------------------------------


def reset_queue() -> None:
    """Empty the app's tables between measurements (harness cleanup, not a job state change)."""
    tables = [
        model._meta.db_table for model in apps.get_app_config("django_retrytasks").get_models()
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        elif connection.vendor == "mysql":
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            # TRUNCATE fires no trigger: the admin search's documents go too.
            for table in [*tables, search_index.SEARCH_TABLE]:
                cursor.execute(f"TRUNCATE TABLE {table}")
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
        else:
            cursor.execute("PRAGMA foreign_keys = OFF")
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")
            cursor.execute("PRAGMA foreign_keys = ON")


def seed(task: Any, count: int, kwargs: dict[str, Any] | None = None) -> None:
    """Queue ``count`` jobs of ``task`` through ``batch_defer`` (not timed)."""
    for start in range(0, count, SEED_CHUNK):
        task.batch_defer(*[kwargs or {}] * min(SEED_CHUNK, count - start))
    if connection.vendor == "postgresql":
        # Planner statistics as a long-lived queue table has them (autovacuum would, later).
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Job._meta.db_table}")


def status_counts(task_name: str) -> dict[str, int]:
    rows = Job.objects.filter(task_name=task_name).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def require_all_succeeded(
    task_name: str, count: int, workers: Sequence[WorkerProcess] = ()
) -> None:
    counts = status_counts(task_name)
    if counts.get("succeeded", 0) != count:
        raise BenchError(
            f"expected {count} succeeded jobs of {task_name}, found {counts}"
            + "".join(worker.tail() for worker in workers)
        )


def wait_until_succeeded(
    task_name: str, count: int, *, timeout: float, worker: WorkerProcess
) -> None:
    """Poll until ``count`` jobs succeeded; fail at once when one ends otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        counts = status_counts(task_name)
        if counts.get("succeeded", 0) == count:
            return
        if counts.get("failed") or counts.get("cancelled") or time.monotonic() > deadline:
            raise BenchError(
                f"waiting for {count} jobs of {task_name} to succeed: {counts}" + worker.tail()
            )
        time.sleep(0.1)


def run_span(task_name: str) -> tuple[float, int]:
    """Seconds from the first run's start to the last run's end, and the number of runs."""
    span = Attempt.objects.filter(job__task_name=task_name).aggregate(
        first=Min("started_at"), last=Max("finished_at"), runs=Count("id")
    )
    seconds = (span["last"] - span["first"]).total_seconds()
    if seconds <= 0:
        raise BenchError(f"runs of {task_name} span {seconds} s; cannot compute a rate")
    return seconds, span["runs"]


def burst_drain(
    task_name: str,
    count: int,
    *options: str,
    processes: int = 1,
    runs_per_job: int = 1,
    env: dict[str, str] | None = None,
) -> tuple[float, float]:
    """Let ``processes`` burst workers (``runworker --burst`` with ``options``) run the
    ``count`` queued jobs of ``task_name``; check that each succeeded after ``runs_per_job``
    runs. Returns runs/s over the runs' span (as the workers stored them) and jobs/s over
    the processes' wall time (Django start-up included)."""
    workers = [WorkerProcess("--burst", *options, env=env) for _ in range(processes)]
    try:
        wall = max(worker.wait(timeout=60 + count * runs_per_job / 10) for worker in workers)
    finally:
        for worker in workers:
            worker.kill()
    return checked_rate(task_name, count, workers, runs_per_job=runs_per_job), count / wall


def checked_rate(
    task_name: str, count: int, workers: Sequence[WorkerProcess], *, runs_per_job: int = 1
) -> float:
    """Runs/s over the runs' span, once every job of ``task_name`` succeeded after
    ``runs_per_job`` runs."""
    require_all_succeeded(task_name, count, workers)
    seconds, runs = run_span(task_name)
    if runs != count * runs_per_job:
        raise BenchError(
            f"{count} jobs of {task_name} took {runs} runs; expected {runs_per_job} each"
        )
    return runs / seconds


def ready_drain(task: Any, count: int, *options: str, processes: int) -> float:
    """Start ``processes`` long-running workers (``runworker`` with ``options``), wait until
    each waits for work, then commit ``count`` jobs of ``task`` at once; runs/s over the runs'
    span.

    Burst workers started together spend their first half second importing Django while the
    first of them already runs jobs: with a few thousand jobs, that start-up, not the workers'
    pace, set the figure of several processes. Long-running workers never meet it.
    """
    workers = [WorkerProcess(*options) for _ in range(processes)]
    try:
        deadline = time.monotonic() + 60
        while WorkerRow.objects.count() < processes:
            for worker in workers:
                if worker.process.poll() is not None:
                    raise worker._failure("exited before it waited for work")
            if time.monotonic() > deadline:
                raise BenchError(f"{processes} workers did not all register within 60 s")
            time.sleep(0.05)
        time.sleep(1.0)  # let them settle into their idle wait
        with transaction.atomic():
            seed(task, count)
        wait_until_succeeded(task.name, count, timeout=60 + count / 10, worker=workers[0])
    finally:
        for worker in workers:
            worker.stop()
    return checked_rate(task.name, count, workers)


# --- worker processes ---------------------------------------------------------------------


class WorkerProcess:
    """A real ``manage.py runworker`` subprocess against the bench database."""

    def __init__(self, *options: str, env: dict[str, str] | None = None) -> None:
        self.command = [sys.executable, str(ROOT / "manage.py"), "runworker", "-v0", *options]
        # Kept open for the life of the process; read back only if the worker fails.
        self.output = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )

    def tail(self) -> str:
        """The end of the worker's output, for error messages ('' when it said nothing)."""
        self.output.seek(0)
        text = self.output.read()[-2000:]
        return f"\n{' '.join(self.command[2:])} said:\n{text}" if text.strip() else ""

    def _failure(self, reason: str) -> BenchError:
        return BenchError(f"{' '.join(self.command[2:])} {reason}" + self.tail())

    def wait(self, timeout: float) -> float:
        """Wait for a burst worker to exit; return its wall time from launch to exit."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self._failure(f"did not finish within {timeout:g} s") from None
        elapsed = time.perf_counter() - self.started
        if code != 0:
            raise self._failure(f"exited with {code}")
        return elapsed

    def stop(self) -> None:
        """Graceful stop of a long-running worker (SIGTERM), then a kill if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def memory_kib(self) -> tuple[int, int] | None:
        """(VmRSS, VmHWM) in KiB from /proc, or None once the process is gone."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        values = {}
        for line in status.splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        if "VmRSS" not in values:
            return None  # a zombie: exited, not yet reaped
        return values["VmRSS"], values.get("VmHWM", values["VmRSS"])


def idle_worker(env: dict[str, str] | None = None) -> WorkerProcess:
    """Start a non-burst worker with default options and return once it waits for work."""
    worker = WorkerProcess(env=env)
    deadline = time.monotonic() + 60
    while not WorkerRow.objects.exists():
        if worker.process.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            raise worker._failure("did not register as a worker")
        time.sleep(0.05)
    time.sleep(1.0)  # let it finish start-up and settle into its idle wait
    return worker
