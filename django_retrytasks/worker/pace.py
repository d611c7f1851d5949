"""How many jobs a worker should hold: the pace of its runs and the size of each claim.

Pure arithmetic, no threads started and no database: :class:`RunPace` keeps a running
average of run times, :func:`claim_size` turns what the worker holds into how many jobs
to claim now.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

#: A job claimed ahead should start within about this long, if jobs keep their pace.
PREFETCH_HORIZON = 0.010
#: Never hold more than this many jobs per runner beyond the ones running.
PREFETCH_PER_RUNNER = 32
#: A claimed job still waiting for a runner after this long goes back to the queue, so that
#: a job that turned out slow does not hold the jobs behind it away from other workers.
PREFETCH_MAX_WAIT = 0.5
#: Weight of the newest run in the running average of run times.
PACE_WEIGHT = 0.2


class RunPace:
    """Running average of how long a run takes on this worker; sets how far to claim ahead.

    Until a run has been timed, and for slow jobs, nothing is claimed ahead: a claimed job
    that waits for a runner is a job no other worker can take.
    """

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._average: float | None = None
        self._lock = threading.Lock()

    def ran(self, seconds: float) -> None:
        with self._lock:
            if self._average is None:
                self._average = seconds
            else:
                self._average += PACE_WEIGHT * (seconds - self._average)

    def target(self, *, running_for: float = 0.0) -> int:
        """How many jobs this worker should hold (running or waiting for a runner).

        ``running_for``: how long the oldest run in progress has been going; a job slower
        than the average stops the claiming ahead before it has finished.
        """
        with self._lock:
            average = self._average
        if average is None:
            return self.concurrency
        pace = max(average, running_for, 1e-6)
        ahead = int(self.concurrency * PREFETCH_HORIZON / pace)
        return self.concurrency + min(ahead, self.concurrency * PREFETCH_PER_RUNNER)


@dataclass(frozen=True, slots=True)
class Holding:
    """What a worker holds at one moment (see :class:`~django_retrytasks.worker.ledger.Ledger`)."""

    waiting: int  # claimed, waiting for a runner
    running: int
    finished: int  # returned, outcome not stored yet
    longest_running: float = 0.0  # seconds the oldest run in progress has been going
    oldest_finished: float = 0.0  # seconds the oldest outcome not stored yet has waited

    @property
    def held(self) -> int:
        return self.waiting + self.running + self.finished


#: Outcomes waiting to be stored are stored together once this many have come...
STORE_BATCH = 64
#: ...or once the oldest of them has waited this long (seconds), whichever comes first.
STORE_DELAY = 0.005


def store_wait(holding: Holding) -> float | None:
    """Seconds before the outcomes the worker holds should be stored: 0 for now, None if none.

    Each store is a commit, which on a database that flushes every commit to disk costs far
    more than the rows: a failure that comes while the runners still have jobs waiting is
    stored with the next ones, a few milliseconds later at most. With nothing left to run,
    the runners are not kept waiting for the outcomes (a retry may be due at once).
    """
    if not holding.finished:
        return None
    if holding.finished >= STORE_BATCH or holding.waiting == 0:
        return 0.0
    return max(STORE_DELAY - holding.oldest_finished, 0.0)


@dataclass(frozen=True, slots=True)
class ClaimSize:
    wanted: int  # how many to claim now (0: none)
    for_runners: int  # how many of those start at once; the rest are claimed ahead


def claim_size(holding: Holding, *, target: int, concurrency: int) -> ClaimSize:
    """How many jobs to claim now, holding ``holding`` and aiming to hold ``target``.

    For short jobs the worker holds more than its runners (see :class:`RunPace`) and
    claims again in batches: when a runner would otherwise go idle, or once half of the
    jobs claimed ahead are taken. Outcomes not stored yet do not count: they are stored
    in batches of their own (see :func:`store_wait`), at most :data:`STORE_BATCH` at once.
    """
    ahead = target - concurrency
    idle = concurrency - holding.running
    waiting = holding.waiting
    to_run = waiting + holding.running
    if to_run >= target or (waiting >= idle and waiting > ahead // 2):
        return ClaimSize(0, 0)
    if holding.finished >= STORE_BATCH:
        return ClaimSize(0, 0)  # store those first (an outage keeps them here)
    return ClaimSize(target - to_run, max(idle - waiting, 0))
