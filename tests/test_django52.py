"""Django 5.2 LTS has no django.tasks: the backend module says so, everything else works.

Collected on Django < 6.0 only (tests/conftest.py), where test_djangotasks.py is left out;
the rest of the suite runs on 5.2 as on any version.
"""

from __future__ import annotations

import importlib
import importlib.util
from io import StringIO

import pytest
from django.core.management import call_command

from django_retrytasks.models import Job
from django_retrytasks.testing import run_due_jobs
from testproject.demo import tasks as demo

from .conftest import Clock


def test_importing_the_backend_raises_an_import_error_saying_why() -> None:
    assert importlib.util.find_spec("django.tasks") is None
    with pytest.raises(ImportError) as raised:
        importlib.import_module("django_retrytasks.backends")
    message = str(raised.value)
    assert "a backend for Django's task framework (django.tasks), which Django 6.0 added" in message
    assert "this is Django 5.2" in message
    assert "the rest of django-retrytasks (app.task, defer(), runworker, the admin)" in message


@pytest.mark.django_db
def test_checks_pass_and_migrations_match_the_models_with_a_tasks_setting() -> None:
    # testproject's settings name the backend in TASKS, which Django 5.2 ignores.
    call_command("check", stdout=StringIO())
    call_command("makemigrations", "django_retrytasks", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.django_db
def test_a_job_is_retried_and_succeeds(clock: Clock) -> None:
    job_id = demo.fail_times.defer(times=2)
    assert run_due_jobs(now=clock(), advance=True) == 3
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("succeeded", 3)
