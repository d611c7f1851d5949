"""Announcing stored outcomes: a log line, the job's signal, the task's hook, its source's news.

Only what is stored is announced (a run fenced off announces nothing). Signal receivers
and hooks are the project's code: whatever they raise is logged, never passed on.
:class:`QueuedAnnouncer` announces on a thread of its own, so that slow receivers never
hold up the worker's claim loop, which stores outcomes.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from django.db import connections

from django_retrytasks import jobs, signals
from django_retrytasks.exceptions import UnknownTask
from django_retrytasks.limits import cut_start, cut_text
from django_retrytasks.records import Completion, Fail, Interrupt, Retry, Snooze, Succeed
from django_retrytasks.worker.judging import Verdict

logger = logging.getLogger("django_retrytasks.worker")

#: Log lines keep at most this much of an error's message and traceback (the attempt keeps more).
LOG_MESSAGE_LIMIT = 4 * 1024
LOG_TRACEBACK_LIMIT = 64 * 1024


def job_after(completion: Completion) -> jobs.Job:
    """The job record as storing ``completion`` left it."""
    record, transition = completion.claim.record, completion.transition
    changes: dict[str, Any] = {"attempts": record.attempts + (1 if completion.counted else 0)}
    match transition:
        case Succeed():
            changes["status"] = jobs.Status.SUCCEEDED
        case Fail():
            changes["status"] = transition.status
        case Retry():
            changes.update(status=jobs.Status.TODO, scheduled_at=transition.retry_at)
            for name in ("priority", "queue", "lock"):
                value = getattr(transition.decision, name)
                if value is not None:
                    changes[name] = value
        case Snooze():
            changes.update(status=jobs.Status.TODO, scheduled_at=transition.retry_at)
        case Interrupt():
            changes.update(status=jobs.Status.TODO, scheduled_at=completion.report.finished_at)
    return record.evolve(**changes)


class Announcer:
    """Announces each stored verdict at once, on the calling thread."""

    def __init__(self, *, worker_name: str) -> None:
        self.worker_name = worker_name

    def announce(self, verdict: Verdict) -> None:
        try:
            self._announce(verdict)
        except Exception:
            logger.exception(
                "Announcing the outcome of job %s failed (ignored; the outcome is stored)",
                verdict.job_id,
                extra=self._log_extra(verdict.completion, action="signal_error"),
            )

    def _announce(self, verdict: Verdict) -> None:
        completion = verdict.completion
        transition, report = completion.transition, completion.report
        record, handler = completion.claim.record, verdict.handler
        sender = handler.sender if handler is not None else None
        after = job_after(completion)
        extra = self._log_extra(completion, outcome=report.outcome)
        wait = (after.scheduled_at - report.finished_at).total_seconds() if after.scheduled_at else 0.0
        match transition:
            case Succeed():
                duration = (report.finished_at - completion.claim.run_started_at).total_seconds()
                logger.info(
                    "Job %s succeeded in %.3gs",
                    record.id,
                    duration,
                    extra={**extra, "action": "job_success", "duration": duration},
                )
                signals.send(
                    signals.job_succeeded,
                    sender=sender,
                    job=after,
                    return_value=transition.return_value,
                    duration=duration,
                )
                self._source_finished(verdict)
            case Retry():
                if transition.clamped:
                    logger.warning(
                        "Job %s: retry delay too large, scheduled at %s",
                        record.id,
                        transition.retry_at,
                        extra={**extra, "action": "job_retry_clamped"},
                    )
                logger.info(
                    "Job %s failed (%s: %s); retry in %.3gs",
                    record.id,
                    report.error_type,
                    cut_text(report.error_message, LOG_MESSAGE_LIMIT),
                    wait,
                    extra={**extra, "action": "job_error_retry", "wait": wait},
                )
                signals.send(
                    signals.job_retry_scheduled,
                    sender=sender,
                    job=after,
                    exception=verdict.error,
                    decision=transition.decision,
                    retry_at=transition.retry_at,
                )
            case Snooze():
                logger.info(
                    "Job %s snoozed; runs again in %.3gs without using up an attempt",
                    record.id,
                    wait,
                    extra={**extra, "action": "job_snoozed", "wait": wait},
                )
                signals.send(
                    signals.job_snoozed,
                    sender=sender,
                    job=after,
                    retry_at=transition.retry_at,
                    snoozes=completion.claim.snoozes + 1,
                )
            case Fail() if transition.status == jobs.Status.ABORTED:
                logger.warning(
                    "Job %s aborted at an operator's request",
                    record.id,
                    extra={**extra, "action": "job_aborted"},
                )
                self._source_finished(verdict)
            case Fail():
                self._failed(verdict, after, extra)
            case Interrupt() if completion.lost is None:
                logger.warning(
                    "Job %s interrupted by shutdown and returned to the queue",
                    record.id,
                    extra={**extra, "action": "job_interrupted"},
                )

    def _failed(self, verdict: Verdict, after: jobs.Job, extra: dict[str, Any]) -> None:
        completion = verdict.completion
        report, handler = completion.report, verdict.handler
        assert isinstance(completion.transition, Fail)
        reason = completion.transition.reason
        message = cut_text(report.error_message, LOG_MESSAGE_LIMIT)
        if verdict.cannot_run:
            action = "job_unknown_task" if isinstance(verdict.error, UnknownTask) else "job_cannot_run"
            logger.error(
                "Job %s failed: %s (%s)",
                after.id,
                message,
                reason,
                extra={**extra, "action": action, "reason": reason},
            )
        else:
            logger.error(
                "Job %s failed for good (%s: %s): %s\n%s",
                after.id,
                report.error_type,
                message,
                reason,
                cut_start(report.traceback, LOG_TRACEBACK_LIMIT),
                extra={**extra, "action": "job_error", "reason": reason},
            )
        signals.send(
            signals.job_failed,
            sender=handler.sender if handler is not None else None,
            job=after,
            exception=verdict.error,
            reason=reason,
        )
        if handler is not None and verdict.error is not None:
            try:
                handler.final_failure(after, verdict.error)
            except Exception:
                logger.exception(
                    "The on_final_failure hook of task %s raised (ignored; the job stays failed)",
                    handler.name,
                    extra=jobs.log_fields(after, action="hook_error", worker=self.worker_name),
                )
        self._source_finished(verdict)

    def _source_finished(self, verdict: Verdict) -> None:
        if verdict.handler is None:
            return
        transition = verdict.completion.transition
        if isinstance(transition, Succeed):
            return_value, error = transition.return_value, None
        else:
            return_value, error = None, verdict.error or RuntimeError(transition.reason)
        verdict.handler.finished(
            verdict.completion.claim,
            return_value=return_value,
            finished_at=verdict.completion.report.finished_at,
            error=error,
        )

    def _log_extra(self, completion: Completion, **more: Any) -> dict[str, Any]:
        return jobs.log_fields(completion.claim.record, worker=self.worker_name, **more)

    def close(self, timeout: float | None = None) -> None:
        """Announce what is still queued (nothing here: every announcement is made at once)."""


class QueuedAnnouncer(Announcer):
    """Announces on a thread of its own (started with the first announcement), in order."""

    def __init__(self, *, worker_name: str) -> None:
        super().__init__(worker_name=worker_name)
        self._queue: queue.SimpleQueue[Verdict | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def announce(self, verdict: Verdict) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name=f"{self.worker_name}-announcer", daemon=True
                    )
                    self._thread.start()
        self._queue.put(verdict)

    def _run(self) -> None:
        try:
            while (verdict := self._queue.get()) is not None:
                super().announce(verdict)
        finally:
            connections.close_all()

    def close(self, timeout: float | None = None) -> None:
        """Announce what is queued (within ``timeout`` seconds), then stop the thread."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
