"""The only writer of job state: every change of a job, a run or a worker row goes through here.

Functions take ``now`` from their caller so that tests control time, and each change is
one short transaction. The worker, the admin and the command line all come here:

- :mod:`.deferring`: storing new jobs;
- :mod:`.claiming`: claiming due jobs, giving back unstarted ones (SQL per database in
  :mod:`.postgres`, :mod:`.sqlite` and :mod:`.mysql`, for MariaDB and MySQL);
- :mod:`.completing`: a run's attempt row and its job's named transition, fenced;
- :mod:`.workers`: the table of workers, heartbeats and lost runs;
- :mod:`.operations`: operator actions and retention;
- :mod:`.periodic`: periodic schedules' rows: one job per tick, pause, resume, run now.
"""

from __future__ import annotations

from django_retrytasks.store.claiming import (
    any_claimable,
    claim_jobs,
    next_due_at,
    release_unstarted,
    return_unstarted,
)
from django_retrytasks.store.completing import abort_requested, aborts_requested, complete
from django_retrytasks.store.deferring import defer_jobs, store_jobs
from django_retrytasks.store.sql import DEFAULT_DB, write_transaction
from django_retrytasks.store.wake import add_wake_callback, remove_wake_callback
from django_retrytasks.store.workers import (
    forget_dead_workers,
    heartbeat,
    lost_runs,
    register_worker,
    take_lost_run,
    unregister_worker,
)

__all__ = [
    "DEFAULT_DB",
    "abort_requested",
    "aborts_requested",
    "add_wake_callback",
    "any_claimable",
    "claim_jobs",
    "complete",
    "defer_jobs",
    "forget_dead_workers",
    "heartbeat",
    "lost_runs",
    "next_due_at",
    "register_worker",
    "release_unstarted",
    "remove_wake_callback",
    "return_unstarted",
    "store_jobs",
    "take_lost_run",
    "unregister_worker",
    "write_transaction",
]
