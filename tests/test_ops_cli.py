"""``manage.py retrytasks`` (stats, list, show, retry, cancel, prune), retention and checks."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_retrytasks import checks, tasks
from django_retrytasks.models import Attempt, Job
from django_retrytasks.retry import BaseRetryStrategy, RetryStrategy
from django_retrytasks.store import operations
from django_retrytasks.testing import run_due_jobs
from django_retrytasks.worker import Worker
from testproject.demo import ops_tasks

from .conftest import Clock, manage

pytestmark = pytest.mark.django_db


def command(*args: str) -> str:
    out = io.StringIO()
    call_command("retrytasks", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def finished_job(status: str, *, finished_ago: timedelta, clock: Clock, runs: int = 1) -> int:
    """A job that ended ``finished_ago`` before the clock, with ``runs`` attempt rows."""
    job = Job.objects.create(
        task_name="ops.succeed",
        status=status,
        attempts=runs,
        created_at=clock() - finished_ago - timedelta(minutes=5),
        finished_at=clock() - finished_ago,
    )
    for number in range(1, runs + 1):
        Attempt.objects.create(
            job=job,
            number=number,
            started_at=clock() - finished_ago,
            finished_at=clock() - finished_ago,
            outcome="failed" if status == "failed" else "succeeded",
        )
    return job.pk


# --- stats ---------------------------------------------------------------------------------


def test_stats_counts_states_queues_retries_and_recent_failures(clock: Clock) -> None:
    ops_tasks.succeed.defer()
    ops_tasks.succeed.configure(queue="mail").defer()
    ops_tasks.succeed.configure(schedule_in={"hours": 1}).defer()
    failing = ops_tasks.flaky_twice.defer(key="stats")
    doomed = ops_tasks.gives_up.configure(queue="mail").defer()
    run_due_jobs(now=clock(), queues=["none"])  # nothing runs: only the queue filter is used
    Job.objects.filter(pk=failing).update(scheduled_at=clock() - timedelta(minutes=10))
    run_due_jobs(now=clock())
    numbers = json.loads(command("stats", "--json"))
    assert numbers["by_state"] == {
        "todo": 2,  # the one scheduled in an hour, the retry of flaky_twice
        "doing": 0,
        "succeeded": 2,
        "failed": 1,
        "cancelled": 0,
        "aborted": 0,
    }
    assert numbers["by_queue"]["mail"]["succeeded"] == 1
    assert numbers["by_queue"]["mail"]["failed"] == 1
    assert numbers["pending_retries"] == 1
    assert numbers["scheduled_later"] == 2
    assert numbers["due_now"] == 0
    assert numbers["oldest_waiting"] is None
    assert numbers["failed_runs_last_hour"] == 2
    assert numbers["jobs_failed_last_hour"] == 1
    # The retry becomes due: it is now the oldest waiting job.
    Job.objects.filter(pk=failing).update(scheduled_at=clock() - timedelta(minutes=3))
    later = json.loads(command("stats", "--json"))
    assert later["due_now"] == 1
    assert later["oldest_waiting"]["job_id"] == failing
    # It has waited 3 minutes of the test's clock, which runs ahead of the real one.
    ahead = (clock() - timezone.now()).total_seconds()
    assert abs(later["oldest_waiting"]["waiting_seconds"] - (180 - ahead)) < 10
    assert doomed  # failed for good above
    text = command("stats")
    assert "Pending retries: 1" in text
    assert f"Oldest due job: #{failing} ops.flaky_twice" in text


# --- list and show -------------------------------------------------------------------------


def test_list_filters_by_state_task_and_queue(clock: Clock) -> None:
    waiting = ops_tasks.succeed.configure(queue="mail").defer()
    failed = ops_tasks.gives_up.defer()
    retrying = ops_tasks.flaky_twice.defer(key="list")
    run_due_jobs(now=clock(), queues=["default"])
    rows = json.loads(command("list", "--json"))
    assert [row["id"] for row in rows] == [retrying, failed, waiting]
    assert [row["id"] for row in json.loads(command("list", "--json", "--status", "failed"))] == [
        failed
    ]
    assert [r["id"] for r in json.loads(command("list", "--json", "--queue", "mail"))] == [waiting]
    assert [r["id"] for r in json.loads(command("list", "--json", "--task", "ops.gives_up"))] == [
        failed
    ]
    assert [r["id"] for r in json.loads(command("list", "--json", "--pending-retries"))] == [
        retrying
    ]
    assert "No jobs match." in command("list", "--status", "aborted")
    assert f"#{failed}" in command("list", "--limit", "5")


def test_show_prints_the_history_with_decisions_and_tracebacks(clock: Clock) -> None:
    job_id = ops_tasks.flaky_twice.defer(key="show")
    for _ in range(3):
        run_due_jobs(now=clock())
        clock.advance(minutes=2)
    shown = json.loads(command("show", str(job_id), "--json"))
    assert shown["status"] == "succeeded"
    assert [run["outcome"] for run in shown["history"]] == ["failed", "failed", "succeeded"]
    assert shown["history"][0]["decision"] == "retry in 60s"
    assert "ConnectionError: not yet" in shown["history"][0]["traceback"]
    text = command("show", str(job_id))
    assert "1. failed" in text and "builtins" not in text and "Traceback" not in text
    assert "ConnectionError: not yet" in text
    assert "Traceback" in command("show", str(job_id), "--tracebacks")
    with pytest.raises(CommandError, match="no job #999999"):
        command("show", "999999")


# --- retry and cancel ------------------------------------------------------------------------


def test_retry_and_cancel_use_the_service_checks(clock: Clock) -> None:
    failed = ops_tasks.gives_up.defer()
    succeeded = ops_tasks.succeed.defer()
    run_due_jobs(now=clock())
    waiting = ops_tasks.succeed.configure(schedule_in={"days": 1}).defer()
    out = command("retry", str(failed))
    assert f"#{failed} retried" in out
    assert Job.objects.get(pk=failed).status == "todo"
    with pytest.raises(CommandError, match="1 of the jobs were skipped"):
        command("retry", str(succeeded))
    assert Job.objects.get(pk=succeeded).status == "succeeded"
    assert f"#{waiting} cancelled" in command("cancel", str(waiting))
    assert Job.objects.get(pk=waiting).status == "cancelled"
    with pytest.raises(CommandError, match="skipped"):
        command("cancel", str(succeeded), "424242")


def test_bad_arguments_are_refused_with_a_clear_message() -> None:
    with pytest.raises(CommandError, match="is not a job id"):
        command("retry", "abc")
    with pytest.raises(CommandError, match="invalid choice"):
        command("list", "--status", "lost")
    with pytest.raises(CommandError, match="number of days > 0"):
        command("prune", "--failed-days", "-1")


# --- retention -------------------------------------------------------------------------------


def test_prune_deletes_only_old_finished_jobs_and_their_attempts(clock: Clock) -> None:
    old_ok = finished_job("succeeded", finished_ago=timedelta(days=8), clock=clock, runs=2)
    young_ok = finished_job("succeeded", finished_ago=timedelta(days=6), clock=clock)
    old_failed = finished_job("failed", finished_ago=timedelta(days=31), clock=clock, runs=3)
    young_failed = finished_job("failed", finished_ago=timedelta(days=8), clock=clock)
    old_cancelled = finished_job("cancelled", finished_ago=timedelta(days=40), clock=clock, runs=0)
    # Waiting and running jobs, however old, are never touched.
    ancient = clock() - timedelta(days=3650)
    old_waiting = Job.objects.create(
        task_name="ops.succeed", created_at=ancient, scheduled_at=ancient, finished_at=ancient
    ).pk
    old_retry = Job.objects.create(
        task_name="ops.succeed", attempts=3, created_at=ancient, finished_at=ancient
    ).pk
    Attempt.objects.create(
        job_id=old_retry, number=1, started_at=ancient, finished_at=ancient, outcome="failed"
    )
    old_running = Job.objects.create(
        task_name="ops.succeed", status="doing", created_at=ancient, started_at=ancient
    ).pk
    report = operations.prune(now=clock(), dry_run=True)
    assert report.jobs["succeeded"] == 1 and report.jobs["failed"] == 1 and report.total == 3
    assert Job.objects.count() == 8
    report = operations.prune(now=clock(), batch_size=1)
    assert report.jobs == {"succeeded": 1, "failed": 1, "cancelled": 1, "aborted": 0}
    assert report.attempts == 5
    remaining = set(Job.objects.values_list("pk", flat=True))
    assert remaining == {young_ok, young_failed, old_waiting, old_retry, old_running}
    assert not Attempt.objects.filter(job_id__in=[old_ok, old_failed, old_cancelled]).exists()
    assert Attempt.objects.filter(job_id=old_retry).count() == 1


def test_retention_comes_from_settings_and_none_keeps_for_ever(clock: Clock) -> None:
    kept = finished_job("failed", finished_ago=timedelta(days=400), clock=clock)
    gone = finished_job("succeeded", finished_ago=timedelta(hours=2), clock=clock)
    with override_settings(RETRYTASKS_RETENTION={"succeeded": timedelta(hours=1), "failed": None}):
        report = operations.prune(now=clock())
    assert report.total == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {kept}
    assert gone


def test_prune_command_with_overrides_and_dry_run(clock: Clock) -> None:
    finished_job("succeeded", finished_ago=timedelta(days=3), clock=clock)
    finished_job("failed", finished_ago=timedelta(days=3), clock=clock, runs=2)
    assert (
        command("prune")
        == "Deleted 0 jobs (succeeded 0, failed 0, cancelled 0, aborted 0) and 0 runs.\n"
    )
    out = command("prune", "--succeeded-days", "2", "--dry-run")
    assert out.startswith("Would delete 1 jobs") and Job.objects.count() == 2
    out = command("prune", "--succeeded-days", "2", "--failed-days", "2.5")
    assert out.startswith("Deleted 2 jobs") and "and 3 runs" in out
    assert Job.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_worker_prunes_in_small_batches_when_configured(clock: Clock) -> None:
    old = [
        finished_job("succeeded", finished_ago=timedelta(days=30), clock=clock) for _ in range(3)
    ]
    waiting = ops_tasks.succeed.configure(schedule_in={"days": 1}).defer()

    def burst() -> None:
        Worker(burst=True, clock=clock, install_signal_handlers=False).run()

    burst()  # pruning is off by default
    assert Job.objects.count() == 4
    with override_settings(RETRYTASKS_PRUNE_INTERVAL=60, RETRYTASKS_PRUNE_BATCH_SIZE=2):
        burst()
        assert Job.objects.filter(pk__in=old).count() == 1  # one batch of two per interval
        burst()
    assert set(Job.objects.values_list("pk", flat=True)) == {waiting}


def test_prune_runs_end_to_end_in_a_subprocess(clock: Clock) -> None:
    result = manage("retrytasks", "prune", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Would delete 0 jobs")


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RETRYTASKS_RETENTION", 7, "must be a dict"),
        ("RETRYTASKS_RETENTION", {"done": timedelta(days=1)}, "unknown key 'done'"),
        ("RETRYTASKS_RETENTION", {"failed": 30}, "must be a timedelta or None"),
        ("RETRYTASKS_PRUNE_INTERVAL", "60", "RETRYTASKS_PRUNE_INTERVAL must be a number"),
        ("RETRYTASKS_PRUNE_BATCH_SIZE", 0, "RETRYTASKS_PRUNE_BATCH_SIZE must be a whole number"),
        ("RETRYTASKS_MAX_SNOOZES", 2.5, "RETRYTASKS_MAX_SNOOZES must be a whole number"),
        ("RETRYTASKS_WATCH_INTERVAL", 0, "RETRYTASKS_WATCH_INTERVAL must be a number"),
    ],
)
def test_settings_of_the_wrong_type_fail_check_e004(name: str, value: Any, message: str) -> None:
    with override_settings(**{name: value}):
        errors = [error for error in run_checks() if error.id == "django_retrytasks.E004"]
    assert len(errors) == 1
    assert message in errors[0].msg


# --- system checks ---------------------------------------------------------------------------


def test_the_test_project_passes_every_check() -> None:
    assert [e for e in run_checks() if e.id and e.id.startswith("django_retrytasks")] == []


def test_e001_a_task_name_registered_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "_duplicate_names", set())
    local = tasks.App()
    local.task(name="ops.twice")(lambda: 1)
    local.task(name="ops.twice")(lambda: 2)
    local.task(name="ops.once")(ops_tasks.succeed.func)
    local.task(name="ops.once")(ops_tasks.succeed.func)  # the same function again is fine
    [error] = checks.check_task_names()
    assert error.id == "django_retrytasks.E001"
    assert "'ops.twice'" in error.msg


class NoDecision(BaseRetryStrategy):
    pass


@pytest.mark.parametrize(
    ("strategy", "problem"),
    [
        (RetryStrategy(retry_exceptions=[]), "retry_exceptions is empty"),
        (
            RetryStrategy(retry_exceptions=[ConnectionError], no_retry_exceptions=[OSError]),
            "ConnectionError is in retry_exceptions but also excluded",
        ),
        (RetryStrategy(wait=7200, retry_for={"hours": 1}), "longer than retry_for"),
        (NoDecision(), "implements neither"),
    ],
)
def test_e002_strategies_that_cannot_work(
    monkeypatch: pytest.MonkeyPatch, strategy: BaseRetryStrategy, problem: str
) -> None:
    assert (
        checks.strategy_problems(RetryStrategy(max_attempts=3, wait=5, retry_for={"hours": 1}))
        == []
    )
    local = tasks.App()
    local.task(name="ops.check_me", retry=strategy)(lambda: None)
    monkeypatch.setattr(tasks, "app", local)
    [error] = checks.check_strategies()
    assert error.id == "django_retrytasks.E002"
    assert "'ops.check_me'" in error.msg and problem in error.msg


def test_e003_database_features() -> None:
    assert checks.database_problems("sqlite", (3, 45, 1)) == []
    assert checks.database_problems("postgresql") == []
    [old] = checks.database_problems("sqlite", (3, 31, 1))
    assert "SQLite 3.31.1 lacks UPDATE ... RETURNING" in old
    assert checks.database_problems("mysql", server=("MariaDB", (10, 6, 0))) == []
    assert checks.database_problems("mysql", server=("MySQL", (8, 0, 1))) == []
    [old_mariadb] = checks.database_problems("mysql", server=("MariaDB", (10, 5, 27)))
    assert "MariaDB 10.5.27 lacks SELECT ... FOR UPDATE SKIP LOCKED" in old_mariadb
    [old_mysql] = checks.database_problems("mysql", server=("MySQL", (5, 7, 44)))
    assert "MySQL 5.7.44 lacks SELECT ... FOR UPDATE SKIP LOCKED" in old_mysql
    [other] = checks.database_problems("oracle")
    assert "not supported" in other
    assert checks.check_database() == []


@pytest.mark.django_db
def test_e003_reads_the_version_of_the_database_in_use() -> None:
    # With the database in reach, the check reads a MySQL server's version (and accepts
    # the one the suite runs on); without, it judges the vendor alone.
    assert checks.check_database(databases=["default"]) == []
    if connection.vendor == "mysql":
        flavour, version = checks.mysql_server(connection)
        assert flavour == ("MariaDB" if connection.mysql_is_mariadb else "MySQL")
        assert version >= (checks.MIN_MARIADB if flavour == "MariaDB" else checks.MIN_MYSQL)


def test_check_command_runs_clean_end_to_end() -> None:
    result = manage("check")
    assert result.returncode == 0, result.stderr
