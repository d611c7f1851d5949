"""What passes between the store and the worker: claims, lost runs, reports and transitions.

Frozen values without a database: the store returns :class:`Claim` and :class:`LostRun`,
the worker hands back a :class:`Completion` (how the run ended, and the one named
transition of the job that follows), and the store applies it in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django_retrytasks import jobs
from django_retrytasks.retry import RetryDecision


@dataclass(frozen=True, slots=True)
class Claim:
    """A job claimed by a worker: the record the task sees, and when the run started."""

    record: jobs.Job
    #: When it was claimed: the job's ``started_at``, which fences the run's outcome.
    started_at: datetime
    worker_id: int | None
    #: The ``django.tasks`` backend alias of a job enqueued through it, else empty.
    backend: str = ""
    #: Snoozes the job has taken so far (they do not count as attempts).
    snoozes: int = 0
    #: When a runner began it, if later than the claim (a job claimed ahead waits for one).
    ran_from: datetime | None = None
    #: Why the stored arguments cannot be read back (see ``models.UndecodableJSON``), if so.
    undecodable: str = ""

    def run_from(self, moment: datetime) -> Claim:
        return replace(self, ran_from=moment if moment > self.started_at else None)

    @property
    def run_started_at(self) -> datetime:
        """When the run began, as its attempt row records it."""
        return self.ran_from or self.started_at


@dataclass(frozen=True, slots=True)
class LostRun:
    """A run left ``doing`` by a worker that stopped heartbeating."""

    claim: Claim
    #: Runs of the job lost in a row before this one.
    consecutive_losses: int
    worker_name: str
    #: Claimed ahead of a free runner: the run may never have started.
    claimed_ahead: bool = False


@dataclass(frozen=True, slots=True)
class RunReport:
    """How a run ended, as its attempt row records it (texts already bounded)."""

    outcome: str
    finished_at: datetime
    worker_name: str = ""
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""


# --- the transitions of a job after a run ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Succeed:
    """The run returned: the job ends ``succeeded`` with its return value (JSON)."""

    return_value: Any = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    """The run failed and runs again at ``retry_at``: one attempt used, maybe moved elsewhere."""

    retry_at: datetime
    decision: RetryDecision
    reason: str
    #: The wait was too long for a datetime: ``retry_at`` is the latest time there is.
    clamped: bool = False


@dataclass(frozen=True, slots=True)
class Snooze:
    """The task asked to run again at ``retry_at``; no attempt used, one snooze counted."""

    retry_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Fail:
    """No further run: the job ends ``failed`` (``aborted`` at an operator's request)."""

    reason: str
    status: str = jobs.Status.FAILED
    #: Held for an operator: lost with its worker too many times in a row.
    held: bool = False


@dataclass(frozen=True, slots=True)
class Interrupt:
    """The run was cut short by its worker (or never started): back to the queue, no attempt."""

    reason: str


Transition = Succeed | Retry | Snooze | Fail | Interrupt


@dataclass(frozen=True, slots=True)
class Completion:
    """One run's end, ready to store: its attempt row and the job's transition, fenced by ``claim``."""

    claim: Claim
    report: RunReport
    transition: Transition
    #: Whether the run uses up an attempt (``Job.attempts`` goes up); an interrupted or
    #: snoozed run does not.
    counted: bool = True
    #: Set for a run lost with its worker: the job's count of losses in a row goes up.
    lost: LostRun | None = None

    @property
    def job_id(self) -> int:
        return self.claim.record.id
