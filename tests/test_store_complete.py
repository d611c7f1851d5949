"""Storing many outcomes at once: every transition in one batch, each fenced on its claim."""

from __future__ import annotations

from datetime import timedelta

from django_retrytasks import RetryDecision, store
from django_retrytasks.models import Attempt, Job
from django_retrytasks.records import (
    Claim,
    Completion,
    Fail,
    Interrupt,
    LostRun,
    Retry,
    RunReport,
    Snooze,
    Succeed,
)
from django_retrytasks.store.rows import ATTEMPT_VALUES
from testproject.demo.concurrency_tasks import noop

from .conftest import Clock


def report(clock: Clock, outcome: str, error: str = "") -> RunReport:
    return RunReport(outcome, clock(), "w", error_type=error, error_message=error and "boom")


def test_every_transition_is_stored_in_one_batch_and_each_is_fenced(db: None, clock: Clock) -> None:
    ids = noop.batch_defer(*({} for _ in range(6)))
    claims = {claim.record.id: claim for claim in store.claim_jobs(now=clock(), limit=6)}
    succeed, retry, snooze, fail, interrupt, fenced_off = (claims[job_id] for job_id in ids)
    Job.objects.filter(pk=fenced_off.record.id).update(started_at=clock() + timedelta(seconds=9))
    clock.advance(seconds=2)
    later = clock() + timedelta(minutes=5)
    decision = RetryDecision(retry_in={"minutes": 5}, priority=7, queue="slow", lock="l")
    lost = LostRun(claim=fail, consecutive_losses=2, worker_name="dead")
    completions = [
        Completion(succeed, report(clock, "succeeded"), Succeed({"ok": [1, 2]})),
        Completion(retry, report(clock, "failed", "E"), Retry(later, decision, "retry in 300s")),
        Completion(snooze, report(clock, "snoozed"), Snooze(later, "snoozed"), counted=False),
        Completion(fail, report(clock, "lost", "W"), Fail("held", held=True), lost=lost),
        Completion(interrupt, report(clock, "interrupted"), Interrupt("shutdown"), counted=False),
        Completion(fenced_off, report(clock, "succeeded"), Succeed(None)),
    ]
    assert store.complete(completions) == [True, True, True, True, True, False]

    def job(claim: Claim) -> Job:
        return Job.objects.get(pk=claim.record.id)

    done = job(succeed)
    assert (done.status, done.attempts, done.return_value, done.finished_at) == (
        "succeeded",
        1,
        {"ok": [1, 2]},
        clock(),
    )
    moved = job(retry)
    assert (moved.status, moved.attempts, moved.scheduled_at, moved.scheduled_later) == (
        "todo",
        1,
        later,
        True,
    )
    assert (moved.priority, moved.queue, moved.lock, moved.consecutive_losses) == (
        7,
        "slow",
        "l",
        0,
    )
    snoozed = job(snooze)
    assert (snoozed.status, snoozed.attempts, snoozed.snoozes) == ("todo", 0, 1)
    held = job(fail)
    assert (held.status, held.attempts, held.held, held.consecutive_losses) == (
        "failed",
        1,
        True,
        3,
    )
    back = job(interrupt)
    assert (back.status, back.attempts, back.scheduled_at, back.scheduled_later) == (
        "todo",
        0,
        clock(),
        False,
    )
    assert job(fenced_off).status == "doing"
    assert not Attempt.objects.filter(job_id=fenced_off.record.id).exists()
    attempt = Attempt.objects.get(job_id=retry.record.id)
    assert (attempt.number, attempt.outcome, attempt.retry_at, attempt.decision) == (
        1,
        "failed",
        later,
        "retry in 300s",
    )
    assert (attempt.started_at, attempt.finished_at, attempt.error_type) == (
        retry.started_at,
        clock(),
        "E",
    )


def test_a_second_outcome_gets_the_next_attempt_number(db: None, clock: Clock) -> None:
    noop.defer()
    [first] = store.claim_jobs(now=clock(), limit=1)
    store.complete([Completion(first, report(clock, "interrupted"), Interrupt("x"), counted=False)])
    [second] = store.claim_jobs(now=clock.advance(seconds=1), limit=1)
    store.complete([Completion(second, report(clock, "succeeded"), Succeed(3))])
    numbers = Attempt.objects.filter(job_id=first.record.id).order_by("number")
    assert list(numbers.values_list("number", "outcome")) == [(1, "interrupted"), (2, "succeeded")]


def test_every_column_of_an_attempt_is_written() -> None:
    columns = {
        field.column for field in Attempt._meta.local_concrete_fields if not field.primary_key
    }
    assert columns == {column for column, _ in ATTEMPT_VALUES}


def test_an_outcome_stored_twice_is_stored_once(db: None, clock: Clock) -> None:
    """A batch written again after its commit's reply was lost: fenced off, no second row."""
    ids = noop.batch_defer({}, {})
    first, second = store.claim_jobs(now=clock(), limit=2)
    stored = [Completion(first, report(clock, "succeeded"), Succeed(1))]
    assert store.complete(stored) == [True]
    again = [*stored, Completion(second, report(clock, "succeeded"), Succeed(2))]
    assert store.complete(again) == [False, True]
    assert Attempt.objects.filter(job_id__in=ids).count() == 2
    assert Attempt.objects.get(job_id=first.record.id).outcome == "succeeded"


