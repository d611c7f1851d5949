"""One runner's work for one job: run it (:mod:`.executor`), then judge it (:mod:`.judging`).

The one job boundary of every job, whatever its source: ``runworker``'s runner threads
and the test helpers in :mod:`django_retrytasks.testing` both come through here, and only
the completer they hand the verdict to differs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from django_retrytasks import conf, jobs, store, tasks
from django_retrytasks.records import Claim
from django_retrytasks.worker import outages
from django_retrytasks.worker.executor import Executor
from django_retrytasks.worker.judging import Verdict, judge
from django_retrytasks.worker.results import RunKind

logger = logging.getLogger("django_retrytasks.worker")


class Completer(Protocol):
    def complete(self, verdict: Verdict) -> bool: ...


class Processor:
    """Runs claimed jobs on the calling thread and judges each run."""

    def __init__(
        self,
        *,
        app: tasks.App = tasks.app,
        worker_name: str,
        using: str = store.DEFAULT_DB,
        clock: Callable[[], datetime],
    ) -> None:
        self.executor = Executor(app=app, worker_name=worker_name, using=using, clock=clock)
        self.worker_name = worker_name
        self.using = using
        self.clock = clock
        # Read once: a worker's settings do not change while it runs.
        self.max_snoozes = conf.get_settings().max_snoozes

    def process(self, claim: Claim) -> Verdict:
        """Run ``claim``'s job and judge the run; the verdict still has to be stored."""
        result = self.executor.run(claim)
        abort_requested = result.kind is RunKind.RAISED and self._abort_requested(claim)
        return judge(
            result,
            worker_name=self.worker_name,
            abort_requested=abort_requested,
            max_snoozes=self.max_snoozes,
        )

    def process_and_complete(self, claim: Claim, completer: Completer) -> bool:
        """Run, judge and store one claim; whether its outcome was stored."""
        return completer.complete(self.process(claim.run_from(self.clock())))

    def _abort_requested(self, claim: Claim) -> bool:
        try:
            return store.abort_requested(claim.record.id, using=self.using)
        except outages.OUTAGE_ERRORS:
            # Unknown in an outage: judge the failure as the task's strategy says.
            logger.warning(
                "Could not read whether job %s was asked to abort; judging it as a failure",
                claim.record.id,
                extra=jobs.log_fields(claim.record, action="db_outage"),
            )
            outages.drop_connection(self.using)
            return False
