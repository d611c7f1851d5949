"""Judging a run: from how it went and the task's strategy to one named transition of its job.

Pure functions (no database, no clock of their own): :func:`judge` for a run this worker
made, :func:`judge_lost` for a run a dead worker left behind. The strategy is the user's
code, so whatever it raises or returns is judged too.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, replace
from datetime import datetime

from django_retrytasks import durations, retry
from django_retrytasks.exceptions import GiveUp, Snooze, SnoozeLimitReached, WorkerLost
from django_retrytasks.handlers import JobHandler
from django_retrytasks.jobs import RunOutcome
from django_retrytasks.limits import MAX_TRACEBACK_LENGTH, cut_start
from django_retrytasks.records import (
    Claim,
    Completion,
    Fail,
    Interrupt,
    LostRun,
    Retry,
    RunReport,
    Succeed,
    Transition,
)
from django_retrytasks.records import Snooze as SnoozeTransition
from django_retrytasks.worker.results import ErrorText, RunKind, RunResult, safe_str
from django_retrytasks.worker.tracebacks import error_type_name

ABORTED_REASON = "not retried: aborted at an operator's request"
UNSTORABLE_REASON = (
    "not retried: the run returned a value that cannot be stored as JSON "
    "(running it again would repeat its work)"
)
CLAIMED_AHEAD_REASON = (
    "returned to the queue: claimed ahead by a worker that stopped, so it may never have "
    "started; no attempt used"
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judged run: what to store, and what announcing it needs."""

    completion: Completion
    handler: JobHandler | None = None
    #: The error the run ended with (what signals and hooks receive), if any.
    error: BaseException | None = None
    #: The task was never called: the job could not run at all.
    cannot_run: bool = False
    #: The run raised: an operator's abort request, if one came, ends the job instead.
    abortable: bool = False

    @property
    def job_id(self) -> int:
        return self.completion.job_id


def judge(result: RunResult, *, worker_name: str, max_snoozes: int = 100) -> Verdict:
    """The transition after a run of this worker (``max_snoozes``: when the task sets none).

    A run that raised may still end ``aborted`` (see :func:`aborted`): whether an operator
    asked it to stop is read when its verdict is stored, for many runs at once.
    """
    claim, now, handler, error = result.claim, result.finished_at, result.handler, result.error
    if result.kind is RunKind.RETURNED:
        succeeded = RunReport(RunOutcome.SUCCEEDED, now, worker_name)
        return Verdict(Completion(claim, succeeded, Succeed(result.return_value)), handler)
    text = result.error_text
    report = RunReport(RunOutcome.FAILED, now, worker_name, text.type, text.message, text.traceback)
    if result.kind is RunKind.CANNOT_RUN:
        return Verdict(Completion(claim, report, Fail(result.reason)), handler, error, True)
    if result.kind is RunKind.UNSTORABLE:
        return Verdict(Completion(claim, report, Fail(UNSTORABLE_REASON)), handler, error)
    assert error is not None
    if isinstance(error, Snooze):
        limit = handler.max_snoozes if handler and handler.max_snoozes is not None else max_snoozes
        if claim.snoozes < limit:
            retry_at, _ = durations.add_delay(now, error.seconds)
            reason = (
                f"snoozed for {error.seconds:g}s (snooze {claim.snoozes + 1} of {limit}); "
                "no attempt used"
            )
            snoozed = RunReport(RunOutcome.SNOOZED, now, worker_name)
            completion = Completion(
                claim, snoozed, SnoozeTransition(retry_at, reason), counted=False
            )
            return Verdict(completion, handler, error, abortable=True)
        error = SnoozeLimitReached(
            f"the task snoozed {claim.snoozes} times, its limit (max_snoozes={limit}); "
            "this snooze counts as a failed run"
        )
        text = ErrorText.of(error)
        report = replace(report, error_type=text.type, error_message=text.message)
    transition, report = _ask_strategy(handler, error, claim.record, now, report)
    return Verdict(Completion(claim, report, transition), handler, error, abortable=True)


