"""The admin as an operator's console, through Django's test client, on the real database."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_retrytasks import dashboard
from django_retrytasks.models import Attempt, Job, JobStatus, Outcome
from django_retrytasks.models import Worker as WorkerRow
from django_retrytasks.store import operations
from testproject.demo import admin_tasks
from tests.admin_jobs import JobsInEveryState, make_jobs_in_every_state
from tests.conftest import Clock, run_claim

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_retrytasks_job_changelist"
DASHBOARD = "admin:django_retrytasks_job_dashboard"
RETRY_GROUP = "admin:django_retrytasks_job_retry_group"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # The default hasher takes seconds per user on purpose; these tests make many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_filter_choices() -> None:
    # The list filters' choices are cached for a few seconds; each test has its own jobs.
    dashboard.clear_choices_cache()


@pytest.fixture
def jobs(clock: Clock) -> JobsInEveryState:
    return make_jobs_in_every_state(clock.now)


def listed_ids(client: Client, query: str = "") -> list[int]:
    response = client.get(reverse(CHANGELIST) + query)
    assert response.status_code == 200
    return [job.pk for job in response.context["cl"].result_list]


def status(job_id: int) -> str:
    return Job.objects.get(pk=job_id).status


def run_action(
    client: Client, action: str, ids: list[int], changelist: str = CHANGELIST
) -> list[str]:
    """Post an admin action on the rows ``ids`` of a list; return the messages it left."""
    response = client.post(
        reverse(changelist),
        {"action": action, "_selected_action": [str(row_id) for row_id in ids]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


def staff_with(django_user_model: type[User], *codenames: str) -> Client:
    return staff_with_name(django_user_model, "operator", *codenames)


# --- every page renders -----------------------------------------------------------------------


def test_every_page_renders_for_a_superuser(admin_client: Client, jobs: JobsInEveryState) -> None:
    assert {Job.objects.get(pk=job_id).status for job_id in jobs.all()} == set(JobStatus.values)
    WorkerRow.objects.create(name="web-1-worker", host="web-1", pid=4242, queues=["mail"])
    pages = [
        reverse("admin:index"),
        reverse("admin:app_list", args=["django_retrytasks"]),
        reverse(CHANGELIST),
        reverse(DASHBOARD),
        reverse("admin:django_retrytasks_worker_changelist"),
        *(reverse("admin:django_retrytasks_job_change", args=[job_id]) for job_id in jobs.all()),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page

    app_index = admin_client.get(reverse("admin:app_list", args=["django_retrytasks"]))
    assert reverse(DASHBOARD) in app_index.content.decode()
    changelist = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert reverse(DASHBOARD) in changelist


def test_list_shows_attempts_of_the_maximum_next_run_and_last_error(
    admin_client: Client, jobs: JobsInEveryState
) -> None:
    response = admin_client.get(reverse(CHANGELIST))
    rows = {job.pk: job for job in response.context["cl"].result_list}
    html = response.content.decode()
    model_admin = response.context["cl"].model_admin

    pending = rows[jobs.pending_retry]
    assert "1 / 4" in model_admin.attempts_text(pending)  # max_attempts=3: 4 runs at most
    assert model_admin.next_run(pending).endswith(">in 4 min</span>")
    assert model_admin.latest_error(pending) == (
        '<span class="rt-error"><strong>ConnectionError</strong> '
        "mail server said 421, try later</span>"
    )
    assert "pending retry" in model_admin.status_badge(pending)
    assert model_admin.attempts_text(rows[jobs.failed]).endswith(">1 / 1</span>")  # no retries
    assert model_admin.attempts_text(rows[jobs.unknown]) == "1"  # maximum unknown
    assert model_admin.next_run(rows[jobs.failed]) == "—"
    assert "running for" in model_admin.next_run(rows[jobs.running])
    assert "in 4 min" in html


def test_job_page_shows_arguments_history_traceback_and_schedule_preview(
    admin_client: Client, jobs: JobsInEveryState
) -> None:
    html = admin_client.get(
        reverse("admin:django_retrytasks_job_change", args=[jobs.pending_retry])
    ).content.decode()
    assert "&quot;message&quot;: &quot;mail server said 421, try later&quot;" in html
    assert '<details class="rt-collapsible rt-traceback"><summary>' in html
    assert "Traceback (most recent call last)" in html
    assert "retry in 240s" in html  # the attempt's retry decision
    # The run due in 4 minutes, then 2 more retries 4 minutes apart, then none.
    assert "<strong>run 2</strong>" in html
    assert "(4 min after run 2 fails)" in html
    assert "(4 min after run 3 fails)" in html
    assert "then no more retries" in html
    assert "<strong>run 5</strong>" not in html
    # No way to edit: no form fields for the job's own values, no save button.
    assert 'name="task_name"' not in html
    assert 'name="_save"' not in html

    jittery = admin_client.get(
        reverse("admin:django_retrytasks_job_change", args=[jobs.jittery])
    ).content.decode()
    assert "Not known in advance: the strategy adds random jitter" in jittery

    succeeded = admin_client.get(
        reverse("admin:django_retrytasks_job_change", args=[jobs.succeeded])
    ).content.decode()
    assert "&quot;invoice&quot;: 42" in succeeded  # the return value echoes the arguments


def test_add_edit_and_django_delete_are_refused(
    admin_client: Client, jobs: JobsInEveryState
) -> None:
    assert admin_client.get(reverse("admin:django_retrytasks_job_add")).status_code == 403
    change = reverse("admin:django_retrytasks_job_change", args=[jobs.waiting])
    assert admin_client.post(change, {"task_name": "other", "priority": "9"}).status_code == 403
    delete = reverse("admin:django_retrytasks_job_delete", args=[jobs.succeeded])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    waiting = Job.objects.get(pk=jobs.waiting)
    assert (waiting.task_name, waiting.priority) == (admin_tasks.admin_ok.name, 0)
    assert Job.objects.filter(pk=jobs.succeeded).exists()
    assert admin_client.get(reverse("admin:django_retrytasks_worker_add")).status_code == 403


# --- filters and search --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?status__exact=failed", ["failed", "unknown"]),
        ("?status__exact=doing", ["running"]),
        ("?pending_retry=yes", ["pending_retry", "jittery"]),
        ("?queue=mail", ["pending_retry"]),
        ("?task_name=testproject.demo.admin_tasks.admin_ok", ["succeeded", "waiting", "cancelled"]),
        ("?error_type=ConnectionError", ["pending_retry"]),
        ("?error_type=ValueError", ["failed"]),
        ("?error_type=RuntimeError", ["aborted"]),
        ("?pending_retry=yes&queue=mail", ["pending_retry"]),
    ],
)
def test_filters(
    admin_client: Client, jobs: JobsInEveryState, query: str, expected: list[str]
) -> None:
    assert sorted(listed_ids(admin_client, query)) == sorted(
        getattr(jobs, name) for name in expected
    )


def test_filter_choices_are_listed(admin_client: Client, jobs: JobsInEveryState) -> None:
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    for choice in ("?pending_retry=yes", "?error_type=ConnectionError", "?queue=mail"):
        assert choice in html


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("admin_flaky", ["pending_retry"]),
        ("invoice-42", ["waiting"]),  # lock
        ("send-invoice", ["waiting"]),  # queueing lock
        ("said 421", ["pending_retry"]),  # error text, two words
        ("valueerror", ["failed"]),  # error type, any case
        ("no-such-thing", []),
    ],
)
def test_search(
    admin_client: Client, jobs: JobsInEveryState, term: str, expected: list[str]
) -> None:
    ids = listed_ids(admin_client, "?" + "q=" + term.replace(" ", "+"))
    assert sorted(ids) == sorted(getattr(jobs, name) for name in expected)


def test_search_by_id(admin_client: Client, jobs: JobsInEveryState) -> None:
    assert jobs.failed in listed_ids(admin_client, f"?q={jobs.failed}")
    assert listed_ids(admin_client, f"?q=%23{jobs.failed}") == [jobs.failed]


# --- actions ---------------------------------------------------------------------------------------


def test_retry_now(admin_client: Client, jobs: JobsInEveryState, clock: Clock) -> None:
    before = {job.pk: job for job in Job.objects.all()}
    messages = run_action(
        admin_client,
        "retry_now",
        [jobs.pending_retry, jobs.failed, jobs.succeeded, jobs.running],
    )
    assert messages[0].startswith("Retry now: 2 jobs will run at once")
    assert sorted(messages[1:]) == [
        f"Retry now: skipped 1 job because it is running: #{jobs.running}.",
        f"Retry now: skipped 1 job because it succeeded: #{jobs.succeeded}.",
    ]

    pending = Job.objects.get(pk=jobs.pending_retry)
    assert pending.status == JobStatus.TODO
    assert pending.scheduled_at is not None
    assert pending.scheduled_at < before[jobs.pending_retry].scheduled_at  # type: ignore[operator]
    failed = Job.objects.get(pk=jobs.failed)
    assert (failed.status, failed.attempts) == (JobStatus.TODO, 1)  # history and count kept
    assert failed.attempt_history.count() == 1
    for untouched in (jobs.succeeded, jobs.running):
        job = Job.objects.get(pk=untouched)
        assert (job.status, job.scheduled_at, job.started_at) == (
            before[untouched].status,
            before[untouched].scheduled_at,
            before[untouched].started_at,
        )
    # The running job was not started a second time: still one claim, no new attempt.
    assert Attempt.objects.filter(job_id=jobs.running).count() == 0


def test_cancel(admin_client: Client, jobs: JobsInEveryState) -> None:
    messages = run_action(admin_client, "cancel", [jobs.waiting, jobs.running, jobs.failed])
    assert messages[0] == f"Cancel: 1 job cancelled (#{jobs.waiting})."
    assert sorted(messages[1:]) == [
        f"Cancel: skipped 1 job because it is doing, not waiting: #{jobs.running}.",
        f"Cancel: skipped 1 job because it is failed, not waiting: #{jobs.failed}.",
    ]
    assert (status(jobs.waiting), status(jobs.running), status(jobs.failed)) == (
        JobStatus.CANCELLED,
        JobStatus.DOING,
        JobStatus.FAILED,
    )


def test_abort_is_cooperative_and_ends_the_job_aborted(
    admin_client: Client, jobs: JobsInEveryState, clock: Clock
) -> None:
    messages = run_action(admin_client, "abort", [jobs.running, jobs.waiting])
    assert messages[0].startswith("Abort: 1 job asked to stop")
    assert f"because it is todo, not running: #{jobs.waiting}" in messages[1]
    running = Job.objects.get(pk=jobs.running)
    assert (running.status, running.abort_requested) == (JobStatus.DOING, True)
    assert not Job.objects.get(pk=jobs.waiting).abort_requested

    # The task sees the request through its context, raises, and is not retried (retry=5).
    run_claim(clock=clock, claim=jobs.running_claim)
    aborted = Job.objects.get(pk=jobs.running)
    assert (aborted.status, aborted.attempts) == (JobStatus.ABORTED, 1)
    attempt = aborted.attempt_history.get()
    assert attempt.outcome == Outcome.ABORTED
    assert "before step 1" in attempt.error_message
    assert attempt.decision == "not retried: aborted at an operator's request"


def test_a_task_that_never_checks_finishes_normally_after_an_abort_request(
    clock: Clock,
) -> None:
    from django_retrytasks import store

    job_id = admin_tasks.admin_ok.defer()
    [claim] = store.claim_jobs(now=clock.now, limit=1)
    operations.request_abort([job_id])
    run_claim(clock=clock, claim=claim)
    assert status(job_id) == JobStatus.SUCCEEDED


def test_delete_only_finished_jobs(admin_client: Client, jobs: JobsInEveryState) -> None:
    finished = [jobs.succeeded, jobs.failed, jobs.cancelled, jobs.aborted]
    messages = run_action(
        admin_client, "delete_finished", [*finished, jobs.running, jobs.waiting, jobs.pending_retry]
    )
    assert messages[0].startswith("Delete: 4 jobs deleted with their history")
    assert sorted(messages[1:]) == [
        f"Delete: skipped 1 job because it is doing, not finished: #{jobs.running}.",
        "Delete: skipped 2 jobs because it is todo, not finished: "
        f"#{jobs.pending_retry}, #{jobs.waiting}.",
    ]
    assert not Job.objects.filter(pk__in=finished).exists()
    assert not Attempt.objects.filter(job_id__in=finished).exists()
    assert Job.objects.filter(pk__in=[jobs.running, jobs.waiting, jobs.pending_retry]).count() == 3


# --- permissions ---------------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_login_page(client: Client, jobs: JobsInEveryState) -> None:
    for page in (
        reverse(CHANGELIST),
        reverse(DASHBOARD),
        reverse("admin:django_retrytasks_job_change", args=[jobs.failed]),
    ):
        response = client.get(page)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    response = client.post(reverse(RETRY_GROUP), {"task_name": "x", "error_type": "y"})
    assert response.status_code == 302
    assert status(jobs.failed) == JobStatus.FAILED


def test_non_staff_users_are_sent_to_the_login_page(
    django_user_model: type[User], jobs: JobsInEveryState
) -> None:
    user = django_user_model.objects.create_user(username="customer", password="pw")
    user.user_permissions.set(Permission.objects.filter(codename="view_job"))
    client = Client()
    client.force_login(user)
    assert client.get(reverse(CHANGELIST)).status_code == 302


def test_staff_without_permissions_gets_403(
    django_user_model: type[User], jobs: JobsInEveryState
) -> None:
    client = staff_with(django_user_model)
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(reverse(DASHBOARD)).status_code == 403
    assert (
        client.get(reverse("admin:django_retrytasks_job_change", args=[jobs.failed])).status_code
        == 403
    )
    response = client.post(
        reverse(CHANGELIST), {"action": "retry_now", "_selected_action": [str(jobs.failed)]}
    )
    assert response.status_code == 403
    assert status(jobs.failed) == JobStatus.FAILED


def test_view_permission_sees_but_cannot_act(
    django_user_model: type[User], jobs: JobsInEveryState
) -> None:
    client = staff_with(django_user_model, "view_job")
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert response.context["action_form"] is None  # no action offered
    html = client.get(reverse("admin:django_retrytasks_job_change", args=[jobs.pending_retry]))
    assert "Traceback (most recent call last)" in html.content.decode()  # attempt history shown

    for action, job_id in [
        ("retry_now", jobs.failed),
        ("cancel", jobs.waiting),
        ("abort", jobs.running),
        ("delete_finished", jobs.succeeded),
    ]:
        before = Job.objects.get(pk=job_id)
        client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [str(job_id)]})
        after = Job.objects.get(pk=job_id)
        assert (after.status, after.abort_requested, after.scheduled_at) == (
            before.status,
            before.abort_requested,
            before.scheduled_at,
        )
    dashboard_html = client.get(reverse(DASHBOARD)).content.decode()
    assert "Retry 1 failed" not in dashboard_html  # no button without retry_job
    response = client.post(
        reverse(RETRY_GROUP),
        {"task_name": admin_tasks.admin_broken.name, "error_type": "ValueError"},
    )
    assert response.status_code == 403
    assert status(jobs.failed) == JobStatus.FAILED


@pytest.mark.parametrize(
    ("codename", "action", "job_name", "changed_status"),
    [
        ("retry_job", "retry_now", "failed", JobStatus.TODO),
        ("cancel_job", "cancel", "waiting", JobStatus.CANCELLED),
        ("abort_job", "abort", "running", JobStatus.DOING),
        ("delete_job", "delete_finished", "succeeded", None),
    ],
)
def test_each_action_needs_its_own_permission(
    django_user_model: type[User],
    jobs: JobsInEveryState,
    codename: str,
    action: str,
    job_name: str,
    changed_status: str | None,
) -> None:
    client = staff_with(django_user_model, "view_job", codename)
    choices = [
        name
        for name, _ in client.get(reverse(CHANGELIST))
        .context["action_form"]
        .fields["action"]
        .choices
    ]
    assert choices[1:] == [action]
    job_id = getattr(jobs, job_name)
    run_action(client, action, [job_id])
    job = Job.objects.filter(pk=job_id).first()
    if changed_status is None:
        assert job is None
    else:
        assert job is not None
        assert job.status == changed_status
    if action == "abort":
        assert job is not None
        assert job.abort_requested


# --- escaping --------------------------------------------------------------------------------------


def test_text_from_jobs_is_escaped(admin_client: Client, jobs: JobsInEveryState) -> None:
    pages = [
        reverse(CHANGELIST),
        reverse(CHANGELIST) + "?q=alert",
        reverse(DASHBOARD),
        reverse("admin:django_retrytasks_job_change", args=[jobs.failed]),
        reverse("admin:django_retrytasks_job_change", args=[jobs.succeeded]),
        reverse("admin:django_retrytasks_job_change", args=[jobs.unknown]),
    ]
    for page in pages:
        html = admin_client.get(page).content.decode()
        assert "<script>alert" not in html, page
        assert "&lt;script&gt;alert(" in html, page


# --- query counts ---------------------------------------------------------------------------------


def list_queries(client: Client) -> int:
    dashboard.clear_choices_cache()  # count the filters' own queries too
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse(CHANGELIST)).status_code == 200
    return len(queries)


def test_list_queries_do_not_grow_with_the_rows_shown(admin_client: Client, clock: Clock) -> None:
    from django_retrytasks.testing import run_due_jobs

    admin_tasks.admin_broken.batch_defer(*({"message": f"failure {n}"} for n in range(3)))
    run_due_jobs(now=clock.now)
    few = list_queries(admin_client)
    admin_tasks.admin_broken.batch_defer(*({"message": f"failure {n}"} for n in range(40)))
    admin_tasks.admin_flaky.batch_defer(*({"message": f"flaky {n}"} for n in range(5)))
    run_due_jobs(now=clock.now)
    assert Job.objects.count() == 48
    assert list_queries(admin_client) == few


def test_job_page_queries_do_not_grow_with_the_attempts(admin_client: Client, clock: Clock) -> None:
    from django_retrytasks.testing import run_due_jobs

    job_id = admin_tasks.admin_flaky.defer()
    run_due_jobs(now=clock.now)
    page = reverse("admin:django_retrytasks_job_change", args=[job_id])
    with CaptureQueriesContext(connection) as one_attempt:
        admin_client.get(page)
    for _ in range(3):
        run_due_jobs(now=clock.advance(seconds=241))
    assert Job.objects.get(pk=job_id).attempts == 4
    with CaptureQueriesContext(connection) as four_attempts:
        admin_client.get(page)
    assert len(four_attempts) == len(one_attempt)


# --- the dashboard -------------------------------------------------------------------------------


def dashboard_context(client: Client) -> dict[str, Any]:
    response = client.get(reverse(DASHBOARD))
    assert response.status_code == 200
    return {key: value for layer in response.context for key, value in layer.flatten().items()}


def test_dashboard_counts_chart_failures_and_workers(
    admin_client: Client, jobs: JobsInEveryState
) -> None:
    WorkerRow.objects.create(name="web-1-worker", host="web-1", pid=4242, queues=["mail"])
    context = dashboard_context(admin_client)
    assert {value: count for value, _, count in context["status_tiles"]} == {
        "todo": 3,
        "doing": 1,
        "succeeded": 1,
        "failed": 2,
        "cancelled": 1,
        "aborted": 1,
    }
    queues = {row.queue: row for row in context["queues"]}
    assert queues["mail"].pending_retries == 1
    assert queues["default"].by_status["todo"] == 2

    bars = context["chart"]
    assert bars[0]["label"] == "overdue"
    assert sum(bar["count"] for bar in bars) == context["due_total"] == 2
    assert bars[0]["count"] == 0
    # Due in 4 min, and the jittery retry in 30 to 90 s: both in the first five minutes.
    assert (bars[1]["label"], bars[1]["count"]) == ("+0 min", 2)

    groups = {(group.task_name, group.error_type): group for group in context["failure_groups"]}
    broken = groups[(admin_tasks.admin_broken.name, "ValueError")]
    assert (broken.failures, broken.failed_jobs) == (1, 1)
    flaky = groups[(admin_tasks.admin_flaky.name, "ConnectionError")]
    assert (flaky.failures, flaky.failed_jobs) == (1, 0)  # waiting for its retry
    assert (admin_tasks.admin_stoppable.name, "RuntimeError") not in groups  # aborted, not failed

    html = admin_client.get(reverse(DASHBOARD)).content.decode()
    assert "<svg" in html
    assert "web-1-worker" in html
    assert "alive" in html
    assert "Retry 1 failed" in html


def test_dashboard_query_count_is_fixed(admin_client: Client, clock: Clock) -> None:
    from django_retrytasks.testing import run_due_jobs

    admin_tasks.admin_broken.defer()
    run_due_jobs(now=clock.now)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(reverse(DASHBOARD))
    admin_tasks.admin_broken.batch_defer(*({"message": str(n)} for n in range(20)))
    admin_tasks.admin_flaky.batch_defer(*({"message": str(n)} for n in range(20)))
    run_due_jobs(now=clock.now)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(reverse(DASHBOARD))
    assert len(many) == len(few)


def test_retry_a_failure_group(admin_client: Client, jobs: JobsInEveryState, clock: Clock) -> None:
    from django_retrytasks.testing import run_due_jobs

    more = admin_tasks.admin_broken.batch_defer({"message": "a"}, {"message": "b"})
    other_task = admin_tasks.admin_jittery.defer()
    run_due_jobs(now=clock.now)
    response = admin_client.post(
        reverse(RETRY_GROUP),
        {"task_name": admin_tasks.admin_broken.name, "error_type": "ValueError"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse(DASHBOARD)
    messages = [str(message) for message in response.context["messages"]]
    assert messages[0].startswith(f"Retry {admin_tasks.admin_broken.name} / ValueError: 3 jobs")
    for job_id in (jobs.failed, *more):
        assert status(job_id) == JobStatus.TODO
    assert status(jobs.unknown) == JobStatus.FAILED
    assert Job.objects.get(pk=other_task).attempts == 1
    assert status(jobs.pending_retry) == JobStatus.TODO

    again = admin_client.post(
        reverse(RETRY_GROUP),
        {"task_name": admin_tasks.admin_broken.name, "error_type": "ValueError"},
        follow=True,
    )
    assert "no failed job left in this group" in str(next(iter(again.context["messages"])))
    assert admin_client.get(reverse(RETRY_GROUP)).status_code == 405


def test_retry_group_needs_the_csrf_token(
    django_user_model: type[User], jobs: JobsInEveryState
) -> None:
    user = django_user_model.objects.create_superuser(username="root", password="pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(
        reverse(RETRY_GROUP),
        {"task_name": admin_tasks.admin_broken.name, "error_type": "ValueError"},
    )
    assert response.status_code == 403
    assert status(jobs.failed) == JobStatus.FAILED


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "now"),
        (45, "in 45 s"),
        (240, "in 4 min"),
        (3599, "in 1 h"),
        (5400, "in 1.5 h"),
        (3 * 86400, "in 3 d"),
        (-180, "3 min ago"),
    ],
)
def test_relative_times_read_like_a_person_would_say_them(seconds: float, text: str) -> None:
    from datetime import UTC, datetime, timedelta

    from django_retrytasks.admin import relative_text

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert relative_text(now + timedelta(seconds=seconds), now) == text


# --- actions on the job page (Django >= 6.1) ------------------------------------------------------


def run_job_page_action(client: Client, action: str, job_id: int) -> Any:
    page = reverse("admin:django_retrytasks_job_change", args=[job_id])
    return client.post(
        page, {"CHANGE_FORM-action": action, "_selected_action": str(job_id)}, follow=True
    )


@pytest.mark.needs_django(6, 1)  # actions on the change page came with 6.1
def test_the_job_page_offers_the_actions_the_user_may_run(
    django_user_model: type[User], jobs: JobsInEveryState
) -> None:
    page = reverse("admin:django_retrytasks_job_change", args=[jobs.failed])
    client = staff_with(django_user_model, "view_job", "retry_job")
    choices = client.get(page).context["action_form"].fields["action"].choices
    assert [name for name, _ in choices][1:] == ["retry_now"]
    viewer = staff_with_name(django_user_model, "viewer", "view_job")
    assert viewer.get(page).context["action_form"] is None


def staff_with_name(django_user_model: type[User], name: str, *codenames: str) -> Client:
    user = django_user_model.objects.create_user(username=name, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_retrytasks", codename__in=codenames
        )
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.needs_django(6, 1)  # actions on the change page came with 6.1
def test_retry_now_and_delete_from_the_job_page(
    admin_client: Client, jobs: JobsInEveryState
) -> None:
    response = run_job_page_action(admin_client, "retry_now", jobs.failed)
    assert response.redirect_chain[-1][0] == reverse(
        "admin:django_retrytasks_job_change", args=[jobs.failed]
    )
    assert [str(m) for m in response.context["messages"]] == [
        f"Retry now: 1 job will run at once (#{jobs.failed})."
    ]
    assert status(jobs.failed) == JobStatus.TODO

    response = run_job_page_action(admin_client, "abort", jobs.waiting)
    assert [str(m) for m in response.context["messages"]] == [
        "Abort: no job changed.",
        f"Abort: skipped 1 job because it is todo, not running: #{jobs.waiting}.",
    ]
    assert not Job.objects.get(pk=jobs.waiting).abort_requested

    response = run_job_page_action(admin_client, "delete_finished", jobs.succeeded)
    assert response.redirect_chain[-1][0] == reverse(CHANGELIST)
    assert not Job.objects.filter(pk=jobs.succeeded).exists()
    # Another job's id with the page's own action is refused.
    page = reverse("admin:django_retrytasks_job_change", args=[jobs.cancelled])
    response = admin_client.post(
        page, {"CHANGE_FORM-action": "retry_now", "_selected_action": str(jobs.aborted)}
    )
    assert response.status_code == 400
    assert status(jobs.aborted) == JobStatus.ABORTED


def test_a_view_only_user_cannot_post_an_action_to_the_job_page(
    django_user_model: type[User], jobs: JobsInEveryState
) -> None:
    client = staff_with(django_user_model, "view_job")
    response = run_job_page_action(client, "retry_now", jobs.failed)
    assert response.status_code == 403
    assert status(jobs.failed) == JobStatus.FAILED


def test_actions_are_recorded_in_each_jobs_admin_history(
    admin_client: Client, jobs: JobsInEveryState
) -> None:
    from django.contrib.admin.models import CHANGE, DELETION, LogEntry

    run_action(admin_client, "retry_now", [jobs.failed, jobs.running])
    run_action(admin_client, "delete_finished", [jobs.succeeded])
    entries = {
        (int(entry.object_id), entry.action_flag, entry.change_message)
        for entry in LogEntry.objects.all()
    }
    assert entries == {(jobs.failed, CHANGE, "Retry now"), (jobs.succeeded, DELETION, "Delete")}
    history = admin_client.get(reverse("admin:django_retrytasks_job_history", args=[jobs.failed]))
    assert "Retry now" in history.content.decode()
