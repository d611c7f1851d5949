"""Jobs in every state, made by real runs, for the admin's tests (test client and browser)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from django_retrytasks import store
from django_retrytasks.jobs import JobSpec
from django_retrytasks.records import Claim
from django_retrytasks.store import operations
from django_retrytasks.testing import run_due_jobs
from testproject.demo import admin_tasks
from tests.conftest import run_claim

XSS = "<script>alert('pwned')</script>"


@dataclass
class JobsInEveryState:
    pending_retry: int  # admin_flaky: failed once, retry due in 4 minutes (queue "mail")
    failed: int  # admin_broken: failed for good (ValueError), message holds <script>
    succeeded: int  # admin_ok
    waiting: int  # admin_ok, first run scheduled in an hour, with a lock and queueing lock
    cancelled: int
    running: int  # admin_stoppable, claimed and not run: still "doing"
    running_claim: Claim
    aborted: int  # admin_stoppable, abort requested while running, then run
    unknown: int  # an unregistered task name holding <script>: failed
    jittery: int  # admin_jittery: pending retry whose waits are random

    def all(self) -> list[int]:
        return [
            self.pending_retry,
            self.failed,
            self.succeeded,
            self.waiting,
            self.cancelled,
            self.running,
            self.aborted,
            self.unknown,
            self.jittery,
        ]


def due(now: datetime) -> datetime:
    """``now``, or the real time if that is later: jobs just deferred are due (slow disks)."""
    return max(now, timezone.now())


def make_jobs_in_every_state(now: datetime) -> JobsInEveryState:
    pending_retry = admin_tasks.admin_flaky.defer(message="mail server said 421, try later")
    failed = admin_tasks.admin_broken.defer(message=f"bad input {XSS}")
    succeeded = admin_tasks.admin_ok.defer(invoice=42, note=XSS)
    jittery = admin_tasks.admin_jittery.defer()
    unknown = store.defer_jobs(
        [
            JobSpec(
                task_name=f"gone.{XSS}",
                task_kwargs={},
                queue="default",
                priority=0,
                lock=None,
                queueing_lock=None,
                scheduled_at=None,
                delay_seconds=None,
            )
        ]
    )[0]
    run_due_jobs(now=due(now))

    waiting = admin_tasks.admin_ok.configure(
        schedule_in={"hours": 1}, lock="invoice-42", queueing_lock="send-invoice-42"
    ).defer(invoice=42)
    cancelled = admin_tasks.admin_ok.configure(schedule_in={"hours": 1}).defer(invoice=7)
    operations.cancel([cancelled])

    aborted = admin_tasks.admin_stoppable.defer(steps=3)
    [aborted_claim] = store.claim_jobs(now=due(now), limit=1)
    operations.request_abort([aborted])
    run_claim(aborted_claim, clock=lambda: now)

    running = admin_tasks.admin_stoppable.defer(steps=3)
    [running_claim] = store.claim_jobs(now=due(now), limit=1)
    assert running_claim.record.id == running
    return JobsInEveryState(
        pending_retry=pending_retry,
        failed=failed,
        succeeded=succeeded,
        waiting=waiting,
        cancelled=cancelled,
        running=running,
        running_claim=running_claim,
        aborted=aborted,
        unknown=unknown,
        jittery=jittery,
    )
