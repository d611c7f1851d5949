"""Storing judged runs: at once (:class:`InlineCompleter`) or many at a time (:class:`BatchCompleter`).

Both store through :func:`store_verdicts`, which never loses a run over a value the
database refuses: what cannot be stored as judged is stored as a failure naming the
error, and only a database outage makes it raise. Stored verdicts are announced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from django_retrytasks import jobs, store
from django_retrytasks.records import Fail
from django_retrytasks.worker import outages
from django_retrytasks.worker.announcing import Announcer
from django_retrytasks.worker.judging import Verdict, aborted
from django_retrytasks.worker.ledger import Ledger
from django_retrytasks.worker.results import ErrorText

logger = logging.getLogger("django_retrytasks.worker")


def store_verdicts(verdicts: Sequence[Verdict], *, using: str) -> list[Verdict | None]:
    """Store ``verdicts`` (in one transaction when it can); return each as it was stored.

    A verdict fenced off (its job no longer runs for this worker) comes back ``None``; one
    whose values the database refused comes back as the failure stored instead. Raises
    only for a database outage (then nothing of this call is stored).
    """
    verdicts = _with_aborts(verdicts, using)
    try:
        stored = store.complete([verdict.completion for verdict in verdicts], using=using)
    except outages.OUTAGE_ERRORS:
        raise
    except Exception as refused:
        if len(verdicts) == 1:
            return [_store_failure_instead(verdicts[0], refused, using)]
        # One of them holds what the database refuses: store them one by one.
        return [each for verdict in verdicts for each in store_verdicts([verdict], using=using)]
    return [verdict if was_stored else None for verdict, was_stored in zip(verdicts, stored, strict=True)]


def _with_aborts(verdicts: Sequence[Verdict], using: str) -> Sequence[Verdict]:
    """The verdicts, those of runs an operator asked to stop turned ``aborted`` (one read)."""
    abortable = [verdict.job_id for verdict in verdicts if verdict.abortable]
    stopped = store.aborts_requested(abortable, using=using)
    if not stopped:
        return verdicts
    return [aborted(verdict) if verdict.job_id in stopped else verdict for verdict in verdicts]


def _store_failure_instead(verdict: Verdict, refused: Exception, using: str) -> Verdict | None:
    """Store a plain failure naming ``refused`` instead of ``verdict``; ``None`` if that fails too."""
    completion = verdict.completion
    log_extra = jobs.log_fields(completion.claim.record, action="record_error")
    text = ErrorText.of(refused)
    report = completion.report
    if not report.error_type:  # a success or a snooze: the refused value is the error
        report = replace(
            report, outcome=jobs.RunOutcome.FAILED, error_type=text.type, error_message=text.message
        )
    reason = f"not retried: the outcome could not be stored ({text.type}: {text.message})"
    failure = replace(completion, report=report, transition=Fail(reason), counted=True)
    try:
        [stored] = store.complete([failure], using=using)
    except outages.OUTAGE_ERRORS:
        raise
    except Exception:
        logger.exception(
            "Could not store the outcome of job %s; it stays running and will be recovered",
            completion.job_id,
            extra=log_extra,
        )
        return None
    logger.error(
        "The outcome of job %s could not be stored (%s: %s); stored as failed instead",
        completion.job_id,
        text.type,
        text.message,
        extra=log_extra,
    )
    return replace(verdict, completion=failure) if stored else None


class InlineCompleter:
    """Stores each verdict as it comes, waiting through a database outage, then announces it."""

    def __init__(self, *, announcer: Announcer, using: str) -> None:
        self.announcer = announcer
        self.using = using

    def complete(self, verdict: Verdict) -> bool:
        [stored] = outages.persist(
            lambda: store_verdicts([verdict], using=self.using),
            what=f"the outcome of job {verdict.job_id}",
            using=self.using,
        )
        if stored is not None:
            self.announcer.announce(stored)
        return stored is not None


class BatchCompleter:
    """Keeps verdicts in the ledger until :meth:`flush` stores all of them in one transaction.

    Runners call :meth:`complete` and go on at once; the claim loop calls :meth:`flush`
    on every pass (and while the worker drains), so a run's outcome is stored soon after
    it returns: the claim loop is woken whenever a run ends.
    """

    def __init__(self, *, ledger: Ledger[Verdict], announcer: Announcer, using: str) -> None:
        self.ledger = ledger
        self.announcer = announcer
        self.using = using

    def complete(self, verdict: Verdict) -> bool:
        return self.ledger.run_ended(verdict.job_id, verdict)

    def flush(self) -> int:
        """Store what finished since the last flush; return how many. Raises in an outage."""
        verdicts = self.ledger.take_finished()
        if not verdicts:
            return 0
        try:
            stored = store_verdicts(verdicts, using=self.using)
        except outages.OUTAGE_ERRORS:
            self.ledger.put_back_finished(verdicts)  # stored once the database is back
            raise
        for verdict in stored:
            if verdict is not None:
                self.announcer.announce(verdict)
        return len(verdicts)
