"""Many workers, one database: exact claims, locks, queueing locks, priorities, wake-ups."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import timedelta
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import override_settings

from django_retrytasks import AlreadyEnqueued, store
from django_retrytasks.models import Attempt, Job, JobStatus
from django_retrytasks.records import Claim, Completion, RunReport, Succeed
from django_retrytasks.store import operations
from django_retrytasks.worker import Worker
from django_retrytasks.worker import listener as listener_module
from testproject.demo import concurrency_tasks
from testproject.demo.concurrency_tasks import (
    fail_then_retry_now,
    logged_run,
    move_on_retry,
    noop,
    record_order,
)

from .conftest import BEHIND_A_POOLER, ROOT, Clock, database_url, run_claim
from .docs_examples import compiled, python_blocks

LOCK_GROUPS = 8
JOBS_PER_LOCK_GROUP = 40


@pytest.fixture
def started_order() -> list[int]:
    concurrency_tasks.started_order.clear()
    yield concurrency_tasks.started_order
    concurrency_tasks.started_order.clear()


def burst_worker(**options: object) -> Worker:
    return Worker(burst=True, install_signal_handlers=False, polling_interval=0.05, **options)  # type: ignore[arg-type]


# --- several processes drain one database ----------------------------------------------------


def read_runs(log_dir: Path) -> list[tuple[int, int, str, int, int, int]]:
    runs = []
    for log in log_dir.glob("runs-*.log"):
        for line in log.read_text().splitlines():
            job_id, attempts, lock, started, ended, pid = line.split()
            runs.append((int(job_id), int(attempts), lock, int(started), int(ended), int(pid)))
    return runs


@pytest.mark.django_db(transaction=True)
def test_several_worker_processes_drain_thousands_of_jobs_exactly_once(tmp_path: Path) -> None:
    # SQLite flushes a journal to disk at every commit: fewer jobs keep the test short.
    processes, jobs = (2, 1000) if connection.vendor == "sqlite" else (4, 2000)
    unlocked = jobs - LOCK_GROUPS * JOBS_PER_LOCK_GROUP
    logged_run.batch_defer(
        *({"log_dir": str(tmp_path), "fail_once": index % 10 == 3} for index in range(unlocked))
    )
    for group in range(LOCK_GROUPS):
        logged_run.configure(lock=f"group-{group}").batch_defer(
            *(
                {"log_dir": str(tmp_path), "fail_once": index % 10 == 7}
                for index in range(JOBS_PER_LOCK_GROUP)
            )
        )
    failing = Job.objects.filter(task_kwargs__fail_once=True).count()
    assert failing == jobs // 10

    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(ROOT / "manage.py"), "runworker", "--burst", "-v0"]
    workers = [
        subprocess.Popen(
            [*command, "--concurrency=2", f"--name=drain-{index}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(processes)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * processes, outputs
    assert not any("Traceback" in output for output in outputs), outputs

    # Every job succeeded, after two runs when it failed once.
    assert Job.objects.exclude(status=JobStatus.SUCCEEDED).count() == 0
    expected_runs = {
        job_id: 2 if fail_once else 1
        for job_id, fail_once in Job.objects.values_list("pk", "task_kwargs__fail_once")
    }
    assert dict(Job.objects.values_list("pk", "attempts")) == expected_runs

    # Each run happened once and was recorded once, with its number.
    runs = read_runs(tmp_path)
    runs_per_job: dict[int, list[tuple[int, int, str, int, int, int]]] = defaultdict(list)
    for run in runs:
        runs_per_job[run[0]].append(run)
    assert {job_id: len(job_runs) for job_id, job_runs in runs_per_job.items()} == expected_runs
    attempts = defaultdict(list)
    for job_id, number, outcome in Attempt.objects.values_list("job_id", "number", "outcome"):
        attempts[job_id].append((number, outcome))
    for job_id, count in expected_runs.items():
        outcomes = ["failed"] * (count - 1) + ["succeeded"]
        assert sorted(attempts[job_id]) == list(zip(range(1, count + 1), outcomes, strict=True))

    # No job ran twice at once: its runs follow each other, attempt after attempt.
    for job_runs in runs_per_job.values():
        job_runs.sort(key=lambda run: run[3])
        assert [run[1] for run in job_runs] == list(range(len(job_runs)))
        for before, after in itertools.pairwise(job_runs):
            assert before[4] <= after[3]

    # Every lock group ran one job at a time, in the order its jobs were deferred.
    groups: dict[str, list[tuple[int, int, str, int, int, int]]] = defaultdict(list)
    for run in runs:
        if run[2] != "-":
            groups[run[2]].append(run)
    assert len(groups) == LOCK_GROUPS
    for group_runs in groups.values():
        group_runs.sort(key=lambda run: run[3])
        job_ids = [run[0] for run in group_runs]
        assert job_ids == sorted(job_ids)
        for before, after in itertools.pairwise(group_runs):
            assert before[4] <= after[3], "two jobs of one lock group overlapped"
    # The work was shared: more than one process ran jobs.
    assert len({run[5] for run in runs}) > 1


# --- claiming order and filters ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_higher_priority_runs_first_then_older(started_order: list[int]) -> None:
    priorities = [0, 5, -1, 5, 10, 0]
    ids = [record_order.configure(priority=priority).defer() for priority in priorities]
    burst_worker(concurrency=1).run()
    expected = [job_id for _, job_id in sorted(zip((-p for p in priorities), ids, strict=True))]
    assert started_order == expected


@pytest.mark.django_db(transaction=True)
def test_a_worker_takes_only_its_queues(started_order: list[int]) -> None:
    jobs = {queue: record_order.configure(queue=queue).defer() for queue in ("a", "b", "c")}
    burst_worker(queues=["a", "c"], concurrency=2).run()
    assert sorted(started_order) == sorted([jobs["a"], jobs["c"]])
    assert Job.objects.get(pk=jobs["b"]).status == JobStatus.TODO


def test_claims_are_limited_to_the_free_slots_in_one_statement(db: None, clock: Clock) -> None:
    noop.batch_defer(*({} for _ in range(5)))
    claimed = store.claim_jobs(now=clock(), limit=3)
    assert len(claimed) == 3
    assert Job.objects.filter(status=JobStatus.DOING).count() == 3
    assert len(store.claim_jobs(now=clock(), limit=10)) == 2
    assert store.claim_jobs(now=clock(), limit=10) == []


@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_the_disk_flush_for_its_own_commit_only(clock: Clock) -> None:
    noop.batch_defer({}, {})
    assert len(store.claim_jobs(now=clock(), limit=1)) == 1
    assert len(store.claim_jobs(now=clock(), limit=1)) == 1  # prepared on PostgreSQL
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"  # the session's own setting is untouched
    assert Job.objects.filter(status=JobStatus.DOING).count() == 2


def test_one_claim_takes_one_job_per_lock_group(db: None, clock: Clock) -> None:
    first, second = noop.configure(lock="L").batch_defer({}, {})
    other = noop.configure(lock="M").defer()
    claimed = store.claim_jobs(now=clock(), limit=10)
    assert sorted(claim.record.id for claim in claimed) == [first, other]
    assert store.claim_jobs(now=clock(), limit=10) == []
    assert Job.objects.get(pk=second).status == JobStatus.TODO


# --- locks -------------------------------------------------------------------------------------


def test_a_retry_holds_its_lock_group_until_it_ends(
    db: None, clock: Clock, started_order: list[int]
) -> None:
    first = fail_then_retry_now.configure(lock="L", priority=0).defer()
    later = record_order.configure(lock="L", priority=9).defer()
    claims = store.claim_jobs(now=clock(), limit=5)
    assert [claim.record.id for claim in claims] == [first]  # priority does not reorder a group
    run_claim(claims[0], clock=clock)  # fails, retried at once
    claims = store.claim_jobs(now=clock(), limit=5)
    assert [claim.record.id for claim in claims] == [first]
    run_claim(claims[0], clock=clock)
    claims = store.claim_jobs(now=clock(), limit=5)
    assert [claim.record.id for claim in claims] == [later]


def test_a_retry_decision_moves_the_job_to_another_lock_queue_and_priority(
    db: None, clock: Clock, started_order: list[int]
) -> None:
    moving = move_on_retry.configure(lock="lock-a").defer()
    same_lock = record_order.configure(lock="lock-a").defer()
    new_lock = record_order.configure(lock="lock-b", queue="moved").defer()

    run_claim(store.claim_jobs(now=clock(), limit=1)[0], clock=clock)
    job = Job.objects.get(pk=moving)
    assert (job.status, job.lock, job.priority, job.queue) == ("todo", "lock-b", 5, "moved")
    attempt = job.attempt_history.get()
    assert attempt.retry_at == clock() + timedelta(seconds=60)

    # lock-a is free at once; lock-b waits for the moved job, deferred before its other job.
    claims = store.claim_jobs(now=clock(), limit=5)
    assert [claim.record.id for claim in claims] == [same_lock]
    run_claim(claims[0], clock=clock)
    clock.advance(seconds=61)
    claims = store.claim_jobs(now=clock(), limit=5)
    assert [claim.record.id for claim in claims] == [moving]
    assert claims[0].record.lock == "lock-b"
    run_claim(claims[0], clock=clock)
    claims = store.claim_jobs(now=clock(), limit=5)
    assert [claim.record.id for claim in claims] == [new_lock]


#: Names that differ only in case, a trailing space or an accent: MariaDB's and MySQL's
#: default collations would take them for one name.
LOOKALIKE_NAMES = ["sync", "SYNC", "sync ", "sýnc"]


def test_locks_queueing_locks_and_queues_compare_exactly(db: None, clock: Clock) -> None:
    locked = [noop.configure(lock=name).defer() for name in LOOKALIKE_NAMES]
    claimed = store.claim_jobs(now=clock(), limit=10)
    assert sorted(claim.record.id for claim in claimed) == locked  # four locks, one job each
    for name in LOOKALIKE_NAMES:
        noop.configure(queueing_lock=name).defer()  # four queueing locks: none refuses another
    with pytest.raises(AlreadyEnqueued):
        noop.configure(queueing_lock="SYNC").defer()
    queued = {name: noop.configure(queue=name).defer() for name in LOOKALIKE_NAMES}
    [claim] = store.claim_jobs(now=clock(), limit=10, queues=["SYNC"])
    assert claim.record.id == queued["SYNC"]


def test_the_database_itself_enforces_the_lock_and_queueing_lock_rules(db: None) -> None:
    first, second = noop.configure(lock="L").batch_defer({}, {})
    Job.objects.filter(pk=first).update(status=JobStatus.DOING)
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=second).update(status=JobStatus.DOING)
    Job.objects.filter(pk=first).update(status=JobStatus.SUCCEEDED)
    Job.objects.filter(pk=second).update(status=JobStatus.DOING)  # the lock is free now

    waiting = Job.objects.create(task_name="noop", queueing_lock="Q")
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(task_name="noop", queueing_lock="Q")
    Job.objects.filter(pk=waiting.pk).update(status=JobStatus.DOING)
    Job.objects.create(task_name="noop", queueing_lock="Q")  # one waiting job per value


# --- queueing locks ----------------------------------------------------------------------------


def test_defer_refuses_a_second_waiting_job_with_a_queueing_lock(db: None, clock: Clock) -> None:
    first = noop.configure(queueing_lock="report").defer()
    with transaction.atomic():
        with pytest.raises(AlreadyEnqueued, match="'report'"):
            noop.configure(queueing_lock="report").defer()
        # The caller's transaction stays usable.
        assert Job.objects.count() == 1
    store.claim_jobs(now=clock(), limit=1)  # once the first runs, another may wait
    second = noop.configure(queueing_lock="report").defer()
    assert second != first


def test_a_retry_whose_queueing_lock_was_taken_meanwhile_is_kept_without_it(
    db: None, clock: Clock, started_order: list[int]
) -> None:
    retried = fail_then_retry_now.configure(queueing_lock="sync").defer()
    claim = store.claim_jobs(now=clock(), limit=1)[0]
    newer = record_order.configure(queueing_lock="sync").defer()  # allowed: the first runs

    run_claim(claim, clock=clock)  # fails; its retry may not take the queueing lock back

    retried_job = Job.objects.get(pk=retried)
    assert (retried_job.status, retried_job.attempts) == (JobStatus.TODO, 1)
    assert retried_job.queueing_lock is None
    assert Job.objects.get(pk=newer).queueing_lock == "sync"
    decision = retried_job.attempt_history.get().decision
    assert f"queueing lock 'sync' is held by waiting job #{newer}" in decision
    assert "scheduled without it" in decision
    # Neither job is lost: both run.
    clock.advance(seconds=1)
    while claims := store.claim_jobs(now=clock(), limit=1):
        run_claim(claims[0], clock=clock)
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}
    assert sorted(started_order) == sorted([retried, retried, newer])


def test_a_retry_keeps_its_queueing_lock_when_it_is_free(db: None, clock: Clock) -> None:
    retried = fail_then_retry_now.configure(queueing_lock="sync").defer()
    run_claim(store.claim_jobs(now=clock(), limit=1)[0], clock=clock)
    assert Job.objects.get(pk=retried).queueing_lock == "sync"
    with pytest.raises(AlreadyEnqueued):
        record_order.configure(queueing_lock="sync").defer()


# --- recording outcomes ------------------------------------------------------------------------


def succeeded(claim: Claim, clock: Clock) -> Completion:
    report = RunReport(outcome="succeeded", finished_at=clock(), worker_name="w")
    return Completion(claim, report, Succeed(None))


def test_successes_are_recorded_together_and_fenced(db: None, clock: Clock) -> None:
    noop.batch_defer({}, {}, {})
    first, recovered, third = store.claim_jobs(now=clock(), limit=3)
    # Another worker recovered this job meanwhile and started it again.
    Job.objects.filter(pk=recovered.record.id).update(started_at=clock() + timedelta(seconds=5))
    clock.advance(seconds=1)
    results = store.complete([succeeded(claim, clock) for claim in (first, recovered, third)])
    assert results == [True, False, True]
    assert Job.objects.get(pk=recovered.record.id).status == JobStatus.DOING
    assert not Attempt.objects.filter(job_id=recovered.record.id).exists()
    attempt = Attempt.objects.get(job_id=first.record.id)
    assert (attempt.number, attempt.outcome, attempt.worker_name) == (1, "succeeded", "w")
    assert (attempt.started_at, attempt.finished_at) == (first.started_at, clock())
    job = Job.objects.get(pk=third.record.id)
    assert (job.status, job.attempts, job.finished_at) == (JobStatus.SUCCEEDED, 1, clock())


def test_a_new_attempt_row_is_numbered_after_the_earlier_ones(db: None, clock: Clock) -> None:
    job_id = fail_then_retry_now.defer()
    run_claim(store.claim_jobs(now=clock(), limit=1)[0], clock=clock)
    run_claim(store.claim_jobs(now=clock(), limit=1)[0], clock=clock)
    assert list(
        Attempt.objects.filter(job_id=job_id).values_list("number", "outcome").order_by("number")
    ) == [(1, "failed"), (2, "succeeded")]


# --- jobs scheduled for later ----------------------------------------------------------------


def scheduled_later(job_ids: list[int]) -> list[bool]:
    flags = dict(Job.objects.filter(pk__in=job_ids).values_list("id", "scheduled_later"))
    return [flags[job_id] for job_id in job_ids]


def test_jobs_stored_for_later_stay_out_of_the_claims_until_due(db: None, clock: Clock) -> None:
    later = noop.configure(schedule_in={"hours": 1}).batch_defer({}, {})
    due = noop.defer()
    assert scheduled_later([*later, due]) == [True, True, False]
    assert [claim.record.id for claim in store.claim_jobs(now=clock(), limit=10)] == [due]
    assert scheduled_later(later) == [True, True]
    claimed = store.claim_jobs(now=clock.advance(hours=1, minutes=1), limit=10)
    assert [claim.record.id for claim in claimed] == later
    assert scheduled_later(later) == [False, False]


def test_a_retry_with_a_wait_is_stored_for_later_and_retry_now_brings_it_back(
    db: None, clock: Clock
) -> None:
    job_id = concurrency_tasks.fail_first_run.defer()
    run_claim(store.claim_jobs(now=clock(), limit=1)[0], clock=clock)
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.scheduled_later) == (JobStatus.TODO, True)
    assert store.claim_jobs(now=clock(), limit=1) == []
    operations.retry_now([job_id])
    assert scheduled_later([job_id]) == [False]
    assert [claim.record.id for claim in store.claim_jobs(now=clock(), limit=1)] == [job_id]


def test_a_job_made_for_later_without_the_mark_still_waits_for_its_time(
    db: None, clock: Clock
) -> None:
    # Rows written by hand (the ORM, SQL) do not set scheduled_later: the claim still
    # respects scheduled_at; the mark only keeps the claim fast.
    job = Job.objects.create(
        task_name="concurrency.noop", task_kwargs={}, scheduled_at=clock() + timedelta(hours=1)
    )
    assert job.scheduled_later is False
    assert store.claim_jobs(now=clock(), limit=1) == []
    claimed = store.claim_jobs(now=clock.advance(hours=2), limit=1)
    assert [claim.record.id for claim in claimed] == [job.pk]


def test_a_job_for_later_whose_time_is_cleared_by_hand_is_claimed(db: None, clock: Clock) -> None:
    job_id = noop.configure(schedule_in={"hours": 1}).defer()
    Job.objects.filter(pk=job_id).update(scheduled_at=None)  # NULL means now
    assert [claim.record.id for claim in store.claim_jobs(now=clock(), limit=1)] == [job_id]


def test_the_migration_marks_the_jobs_already_waiting_for_later(db: None) -> None:
    from django.apps import apps
    from django.utils import timezone

    migration = import_module("django_retrytasks.migrations.0007_job_scheduled_later")
    waiting = Job.objects.create(
        task_name="concurrency.noop",
        task_kwargs={},
        scheduled_at=timezone.now() + timedelta(hours=1),
    )
    due = Job.objects.create(task_name="concurrency.noop", task_kwargs={})
    # The step reads only the schema editor's connection.
    migration.mark_jobs_scheduled_later(apps, SimpleNamespace(connection=connection))
    assert scheduled_later([waiting.pk, due.pk]) == [True, False]


# --- waking up on time ---------------------------------------------------------------------------


def test_an_idle_worker_sleeps_until_the_next_retry_is_due(db: None, clock: Clock) -> None:
    worker = Worker(clock=clock, polling_interval=5, install_signal_handlers=False)
    assert worker.producer.idle_wait(clock()) == 5  # nothing waits: the polling interval
    noop.configure(schedule_at=clock() + timedelta(seconds=0.08)).defer()
    noop.configure(schedule_at=clock() + timedelta(seconds=3)).defer()
    # A job due already (its lock is held) does not make the worker spin.
    noop.configure(schedule_at=clock() - timedelta(seconds=1), lock="held").defer()
    assert 0.08 <= worker.producer.idle_wait(clock()) < 0.09
    clock.advance(seconds=1)
    assert 1.99 < worker.producer.idle_wait(clock()) <= 2.01


@pytest.mark.django_db(transaction=True)
def test_a_listening_worker_is_woken_by_jobs_of_its_queues() -> None:
    woken = threading.Event()
    listener = listener_module.Listener.start_for(using="default", queues=["mine"], wake=woken.set)
    if connection.vendor != "postgresql":
        # SQLite has no NOTIFY: workers poll (and wake at once for jobs of their own process).
        assert listener is None
        return
    assert listener is not None
    try:
        if BEHIND_A_POOLER:
            # PgBouncer and the like: the listener sees it and leaves pickup to polling.
            assert listener.pooled.wait(5)
            assert not listener.listening.is_set()
            return
        assert listener.listening.wait(5)
        assert woken.wait(5)  # one look right after (re)connecting
        woken.clear()
        with transaction.atomic():
            noop.configure(queue="others").defer()
            noop.configure(queue="mine").defer()
            time.sleep(0.05)
            assert not woken.is_set()  # not before the commit
        assert woken.wait(5)
        woken.clear()
        noop.configure(queue="others").defer()
        retried = noop.configure(queue="mine", schedule_in={"hours": 1}).defer()
        assert woken.wait(5)  # a job scheduled later: the worker recomputes its sleep
        woken.clear()
        operations.retry_now([retried])
        assert woken.wait(5)
    finally:
        listener.stop()


@pytest.mark.django_db(transaction=True)
def test_an_idle_worker_without_notify_sees_jobs_of_other_processes() -> None:
    watcher = listener_module.CommitWatcher.for_database("default")
    if connection.vendor == "postgresql":
        assert watcher is None  # PostgreSQL has LISTEN/NOTIFY
        return
    assert watcher is not None
    assert watcher.step == (
        listener_module.SQLITE_WATCH_SECONDS
        if connection.vendor == "sqlite"
        else listener_module.MYSQL_WATCH_SECONDS
    )
    with override_settings(RETRYTASKS_WATCH_INTERVAL=0.05):
        tuned = listener_module.CommitWatcher.for_database("default")
        assert tuned is not None and tuned.step == 0.05
    woken = threading.Event()
    assert not watcher.wait(woken, 0.05)  # nothing committed: it sleeps its time

    def defer_elsewhere() -> None:
        time.sleep(0.05)
        noop.defer()  # another connection, as another process would be
        connection.close()

    other = threading.Thread(target=defer_elsewhere)
    other.start()
    assert watcher.wait(woken, 30)
    other.join()
    assert Job.objects.count() == 1
    # A job stored between two waits (while the worker claimed) counts: no sleep first.
    assert not watcher.wait(woken, 0.05)
    other = threading.Thread(target=defer_elsewhere)
    other.start()
    other.join()
    started = time.monotonic()
    assert watcher.wait(woken, 30)
    assert time.monotonic() - started < 5


# --- the guides' examples ----------------------------------------------------------------------

RULES_GUIDE = "docs/howto/locks-priorities.md"
DEPLOYMENT_GUIDE = "docs/howto/deployment.md"


def test_the_guides_rules_example_runs(db: None, clock: Clock) -> None:
    namespace: dict[str, Any] = {"__name__": "readme_concurrency"}
    [rules] = python_blocks(RULES_GUIDE, "The rules")
    exec(compiled(RULES_GUIDE, rules), namespace)
    jobs = list(Job.objects.filter(task_name="readme_concurrency.sync_customer").order_by("id"))
    assert [job.task_kwargs["customer_id"] for job in jobs] == [1, 2, 3, 4, 5]
    assert [job.lock for job in jobs] == [None, "crm-api", "crm-api", "crm-api", None]
    claimed = store.claim_jobs(now=clock(), limit=10)
    # Priority first; one job of the lock group; the queueing-locked job.
    assert [claim.record.task_kwargs["customer_id"] for claim in claimed] == [1, 2, 5]


def wrapper_settings(database: dict[str, Any]) -> dict[str, Any]:
    """A DATABASES entry as Django completes it, for a ``DatabaseWrapper`` of its own."""
    return {
        **database,
        "TIME_ZONE": None,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "AUTOCOMMIT": True,
        "ATOMIC_REQUESTS": False,
    }


def test_the_guides_sqlite_settings_are_accepted(db: None, tmp_path: Path) -> None:
    from django.db.backends.sqlite3.base import DatabaseWrapper

    namespace: dict[str, Any] = {"BASE_DIR": tmp_path}
    [sqlite_settings] = python_blocks(DEPLOYMENT_GUIDE, "SQLite in production")
    exec(compiled(DEPLOYMENT_GUIDE, sqlite_settings), namespace)
    settings = wrapper_settings(namespace["DATABASES"]["default"])
    wrapper = DatabaseWrapper(settings)
    try:
        wrapper.ensure_connection()
        assert wrapper.transaction_mode == "IMMEDIATE"
        with wrapper.cursor() as cursor:
            cursor.execute("PRAGMA synchronous")
            assert cursor.fetchone()[0] == 1  # NORMAL
    finally:
        wrapper.close()


def test_the_mariadb_docs_settings_are_accepted(db: None) -> None:
    [settings_block] = python_blocks("docs/mariadb.md")
    namespace: dict[str, Any] = {}
    exec(compiled("docs/mariadb.md", settings_block), namespace)
    settings = wrapper_settings(namespace["DATABASES"]["default"])
    assert settings["ENGINE"] == "django.db.backends.mysql"
    assert settings["OPTIONS"]["charset"] == "utf8mb4"
    if connection.vendor != "mysql":
        return  # the MariaDB pass connects with them (its driver may be missing elsewhere)
    from django.db.backends.mysql.base import DatabaseWrapper

    for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT"):  # the suite's own server
        settings[key] = connection.settings_dict[key]
    wrapper = DatabaseWrapper(settings)
    assert wrapper.get_connection_params()["charset"] == "utf8mb4"
    try:
        with wrapper.cursor() as cursor:
            cursor.execute(
                "SHOW SESSION VARIABLES WHERE Variable_name IN "
                "('character_set_connection', 'tx_isolation', 'transaction_isolation')"
            )
            values = dict(cursor.fetchall())
            assert values.pop("character_set_connection") == "utf8mb4"
            assert set(values.values()) == {"READ-COMMITTED"}  # Django's default
    finally:
        wrapper.close()
