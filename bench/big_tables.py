"""The queue with a year of history: 1,000,000 finished jobs and 2,000,000 attempts.

Filled by SQL on the server (no rows through Python), then: a drain of ``jobs`` no-op jobs
beside them (compared with the drain on empty tables in the same round), the admin's job
list and dashboard, and retention deleting old jobs with their attempts.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

from bench.harness import (
    burst_drain,
    connection,
    log,
    reset_queue,
    seed,
)
from django_retrytasks.models import Attempt, Job
from django_retrytasks.store import operations
from testproject.demo import bench_tasks

HISTORY_TASK = "bench.history"
#: Seconds between two jobs of the history: 1,000,000 of them span about a year.
SPACING_S = 30


def series(count: int) -> str:
    """A table ``g(n)`` of the numbers 1 to ``count``, in the database's own words."""
    if connection.vendor == "postgresql":
        return f"generate_series(1, {count}) AS g(n)"
    return (
        f"(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) "
        "SELECT n FROM s) AS g"
    )


def moment(seconds_ago: str) -> str:
    """SQL for the time ``seconds_ago`` (an SQL expression) seconds before now."""
    if connection.vendor == "postgresql":
        return f"(now() - ({seconds_ago}) * interval '1 second')"
    if connection.vendor == "mysql":
        return f"(NOW(6) - INTERVAL ({seconds_ago}) SECOND)"
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ({seconds_ago}) || ' seconds')"


def fill(jobs: int) -> float:
    """Store ``jobs`` finished jobs (one in ten failed) with two attempts each; seconds taken."""
    job, attempt = Job._meta.db_table, Attempt._meta.db_table
    started = time.monotonic()
    finished_at = moment(f"n * {SPACING_S} - 1")
    lock = connection.ops.quote_name("lock")  # a reserved word on MySQL
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":  # the recursive series counts to ``jobs``
            cursor.execute("SELECT VERSION()")
            name = (
                "max_recursive_iterations"
                if "MariaDB" in cursor.fetchone()[0]
                else ("cte_max_recursion_depth")
            )
            cursor.execute(f"SET SESSION {name} = {jobs + 1}")
        cursor.execute(
            f"""INSERT INTO {job} (task_name, task_kwargs, status, queue, priority, {lock},
                queueing_lock, scheduled_at, attempts, created_at, started_at, finished_at,
                worker_id, abort_requested, snoozes, consecutive_losses, held, claimed_ahead,
                scheduled_later, backend, return_value)
            SELECT '{HISTORY_TASK}', '{{"order": 1}}',
                CASE WHEN n % 10 = 0 THEN 'failed' ELSE 'succeeded' END, 'default', 0, NULL,
                NULL, {moment(f"n * {SPACING_S}")}, 2, {moment(f"n * {SPACING_S}")},
                {moment(f"n * {SPACING_S}")}, {finished_at}, NULL, FALSE, 0, 0, FALSE, FALSE,
                FALSE, '', NULL
            FROM {series(jobs)}"""
        )
        for number in (1, 2):
            outcome = "'failed'" if number == 1 else "j.status"
            error = ("'ConnectionError'", "'connection refused by erp.internal'")
            cursor.execute(
                f"""INSERT INTO {attempt} (job_id, number, started_at, finished_at, outcome,
                    worker_name, error_type, error_message, traceback, retry_at, decision)
                SELECT j.id, {number}, j.started_at, j.finished_at, {outcome}, 'host-1',
                    {error[0] if number == 1 else "''"}, {error[1] if number == 1 else "''"},
                    '', NULL, '{"retry in 5s" if number == 1 else ""}'
                FROM {job} j WHERE j.task_name = '{HISTORY_TASK}'"""
            )
        cursor.execute(
            "ANALYZE" if connection.vendor != "mysql" else f"ANALYZE TABLE {job}, {attempt}"
        )
    return time.monotonic() - started


def drain(count: int) -> float:
    seed(bench_tasks.nothing, count)
    rate, _ = burst_drain(bench_tasks.nothing.name, count, "--concurrency", "1")
    return rate


def page_ms(client: Any, url: str, repeat: int = 3) -> float:
    client.get(url)  # warm up (the list filters' choices are cached)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
    return statistics.median(samples)


def admin_pages() -> dict[str, float]:
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench"
    )
    client = Client()
    client.force_login(user)
    jobs = "/admin/django_retrytasks/job/"
    return {
        "big_admin_list": page_ms(client, jobs),
        "big_dashboard": page_ms(client, f"{jobs}dashboard/"),
    }


def prune(batches: int) -> float:
    """Jobs deleted per second by retention (``batches`` of the default size).

    Everything finished over an hour ago is old enough here: the history spans a year, and
    the run that keeps it small would delete from its old end the same way.
    """
    started = time.perf_counter()
    hour = timedelta(hours=1)
    report = operations.prune(max_batches=batches, retention={"succeeded": hour, "failed": hour})
    seconds = time.perf_counter() - started
    if not report.total:
        raise RuntimeError("retention deleted nothing")
    if (
        Job.objects.exclude(status__in=("succeeded", "failed"))
        .exclude(task_name=bench_tasks.nothing.name)
        .exists()
    ):
        raise RuntimeError("retention touched a job that had not finished")
    return report.total / seconds


def workload_big_tables(config: dict[str, Any]) -> dict[str, float]:
    reset_queue()
    jobs = config["big_jobs"]
    log(f"filling {jobs:,} finished jobs and {2 * jobs:,} attempts")
    filled = fill(jobs)
    log(f"filled in {filled:.0f} s")
    figures = {"drain_big": drain(config["jobs"]), **admin_pages()}
    figures["prune_rate"] = prune(config["prune_batches"])
    figures["extra:big_fill_s"] = filled
    reset_queue()
    return figures
