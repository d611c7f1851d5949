"""The README's quick start and the guides to tasks and retries run as written."""

from __future__ import annotations

import random
from typing import Any

import pytest

from django_retrytasks import RetryStrategy, app
from django_retrytasks.models import Job
from django_retrytasks.testing import run_due_jobs

from .docs_examples import compiled, python_blocks

PAGES = (
    ("README.md", ("Quick start in your own project",)),
    ("docs/howto/tasks.md", ()),
    ("docs/howto/retries.md", ()),
)


@pytest.mark.django_db
def test_quick_start_tasks_and_retry_guide_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace: dict[str, Any] = {"__name__": "readme"}
    for page, sections in PAGES:
        for block in python_blocks(page, *sections):
            exec(compiled(page, block), namespace)

    assert namespace["flaky_task"].retry == RetryStrategy(max_attempts=5)
    assert namespace["flaky_task_forever"].retry == RetryStrategy()
    assert namespace["my_other_task"].retry.wait == 5
    assert app.tasks["readme.send_invoice"] is namespace["send_invoice"]
    # The quick start deferred one invoice, the tasks guide five more; run them.
    assert Job.objects.filter(task_name="readme.send_invoice").count() == 6
    monkeypatch.setattr(random, "random", lambda: 0.95)
    namespace["random_retry_task"].defer()
    namespace["flaky_task"].defer()
    run_due_jobs(now=Job.objects.latest("scheduled_at").scheduled_at)
    statuses = dict(Job.objects.values_list("task_name", "status").distinct())
    assert statuses["readme.send_invoice"] == "succeeded"
    assert statuses["readme.flaky_task"] == "failed"  # six unlucky runs
    assert Job.objects.get(task_name="readme.random_retry_task").queue == "another_queue"
