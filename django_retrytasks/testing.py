"""Helpers for tests of projects that defer jobs: run them here, for real, in this thread.

``run_due_jobs()`` claims and runs due jobs with the real models and the real state
machine, in the calling thread and so inside the test's transaction: it works in
pytest-django's ``db`` fixture and in Django's ``TestCase``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone

from django_retrytasks import services, tasks
from django_retrytasks.worker import Worker


def run_due_jobs(
    *,
    now: datetime | None = None,
    queues: Sequence[str] | None = None,
    app: tasks.App = tasks.app,
    max_runs: int = 10_000,
    using: str = services.DEFAULT_DB,
) -> int:
    """Run every job due at ``now`` (default: the current time), retries due by then included.

    Returns the number of runs. Retries scheduled after ``now`` are left waiting: call
    again with a later ``now`` to run them.
    """
    moment = now or timezone.now()
    worker = Worker(
        app=app,
        queues=queues,
        clock=(lambda: moment) if now is not None else timezone.now,
        install_signal_handlers=False,
        name="test-runner",
        using=using,
    )
    runs = 0
    while runs < max_runs:
        claims = services.claim_jobs(now=worker.clock(), limit=1, queues=worker.queues, using=using)
        if not claims:
            break
        worker.process(claims[0])
        runs += 1
    return runs
