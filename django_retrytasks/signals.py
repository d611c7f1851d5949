"""Django signals sent as jobs move through their states.

Every signal is sent with ``sender`` = the :class:`~django_retrytasks.tasks.Task` the job
runs (``None`` when no task is registered under its name), so a receiver can listen to
one task only: ``job_failed.connect(alert, sender=send_invoice)``. Every signal passes
``job``, the plain :class:`django_retrytasks.Job` record as it is *after* the change.

Signals are sent after the change is committed, and with ``send_robust``: a receiver that
raises is logged (logger ``django_retrytasks.signals``, action ``signal_error``) and never
breaks the worker, the caller or the state already recorded.

=========================  ==========================================================
signal                     extra keyword arguments
=========================  ==========================================================
``job_deferred``           (none): a job was stored (sent when the transaction commits)
``job_started``            ``worker_name``
``job_succeeded``          ``return_value``, ``duration`` (seconds)
``job_retry_scheduled``    ``exception``, ``decision`` (the RetryDecision), ``retry_at``
``job_snoozed``            ``retry_at``, ``snoozes`` (how many so far)
``job_failed``             ``exception``, ``reason`` (why it is not retried)
``job_recovered``          ``worker_name`` (of the lost worker, may be empty)
=========================  ==========================================================
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)

#: A job was stored; sent once the surrounding transaction commits.
job_deferred = Signal()
#: A worker is about to run a job.
job_started = Signal()
#: A run returned; the job is ``succeeded``.
job_succeeded = Signal()
#: A run failed and the strategy scheduled another run (``decision`` says how).
job_retry_scheduled = Signal()
#: A run asked to run again later without using up an attempt.
job_snoozed = Signal()
#: A run failed and no further run follows: the job is ``failed`` for good.
job_failed = Signal()
#: A job left running by a worker that stopped sending heartbeats was taken back; its
#: lost run is then judged like a failure (``job_retry_scheduled`` or ``job_failed`` follow).
job_recovered = Signal()


def send(signal: Signal, *, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` robustly: log every receiver that raised, never raise."""
    for receiver, response in signal.send_robust(sender=sender, **kwargs):
        if isinstance(response, Exception):
            job = kwargs.get("job")
            logger.error(
                "Signal receiver %r raised %s: %s (ignored; the job's state is recorded)",
                receiver,
                type(response).__name__,
                response,
                exc_info=(type(response), response, response.__traceback__),
                extra={
                    "action": "signal_error",
                    "job_id": getattr(job, "id", None),
                    "task_name": getattr(job, "task_name", None),
                },
            )
