"""Chaos run: several workers, thousands of jobs with random failures, workers killed at random.

Not part of the test suite. It starts ``--workers`` ``runworker`` processes on a fresh
database, defers ``--jobs`` jobs of ``demo.faults_tasks.chaos_step`` (each sleeps a little
and fails at random, retried by its strategy), and every few seconds kills a random worker
(SIGKILL mostly, sometimes SIGTERM with a short shutdown timeout) and starts a new one.
When every job has ended it prints a report:

- jobs lost: jobs that never reached an end state (must be 0);
- jobs run twice at the same time: two runs of one job overlapping in time (must be 0);
- successes recorded twice: jobs with more than one ``succeeded`` attempt (must be 0);
- and, for information, how runs ended (lost, interrupted, failed, succeeded).

Every run of a task appends ``<job> <pid> start|end|fail <time>`` to a log file, so runs
are checked from what the tasks did, not only from what the database says.

    python bench/chaos.py                                   # SQLite file in /tmp
    python bench/chaos.py --database-url postgres://postgres@127.0.0.1:5432/rt_chaos

The PostgreSQL database named in the URL is DROPPED and created again: give it a scratch name.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
FINAL = ("succeeded", "failed", "cancelled", "aborted")


@dataclass
class Run:
    pid: int
    start: float
    end: float | None = None
    how: str = "unfinished"


@dataclass
class Chaos:
    args: argparse.Namespace
    directory: Path
    workers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: When each killed worker was signalled, by pid, and how.
    killed: dict[int, tuple[float, str]] = field(default_factory=dict)
    started = 0

    @property
    def run_log(self) -> Path:
        return self.directory / "runs.log"

    def start_worker(self) -> None:
        self.started += 1
        name = f"chaos-{self.started}"
        log = open(self.directory / f"{name}.log", "wb")  # noqa: SIM115 (the worker owns it)
        process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "runworker",
                "--name",
                name,
                "--concurrency",
                str(self.args.concurrency),
                "--polling-interval",
                "0.1",
                "--heartbeat-interval",
                str(self.args.heartbeat_interval),
                "--heartbeat-timeout",
                str(self.args.heartbeat_timeout),
                "--shutdown-timeout",
                "0.2",
                "--max-consecutive-losses",
                str(self.args.max_consecutive_losses),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers[process.pid] = process

    def kill_one(self) -> None:
        pid = random.choice(list(self.workers))
        process = self.workers.pop(pid)
        how = "SIGKILL" if random.random() < self.args.sigkill_share else "SIGTERM"
        self.killed[pid] = (time.time(), how)
        process.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
        if how == "SIGTERM":
            process.wait(30)
            self.killed[pid] = (time.time(), how)  # its runs ended by the time it exited
        else:
            process.wait()
        self.start_worker()

    def stop_all(self) -> None:
        for process in self.workers.values():
            process.send_signal(signal.SIGTERM)
        for process in self.workers.values():
            process.wait(60)


def prepare_database(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = Path(parts.path[1:] if parts.path.startswith("//") else parts.path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    name = parts.path.lstrip("/")
    with psycopg.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username, dbname="postgres"
    ) as connection:
        connection.autocommit = True
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def read_runs(path: Path) -> dict[int, list[Run]]:
    runs: dict[int, list[Run]] = defaultdict(list)
    open_runs: dict[tuple[int, int], Run] = {}
    for line in path.read_text().splitlines():
        if len(line.split()) != 4:
            continue  # a line cut short by SIGKILL
        job, pid, event, moment = line.split()
        key = (int(job), int(pid))
        if event == "start":
            run = Run(pid=int(pid), start=float(moment))
            open_runs[key] = run
            runs[int(job)].append(run)
        else:
            run = open_runs.pop(key)
            run.end, run.how = float(moment), event
    return runs


def overlapping(runs: list[Run], killed: dict[int, tuple[float, str]], now: float) -> int:
    """How many runs of one job started before the previous one had ended."""
    spans = []
    for run in runs:
        end = run.end
        if end is None:
            # Killed mid-run: it ended when its process did.
            end = killed[run.pid][0] if run.pid in killed else now
        spans.append((run.start, end))
    spans.sort()
    overlaps, latest_end = 0, float("-inf")
    for start, end in spans:
        overlaps += start < latest_end
        latest_end = max(latest_end, end)
    return overlaps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=None,
        help="a SQLite file or a PostgreSQL database, DROPPED and created again "
        "(default: a new SQLite file in /tmp)",
    )
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=2.0, help="seconds, on average")
    parser.add_argument("--sigkill-share", type=float, default=0.75)
    parser.add_argument("--fail-rate", type=float, default=0.2)
    parser.add_argument("--max-seconds", type=float, default=0.05, help="longest task sleep")
    parser.add_argument("--heartbeat-interval", type=float, default=0.5)
    parser.add_argument("--heartbeat-timeout", type=float, default=2.0)
    parser.add_argument("--max-consecutive-losses", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=900, help="give up after (seconds)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="retrytasks-chaos-"))
    url = args.database_url or f"sqlite:///{directory / 'chaos.sqlite3'}"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    sys.path.insert(0, str(ROOT))
    prepare_database(url)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db.models import Count, F, Q

    from django_retrytasks.models import Attempt, Job
    from testproject.demo import faults_tasks

    call_command("migrate", verbosity=0)
    chaos = Chaos(args=args, directory=directory)
    kwargs = {
        "log": str(chaos.run_log),
        "fail_rate": args.fail_rate,
        "max_seconds": args.max_seconds,
    }
    for offset in range(0, args.jobs, 500):
        faults_tasks.chaos_step.batch_defer(*[kwargs] * min(500, args.jobs - offset))
    print(f"{args.jobs} jobs on {url.split('://')[0]}; logs in {directory}", flush=True)

    began = time.monotonic()
    for _ in range(args.workers):
        chaos.start_worker()
    next_kill = began + random.uniform(0.5, 1.5) * args.kill_every
    while time.monotonic() - began < args.time_limit:
        unfinished = Job.objects.exclude(status__in=FINAL).count()
        if not unfinished:
            break
        if time.monotonic() >= next_kill:
            chaos.kill_one()
            next_kill = time.monotonic() + random.uniform(0.5, 1.5) * args.kill_every
        time.sleep(0.1)
    elapsed = time.monotonic() - began
    chaos.stop_all()

    jobs = Job.objects.all()
    runs = read_runs(chaos.run_log)
    now = time.time()
    statuses = Counter(jobs.values_list("status", flat=True))
    outcomes = Counter(Attempt.objects.values_list("outcome", flat=True))
    doubled = (
        Job.objects.annotate(
            successes=Count("attempt_history", filter=Q(attempt_history__outcome="succeeded"))
        )
        .filter(successes__gt=1)
        .count()
    )
    counted = Q(attempt_history__outcome__in=["succeeded", "failed", "lost"])
    miscounted = (
        Job.objects.annotate(counted_runs=Count("attempt_history", filter=counted))
        .exclude(attempts=F("counted_runs"))
        .count()
    )
    report: dict[str, Any] = {
        "database": url.split("://")[0],
        "jobs": args.jobs,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 1),
        "workers_killed": Counter(how for _, how in chaos.killed.values()),
        "jobs_lost": jobs.exclude(status__in=FINAL).count(),
        "jobs_run_twice_at_the_same_time": sum(
            1 for job_runs in runs.values() if overlapping(job_runs, chaos.killed, now)
        ),
        "successes_recorded_twice": doubled,
        "attempt_counts_wrong": miscounted,
        "jobs_by_status": dict(statuses),
        "jobs_held": jobs.filter(held=True).count(),
        "attempts_by_outcome": dict(outcomes),
        "runs_started": sum(len(job_runs) for job_runs in runs.values()),
        "runs_that_returned_but_were_re_run": sum(
            max(0, sum(run.how == "end" for run in job_runs) - 1) for job_runs in runs.values()
        ),
        "jobs_never_started": args.jobs - len(runs),
    }
    print(json.dumps(report, indent=2, default=dict))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=dict))
    failed = (
        report["jobs_lost"]
        or report["jobs_run_twice_at_the_same_time"]
        or report["successes_recorded_twice"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
