"""The README's Python examples run as written."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest

from django_retrytasks import RetryStrategy, app
from django_retrytasks.models import Job
from django_retrytasks.testing import run_due_jobs

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(*sections: str) -> list[str]:
    text = README.read_text()
    blocks = []
    for section in sections:
        start = text.index(f"\n## {section}\n")
        end = text.find("\n## ", start + 1)
        blocks += re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)
    return blocks


@pytest.mark.django_db
def test_quick_start_and_retry_guide_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace: dict[str, Any] = {"__name__": "readme"}
    for block in python_blocks("Quick start in your own project", "Retries"):
        exec(compile(block, str(README), "exec"), namespace)

    assert namespace["flaky_task"].retry == RetryStrategy(max_attempts=5)
    assert namespace["flaky_task_forever"].retry == RetryStrategy()
    assert namespace["my_other_task"].retry.wait == 5
    assert app.tasks["readme.send_invoice"] is namespace["send_invoice"]
    # The quick start and "Tasks and deferring" deferred six invoices; run them.
    assert Job.objects.filter(task_name="readme.send_invoice").count() == 6
    monkeypatch.setattr(random, "random", lambda: 0.95)
    namespace["random_retry_task"].defer()
    namespace["flaky_task"].defer()
    run_due_jobs(now=Job.objects.latest("scheduled_at").scheduled_at)
    statuses = dict(Job.objects.values_list("task_name", "status").distinct())
    assert statuses["readme.send_invoice"] == "succeeded"
    assert statuses["readme.flaky_task"] == "failed"  # six unlucky runs
    assert Job.objects.get(task_name="readme.random_retry_task").queue == "another_queue"
