"""The ledger of the jobs a worker holds (no database)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django_retrytasks.jobs import Job
from django_retrytasks.records import Claim
from django_retrytasks.worker.ledger import Ledger

NOW = datetime(2026, 11, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Done:
    job_id: int


def claim(job_id: int) -> Claim:
    return Claim(record=Job(id=job_id, task_name="t"), started_at=NOW, worker_id=None)


def later() -> datetime:
    return NOW + timedelta(seconds=1)


def test_claims_go_to_runners_in_order_and_record_when_they_began() -> None:
    ledger: Ledger[Done] = Ledger()
    ledger.hand_over([claim(1), claim(2)])
    first = ledger.next_for_runner(later)
    assert first is not None and first.record.id == 1
    assert first.run_started_at == later()
    holding = ledger.holding()
    assert (holding.waiting, holding.running, holding.finished) == (1, 1, 0)


def test_every_job_is_in_exactly_one_state_and_all_are_known() -> None:
    ledger: Ledger[Done] = Ledger()
    ledger.hand_over([claim(1), claim(2), claim(3)])
    ledger.next_for_runner(later)  # 1 running
    ledger.next_for_runner(later)  # 2 running
    assert ledger.run_ended(2, Done(2))  # 2 finished, not stored yet
    assert ledger.job_ids() == {1, 2, 3}
    holding = ledger.holding()
    assert (holding.waiting, holding.running, holding.finished, holding.held) == (1, 1, 1, 3)
    assert ledger.take_finished() == [Done(2)]
    assert ledger.job_ids() == {1, 3}


def test_verdicts_that_could_not_be_stored_go_back_first() -> None:
    ledger: Ledger[Done] = Ledger()
    ledger.hand_over([claim(1), claim(2)])
    ledger.next_for_runner(later)
    ledger.next_for_runner(later)
    ledger.run_ended(1, Done(1))
    taken = ledger.take_finished()
    ledger.run_ended(2, Done(2))
    ledger.put_back_finished(taken)
    assert ledger.take_finished() == [Done(1), Done(2)]


def test_stale_claims_are_taken_back_and_runners_stop_once_nothing_waits() -> None:
    ledger: Ledger[Done] = Ledger()
    ledger.hand_over([claim(1)])
    assert ledger.take_waiting(longer_than=60) == []
    assert [c.record.id for c in ledger.take_waiting()] == [1]
    ledger.stop_runners(1)
    assert ledger.next_for_runner(later) is None


def test_a_runner_waits_for_a_claim() -> None:
    ledger: Ledger[Done] = Ledger()
    got: list[Claim | None] = []
    runner = threading.Thread(target=lambda: got.append(ledger.next_for_runner(later)))
    runner.start()
    ledger.hand_over([claim(5)])
    runner.join(5)
    assert [c.record.id for c in got if c] == [5]


def test_closing_returns_finished_and_running_and_drops_later_verdicts() -> None:
    ledger: Ledger[Done] = Ledger()
    ledger.hand_over([claim(1), claim(2)])
    ledger.next_for_runner(later)
    ledger.next_for_runner(later)
    ledger.run_ended(1, Done(1))
    finished, running = ledger.close()
    assert finished == [Done(1)]
    assert [c.record.id for c in running] == [2]
    assert not ledger.run_ended(2, Done(2))  # returned to the queue meanwhile: dropped
    assert ledger.take_finished() == []
