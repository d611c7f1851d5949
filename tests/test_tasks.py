"""The task API: declaring tasks and deferring jobs, against the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

import django_retrytasks
from django_retrytasks import AlreadyEnqueued, App, RetryStrategy, app
from django_retrytasks.models import Job
from django_retrytasks.testing import run_due_jobs
from testproject.demo import tasks as demo

pytestmark = pytest.mark.django_db


def test_public_names() -> None:
    for name in (
        "app",
        "RetryStrategy",
        "BaseRetryStrategy",
        "RetryDecision",
        "Job",
        "JobContext",
        "AlreadyEnqueued",
        "WorkerLost",
    ):
        assert hasattr(django_retrytasks, name), name
    assert issubclass(django_retrytasks.WorkerLost, Exception)


def test_decorator_bare_and_called() -> None:
    local = App()

    @local.task
    def bare(x: int) -> int:
        return x * 2

    @local.task(name="custom", retry=3, queue="emails", priority=5, lock="l", queueing_lock="q")
    def called() -> None:
        pass

    assert bare.name == f"{__name__}.bare"
    assert bare(x=21) == 42  # still callable inline
    assert bare.retry is None and bare.queue == "default" and bare.priority == 0
    assert local.tasks == {bare.name: bare, "custom": called}
    assert called.retry == RetryStrategy(max_attempts=3)
    assert called.retry_strategy is called.retry
    assert (called.queue, called.priority, called.lock, called.queueing_lock) == (
        "emails",
        5,
        "l",
        "q",
    )


@pytest.mark.parametrize("retry", [False, 0, None])
def test_no_retry_gives_none(retry: object) -> None:
    task = App().task(retry=retry)(lambda: None)  # type: ignore[call-overload]
    assert task.retry is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue": ""}, "queue"),
        ({"priority": "high"}, "priority"),
        ({"retry": -1}, "retry"),
        ({"retry": "5"}, "retry"),
        ({"lock": 3}, "lock"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_task_options(options: dict[str, object], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        App().task(**options)(lambda: None)  # type: ignore[call-overload]


def test_defer_stores_a_waiting_job() -> None:
    job_id = demo.fail_times.defer(times=1, error="KeyError")
    assert isinstance(job_id, int)
    job = Job.objects.get(pk=job_id)
    assert job.task_name == "testproject.demo.tasks.fail_times"
    assert job.task_kwargs == {"times": 1, "error": "KeyError"}
    assert (job.status, job.attempts, job.queue, job.priority, job.lock, job.queueing_lock) == (
        "todo",
        0,
        "default",
        0,
        None,
        None,
    )
    assert job.scheduled_at is not None and job.scheduled_at <= timezone.now()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"when": datetime(2026, 1, 1)},
        {"blob": b"x"},
        {"items": {1, 2}},
        {"n": float("nan")},
        {"nested": {"ok": [1, {"bad": object()}]}},
        {"keys": {1: "a"}},
    ],
)
def test_non_json_arguments_raise_before_storing(kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError) as caught:
        demo.noop.defer(**kwargs)
    assert next(iter(kwargs)) in str(caught.value)
    assert not Job.objects.exists()


def test_defer_takes_keyword_arguments_only() -> None:
    with pytest.raises(TypeError):
        demo.noop.defer(1)  # type: ignore[call-arg]


def test_configure_schedule_in_and_at() -> None:
    before = timezone.now()
    in_ten = Job.objects.get(pk=demo.noop.configure(schedule_in={"seconds": 10}).defer())
    assert in_ten.scheduled_at is not None
    assert (
        before + timedelta(seconds=10)
        <= in_ten.scheduled_at
        <= timezone.now() + timedelta(seconds=10)
    )
    delta = Job.objects.get(pk=demo.noop.configure(schedule_in=timedelta(hours=1)).defer())
    assert delta.scheduled_at is not None and delta.scheduled_at > before + timedelta(minutes=59)
    moment = datetime(2030, 5, 1, 12, tzinfo=UTC)
    at = Job.objects.get(pk=demo.noop.configure(schedule_at=moment).defer())
    assert at.scheduled_at == moment


def test_configure_overrides_options() -> None:
    job_id = demo.noop.configure(priority=7, queue="q2", lock="L", queueing_lock="Q").defer()
    job = Job.objects.get(pk=job_id)
    assert (job.priority, job.queue, job.lock, job.queueing_lock) == (7, "q2", "L", "Q")


def test_configure_rejects_bad_schedules() -> None:
    with pytest.raises(ValueError, match="not both"):
        demo.noop.configure(schedule_at=timezone.now(), schedule_in={"seconds": 1})
    with pytest.raises(ValueError, match="aware"):
        demo.noop.configure(schedule_at=datetime(2030, 1, 1))
    with pytest.raises(TypeError, match="schedule_in"):
        demo.noop.configure(schedule_in={"fortnights": 1})
    assert not Job.objects.exists()


def test_batch_defer_all_or_nothing() -> None:
    ids = demo.fail_times.batch_defer({"times": 0}, {"times": 1}, {"times": 2})
    assert len(ids) == 3 and len(set(ids)) == 3
    assert [Job.objects.get(pk=i).task_kwargs["times"] for i in ids] == [0, 1, 2]
    with pytest.raises(TypeError):
        demo.fail_times.batch_defer({"times": 3}, {"times": object()})
    assert Job.objects.count() == 3


def test_defer_joins_the_callers_transaction() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        demo.noop.defer()
        demo.noop.batch_defer({}, {})
        raise RuntimeError("roll back")
    assert not Job.objects.exists()


def test_queueing_lock_allows_one_waiting_job() -> None:
    first = demo.noop.configure(queueing_lock="report").defer()
    with transaction.atomic():
        with pytest.raises(AlreadyEnqueued, match="report"):
            demo.noop.configure(queueing_lock="report").defer()
        # The caller's transaction is still usable after the refusal.
        demo.noop.defer()
    assert Job.objects.count() == 2
    with pytest.raises(AlreadyEnqueued):
        demo.noop.configure(queueing_lock="report").batch_defer({}, {})
    assert Job.objects.count() == 2
    run_due_jobs()
    assert Job.objects.get(pk=first).status == "succeeded"
    # Once the first job no longer waits, the lock is free again.
    demo.noop.configure(queueing_lock="report").defer()
    assert Job.objects.filter(queueing_lock="report", status="todo").count() == 1


def test_task_level_queueing_lock() -> None:
    local = App()
    task = local.task(queueing_lock="only-one")(lambda: None)
    task.defer()
    with pytest.raises(AlreadyEnqueued):
        task.defer()


def test_a_row_created_directly_is_an_ordinary_job() -> None:
    job = Job.objects.create(
        task_name="testproject.demo.tasks.fail_times", task_kwargs={"times": 0}
    )
    assert (job.status, job.priority, job.attempts, job.queue) == ("todo", 0, 0, "default")
    unscheduled = Job.objects.create(
        task_name="testproject.demo.tasks.noop", task_kwargs={}, scheduled_at=None
    )
    assert run_due_jobs() == 2
    job.refresh_from_db()
    unscheduled.refresh_from_db()
    assert (job.status, job.attempts, unscheduled.status) == ("succeeded", 1, "succeeded")


def test_default_app_registers_demo_tasks() -> None:
    assert app.tasks["testproject.demo.tasks.my_task"] is demo.my_task
