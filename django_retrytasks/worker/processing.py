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

from django_retrytasks import conf, store, tasks
from django_retrytasks.records import Claim
from django_retrytasks.worker.executor import Executor
from django_retrytasks.worker.judging import Verdict, judge

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
        return judge(
            self.executor.run(claim), worker_name=self.worker_name, max_snoozes=self.max_snoozes
        )

    def process_and_complete(self, claim: Claim, completer: Completer) -> bool:
        """Run, judge and store one claim; whether its outcome was stored."""
        return completer.complete(self.process(claim.run_from(self.clock())))
