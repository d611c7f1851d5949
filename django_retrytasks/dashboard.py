"""Read-only queries behind the admin's job list and dashboard.

Each function costs a fixed number of queries, whatever the number of jobs: the job list
reads the latest attempt of each row through a subquery, and the dashboard's counts are
grouped or filtered aggregates computed by the database.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Substr

from django_retrytasks.models import Attempt, Job, JobStatus, Outcome, Worker

#: How much of the latest error message the job list reads per row (it shows the first line).
ERROR_HEAD_CHARS = 500
#: Outcomes that count as failures on the dashboard (a lost worker is a failure of the run).
FAILURE_OUTCOMES = (Outcome.FAILED, Outcome.LOST)
#: How long the list filters' choices (queues, tasks, error types) are reused, in seconds.
CHOICES_TTL = 30.0
_choices_cache: dict[tuple[str, str], tuple[float, list[str]]] = {}
#: The annotation :func:`with_latest_error` adds (a name, so type checkers accept filters on it).
LATEST_ERROR_TYPE = "latest_error_type"


def with_latest_error(queryset: QuerySet[Job]) -> QuerySet[Job]:
    """Annotate each job with ``latest_error_type`` and ``latest_error_head`` of its latest attempt.

    One correlated subquery per column, evaluated only for the rows fetched, so a page of
    the job list costs the same queries for 10 rows or 100.
    """
    latest = Attempt.objects.filter(job=OuterRef("pk")).order_by("-number", "-id")
    return queryset.annotate(
        **{
            LATEST_ERROR_TYPE: Subquery(latest.values("error_type")[:1]),
            "latest_error_head": Subquery(
                latest.annotate(head=Substr("error_message", 1, ERROR_HEAD_CHARS)).values("head")[
                    :1
                ]
            ),
        }
    )


def jobs_with_error_type(error_type: str) -> QuerySet[Job]:
    """Jobs with an attempt that raised ``error_type`` (a hashed semi-join, not a per-row subquery)."""
    return Job.objects.filter(pk__in=Attempt.objects.filter(error_type=error_type).values("job_id"))


def distinct_values(model: type[models.Model], field: str) -> list[str]:
    """The distinct non-empty values of a column, sorted, cached for :data:`CHOICES_TTL` seconds.

    The list filters' choices: on 100,000 rows each is a table scan of ~0.1 s, too much to
    pay on every page of the job list.
    """
    key = (model._meta.label, field)
    now = time.monotonic()
    cached = _choices_cache.get(key)
    if cached is not None and now - cached[0] < CHOICES_TTL:
        return cached[1]
    values = [
        value
        for value in model._default_manager.order_by(field).values_list(field, flat=True).distinct()
        if value
    ]
    _choices_cache[key] = (now, values)
    return values


def clear_choices_cache() -> None:
    _choices_cache.clear()


def error_types() -> list[str]:
    """Every error type recorded by an attempt, sorted (the choices of the list's filter)."""
    return distinct_values(Attempt, "error_type")


def counts_by_status(queues: list[QueueCounts] | None = None) -> dict[str, int]:
    """Jobs per status: summed from ``queues`` (:func:`counts_by_queue`) when given."""
    counts = dict.fromkeys(JobStatus.values, 0)
    if queues is not None:
        for queue in queues:
            for status, total in queue.by_status.items():
                counts[status] += total
        return counts
    for row in Job.objects.order_by().values("status").annotate(total=Count("id")):
        counts[row["status"]] = row["total"]
    return counts


@dataclass(frozen=True)
class QueueCounts:
    queue: str
    by_status: dict[str, int]
    pending_retries: int

    @property
    def counts_in_order(self) -> list[int]:
        """The counts in the order of :class:`JobStatus`."""
        return [self.by_status[status] for status in JobStatus.values]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def counts_by_queue() -> list[QueueCounts]:
    """Jobs per queue and status, with the pending retries of each queue, in one query."""
    rows = (
        Job.objects.order_by()
        .values("queue", "status")
        .annotate(total=Count("id"), retries=Count("id", filter=Q(attempts__gt=0)))
    )
    by_queue: dict[str, dict[str, int]] = {}
    retries: dict[str, int] = {}
    for row in rows:
        statuses = by_queue.setdefault(row["queue"], dict.fromkeys(JobStatus.values, 0))
        statuses[row["status"]] = row["total"]
        if row["status"] == JobStatus.TODO:
            retries[row["queue"]] = row["retries"]
    return [
        QueueCounts(queue=name, by_status=statuses, pending_retries=retries.get(name, 0))
        for name, statuses in sorted(by_queue.items())
    ]


@dataclass(frozen=True)
class Bucket:
    """Pending retries coming due in ``[start, end)``; ``start`` is None for the overdue ones."""

    start: datetime | None
    end: datetime
    count: int


def retries_due(*, now: datetime, minutes: int = 60, bucket_minutes: int = 5) -> list[Bucket]:
    """Pending retries already due, then per ``bucket_minutes`` over the next ``minutes``.

    One query: a filtered count per bucket, over the partial index on waiting jobs.
    """
    edges = [now + timedelta(minutes=step) for step in range(0, minutes + 1, bucket_minutes)]
    retries = Job.objects.pending_retries()
    aggregates: dict[str, Any] = {
        "overdue": Count("id", filter=Q(scheduled_at__isnull=True) | Q(scheduled_at__lt=now))
    }
    for index, (start, end) in enumerate(itertools.pairwise(edges)):
        aggregates[f"b{index}"] = Count(
            "id", filter=Q(scheduled_at__gte=start, scheduled_at__lt=end)
        )
    counts = retries.aggregate(**aggregates)
    buckets = [Bucket(start=None, end=now, count=counts["overdue"])]
    for index, (start, end) in enumerate(itertools.pairwise(edges)):
        buckets.append(Bucket(start=start, end=end, count=counts[f"b{index}"]))
    return buckets


@dataclass(frozen=True)
class FailureGroup:
    """Failed runs of one task with one error type within the window."""

    task_name: str
    error_type: str
    failures: int
    last_seen: datetime
    #: Jobs of the group that ended ``failed`` (their final run raised this error): the
    #: ones a "retry the group" button puts back in the queue.
    failed_jobs: int


def failed_jobs_in_group(*, task_name: str, error_type: str, since: datetime) -> QuerySet[Job]:
    """Jobs that ended ``failed`` since ``since`` whose final run raised ``error_type``."""
    return with_latest_error(
        Job.objects.filter(status=JobStatus.FAILED, task_name=task_name, finished_at__gte=since)
    ).filter(**{LATEST_ERROR_TYPE: error_type})


def failure_groups(*, since: datetime, limit: int = 50) -> list[FailureGroup]:
    """Failed runs since ``since`` grouped by task and error type, most failures first (2 queries)."""
    rows = list(
        Attempt.objects.filter(finished_at__gte=since, outcome__in=FAILURE_OUTCOMES)
        .order_by()
        .values("job__task_name", "error_type")
        # No COUNT(DISTINCT job): on 100,000 failed runs it triples the cost of the query.
        .annotate(failures=Count("id"), last=Max("finished_at"))
        .order_by("-failures", "job__task_name", "error_type")[:limit]
    )
    failed_now = {
        (row["task_name"], row[LATEST_ERROR_TYPE]): row["total"]
        for row in with_latest_error(
            Job.objects.filter(status=JobStatus.FAILED, finished_at__gte=since)
        )
        .order_by()
        .values("task_name", LATEST_ERROR_TYPE)
        .annotate(total=Count("id"))
    }
    return [
        FailureGroup(
            task_name=row["job__task_name"],
            error_type=row["error_type"],
            failures=row["failures"],
            last_seen=row["last"],
            failed_jobs=failed_now.get((row["job__task_name"], row["error_type"]), 0),
        )
        for row in rows
    ]


def workers(*, now: datetime, heartbeat_timeout: float) -> list[dict[str, Any]]:
    """Every registered worker with its running jobs and whether its heartbeat is fresh.

    The running jobs are counted apart, from the few jobs ``doing``: joined to the workers,
    SQLite read all the jobs.
    """
    alive_after = now - timedelta(seconds=heartbeat_timeout)
    running = dict(
        Job.objects.running()
        .filter(worker__isnull=False)
        .order_by()
        .values_list("worker")
        .annotate(total=Count("id"))
    )
    return [
        {
            "worker": row,
            "running": running.get(row.pk, 0),
            "alive": row.last_heartbeat >= alive_after,
        }
        for row in Worker.objects.order_by("name")
    ]
