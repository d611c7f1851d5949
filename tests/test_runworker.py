"""``manage.py runworker`` and the threaded worker, as users run them."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.management import call_command

from django_retrytasks.models import Attempt, Job, Worker
from django_retrytasks.worker import Worker as RetryWorker
from testproject.demo import tasks as demo
from tests.conftest import manage

pytestmark = pytest.mark.django_db(transaction=True)


def test_runworker_burst_subprocess_runs_everything_due() -> None:
    flaky = demo.fail_times.defer(times=2)
    filtered = demo.fetch_resource.defer(error="KeyError")
    waiting = demo.fetch_resource.defer(error="ConnectionError")  # retried in 5 s: left waiting
    later = demo.noop.configure(schedule_in={"hours": 1}).defer()
    unknown = Job.objects.create(task_name="gone.away", task_kwargs={}).pk

    result = manage("runworker", "--burst", "-v", "2")

    assert result.returncode == 0, result.stderr
    states = {job.pk: (job.status, job.attempts) for job in Job.objects.all()}
    assert states[flaky] == ("succeeded", 3)
    assert states[filtered] == ("failed", 1)
    assert states[waiting] == ("todo", 1)
    assert states[later] == ("todo", 0)
    assert states[unknown] == ("failed", 1)
    assert Attempt.objects.filter(job_id=flaky).count() == 3
    assert "retry in 5s" in Attempt.objects.get(job_id=waiting).decision
    assert f"Job {flaky} succeeded" in result.stderr
    assert not Worker.objects.exists()  # it unregistered on the way out


def test_runworker_only_takes_its_queues() -> None:
    mine = demo.noop.configure(queue="mine").defer()
    other = demo.noop.configure(queue="other").defer()
    call_command("runworker", "--burst", "--queues", "mine,spare")
    assert Job.objects.get(pk=mine).status == "succeeded"
    assert Job.objects.get(pk=other).status == "todo"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "at least 1"),
        (["--polling-interval", "-1"], "seconds > 0"),
        (["--queues", ","], "at least one queue"),
    ],
)
def test_bad_options_are_named(args: list[str], message: str) -> None:
    result = manage("runworker", "--burst", *args, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr


def test_worker_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        RetryWorker(concurrency=0)
    with pytest.raises(ValueError, match="polling_interval"):
        RetryWorker(polling_interval=0)


def test_threaded_worker_picks_up_new_jobs_until_stopped() -> None:
    worker = RetryWorker(polling_interval=0.05, install_signal_handlers=False, concurrency=2)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        job_ids = [demo.fail_times.defer(times=1) for _ in range(4)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if Job.objects.filter(pk__in=job_ids, status="succeeded").count() == 4:
                break
            time.sleep(0.02)
    finally:
        worker.stop()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert [Job.objects.get(pk=i).attempts for i in job_ids] == [2, 2, 2, 2]
