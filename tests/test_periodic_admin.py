"""Schedules in the admin (list, page, Pause, Resume, Run now, permissions) and on the command line."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_retrytasks import app
from django_retrytasks.models import Job, Schedule
from django_retrytasks.tasks import Task
from tests.admin_jobs import XSS
from tests.test_admin import run_action, staff_with

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_retrytasks_schedule_changelist"
TASK = "periodic.admin_report"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def report() -> Iterator[Task]:
    """A task on the project's app with two schedules, taken away again after the test."""

    @app.periodic(cron="*/10 * * * *", kwargs={"region": "eu"}, timezone="Europe/Paris")
    @app.periodic(cron="0 3 * * *", periodic_id=XSS, kwargs={"region": XSS})
    @app.task(name=TASK)
    def admin_report(timestamp: int, region: str) -> None:
        pass

    yield admin_report
    for key in [key for key in app.schedules if key[0] == TASK]:
        del app.schedules[key]
    del app.tasks[TASK]


def rows() -> dict[str, Schedule]:
    return {row.periodic_id: row for row in Schedule.objects.filter(task_name=TASK)}


def act(client: Client, action: str, ids: list[int]) -> list[str]:
    return run_action(client, action, ids, changelist=CHANGELIST)


def action_choices(client: Client) -> list[str]:
    form = client.get(reverse(CHANGELIST)).context["action_form"]
    return [] if form is None else [name for name, _ in form.fields["action"].choices][1:]


def test_the_list_shows_the_schedules_declared_in_code(admin_client: Client, report: Task) -> None:
    assert not Schedule.objects.exists()
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    html = response.content.decode()
    assert set(rows()) == {"", XSS}  # stored by the list itself, before any worker ran
    assert "*/10 * * * *" in html and "Europe/Paris" in html and "0 3 * * *" in html
    assert html.count(">active<") == 2
    assert re.search(r">in \d+ (s|min)</span>", html)  # the next tick of */10, relative
    assert XSS not in html
    assert "&lt;script&gt;" in html
    assert action_choices(admin_client) == ["pause", "resume", "run_now"]


def test_the_page_of_a_schedule_shows_its_next_ticks_and_arguments(
    admin_client: Client, report: Task
) -> None:
    admin_client.get(reverse(CHANGELIST))
    row = rows()[""]
    html = admin_client.get(
        reverse("admin:django_retrytasks_schedule_change", args=[row.pk])
    ).content.decode()
    assert "Next 5 ticks" in html
    ticks = re.findall(r"<li>(\d{4}-\d\d-\d\d \d\d:\d0:00[+]0[12]:00)</li>", html)  # Paris
    assert len(ticks) == 5
    assert "&quot;region&quot;: &quot;eu&quot;" in html
    assert "&quot;timestamp&quot;: &quot;&lt;the tick&gt;&quot;" in html


def test_pause_resume_and_run_now(admin_client: Client, report: Task) -> None:
    admin_client.get(reverse(CHANGELIST))
    row = rows()[""]

    assert act(admin_client, "pause", [row.pk]) == [
        f"Pause: {TASK} paused: no worker defers their ticks until they are resumed."
    ]
    row.refresh_from_db()
    assert row.paused_at is not None
    assert "paused" in admin_client.get(reverse(CHANGELIST)).content.decode()
    assert act(admin_client, "pause", [row.pk]) == [
        "Pause: no schedule changed.",
        f"Pause: skipped {TASK} because it is already paused.",
    ]

    before = math.floor(timezone.now().timestamp())
    assert act(admin_client, "run_now", [row.pk]) == [
        f"Run now: {TASK} deferred a job to run at once."
    ]
    job = Job.objects.get()
    assert job.task_name == TASK
    assert job.task_kwargs["region"] == "eu"
    assert before <= job.task_kwargs["timestamp"] <= math.floor(timezone.now().timestamp())
    row.refresh_from_db()
    assert row.last_job_id == job.pk
    listed = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert reverse("admin:django_retrytasks_job_change", args=[job.pk]) in listed

    act(admin_client, "resume", [row.pk])
    row.refresh_from_db()
    assert row.paused_at is None
    assert row.active_since >= job.created_at
    entries = LogEntry.objects.filter(object_id=str(row.pk)).order_by("id")
    assert [entry.change_message for entry in entries] == ["Pause", "Run now", "Resume"]


def test_a_schedule_no_longer_in_the_code_is_shown_and_not_run(admin_client: Client) -> None:
    gone = Schedule.objects.create(task_name="gone.report", periodic_id="old")
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "not declared in the code" in html
    assert act(admin_client, "run_now", [gone.pk]) == [
        "Run now: no schedule changed.",
        "Run now: skipped gone.report[old] because it is not declared in the code: no worker "
        "defers it.",
    ]
    assert not Job.objects.exists()


def test_staff_without_permissions_gets_403(django_user_model: type[User], report: Task) -> None:
    client = staff_with(django_user_model)
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert not Schedule.objects.exists()


def test_the_view_permission_sees_but_cannot_act(
    django_user_model: type[User], report: Task
) -> None:
    client = staff_with(django_user_model, "view_schedule")
    assert client.get(reverse(CHANGELIST)).status_code == 200
    assert action_choices(client) == []
    row = rows()[""]
    for action in ("pause", "run_now"):
        client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [str(row.pk)]})
    row.refresh_from_db()
    assert row.paused_at is None
    assert not Job.objects.exists()
    page = reverse("admin:django_retrytasks_schedule_change", args=[row.pk])
    assert client.post(page, {"periodic_id": "changed"}).status_code == 403
    assert client.get(reverse("admin:django_retrytasks_schedule_add")).status_code == 403


@pytest.mark.parametrize(
    ("codename", "actions"),
    [("pause_schedule", ["pause", "resume"]), ("run_schedule", ["run_now"])],
)
def test_each_action_needs_its_permission(
    django_user_model: type[User], report: Task, codename: str, actions: list[str]
) -> None:
    client = staff_with(django_user_model, "view_schedule", codename)
    assert action_choices(client) == actions


def test_non_staff_users_are_sent_to_the_login_page(
    django_user_model: type[User], report: Task
) -> None:
    user = django_user_model.objects.create_user(username="visitor", is_staff=False)
    client = Client()
    client.force_login(user)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


# --- the command line ------------------------------------------------------------------------------


def test_retrytasks_schedules_lists_them(report: Task) -> None:
    out = StringIO()
    call_command("retrytasks", "schedules", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{TASK} cron=*/10 * * * * tz=Europe/Paris active next=")
    assert "last_tick=- last_job=-" in lines[0]
    assert lines[1].startswith(f"{TASK}[{XSS}] cron=0 3 * * * tz=UTC active")

    Schedule.objects.create(task_name="gone.report")
    out = StringIO()
    call_command("retrytasks", "schedules", "--json", stdout=out)
    listed = json.loads(out.getvalue())
    assert [(item["task_name"], item["periodic_id"], item["state"]) for item in listed] == [
        ("gone.report", "", "not declared"),
        (TASK, "", "active"),
        (TASK, XSS, "active"),
    ]
    assert listed[1]["next_tick"].endswith(("+01:00", "+02:00"))
    assert listed[0]["cron"] is None


def test_retrytasks_schedules_without_any() -> None:
    out = StringIO()
    call_command("retrytasks", "schedules", stdout=out)
    assert out.getvalue() == "No periodic schedules.\n"
