"""What passes between a worker's claim loop and its runner threads.

:class:`ClaimBuffer` holds claimed jobs until a runner takes them; :class:`RunPace` decides
how many jobs to claim ahead of the free runners (only for short jobs); :class:`FinishedRuns`
collects the successes the claim loop records in one statement. Plain Python: no database.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django_retrytasks.services import Claim, RunReport

#: A job claimed ahead should start within about this long, if jobs keep their pace.
PREFETCH_HORIZON = 0.010
#: Never hold more than this many jobs per runner beyond the ones running.
PREFETCH_PER_RUNNER = 32
#: A claimed job still waiting for a runner after this long goes back to the queue, so that
#: a job that turned out slow does not hold the jobs behind it away from other workers.
PREFETCH_MAX_WAIT = 0.5
#: Weight of the newest run in the running average of run times.
PACE_WEIGHT = 0.2


@dataclass
class _Held:
    claim: Claim
    since: float  # time.monotonic() when it was claimed


class ClaimBuffer:
    """Claimed jobs waiting for a runner, oldest first; ``None`` tells a runner to stop."""

    def __init__(self) -> None:
        self._items: deque[_Held | None] = deque()
        self._ready = threading.Condition()

    def __len__(self) -> int:
        with self._ready:
            return sum(1 for item in self._items if item is not None)

    def put(self, claims: list[Claim]) -> None:
        now = time.monotonic()
        with self._ready:
            self._items.extend(_Held(claim, now) for claim in claims)
            self._ready.notify(len(claims))

    def stop_runners(self, count: int) -> None:
        with self._ready:
            self._items.extend([None] * count)
            self._ready.notify(count)

    def get(self) -> Claim | None:
        """The next claim, waiting for one; ``None`` once :meth:`stop_runners` reached us."""
        with self._ready:
            while not self._items:
                self._ready.wait()
            item = self._items.popleft()
        return None if item is None else item.claim

    def ids(self) -> set[int]:
        with self._ready:
            return {item.claim.record.id for item in self._items if item is not None}

    def take_waiting(self, *, longer_than: float = 0.0) -> list[Claim]:
        """Remove and return the claims no runner took within ``longer_than`` seconds."""
        cutoff = time.monotonic() - longer_than
        with self._ready:
            stale = [item for item in self._items if item is not None and item.since <= cutoff]
            if stale:
                kept = [item for item in self._items if item is None or item.since > cutoff]
                self._items = deque(kept)
        return [item.claim for item in stale]


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


@dataclass(eq=False)
class FinishedRun:
    """A run that returned, waiting for the claim loop to record it."""

    claim: Claim
    report: RunReport
    #: Called once it is recorded, with ``True``, or ``False`` when it was fenced off.
    then: Callable[[bool], Any]


@dataclass
class FinishedRuns:
    """Successes handed from the runners to the claim loop, in the order they finished."""

    _items: list[FinishedRun] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def add(self, run: FinishedRun) -> None:
        with self._lock:
            self._items.append(run)

    def take(self) -> list[FinishedRun]:
        with self._lock:
            taken, self._items = self._items, []
        return taken

    def put_back(self, runs: list[FinishedRun]) -> None:
        """Return runs whose recording failed, ahead of the ones that finished since."""
        with self._lock:
            self._items[:0] = runs

    def ids(self) -> set[int]:
        with self._lock:
            return {run.claim.record.id for run in self._items}