def aborted(verdict: Verdict) -> Verdict:
    """A run that raised after an operator asked it to stop: the job ends ``aborted``.

    Counted as a run, never retried, whatever the strategy said. A snoozed run's error
    text is the request to snooze.
    """
    completion = verdict.completion
    report = replace(completion.report, outcome=RunOutcome.ABORTED)
    if not report.error_type and verdict.error is not None:
        text = ErrorText.of(verdict.error)
        report = replace(report, error_type=text.type, error_message=text.message)
    stopped = replace(
        completion, report=report, transition=Fail(ABORTED_REASON, "aborted"), counted=True
    )
    return replace(verdict, completion=stopped, abortable=False)


def judge_lost(
    lost: LostRun,
    *,
    handler: JobHandler | None,
    now: datetime,
    heartbeat_timeout: float,
    max_consecutive_losses: int | None,
) -> Verdict:
    """The transition after a run left ``doing`` by a worker that stopped heartbeating.

    Judged as a :class:`WorkerLost` failure, counted; a job claimed ahead goes back to the
    queue without using an attempt (it may never have started). A job lost
    ``max_consecutive_losses`` times in a row is held instead of retried.
    """
    worker = f"worker {lost.worker_name!r}" if lost.worker_name else "its worker"
    error = WorkerLost(
        f"{worker} stopped (no heartbeat for over {heartbeat_timeout:g}s) "
        "before recording the outcome of this run"
    )
    text = ErrorText.of(error)
    report = RunReport(
        outcome=RunOutcome.LOST,
        finished_at=now,
        worker_name=lost.worker_name,
        error_type=text.type,
        error_message=text.message,
    )
    losses = lost.consecutive_losses + 1
    held = max_consecutive_losses is not None and losses >= max_consecutive_losses
    hold = Fail(
        f"held: lost with its worker {losses} times in a row (a poison job?); "
        "not retried until an operator retries it",
        held=True,
    )
    if lost.claimed_ahead:
        transition: Transition = hold if held else Interrupt(CLAIMED_AHEAD_REASON)
        report = replace(report, outcome=RunOutcome.INTERRUPTED)
        completion = Completion(lost.claim, report, transition, counted=False, lost=lost)
        return Verdict(completion, handler, error)
    transition, report = _ask_strategy(handler, error, lost.claim.record, now, report)
    if held and isinstance(transition, Retry):
        transition = hold
    return Verdict(Completion(lost.claim, report, transition, lost=lost), handler, error)


def _ask_strategy(
    handler: JobHandler | None,
    error: BaseException,
    job: retry.Job,
    now: datetime,
    report: RunReport,
) -> tuple[Transition, RunReport]:
    """Ask the task's strategy about ``error``; never raises whatever the strategy does."""
    if isinstance(error, GiveUp):
        return Fail(f"not retried: the task gave up: {error.reason}"), report
    strategy = handler.retry if handler is not None else None
    if strategy is None:
        return Fail("not retried: the task has no retry strategy"), report
    failed = job.evolve(failed_at=now)
    try:
        decision = retry.decide(strategy, exception=error, job=failed)
        if decision is None:
            why = strategy.why_not_retried(exception=error, job=failed)
            if isinstance(error, SnoozeLimitReached):
                why = f"the snooze limit was reached and {why}"
            return Fail(f"not retried: {why}"), report
        retry_at, clamped = decision.resolve(now)
    except Exception as strategy_error:
        reason = (
            f"not retried: the retry strategy raised {error_type_name(strategy_error)}: "
            f"{safe_str(strategy_error)}"
        )
        told = report.traceback + "\nThe retry strategy raised:\n" + traceback.format_exc()
        return Fail(reason), replace(report, traceback=cut_start(told, MAX_TRACEBACK_LENGTH))
    reason = decision.describe()
    if clamped:
        reason += f" (too far ahead: scheduled at {durations.LATEST_RETRY_AT.isoformat()})"
    return Retry(retry_at, decision, reason, clamped=clamped), report


def interrupted(claim: Claim, *, now: datetime, worker_name: str, reason: str) -> Verdict:
    """A run cut short by its own worker's shutdown: back to the queue, no attempt used."""
    report = RunReport(
        RunOutcome.INTERRUPTED,
        now,
        worker_name,
        error_type="Interrupted",
        error_message="the worker shut down before the run finished",
    )
    return Verdict(Completion(claim, report, Interrupt(reason), counted=False))
