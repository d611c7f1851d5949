"""``python -m bench.admin_pages``: how fast every admin page answers on a large queue.

For each database: create a fresh one (``rt_bench_<pid>``, see :mod:`bench.databases`), migrate
it, fill it with 100,000 jobs and 200,000 attempts by bulk SQL (``COPY`` on PostgreSQL, one
``executemany`` per table on SQLite; the same rows on both), then time each admin page with
Django's test client as a logged-in superuser: the job list, filtered lists, searches, a job
page with a long history, the dashboard, the worker list and a full-value download. Each page is
asked once to warm up (the list filters' choices are cached for 30 s), then ``--repeat`` times;
the table shows the median and the slowest. The database is dropped at the end.

The child process (``--session``) is the one whose Django points at the bench database.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.databases import (
    DEFAULT_PG_URL,
    ROOT,
    BenchError,
    Target,
    migrate,
    pick_targets,
)

#: The promise the issue sets: every page under this many milliseconds.
TARGET_MS = 300.0
TASK_NAMES = [
    f"shop.tasks.{verb}_{noun}"
    for verb in ("send", "sync", "push", "build")
    for noun in ("invoice", "order", "report", "email", "stock")
]
QUEUES = ["default", "mail", "erp", "reports", "low"]
ERRORS = [
    ("ConnectionError", "connection refused by {host}:5432 after {n} ms"),
    ("TimeoutError", "the ERP did not answer within {n} seconds (order {n})"),
    ("ValueError", "invalid literal for int() with base 10: 'order-{n}'"),
    ("KeyError", "'customer_{n}'"),
    (
        "requests.exceptions.HTTPError",
        "502 Server Error: Bad Gateway for url https://{host}/api/{n}",
    ),
    ("smtplib.SMTPServerDisconnected", "Connection unexpectedly closed by {host}"),
]
HOSTS = ["erp.internal", "mail.example.com", "db-2", "api.partner.io"]
#: Attempts of the job whose page shows a long history.
LONG_HISTORY = 300
TRACEBACK_LINE = (
    '  File "/srv/shop/tasks.py", line {n}, in {name}\n    result = client.call(payload)\n'
)


# --- the rows -------------------------------------------------------------------------------


def job_rows(count: int, now: datetime, rng: random.Random) -> list[tuple[Any, ...]]:
    """Jobs in every state; the columns of :data:`JOB_COLUMNS`."""
    rows = []
    for job_id in range(1, count + 1):
        roll = rng.random()
        status, attempts = (
            ("succeeded", 1)
            if roll < 0.55
            else ("failed", 3)
            if roll < 0.70
            else ("todo", rng.randint(1, 3))
            if roll < 0.82
            # pending retries
            else ("todo", 0)
            if roll < 0.94
            else ("doing", 1)
            if roll < 0.97
            else ("cancelled", 0)
        )
        created = now - timedelta(seconds=(count - job_id) * 5)
        later = status == "todo" and attempts > 0
        scheduled = now + timedelta(minutes=rng.randint(1, 90)) if later else created
        finished = created + timedelta(seconds=3) if status in ("succeeded", "failed") else None
        # Shared locks, but one running job per lock (a unique constraint says so).
        lock = f"order-{job_id % 5000}" if job_id % 7 == 0 and status != "doing" else None
        qlock = f"invoice-{job_id}" if status == "todo" and job_id % 11 == 0 else None
        kwargs = {"order_id": job_id, "note": "x" * (job_id % 50)}
        if job_id % 1000 == 0:  # now and then a large one
            kwargs["blob"] = "y" * 200_000
        rows.append(
            (
                job_id,
                rng.choice(TASK_NAMES),
                json.dumps(kwargs),
                status,
                rng.choice(QUEUES),
                rng.choice((0, 0, 0, 5, 10)),
                lock,
                qlock,
                scheduled,
                attempts,
                created,
                created if finished or status == "doing" else None,
                finished,
                later,
                json.dumps({"ok": True}) if status == "succeeded" else None,
            )
        )
    return rows


JOB_COLUMNS = (
    "id",
    "task_name",
    "task_kwargs",
    "status",
    "queue",
    "priority",
    "lock",
    "queueing_lock",
    "scheduled_at",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
    "scheduled_later",
    "return_value",
)
JOB_DEFAULTS = {
    "abort_requested": False,
    "snoozes": 0,
    "consecutive_losses": 0,
    "held": False,
    "claimed_ahead": False,
    "backend": "",
}


def attempt_rows(
    jobs: list[tuple[Any, ...]], total: int, rng: random.Random
) -> list[tuple[Any, ...]]:
    """``total`` attempts spread over the jobs that ran, :data:`LONG_HISTORY` of them for the
    first one; the columns of :data:`ATTEMPT_COLUMNS`."""
    ran = [row for row in jobs if row[9] > 0]
    rows = []
    attempt_id = 0
    order = [ran[0]] * LONG_HISTORY + ran
    while attempt_id < total:
        for job in order:
            if attempt_id >= total:
                break
            number = rng.randint(1, 5)
            attempt_id += 1
            started = job[10] + timedelta(seconds=number)
            kind, text = rng.choice(ERRORS)
            message = text.format(host=rng.choice(HOSTS), n=rng.randint(1, 99999))
            if attempt_id % 500 == 0:  # a long message now and then
                message += " " + "details " * 8000
            traceback = (
                "Traceback (most recent call last):\n"
                + "".join(
                    TRACEBACK_LINE.format(n=rng.randint(1, 900), name=job[1].rsplit(".", 1)[1])
                    for _ in range(30 if attempt_id % 2000 else 3000)
                )
                + f"{kind}: {message[:200]}\n"
            )
            outcome = "succeeded" if job[3] == "succeeded" and number == 1 else "failed"
            error = outcome == "failed"
            rows.append(
                (
                    attempt_id,
                    job[0],
                    number,
                    started,
                    started + timedelta(seconds=1),
                    outcome,
                    "worker-1",
                    kind if error else "",
                    message if error else "",
                    traceback if error else "",
                    None,
                    "retry in 60s" if error else "",
                )
            )
        order = ran  # the long history only once
    return rows


ATTEMPT_COLUMNS = (
    "id",
    "job_id",
    "number",
    "started_at",
    "finished_at",
    "outcome",
    "worker_name",
    "error_type",
    "error_message",
    "traceback",
    "retry_at",
    "decision",
)


def fill(jobs: int, attempts: int) -> dict[str, Any]:
    """Fill the tables by bulk SQL; return the ids the timed pages need."""
    from django.db import connection, transaction

    rng = random.Random(13)
    now = datetime.now(UTC)
    job_data = job_rows(jobs, now, rng)
    attempt_data = attempt_rows(job_data, attempts, rng)
    workers = [
        (index, f"host-{index}-{1000 + index}", f"host-{index}", 1000 + index, "[]", 4, now, now)
        for index in range(1, 4)
    ]
    job_columns = (*JOB_COLUMNS, *JOB_DEFAULTS)
    job_values = [(*row, *JOB_DEFAULTS.values()) for row in job_data]
    tables = [
        (
            "django_retrytasks_worker",
            ("id", "name", "host", "pid", "queues", "concurrency", "started_at", "last_heartbeat"),
            workers,
        ),
        ("django_retrytasks_job", job_columns, job_values),
        ("django_retrytasks_attempt", ATTEMPT_COLUMNS, attempt_data),
    ]
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        for table, columns, values in tables:
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(columns))
                cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values
                )
        if connection.vendor == "postgresql":
            for table, _, _ in tables:
                # Rows came with their ids: move each sequence past them.
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), MAX(id)) FROM {table}"
                )
        else:
            cursor.execute("ANALYZE")
    if connection.vendor == "postgresql":
        # What autovacuum does to a table after a while: statistics, and the visibility map
        # that lets an index answer alone. VACUUM runs outside a transaction.
        with connection.cursor() as cursor:
            for table, _, _ in tables:
                cursor.execute(f"VACUUM ANALYZE {table}")
    by_job: dict[int, int] = {}
    for row in attempt_data:
        by_job[row[1]] = by_job.get(row[1], 0) + 1
    long_history = max(by_job, key=lambda job_id: by_job[job_id])
    long_traceback = next(row for row in attempt_data if row[0] % 2000 == 0 and row[9])
    return {
        "fill_s": time.monotonic() - started,
        "job_with_long_history": long_history,
        "attempts_of_it": by_job[long_history],
        "attempt_with_long_traceback": (long_traceback[1], long_traceback[0]),
        "job_with_large_arguments": 1000,
        "a_lock": "order-42",
        "a_task": TASK_NAMES[3],
    }


# --- the timed pages ------------------------------------------------------------------------


def pages(ids: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, URL) of every page timed."""
    jobs = "/admin/django_retrytasks/job/"
    job_id, attempt_id = ids["attempt_with_long_traceback"]
    return [
        ("job list", jobs),
        ("job list, page 200", f"{jobs}?p=199"),
        ("status failed", f"{jobs}?status__exact=failed"),
        ("pending retries, soonest first", f"{jobs}?pending_retry=yes&o=8"),
        ("queue mail", f"{jobs}?queue=mail"),
        ("one task", f"{jobs}?task_name={ids['a_task']}"),
        ("error type ValueError", f"{jobs}?error_type=ValueError"),
        ("search #4242", f"{jobs}?q=%234242"),
        ("search 4242", f"{jobs}?q=4242"),
        ("search a task word", f"{jobs}?q=invoice"),
        ("search a lock", f"{jobs}?q={ids['a_lock']}"),
        ("search an error word (13%)", f"{jobs}?q=refused"),
        ("search the commonest word (30%)", f"{jobs}?q=connection"),
        ("search two words of one error", f"{jobs}?q=ConnectionError+erp.internal"),
        ("search no match", f"{jobs}?q=zzqqxxnomatch"),
        ("search 5 words", f"{jobs}?q=send+invoice+connection+refused+erp"),
        ("search 1,000 words (refused)", f"{jobs}?q=" + "+".join(f"w{n}" for n in range(1000))),
        ("search 100-character term", f"{jobs}?q=" + "z" * 100),
        ("job page, long history", f"{jobs}{ids['job_with_long_history']}/change/"),
        ("job page, large arguments", f"{jobs}{ids['job_with_large_arguments']}/change/"),
        ("job page, long traceback", f"{jobs}{job_id}/change/"),
        ("download a traceback", f"{jobs}{job_id}/download/traceback-{attempt_id}/"),
        (
            "download 200 KB of arguments",
            f"{jobs}{ids['job_with_large_arguments']}/download/arguments/",
        ),
        ("dashboard", f"{jobs}dashboard/"),
        ("worker list", "/admin/django_retrytasks/worker/"),
    ]


