"""Django's task framework (``django.tasks``) on django-retrytasks' backend.

What Django's documentation for tasks promises, run against ``RetryTasksBackend`` with
the real worker, plus the retries that django.tasks itself does not have.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

# The tasks these tests drive use @task(retry=...), which needs Django 6.1 (and django.tasks
# 6.0): tests/conftest.py leaves this module out on older Django, where
# test_djangotasks_60.py and test_django52.py take its place.
from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend, task, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.test import override_settings

from django_retrytasks import RetryStrategy, signals, store
from django_retrytasks.backends import BACKEND_DEFAULT, RetryTask, RetryTasksBackend
from django_retrytasks.models import Attempt, Job, JobStatus
from django_retrytasks.models import Worker as WorkerRow
from django_retrytasks.store import operations
from django_retrytasks.testing import run_due_jobs
from django_retrytasks.worker import Worker
from testproject.demo import djangotasks_django as tasks
from testproject.demo.tasks import noop
from tests.conftest import ROOT, Clock, manage
from tests.docs_examples import compiled, python_blocks

pytestmark = pytest.mark.django_db

BACKEND = "django_retrytasks.backends.RetryTasksBackend"


def job_of(result: Any) -> Job:
    return Job.objects.get(pk=int(result.id))


def run(clock: Clock, **options: Any) -> int:
    return run_due_jobs(now=clock(), **options)


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    tasks.calls.clear()
    yield
    tasks.calls.clear()


# --- defining and enqueueing ---------------------------------------------------------------


def test_the_backend_is_configured_with_all_features() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, RetryTasksBackend)
    assert backend.supports_defer
    assert backend.supports_priority
    assert backend.supports_get_result
    assert backend.supports_async_task
    assert isinstance(tasks.add, RetryTask)
    assert backend.check() == []


def test_enqueue_stores_an_ordinary_job() -> None:
    result = tasks.echo.enqueue(1, (2, 3), name="x")

    assert result.status == TaskResultStatus.READY
    assert result.id == str(int(result.id))
    assert result.backend == "default"
    assert result.args == [1, [2, 3]]
    assert result.kwargs == {"name": "x"}
    assert result.errors == [] and result.worker_ids == [] and result.attempts == 0
    assert result.started_at is None and result.finished_at is None
    job = job_of(result)
    assert job.status == JobStatus.TODO
    assert job.backend == "default"
    assert job.task_name == "testproject.demo.djangotasks_django.echo" == tasks.echo.module_path
    assert job.task_kwargs == {"args": [1, [2, 3]], "kwargs": {"name": "x"}}
    assert job.queue == "default" and job.priority == 0
    assert result.enqueued_at == job.created_at


def test_arguments_must_be_json_and_nothing_is_stored_otherwise() -> None:
    with pytest.raises(TypeError, match="Unsupported type"):
        tasks.echo.enqueue({1, 2})
    with pytest.raises(TypeError, match="non-string key"):
        tasks.echo.enqueue({1: "a"})
    with pytest.raises(TypeError, match="JSON cannot hold"):
        tasks.echo.enqueue(float("nan"))
    assert not Job.objects.exists()


def test_enqueue_inside_a_rolled_back_transaction_leaves_nothing() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.add.enqueue(1, 2)
        assert Job.objects.count() == 1
        raise RuntimeError("roll back")
    assert not Job.objects.exists()
    assert run_due_jobs() == 0


def test_queues_not_listed_in_QUEUES_are_refused() -> None:
    with pytest.raises(InvalidTask, match="Queue 'nowhere' is not valid"):
        tasks.add.using(queue_name="nowhere")
    with pytest.raises(InvalidTask, match="Queue 'nowhere' is not valid"):
        task(queue_name="nowhere")(tasks.not_a_task)
    with pytest.raises(InvalidTask, match="priority must be a whole number"):
        tasks.add.using(priority=101)
    with pytest.raises(InvalidTask, match="aware datetime"):
        tasks.add.using(run_after=datetime(2030, 1, 1))
    assert not Job.objects.exists()


def test_retry_is_validated_when_the_task_is_defined() -> None:
    with pytest.raises(InvalidTask, match="retry must be True, False, None, an int"):
        task(retry="often")(tasks.not_a_task)
    with pytest.raises(InvalidTask, match="retry must be >= 0"):
        task(retry=-1)(tasks.not_a_task)
    with pytest.raises(ValueError, match="max_attempts must be >= 0"):
        RetryStrategy(max_attempts=-1)
    with pytest.raises(ImproperlyConfigured, match=r"\['OPTIONS'\]\['RETRY'\]: retry must be"):
        RetryTasksBackend("broken", {"OPTIONS": {"RETRY": "often"}})
    # Each accepted value becomes the same strategy app.task(retry=...) would use.
    assert tasks.flaky.retry == RetryStrategy(max_attempts=5)
    assert tasks.never_retried.retry is None
    assert tasks.add.retry is BACKEND_DEFAULT
    assert isinstance(tasks.moved_on_retry.retry, tasks.MoveToEmails)
    # The strategy is part of the task: it survives using() and pickling.
    assert tasks.flaky.using(priority=3).retry == RetryStrategy(max_attempts=5)
    assert pickle.loads(pickle.dumps(tasks.flaky)) == tasks.flaky


# --- running, results ---------------------------------------------------------------------


def test_run_get_result_refresh_and_return_value(clock: Clock) -> None:
    result = tasks.add.enqueue(2, 3)
    with pytest.raises(ValueError, match="Task has not finished yet"):
        _ = result.return_value

    assert run(clock) == 1

    assert result.status == TaskResultStatus.READY  # a result is a snapshot ...
    result.refresh()  # ... until refreshed
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished
    assert result.return_value == 5
    assert result.attempts == 1 and result.worker_ids == ["test-runner"]
    assert result.errors == []
    assert result.started_at == result.last_attempted_at == clock()
    assert result.finished_at == clock()
    fetched = tasks.add.get_result(result.id)
    assert fetched.return_value == 5
    assert fetched.task.func is tasks.add.func
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.SUCCESSFUL
    assert job_of(result).return_value == 5


def test_return_values_are_json(clock: Clock) -> None:
    result = tasks.echo.enqueue("a", (1, 2), flag=True)
    not_json = tasks.returns_a_set.enqueue()
    run(clock)
    result.refresh()
    assert result.return_value == {"args": ["a", [1, 2]], "kwargs": {"flag": True}}
    not_json.refresh()
    assert not_json.status == TaskResultStatus.FAILED
    assert not_json.errors[0].exception_class is TypeError
    assert "cannot be stored as JSON" in not_json.errors[0].traceback


def test_get_result_of_unknown_ids_and_of_other_tasks() -> None:
    result = tasks.add.enqueue(1, 1)
    core_job = noop.defer()
    for unknown in ("999999999", "abc", "", " 1", "1.0", str(core_job), "9" * 40):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(unknown)
    with pytest.raises(TaskResultMismatch):
        tasks.echo.get_result(result.id)


def test_priority_runs_higher_first(clock: Clock) -> None:
    tasks.record_call.using(priority=-5).enqueue("low")
    tasks.record_call.enqueue("normal")
    high = tasks.record_call.using(priority=50).enqueue("high")
    assert job_of(high).priority == 50
    run(clock)
    assert tasks.calls == ["high", "normal", "low"]
    assert tasks.record_call.get_result(high.id).task.priority == 50


def test_queue_name_decides_which_workers_run_it(clock: Clock) -> None:
    in_emails = tasks.record_call.enqueue("emails")
    in_default = tasks.record_call.using(queue_name="default").enqueue("default")
    assert job_of(in_emails).queue == "emails"
    assert run(clock, queues=["default"]) == 1
    assert tasks.calls == ["default"]
    assert run(clock, queues=["emails"]) == 1
    assert tasks.calls == ["default", "emails"]
    in_default.refresh()
    assert in_default.task.queue_name == "default"


def test_run_after_waits(clock: Clock) -> None:
    later = clock() + timedelta(minutes=10)
    result = tasks.add.using(run_after=later).enqueue(1, 2)
    assert result.task.run_after == later
    assert job_of(result).scheduled_at == later
    assert run(clock) == 0
    assert default_task_backend.get_result(result.id).task.run_after == later
    clock.advance(minutes=10)
    assert run(clock) == 1
    result.refresh()
    assert result.return_value == 3


def test_async_tasks_run_on_the_worker(clock: Clock) -> None:
    plain = tasks.async_add.enqueue(20, 22)
    retried = tasks.async_flaky.enqueue()
    run(clock)
    plain.refresh()
    assert plain.return_value == 42
    retried.refresh()
    assert retried.status == TaskResultStatus.SUCCESSFUL
    assert retried.return_value == 2  # context.attempt of the second run
    assert [error.exception_class for error in retried.errors] == [ConnectionError]


def test_aenqueue_and_aget_result(clock: Clock) -> None:
    result = async_to_sync(tasks.add.aenqueue)(4, 5)
    run(clock)
    fetched = async_to_sync(tasks.add.aget_result)(result.id)
    assert fetched.return_value == 9
    async_to_sync(result.arefresh)()
    assert result.return_value == 9


# --- retries ----------------------------------------------------------------------------------


def test_fails_twice_then_succeeds(clock: Clock) -> None:
    result = tasks.flaky.enqueue(failures=2)
    first_run = clock()
    for _ in range(3):
        assert run(clock, max_runs=1) == 1
        result.refresh()
        clock.advance(seconds=1)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3  # TaskContext.attempt during the third run
    assert result.attempts == 3
    assert result.worker_ids == ["test-runner"] * 3
    assert len(result.errors) == 2
    assert {error.exception_class for error in result.errors} == {ValueError}
    assert result.errors[0].exception_class_path == "builtins.ValueError"
    assert "planned failure 1 of 2" in result.errors[0].traceback
    assert "planned failure 2 of 2" in result.errors[1].traceback
    assert result.started_at == first_run
    assert result.last_attempted_at == first_run + timedelta(seconds=2)
    assert job_of(result).attempts == 3


def test_a_pending_retry_is_ready(clock: Clock) -> None:
    result = tasks.flaky.enqueue(failures=1)
    assert run(clock, max_runs=1) == 1
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.attempts == 1 and len(result.errors) == 1
    assert result.finished_at is None
    assert job_of(result).is_pending_retry


def test_keeps_failing_until_the_strategy_stops(clock: Clock) -> None:
    result = tasks.always_fails.enqueue()
    assert run(clock) == 3  # retry=2: two retries, three runs
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3 and len(result.errors) == 3
    assert result.errors[-1].exception_class is RuntimeError
    assert result.finished_at == clock()
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    assert job_of(result).status == JobStatus.FAILED


def test_the_exception_filter_decides_as_in_the_core(clock: Clock) -> None:
    not_retried = tasks.only_connection_errors.enqueue("key")
    retried = tasks.only_connection_errors.enqueue("connection")
    assert run(clock, max_runs=2) == 2
    not_retried.refresh()
    retried.refresh()
    assert not_retried.status == TaskResultStatus.FAILED
    assert not_retried.errors[0].exception_class is KeyError
    assert retried.status == TaskResultStatus.READY
    assert retried.errors[0].exception_class is ConnectionError


def test_waits_as_in_the_core(clock: Clock) -> None:
    result = tasks.linear_waits.enqueue()
    start = clock()
    assert run(clock) == 1  # linear_wait=5: the first retry waits 5 s
    assert job_of(result).scheduled_at == start + timedelta(seconds=5)
    clock.advance(seconds=4)
    assert run(clock) == 0
    clock.advance(seconds=1)
    assert run(clock) == 1  # ... the second 10 s
    assert job_of(result).scheduled_at == clock() + timedelta(seconds=10)
    clock.advance(seconds=10)
    assert run(clock) == 1
    result.refresh()
    assert result.return_value == "done"
    retry_ats = list(
        Attempt.objects.filter(job_id=int(result.id)).values_list("retry_at", flat=True)
    )
    assert retry_ats == [start + timedelta(seconds=5), start + timedelta(seconds=15), None]


def test_backend_wide_default_retry(clock: Clock) -> None:
    settings = {"default": {"BACKEND": BACKEND, "QUEUES": [], "OPTIONS": {"RETRY": 2}}}
    with override_settings(TASKS=settings):
        defaulted = tasks.uses_backend_default.enqueue()
        explicit = tasks.never_retried.enqueue()
        assert tasks.uses_backend_default.retry_strategy == RetryStrategy(max_attempts=2)
        assert run(clock) == 4
        assert default_task_backend.get_result(defaulted.id).attempts == 3
        assert default_task_backend.get_result(explicit.id).attempts == 1
    # With the project's settings (no RETRY) a task that does not say is not retried.
    assert tasks.uses_backend_default.retry_strategy is None
    again = tasks.uses_backend_default.enqueue()
    assert run(clock) == 1
    again.refresh()
    assert again.status == TaskResultStatus.FAILED


def test_a_task_redefined_with_another_retry_runs_with_it(clock: Clock) -> None:
    # Django 6.0 passes no options to task_class: dataclasses.replace(task(f), retry=...) then.
    result = tasks.retried_once_the_django_6_0_way.enqueue()
    assert run(clock) == 2
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.attempts == 2


def test_a_retry_decision_may_move_the_job(clock: Clock) -> None:
    result = tasks.moved_on_retry.enqueue()
    assert run(clock) == 2
    result.refresh()
    job = job_of(result)
    assert (job.queue, job.priority) == ("emails", 1)
    assert result.return_value == 1  # the Task of the run had the job's new priority
    assert default_task_backend.get_result(result.id).task.queue_name == "emails"


def test_a_job_whose_worker_died_is_recovered(clock: Clock) -> None:
    retried = tasks.flaky.enqueue(failures=0)
    not_retried = tasks.add.enqueue(1, 1)
    dead = WorkerRow.objects.create(name="dead-worker", last_heartbeat=clock() - timedelta(hours=1))
    assert len(store.claim_jobs(now=clock(), limit=2, worker_id=dead.pk)) == 2
    running = default_task_backend.get_result(retried.id)
    assert running.status == TaskResultStatus.RUNNING
    assert running.worker_ids == ["dead-worker"]

    finished: list[Any] = []

    def on_finished(sender: type, task_result: Any, **kwargs: Any) -> None:
        finished.append((task_result.id, task_result.status))

    task_finished.connect(on_finished)
    try:
        rescuer = Worker(clock=clock, install_signal_handlers=False, name="rescuer")
        assert rescuer.recover_lost_jobs(now=clock()) == 2
    finally:
        task_finished.disconnect(on_finished)

    retried.refresh()
    assert retried.status == TaskResultStatus.READY
    assert retried.errors[0].exception_class_path == "django_retrytasks.exceptions.WorkerLost"
    assert retried.attempts == 1
    not_retried.refresh()
    assert not_retried.status == TaskResultStatus.FAILED
    assert finished == [(not_retried.id, TaskResultStatus.FAILED)]

    assert run(clock) == 1
    retried.refresh()
    assert retried.status == TaskResultStatus.SUCCESSFUL
    assert retried.return_value == 2 and retried.attempts == 2


def test_a_snooze_waits_without_using_up_an_attempt(clock: Clock) -> None:
    result = tasks.snoozes_once.enqueue()
    assert run(clock) == 1
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.attempts == 0 and result.errors == []
    clock.advance(seconds=30)
    assert run(clock) == 1
    result.refresh()
    assert result.return_value == 1 and result.attempts == 1


# --- signals ----------------------------------------------------------------------------------


@dataclass
class Seen:
    signal: str
    status: str
    attempts: int
    had_exception: bool


@pytest.fixture
def seen() -> Iterator[list[Seen]]:
    events: list[Seen] = []

    def receiver(name: str) -> Any:
        def record(sender: type, task_result: Any, **kwargs: Any) -> None:
            assert sender is RetryTasksBackend
            events.append(
                Seen(name, task_result.status, task_result.attempts, sys.exc_info()[0] is not None)
            )

        return record

    receivers = {
        task_enqueued: receiver("enqueued"),
        task_started: receiver("started"),
        task_finished: receiver("finished"),
    }
    for signal, function in receivers.items():
        signal.connect(function)
    yield events
    for signal, function in receivers.items():
        signal.disconnect(function)


def test_signals_started_each_run_finished_once(clock: Clock, seen: list[Seen]) -> None:
    tasks.flaky.enqueue(failures=2)
    run(clock)
    assert seen == [
        Seen("enqueued", "READY", 0, False),
        Seen("started", "RUNNING", 1, False),
        Seen("started", "RUNNING", 2, False),
        Seen("started", "RUNNING", 3, False),
        Seen("finished", "SUCCESSFUL", 3, False),
    ]


def test_task_finished_for_a_failure_is_sent_inside_the_exception_handler(
    clock: Clock, seen: list[Seen], caplog: pytest.LogCaptureFixture
) -> None:
    tasks.always_fails.enqueue()
    with caplog.at_level("ERROR", logger="django.tasks"):
        run(clock)
    assert seen[-1] == Seen("finished", "FAILED", 3, True)
    assert [event.signal for event in seen].count("finished") == 1
    # Django's own receiver logged the traceback of the last run.
    [logged] = [r for r in caplog.records if r.name == "django.tasks" and r.exc_info]
    assert logged.exc_info is not None
    assert str(logged.exc_info[1]) == "this task never works"


def test_the_job_signals_of_django_retrytasks_are_sent_too(clock: Clock) -> None:
    received: list[tuple[str, Any, int]] = []

    def receiver(name: str) -> Any:
        def record(sender: Any, job: Any, **kwargs: Any) -> None:
            received.append((name, sender, job.attempts))

        return record

    receivers = {
        signals.job_started: receiver("started"),
        signals.job_retry_scheduled: receiver("retry"),
        signals.job_succeeded: receiver("succeeded"),
    }
    for signal, function in receivers.items():
        signal.connect(function)
    try:
        tasks.flaky.enqueue(failures=1)
        run(clock)
    finally:
        for signal, function in receivers.items():
            signal.disconnect(function)
    assert received == [
        ("started", None, 0),
        ("retry", None, 1),
        ("started", None, 1),
        ("succeeded", None, 2),
    ]


def test_a_failing_receiver_does_not_break_the_job(clock: Clock) -> None:
    def broken(sender: type, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    task_started.connect(broken)
    try:
        result = tasks.add.enqueue(1, 2)
        run(clock)
    finally:
        task_started.disconnect(broken)
    result.refresh()
    assert result.return_value == 3


# --- what never runs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_name", "task_kwargs", "backend", "reason"),
    [
        ("tests.djangotasks_outside.boom", {}, "default", "not a registered task"),
        ("os.system", {"args": ["true"]}, "default", "not a registered task"),
        # A module of an installed app, but neither its tasks module nor a listed one.
        ("testproject.demo.djangotasks_unlisted.boom", {}, "default", "not a registered task"),
        (
            "testproject.demo.djangotasks_django.not_a_task",
            {},
            "default",
            "not a registered task",
        ),
        ("testproject.demo.tasks.noop", {}, "default", "not a django.tasks Task"),
        ("testproject.demo.no_such_module.f", {}, "default", "not a registered task"),
        ("testproject.demo.djangotasks_django.add", {"a": 1}, "default", '"args": [...]'),
        ("testproject.demo.djangotasks_django.add", {}, "elsewhere", "elsewhere"),
    ],
)
def test_only_tasks_of_this_backend_run(
    clock: Clock, task_name: str, task_kwargs: dict[str, Any], backend: str, reason: str
) -> None:
    job = Job.objects.create(task_name=task_name, task_kwargs=task_kwargs, backend=backend)
    assert run(clock) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    [attempt] = job.attempt_history.all()
    assert reason in attempt.error_message
    assert "tests.djangotasks_outside" not in sys.modules
    assert "testproject.demo.djangotasks_unlisted" not in sys.modules  # nothing imported for it
    assert tasks.calls == []
    if backend == "default":
        with pytest.raises(InvalidTask):
            default_task_backend.get_result(str(job.pk))


def test_cancelled_is_failed_and_retry_now_makes_it_ready_again(clock: Clock) -> None:
    result = tasks.add.enqueue(1, 2)
    operations.cancel([int(result.id)], now=clock())
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors == [] and result.finished_at == clock()
    operations.retry_now([int(result.id)], now=clock())
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.finished_at is None
    run(clock)
    result.refresh()
    assert result.return_value == 3


def test_checks_report_unknown_options() -> None:
    backend = RetryTasksBackend("other", {"OPTIONS": {"RETRY": 1, "RETRIES": 3}})
    [warning] = backend.check()
    assert warning.id == "django_retrytasks.W701"
    assert "RETRIES" in warning.msg


# --- the real worker ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_burst_worker_runs_them_on_its_threads() -> None:
    results = [tasks.add.enqueue(n, n) for n in range(4)]
    flaky = tasks.flaky.enqueue(failures=1)
    worker = Worker(burst=True, concurrency=2, install_signal_handlers=False, name="burst-1")
    worker.run()
    for number, result in enumerate(results):
        result.refresh()
        assert result.return_value == 2 * number
        assert result.worker_ids == ["burst-1"]
    flaky.refresh()
    assert flaky.return_value == 2 and flaky.worker_ids == ["burst-1", "burst-1"]


@pytest.mark.django_db(transaction=True)
def test_runworker_runs_a_task_of_a_module_the_setting_lists() -> None:
    # RETRYTASKS_TASK_MODULES lists the module: every process imports it at start-up.
    from testproject.demo.djangotasks_lazy import lazy_double

    result = lazy_double.enqueue(21)
    done = manage("runworker", "--burst")
    assert done.returncode == 0, done.stderr
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == 42


def test_without_django_tasks_the_backend_module_says_why() -> None:
    # A Python without the django.tasks package (as on Django 5.2), in a fresh interpreter.
    code = "import sys; sys.modules['django.tasks'] = None\nimport django_retrytasks.backends\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "ImportError: django_retrytasks.backends is a backend for Django's task" in done.stderr
    assert "which Django 6.0 added" in done.stderr
    assert "the rest of django-retrytasks" in done.stderr


def test_the_guides_examples_run(clock: Clock) -> None:
    guide = "docs/howto/django-tasks.md"
    settings_block, tasks_block = python_blocks(guide)
    settings: dict[str, Any] = {}
    exec(compiled(guide, settings_block), settings)
    backend = RetryTasksBackend("default", settings["TASKS"]["default"])
    assert backend.check() == [] and backend.default_retry == RetryStrategy(max_attempts=3)

    namespace: dict[str, Any] = {"__name__": "readme_django_tasks"}
    exec(compiled(guide, tasks_block), namespace)
    assert namespace["result"].status == TaskResultStatus.READY
    clock.advance(minutes=5)
    assert run(clock) == 2
    charge, send_receipt = namespace["charge"], namespace["send_receipt"]
    [charged] = Job.objects.filter(task_name=charge.module_path)
    assert charge.get_result(str(charged.pk)).return_value == {"order": 42, "charged": "9.90"}
    [receipt] = Job.objects.filter(task_name=send_receipt.module_path)
    assert (receipt.queue, receipt.priority) == ("emails", 10)
    assert send_receipt.get_result(str(receipt.pk)).return_value == "receipt for 42, run 1"