#: Text that a statement's own encoding of rows could get wrong: quotes, backslashes, braces,
#: commas, newlines, JSON's escapes, non-ASCII letters and a character outside the BMP.
AWKWARD = "a \"quoted\" \\ back\\slash, {brace} [list] \n new line \\u0041 é ß 中 🙂 'single'"


def test_a_batch_larger_than_a_values_list_reads_back_exactly(db: None, clock: Clock) -> None:
    """Twenty outcomes (PostgreSQL sends more than eight as one JSON document)."""
    ids = noop.batch_defer(*({} for _ in range(20)))
    claims = {claim.record.id: claim for claim in store.claim_jobs(now=clock(), limit=20)}
    clock.advance(seconds=1)
    later = clock() + timedelta(minutes=1)
    decision = RetryDecision(retry_in={"minutes": 1}, queue=AWKWARD[:20], lock=AWKWARD)
    completions = []
    for number, job_id in enumerate(ids):
        if number % 2:
            failed = RunReport("failed", clock(), AWKWARD, "E", AWKWARD, AWKWARD * 3)
            completions.append(Completion(claims[job_id], failed, Retry(later, decision, AWKWARD)))
        else:
            value = {AWKWARD: [AWKWARD, number, None, 1.5, True]}
            completions.append(
                Completion(claims[job_id], report(clock, "succeeded"), Succeed(value))
            )
    assert store.complete(completions) == [True] * 20
    for number, job_id in enumerate(ids):
        job = Job.objects.get(pk=job_id)
        attempt = Attempt.objects.get(job_id=job_id)
        assert attempt.finished_at == clock()
        if number % 2:
            assert (job.status, job.scheduled_at, job.queue, job.lock) == (
                "todo",
                later,
                AWKWARD[:20],
                AWKWARD,
            )
            assert (attempt.worker_name, attempt.error_message, attempt.traceback) == (
                AWKWARD,
                AWKWARD,
                AWKWARD * 3,
            )
            assert (attempt.retry_at, attempt.decision) == (later, AWKWARD)
        else:
            assert job.status == "succeeded"
            assert job.return_value == {AWKWARD: [AWKWARD, number, None, 1.5, True]}


def test_a_batch_of_new_jobs_larger_than_a_values_list_reads_back_exactly(db: None) -> None:
    kwargs = [{"text": AWKWARD * number, "nested": {AWKWARD: [number]}} for number in range(20)]
    ids = noop.configure(lock=AWKWARD, queue=AWKWARD[:30], priority=-3).batch_defer(*kwargs)
    stored = {job.id: job for job in Job.objects.filter(pk__in=ids)}
    assert [stored[job_id].task_kwargs for job_id in ids] == kwargs
    assert {(job.lock, job.queue, job.priority) for job in stored.values()} == {
        (AWKWARD, AWKWARD[:30], -3)
    }


def test_one_job_and_a_batch_of_jobs_are_stored_alike(db: None) -> None:
    """defer() of one job has a statement of its own on PostgreSQL (migration 0012), MariaDB and MySQL."""
    options = {"lock": AWKWARD, "queue": "alike", "priority": -3}
    one = noop.configure(queueing_lock="q", **options).defer(text=AWKWARD)
    first, second = noop.configure(**options).batch_defer({"text": AWKWARD}, {})
    unlike = {"id", "created_at", "scheduled_at", "queueing_lock", "task_kwargs"}
    columns = [field.attname for field in Job._meta.concrete_fields if field.name not in unlike]
    rows = {row.pop("id"): row for row in Job.objects.values("id", *columns)}
    assert rows[one] == rows[first] == rows[second]
    assert rows[one]["status"] == "todo" and rows[one]["lock"] == AWKWARD
    assert Job.objects.get(pk=one).queueing_lock == "q"
    assert Job.objects.get(pk=one).task_kwargs == Job.objects.get(pk=first).task_kwargs


def test_a_plain_read_tells_whether_a_claim_could_take_a_job(db: None, clock: Clock) -> None:
    """What a burst worker asks before it stops: the claim's own rules, without its locks."""
    assert not store.any_claimable(now=clock())
    noop.configure(schedule_in={"hours": 1}).defer()
    assert not store.any_claimable(now=clock())  # not due yet
    assert store.any_claimable(now=clock() + timedelta(hours=2))
    noop.configure(lock="l").defer()
    noop.configure(lock="l").defer()
    assert store.any_claimable(now=clock())
    [running] = store.claim_jobs(now=clock(), limit=1)
    assert running.record.lock == "l"
    assert not store.any_claimable(now=clock())  # its lock's next job waits its turn
    store.complete([Completion(running, report(clock, "succeeded"), Succeed(None))])
    assert store.any_claimable(now=clock())
    assert not store.any_claimable(now=clock(), queues=["elsewhere"])


def test_a_lock_whose_first_job_is_not_due_holds_the_rest_back(db: None, clock: Clock) -> None:
    noop.configure(lock="l", schedule_in={"hours": 1}).defer()
    noop.configure(lock="l").defer()
    assert not store.any_claimable(now=clock())
    assert store.claim_jobs(now=clock(), limit=5) == []
