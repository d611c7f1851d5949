"""How many jobs a worker holds and claims (no database)."""

from __future__ import annotations

from django_retrytasks.worker.pace import (
    PREFETCH_PER_RUNNER,
    STORE_BATCH,
    STORE_DELAY,
    ClaimSize,
    Holding,
    RunPace,
    claim_size,
    store_wait,
)


def test_nothing_is_claimed_ahead_before_a_run_was_timed() -> None:
    assert RunPace(3).target() == 3


def test_short_runs_are_claimed_ahead_up_to_a_cap_per_runner() -> None:
    pace = RunPace(2)
    pace.ran(0.000_1)
    assert pace.target() == 2 + 2 * PREFETCH_PER_RUNNER
    pace = RunPace(2)
    pace.ran(0.002)  # 2 runners x 10 ms horizon / 2 ms a run
    assert pace.target() == 2 + 10


def test_slow_runs_and_a_run_in_progress_stop_the_claiming_ahead() -> None:
    pace = RunPace(1)
    pace.ran(0.000_1)
    assert pace.target(running_for=0.5) == 1  # one job is taking long right now
    for _ in range(30):
        pace.ran(0.2)
    assert pace.target() == 1


def test_an_idle_worker_claims_for_every_runner() -> None:
    assert claim_size(Holding(0, 0, 0), target=4, concurrency=4) == ClaimSize(4, 4)


def test_a_worker_holding_its_target_claims_nothing() -> None:
    assert claim_size(Holding(waiting=2, running=2, finished=0), target=4, concurrency=2).wanted == 0


def test_outcomes_not_stored_yet_hold_back_claims_only_past_a_batch() -> None:
    # They are stored in batches of their own: a few do not keep runners waiting...
    assert claim_size(Holding(waiting=0, running=2, finished=2), target=4, concurrency=2) == (
        ClaimSize(2, 0)
    )
    # ...but a full batch waiting to be stored (the database is away) stops the claims.
    held = Holding(waiting=0, running=0, finished=STORE_BATCH)
    assert claim_size(held, target=4, concurrency=2).wanted == 0


def test_outcomes_are_stored_in_batches_soon_and_at_once_when_nothing_else_waits() -> None:
    assert store_wait(Holding(waiting=3, running=1, finished=0)) is None
    assert store_wait(Holding(waiting=3, running=1, finished=1)) == STORE_DELAY
    assert store_wait(Holding(waiting=3, running=1, finished=1, oldest_finished=1.0)) == 0
    assert store_wait(Holding(waiting=3, running=1, finished=STORE_BATCH)) == 0
    assert store_wait(Holding(waiting=0, running=1, finished=1)) == 0  # a retry may be due


def test_claims_ahead_come_in_batches_once_half_of_them_are_taken() -> None:
    # 2 runners, 8 ahead: with 5 waiting (more than half of 8) it waits for the runners.
    assert claim_size(Holding(waiting=5, running=2, finished=0), target=10, concurrency=2).wanted == 0
    # With 3 waiting it tops up to the target; none of them is for an idle runner.
    assert claim_size(Holding(waiting=3, running=2, finished=0), target=10, concurrency=2) == ClaimSize(5, 0)


def test_a_runner_about_to_go_idle_gets_a_job_at_once() -> None:
    # One runner free and nothing waiting: claim for it, plus ahead.
    assert claim_size(Holding(waiting=0, running=1, finished=0), target=6, concurrency=2) == ClaimSize(5, 1)
