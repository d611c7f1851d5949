"""The helpers users run their own tests with: run_due_jobs(advance=...), the
``retrytasks_runner`` fixture (a pytest plugin) and the ``TestCase`` mixin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import TestCase

from django_retrytasks import pytest_plugin, testing
from django_retrytasks.models import Job
from django_retrytasks.testing import JobRunner, RetryTasksTestMixin, run_due_jobs
from testproject.demo import ops_tasks

from .conftest import Clock


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    ops_tasks.calls.clear()
    yield
    ops_tasks.calls.clear()


@pytest.mark.django_db
def test_advance_runs_retries_to_the_end_without_waiting(clock: Clock) -> None:
    job_id = ops_tasks.flaky_twice.defer(key="advance")
    assert run_due_jobs(now=clock()) == 1  # without advance: the retry in 60 s waits
    assert Job.objects.get(pk=job_id).status == "todo"
    assert run_due_jobs(now=clock(), advance=True) == 2
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("succeeded", 3)
    runs = list(job.attempt_history.values_list("started_at", flat=True))
    assert [(moment - clock()).total_seconds() for moment in runs] == [0, 60, 120]


@pytest.mark.django_db
def test_advance_stops_at_its_horizon(clock: Clock) -> None:
    soon = ops_tasks.succeed.configure(schedule_in={"minutes": 30}).defer()
    later = ops_tasks.succeed.configure(schedule_in={"hours": 2}).defer()
    assert run_due_jobs(now=clock(), advance={"hours": 1}) == 1
    assert Job.objects.get(pk=soon).status == "succeeded"
    assert Job.objects.get(pk=later).status == "todo"
    assert run_due_jobs(now=clock(), advance=timedelta(hours=3)) == 1
    assert Job.objects.get(pk=later).status == "succeeded"


@pytest.mark.django_db
def test_advance_bounded_by_max_runs_for_endless_snoozes(clock: Clock) -> None:
    ops_tasks.snoozes_by_context.defer(until_snoozes=1000)
    assert run_due_jobs(now=clock(), advance=True, max_runs=5) == 5


def test_the_fixture_runs_jobs_with_a_movable_clock(retrytasks_runner: JobRunner) -> None:
    # No import needed: the pytest11 entry point registers the fixture.
    job_id = ops_tasks.flaky_twice.defer(key="fixture")
    assert retrytasks_runner.run() == 1
    assert retrytasks_runner.job(job_id).status == "todo"
    retrytasks_runner.advance(seconds=59)
    assert retrytasks_runner.run() == 0
    retrytasks_runner.advance(seconds=1)
    assert retrytasks_runner.run(advance=True) == 2
    assert retrytasks_runner.job(job_id).status == "succeeded"
    assert list(retrytasks_runner.jobs(ops_tasks.flaky_twice, status="succeeded")) == [
        retrytasks_runner.job(job_id)
    ]
    assert retrytasks_runner.jobs("ops.succeed").count() == 0


def test_the_fixture_is_importable_from_testing() -> None:
    assert testing.retrytasks_runner is pytest_plugin.retrytasks_runner


@pytest.mark.django_db
def test_runner_signals_and_hooks_fire_like_in_the_worker(retrytasks_runner: JobRunner) -> None:
    job_id = ops_tasks.always_fails.defer()
    assert retrytasks_runner.run(advance=True) == 3
    assert ops_tasks.calls == [("final_failure", (job_id, "failed", 3, "ValueError"))]


class MixinTests(RetryTasksTestMixin, TestCase):
    """The unittest way, inside TestCase's transaction."""

    def test_run_jobs_in_a_test_case(self) -> None:
        job_id = ops_tasks.flaky_twice.defer(key="testcase")
        self.assertEqual(self.run_jobs(), 1)
        self.assertEqual(self.run_jobs(advance=True), 2)
        job = self.job_runner.job(job_id)
        self.assertEqual((job.status, job.attempts, job.return_value), ("succeeded", 3, "ok"))
