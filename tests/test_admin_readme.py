"""The Python examples of the admin guide (docs/howto/admin.md) run as written."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group

from django_retrytasks import store
from django_retrytasks.models import Job, JobStatus, Outcome
from django_retrytasks.store import operations

from .conftest import Clock, run_claim
from .docs_examples import compiled, python_blocks

pytestmark = pytest.mark.django_db

ADMIN_GUIDE = "docs/howto/admin.md"


@pytest.fixture(scope="module")
def readme() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_admin"}
    reindex_example, group_example = python_blocks(ADMIN_GUIDE)
    exec(compiled(ADMIN_GUIDE, reindex_example), namespace)
    namespace["group_example"] = compiled(ADMIN_GUIDE, group_example)
    return namespace


def test_the_operators_group_gets_the_admin_permissions(readme: dict[str, Any]) -> None:
    exec(readme["group_example"], dict(readme))
    codenames = set(
        Group.objects.get(name="Job operators").permissions.values_list("codename", flat=True)
    )
    assert codenames == {
        "view_job",
        "view_worker",
        "retry_job",
        "cancel_job",
        "abort_job",
        "delete_job",
    }


def test_the_reindex_example_stops_when_asked_and_is_not_retried(
    readme: dict[str, Any], clock: Clock
) -> None:
    job_id = readme["reindex"].defer(shard_ids=[1, 2, 3])
    [claim] = store.claim_jobs(now=clock.now, limit=1)
    operations.request_abort([job_id])
    run_claim(clock=clock, claim=claim)
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.ABORTED  # although the task has retry=5
    attempt = job.attempt_history.get()
    assert (attempt.outcome, attempt.error_type) == (Outcome.ABORTED, "readme_admin.Stopped")
    assert attempt.error_message == "stopped before shard 1"

    untouched = readme["reindex"].defer(shard_ids=[1, 2, 3])
    [claim] = store.claim_jobs(now=clock.now, limit=1)
    run_claim(clock=clock, claim=claim)
    assert Job.objects.get(pk=untouched).status == JobStatus.SUCCEEDED
