"""Durable, retrying background tasks for Django, stored in the project's own database."""

from __future__ import annotations

from django_retrytasks.exceptions import (
    AlreadyEnqueued,
    GiveUp,
    Snooze,
    SnoozeLimitReached,
    WorkerLost,
)
from django_retrytasks.jobs import Job, JobContext
from django_retrytasks.retry import BaseRetryStrategy, RetryDecision, RetryStrategy
from django_retrytasks.tasks import App, Task, app

__all__ = [
    "AlreadyEnqueued",
    "App",
    "BaseRetryStrategy",
    "GiveUp",
    "Job",
    "JobContext",
    "RetryDecision",
    "RetryStrategy",
    "Snooze",
    "SnoozeLimitReached",
    "Task",
    "WorkerLost",
    "app",
]