def time_pages(ids: dict[str, Any], repeat: int, only: str = "") -> list[dict[str, Any]]:
    """Time every page (whose label contains ``only``) as a superuser; Django is set up."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench"
    )
    client = Client(raise_request_exception=False)  # a 500 is a figure too
    client.force_login(user)
    timings = []
    for label, url in pages(ids):
        if only not in label:
            continue
        samples = []
        status = 0
        for index in range(repeat + 1):
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
            status = response.status_code
            if index:  # the first one warms up
                samples.append(elapsed)
        timing = {
            "page": label,
            "status": status,
            "median_ms": statistics.median(samples),
            "max_ms": max(samples),
        }
        timings.append(timing)
        print(
            f"[{connection.vendor}] {label}: {timing['median_ms']:.0f} ms ({timing['max_ms']:.0f})"
            f"{'' if status == 200 else f' HTTP {status}'}",
            file=sys.stderr,
            flush=True,
        )
    return timings


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    sys.path.insert(0, str(ROOT))
    import django

    # No setup_test_environment(): its hooks on every template rendered would be timed too.
    django.setup()


def session(jobs: int, attempts: int, repeat: int) -> dict[str, Any]:
    """Fill the database ``DATABASE_URL`` points at and time every page (the child process)."""
    setup_django()
    from django.db import connection

    ids = fill(jobs, attempts)
    timings = time_pages(ids, repeat)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sqlite_version()" if connection.vendor == "sqlite" else "SHOW server_version"
        )
        version = str(cursor.fetchone()[0])
    return {"vendor": connection.vendor, "version": version, "ids": ids, "timings": timings}


# --- the parent: databases and the table ----------------------------------------------------


def run_target(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    url = target.create()
    try:
        migrate(url)
        with tempfile.TemporaryDirectory(prefix="rt_bench_") as scratch:
            output = Path(scratch) / "result.json"
            command = [
                sys.executable,
                "-m",
                "bench.admin_pages",
                "--session",
                str(output),
                "--jobs",
                str(args.jobs),
                "--attempts",
                str(args.attempts),
                "--repeat",
                str(args.repeat),
            ]
            code = subprocess.run(
                command, cwd=ROOT, env={**os.environ, "DATABASE_URL": url}, check=False
            ).returncode
            if code or not output.exists():
                raise BenchError(f"the {target.label} session exited with {code}")
            result: dict[str, Any] = json.loads(output.read_text())
            return result
    finally:
        target.drop()


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    labels = list(results)
    out = io.StringIO()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    out.write(
        f"Admin pages with {args.jobs:,} jobs and {args.attempts:,} attempts, as a logged-in "
        f"superuser; median of {args.repeat} after one warm-up (slowest in brackets), ms. "
        f"Load average at the end: {load}.\n\n"
    )
    out.write("| page | " + " | ".join(labels) + " |\n|---|" + "---:|" * len(labels) + "\n")
    rows = [timing["page"] for timing in next(iter(results.values()))["timings"]]
    for index, page in enumerate(rows):
        cells = []
        for label in labels:
            timing = results[label]["timings"][index]
            over = " **over**" if timing["median_ms"] > TARGET_MS else ""
            status = "" if timing["status"] == 200 else f" (HTTP {timing['status']})"
            cells.append(f"{timing['median_ms']:.0f} ({timing['max_ms']:.0f}){over}{status}")
        out.write(f"| {page} | " + " | ".join(cells) + " |\n")
    for label in labels:
        out.write(
            f"\n{label} {results[label]['version']}: filled in {results[label]['ids']['fill_s']:.1f} s"
        )
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.admin_pages", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs (100000)")
    parser.add_argument("--attempts", type=int, default=200_000, help="attempts (200000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per page (5)")
    parser.add_argument("--databases", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--session", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.session:
        args.session.write_text(
            json.dumps(session(args.jobs, args.attempts, args.repeat), default=str)
        )
        return 0
    targets = pick_targets([name.strip() for name in args.databases.split(",")], args.pg_url)
    results = {target.label: run_target(target, args) for target in targets}
    print(render(results, args))
    slow = [
        t
        for r in results.values()
        for t in r["timings"]
        if t["median_ms"] > TARGET_MS or t["status"] != 200
    ]
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
