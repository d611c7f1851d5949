"""Running ONE claimed job end to end; whatever the job throws, a :class:`RunResult` comes back.

The executor resolves the job's handler, announces the start, calls the function (with
its timeout; an ``async def`` task is awaited), converts the return value to JSON and
describes any error in bounded text. It never writes to the database: what happens to
the job next is judged from its result (:mod:`.judging`) and stored by a completer.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connections

from django_retrytasks import handlers, jobs, limits, signals, store, tasks
from django_retrytasks.handlers import CannotRun, JobHandler
from django_retrytasks.records import Claim
from django_retrytasks.worker.results import ErrorText, RunKind, RunResult, safe_str
from django_retrytasks.worker.timeouts import Deadline, await_within

logger = logging.getLogger(__name__)

class Executor:
    """Runs claims on the calling thread, one at a time."""

    def __init__(
        self,
        *,
        app: tasks.App,
        worker_name: str,
        using: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.app = app
        self.worker_name = worker_name
        self.using = using
        self.clock = clock

    def resolve(self, claim: Claim) -> JobHandler:
        """The handler of ``claim``'s job; raises :class:`CannotRun` when none can run it."""
        try:
            return handlers.resolve(
                claim, app=self.app, worker_name=self.worker_name, using=self.using
            )
        except CannotRun:
            raise
        except Exception as error:  # a task module that raises on import, a broken backend...
            raise CannotRun(error, "not retried: the task could not be loaded") from error

    def run(self, claim: Claim) -> RunResult:
        """Run ``claim``'s job; never raises (but for what the interpreter itself raises)."""
        try:
            return self._run(claim)
        finally:
            release_broken_connections()

    def _run(self, claim: Claim) -> RunResult:
        try:
            handler = self.resolve(claim)
        except CannotRun as cannot:
            return self._cannot_run(claim, cannot, handler=None)
        logger.debug(
            "Job %s started", claim.record.id, extra=self._log_extra(claim, action="job_start")
        )
        signals.send(
            signals.job_started, sender=handler.sender, job=claim.record, worker_name=self.worker_name
        )
        self._announce_start(handler, claim)
        try:
            value = self._call(handler, claim)
        except CannotRun as cannot:
            return self._cannot_run(claim, cannot, handler=handler)
        except BaseException as error:  # the job boundary: every failure is a result
            return RunResult(
                claim=claim,
                kind=RunKind.RAISED,
                finished_at=self.clock(),
                handler=handler,
                error=error,
                error_text=ErrorText.of(error),
            )
        finished_at = self.clock()
        try:
            stored = to_stored_json(handler.to_json(value))
        except BaseException as error:
            error = TypeError(f"The task's return value cannot be stored as JSON: {safe_str(error)}")
            return RunResult(
                claim=claim,
                kind=RunKind.UNSTORABLE,
                finished_at=finished_at,
                handler=handler,
                error=error,
                error_text=ErrorText.of(error),
            )
        return RunResult(
            claim=claim,
            kind=RunKind.RETURNED,
            finished_at=finished_at,
            handler=handler,
            return_value=stored,
        )

    def _call(self, handler: JobHandler, claim: Claim) -> Any:
        should_abort = functools.partial(store.abort_requested, claim.record.id, using=self.using)
        deadline = Deadline(None if handler.is_async else handler.timeout)
        try:
            with deadline:
                value = handler.call(claim, should_abort)
        except BaseException as caught:
            if deadline.expired:
                # Where the task was when time ran out: the traceback of what it raised then.
                raise deadline.error().with_traceback(caught.__traceback__) from None
            raise
        if deadline.expired:
            # The task swallowed the timeout or was stuck in C code: still too late.
            raise deadline.error()
        if inspect.isawaitable(value):
            value = await_within(value, handler.timeout)
        return value

    def _announce_start(self, handler: JobHandler, claim: Claim) -> None:
        try:
            handler.started(claim)
        except Exception:
            logger.exception(
                "Announcing the start of job %s failed (ignored)",
                claim.record.id,
                extra=self._log_extra(claim, action="signal_error"),
            )

    def _cannot_run(
        self, claim: Claim, cannot: CannotRun, *, handler: JobHandler | None
    ) -> RunResult:
        return RunResult(
            claim=claim,
            kind=RunKind.CANNOT_RUN,
            finished_at=self.clock(),
            handler=handler,
            error=cannot.error,
            error_text=ErrorText.of(cannot.error),
            reason=cannot.reason,
        )

    def _log_extra(self, claim: Claim, **more: Any) -> dict[str, Any]:
        return jobs.log_fields(claim.record, worker=self.worker_name, **more)


def to_stored_json(value: Any) -> Any:
    """``value`` as the JSON the job's ``return_value`` stores; ``TypeError`` if it cannot be
    stored alike on every database (the same rules as a job's arguments)."""
    return limits.check_return_value(value)


def release_broken_connections() -> None:
    """Drop this thread's connections that a task left broken; keep healthy ones open.

    Unlike a web request we keep the connection across jobs whatever ``CONN_MAX_AGE``
    says: reconnecting for every job would cost more than most jobs.
    """
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred:
            if not connection.is_usable():
                connection.close()
            connection.errors_occurred = False
