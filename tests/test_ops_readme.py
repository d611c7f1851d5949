"""The Python examples on hooks, signals, logs, monitoring, retention and testing run as written."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import RequestFactory

from django_retrytasks import signals
from django_retrytasks.models import Job
from django_retrytasks.testing import JobRunner

from .conftest import Clock
from .docs_examples import compiled, python_blocks

pytestmark = pytest.mark.django_db

# In the order they build on each other: the signals' receivers listen to charge_card.
PAGES = (
    (
        "docs/howto/retries.md",
        (
            "Alert only when the last attempt fails: `on_final_failure`",
            "Control from inside a task: snooze and give up",
            "Time budgets and `Retry-After`",
        ),
    ),
    ("docs/reference/signals.md", ()),
    ("docs/reference/logging.md", ()),
    ("docs/howto/deployment.md", ("Monitoring", "Retention")),
    ("docs/howto/testing.md", ()),
)


@pytest.fixture(scope="module")
def readme() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_ops"}
    for page, sections in PAGES:
        for block in python_blocks(page, *sections):
            exec(compiled(page, block), namespace)
    return namespace


@pytest.fixture
def ops(readme: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield readme
    signals.job_retry_scheduled.disconnect(readme["note_retry"])
    signals.job_failed.disconnect(readme["mark_order_failed"], sender=readme["charge_card"])
    logging.getLogger("django_retrytasks").removeHandler(readme["handler"])


def test_hook_signals_and_log_format(ops: dict[str, Any], clock: Clock) -> None:
    signals.job_retry_scheduled.connect(ops["note_retry"])
    signals.job_failed.connect(ops["mark_order_failed"], sender=ops["charge_card"])
    stream = io.StringIO()
    ops["handler"].setStream(stream)
    job_id = ops["charge_card"].defer(order_id=5)
    JobRunner(now=clock()).run(advance=True)
    assert Job.objects.get(pk=job_id).status == "failed"
    assert ops["alerts"] == [
        f"readme_ops.charge_card #{job_id} failed for good after 3 runs: "
        "ConnectionError('the payment provider is down')"
    ]
    assert [entry[:3] for entry in ops["retry_log"][:2]] == [
        ("readme_ops.charge_card", 1, "ConnectionError"),
        ("readme_ops.charge_card", 2, "ConnectionError"),
    ]
    assert ops["retry_log"][2] == (
        "order failed",
        5,
        "not retried: max_attempts (2) reached",
    )
    lines = stream.getvalue().splitlines()
    assert (
        f"INFO job_error_retry job={job_id} task=readme_ops.charge_card attempt=1 queue=default"
        in lines[0]
    )
    assert any(line.startswith(f"ERROR job_error job={job_id}") for line in lines)


def test_snooze_give_up_and_retry_after(ops: dict[str, Any], clock: Clock) -> None:
    runner = JobRunner(now=clock())
    snoozing = ops["sync_account"].defer(account_id=1)
    deleted = ops["sync_account"].defer(account_id=13)
    assert runner.run() == 2
    assert runner.job(snoozing).snoozes == 1 and runner.job(deleted).status == "failed"
    assert runner.run(advance=True) == 1
    assert runner.job(snoozing).return_value == "synced"
    assert runner.job(snoozing).attempts == 1
    report = ops["fetch_report"].defer(report_id=3)
    runner.run()
    assert runner.job(report).scheduled_at == runner.now + timedelta(seconds=120)
    assert ops["fetch_report"].retry.retry_for == timedelta(hours=6)


def test_health_view_and_settings(ops: dict[str, Any]) -> None:
    response = ops["retrytasks_health"](RequestFactory().get("/health"))
    assert response.status_code == 503  # no worker runs in the test
    assert ops["RETRYTASKS_RETENTION"]["failed"] == timedelta(days=30)


def test_testing_examples(ops: dict[str, Any]) -> None:
    ops["test_invoice_is_synced_after_retries"](JobRunner())
    for name in ("test_invoice_is_synced", "test_without_the_mixin"):
        case = ops["InvoiceTests"](name)
        case.setUp()
        getattr(case, name)()
