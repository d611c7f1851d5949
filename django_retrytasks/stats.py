"""Numbers about the queue for operators and alerting: read-only, a handful of queries.

``manage.py retrytasks stats --json`` prints :func:`collect`; see the README for the
alerts they are meant for (a growing backlog, an old waiting job, failures per hour).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Q
from django.utils import timezone

from django_retrytasks.jobs import Status
from django_retrytasks.models import Attempt, Job, JobStatus, Outcome, Worker

DEFAULT_DB = "default"


def collect(*, now: datetime | None = None, using: str = DEFAULT_DB) -> dict[str, Any]:
    """Return counts by state and by queue, the oldest due job, retries and recent failures.

    Every value is plain JSON (times as ISO 8601 strings, durations in seconds).
    """
    now = now or timezone.now()
    hour_ago = now - timedelta(hours=1)
    jobs = Job.objects.using(using)
    by_state = dict.fromkeys(JobStatus.values, 0)
    by_queue: dict[str, dict[str, int]] = {}
    for row in jobs.values("queue", "status").annotate(count=Count("id")).order_by("queue"):
        by_state[row["status"]] = by_state.get(row["status"], 0) + row["count"]
        by_queue.setdefault(row["queue"], dict.fromkeys(JobStatus.values, 0))[row["status"]] = row[
            "count"
        ]
    due = jobs.filter(Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=now), status=Status.TODO)
    oldest = (
        due.order_by(F("scheduled_at").asc(nulls_first=True), "id")
        .values("id", "task_name", "queue", "scheduled_at", "created_at", "attempts")
        .first()
    )
    oldest_waiting = None
    if oldest is not None:
        due_since = oldest["scheduled_at"] or oldest["created_at"]
        oldest_waiting = {
            "job_id": oldest["id"],
            "task_name": oldest["task_name"],
            "queue": oldest["queue"],
            "attempts": oldest["attempts"],
            "due_since": due_since.isoformat(),
            "waiting_seconds": max((now - due_since).total_seconds(), 0.0),
        }
    return {
        "now": now.isoformat(),
        "by_state": by_state,
        "by_queue": by_queue,
        "due_now": due.count(),
        "scheduled_later": jobs.filter(status=Status.TODO, scheduled_at__gt=now).count(),
        "pending_retries": jobs.pending_retries().count(),
        "oldest_waiting": oldest_waiting,
        "failed_runs_last_hour": Attempt.objects.using(using)
        .filter(finished_at__gte=hour_ago, outcome__in=(Outcome.FAILED, Outcome.LOST))
        .count(),
        "jobs_failed_last_hour": jobs.filter(
            status=Status.FAILED, finished_at__gte=hour_ago
        ).count(),
        "workers": Worker.objects.using(using).count(),
    }
