"""Every job a worker holds, under one lock: waiting for a runner, running, or finished.

The claim loop hands claims over, runners take them and give back their runs' verdicts,
and the batch completer takes those to store them. Because one lock guards all three
states, a job is always in exactly one of them: whoever asks sees every job it holds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django_retrytasks.records import Claim
from django_retrytasks.worker.pace import Holding


class Finished(Protocol):
    """A finished run waiting to be stored (a judged verdict)."""

    @property
    def job_id(self) -> int: ...


@dataclass(slots=True)
class _Waiting:
    claim: Claim
    since: float  # time.monotonic() when it was claimed


class Ledger[F: Finished]:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._waiting: deque[_Waiting] = deque()
        self._running: dict[int, tuple[Claim, float]] = {}  # job id -> (claim, began)
        self._finished: list[F] = []
        self._finished_since = 0.0  # time.monotonic() when the oldest of them came
        self._stop_tokens = 0
        self._closed = False

    # --- the claim loop ------------------------------------------------------------------

    def hand_over(self, claims: Iterable[Claim]) -> None:
        """Claimed jobs, in order, for the runners."""
        now = time.monotonic()
        with self._changed:
            added = [_Waiting(claim, now) for claim in claims]
            self._waiting.extend(added)
            self._changed.notify(len(added))

    def take_waiting(self, *, longer_than: float = 0.0) -> list[Claim]:
        """Remove and return the claims no runner took within ``longer_than`` seconds."""
        cutoff = time.monotonic() - longer_than
        with self._changed:
            stale = [item for item in self._waiting if item.since <= cutoff]
            if stale:
                self._waiting = deque(item for item in self._waiting if item.since > cutoff)
        return [item.claim for item in stale]

    def stop_runners(self, count: int) -> None:
        """Let ``count`` runners return from :meth:`next_for_runner` once nothing waits."""
        with self._changed:
            self._stop_tokens += count
            self._changed.notify_all()

    # --- runners -------------------------------------------------------------------------

    def next_for_runner(self, clock: Callable[[], datetime]) -> Claim | None:
        """The next claim to run (now running from ``clock()``), waiting for one; ``None``: stop."""
        with self._changed:
            while not self._waiting and not self._stop_tokens:
                self._changed.wait()
            if not self._waiting:
                self._stop_tokens -= 1
                return None
            claim = self._waiting.popleft().claim.run_from(clock())
            self._running[claim.record.id] = (claim, time.monotonic())
            return claim

    def run_ended(self, job_id: int, finished: F | None) -> bool:
        """The run of ``job_id`` is over; ``finished`` waits to be stored (``None``: stored).

        False when the ledger was closed meanwhile (:meth:`close`): the verdict is dropped.
        """
        with self._changed:
            self._running.pop(job_id, None)
            if finished is not None and not self._closed:
                if not self._finished:
                    self._finished_since = time.monotonic()
                self._finished.append(finished)
            self._changed.notify_all()
            return not self._closed

    # --- the completer -------------------------------------------------------------------

    def take_finished(self) -> list[F]:
        with self._changed:
            taken, self._finished = self._finished, []
        return taken

    def put_back_finished(self, finished: list[F]) -> None:
        """Return verdicts whose storing failed, ahead of the ones that came since."""
        with self._changed:
            if finished and not self._finished:
                self._finished_since = time.monotonic()
            self._finished[:0] = finished

    # --- views -----------------------------------------------------------------------------

    def holding(self) -> Holding:
        now = time.monotonic()
        with self._changed:
            return Holding(
                waiting=len(self._waiting),
                running=len(self._running),
                finished=len(self._finished),
                longest_running=max((now - began for _, began in self._running.values()), default=0.0),
                oldest_finished=now - self._finished_since if self._finished else 0.0,
            )

    def job_ids(self) -> set[int]:
        """Every job this worker holds, in whatever state."""
        with self._changed:
            return (
                {item.claim.record.id for item in self._waiting}
                | set(self._running)
                | {finished.job_id for finished in self._finished}
            )

    def running_claims(self) -> list[Claim]:
        with self._changed:
            return [claim for claim, _ in self._running.values()]

    def wait_until_idle(self, timeout: float | None) -> bool:
        """Wait until nothing runs (or ``timeout``); True when nothing runs."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._running, timeout)

    def close(self) -> tuple[list[F], list[Claim]]:
        """Stop taking verdicts: return the finished ones and the claims still running."""
        with self._changed:
            self._closed = True
            finished, self._finished = self._finished, []
            return finished, [claim for claim, _ in self._running.values()]
