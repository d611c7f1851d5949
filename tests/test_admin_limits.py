"""The admin with hostile and oversized input: bounded search, cut values, permission-checked
downloads, values Python cannot read back, and the dashboard's workers behind view_worker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from django_retrytasks.admin import search
from django_retrytasks.models import Attempt, Job, JobStatus, UndecodableJSON
from django_retrytasks.models import Worker as WorkerRow
from django_retrytasks.store import operations
from django_retrytasks.testing import run_due_jobs
from testproject.demo import admin_tasks
from tests.conftest import Clock
from tests.test_admin import (
    CHANGELIST,
    DASHBOARD,
    fast_password_hashing,  # noqa: F401 (an autouse fixture, used here too)
    fresh_filter_choices,  # noqa: F401
    listed_ids,
    staff_with,
    staff_with_name,
)

pytestmark = pytest.mark.django_db


def job_page(job_id: int) -> str:
    return reverse("admin:django_retrytasks_job_change", args=[job_id])


def download(job_id: int, what: str) -> str:
    return reverse("admin:django_retrytasks_job_download", args=[job_id, what])


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def failed_job(clock: Clock, message: str) -> int:
    job_id = admin_tasks.admin_broken.defer(message=message)
    run_due_jobs(now=clock.now)
    assert Job.objects.get(pk=job_id).status == JobStatus.FAILED
    return job_id


# --- the search --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("#42", search.Search(job_ids=(42,))),
        ("42", search.Search(job_ids=(42,))),  # too short for text: an id
        ("4242", search.Search(words=("4242",), number=4242)),
        ("4242 refused", search.Search(words=("4242", "refused"))),
        ("#7 Refused ERP", search.Search(job_ids=(7,), words=("Refused", "ERP"))),
        ("#" + "9" * 30, search.Search(job_ids=(2**63 - 1,))),
        ("  ", search.Search()),
    ],
)
def test_parse(term: str, expected: search.Search) -> None:
    assert search.parse(term) == expected


@pytest.mark.parametrize(
    ("term", "message"),
    [
        (
            " ".join(f"w{n:03}" for n in range(1000)),
            "Search refused: at most 5 words, this one has 1,000. Use fewer words, or the "
            "filters on the right.",
        ),
        (
            "x" * 101,
            "Search refused: a word has at most 100 characters, 'xxxxxxxxxxxxx… [cut: 88 "
            "more characters]' has 101.",
        ),
        (
            "ab",
            "Search refused: 'ab' is too short; a word has at least 3 characters (#42 finds job 42).",
        ),
        (
            "bad\x00word",
            "Search refused: the word 'bad\\x00word' contains a NUL character (U+0000) at "
            "position 3.",
        ),
    ],
)
def test_parse_refuses(term: str, message: str) -> None:
    with pytest.raises(search.SearchRefused) as caught:
        search.parse(term)
    assert str(caught.value) == message


def test_a_search_of_many_words_is_refused_with_a_message(
    django_user_model: type[User], clock: Clock
) -> None:
    failed_job(clock, "mail server said no")
    client = staff_with(django_user_model, "view_job")  # view-only staff
    words = "+".join(f"word{n}" for n in range(1000))
    response = client.get(reverse(CHANGELIST) + "?q=" + words)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    assert messages_of(response) == [
        "Search refused: at most 5 words, this one has 1,000. Use fewer words, or the filters "
        "on the right."
    ]


@pytest.mark.parametrize("term", ["%00", "%ED%A0%80", "a%00b+c", "%25%25%25", "___", "\\\\\\"])
def test_hostile_search_terms_never_fail_the_page(admin_client: Client, term: str) -> None:
    response = admin_client.get(reverse(CHANGELIST) + "?q=" + term)
    assert response.status_code == 200


@pytest.fixture(params=["by index", "row by row"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once with each way the search runs: with COMMON at 1, every word is common."""
    if request.param == "row by row":
        monkeypatch.setattr(search, "COMMON", 1)
    return str(request.param)


def test_every_word_must_be_in_one_document(admin_client: Client, clock: Clock, mode: str) -> None:
    refused = failed_job(clock, "connection refused by erp.internal")
    timeout = failed_job(clock, "the ERP timed out")
    percent = failed_job(clock, "disk 100% full, file a_b")
    # A number no job id reaches in a test run: "98765432" must be found as text.
    locked = admin_tasks.admin_ok.configure(lock="order-98765432", schedule_in={"hours": 1}).defer()
    cases = {
        "refused": [refused],
        "ERP": [refused, timeout],  # any case
        "erp refused": [refused],
        "admin_broken refused": [refused],  # the task name is in every attempt's document
        "refused timed": [],  # two attempts of two jobs: no one document holds both
        "100%": [percent],  # %, _ and \\ are plain characters
        "a_b": [percent],
        "order-98765432": [locked],
        "98765432": [locked],
        f"#{timeout} erp": [timeout],
        f"#{timeout} refused": [],
        "zzzqqq": [],
    }
    for term, expected in cases.items():
        query = "?q=" + term.replace("%", "%25").replace("#", "%23").replace(" ", "+")
        assert sorted(listed_ids(admin_client, query)) == sorted(expected), (term, mode)


def test_a_search_that_is_one_number_also_finds_that_job(admin_client: Client, mode: str) -> None:
    ids = admin_tasks.admin_ok.batch_defer(*[{}] * 3)
    assert listed_ids(admin_client, f"?q={ids[1]:03}") == [ids[1]]


def test_the_attempts_documents_follow_the_attempts(admin_client: Client, clock: Clock) -> None:
    job_id = failed_job(clock, "first failure: connection reset")
    assert listed_ids(admin_client, "?q=reset") == [job_id]
    Attempt.objects.filter(job_id=job_id).update(error_message="now it says throttled")
    assert listed_ids(admin_client, "?q=reset") == []
    assert listed_ids(admin_client, "?q=throttled") == [job_id]
    operations.delete_finished([job_id])
    assert listed_ids(admin_client, "?q=throttled") == []


def test_the_jobs_documents_follow_the_jobs(admin_client: Client) -> None:
    job_id = admin_tasks.admin_ok.configure(lock="alpha-lock-7").defer()
    assert listed_ids(admin_client, "?q=alpha-lock") == [job_id]
    Job.objects.filter(pk=job_id).update(lock="beta-lock-7")
    assert listed_ids(admin_client, "?q=alpha-lock") == []
    assert listed_ids(admin_client, "?q=beta-lock") == [job_id]
    run_due_jobs()
    assert Job.objects.get(pk=job_id).status == JobStatus.SUCCEEDED
    operations.delete_finished([job_id])
    assert listed_ids(admin_client, "?q=beta-lock") == []


def test_the_search_uses_the_text_index(clock: Clock) -> None:
    failed_job(clock, "connection refused")
    queryset = search.apply(search.parse("refused"), Job.objects.all())
    sql, params = queryset.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # tiny tables: ask what it can use
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "retrytasks_attempt_search_idx" in plan
            assert "retrytasks_job_search_idx" in plan
        elif connection.vendor == "mysql":
            # No index over words there: the narrow table of documents is what it reads,
            # never the attempts' own rows with their tracebacks.
            cursor.execute(f"EXPLAIN {sql}", params)
            columns = [column[0] for column in cursor.description]
            tables = {dict(zip(columns, row, strict=True))["table"] for row in cursor.fetchall()}
            assert "django_retrytasks_attempt_search" in tables
            assert "django_retrytasks_attempt" not in tables
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert "django_retrytasks_attempt_search VIRTUAL TABLE" in plan


def test_counting_stops_at_the_cap_and_says_so(admin_client: Client) -> None:
    admin_tasks.admin_ok.batch_defer(*[{}] * (search.COUNT_CAP + 5))
    response = admin_client.get(reverse(CHANGELIST) + "?q=admin_ok")
    assert response.context["cl"].result_count == search.COUNT_CAP
    assert messages_of(response) == [
        "More than 1,000 jobs match: the list pages through the newest 1,000. Add a word or a "
        "filter to narrow it."
    ]
    newest = Job.objects.order_by("-id").values_list("id", flat=True)[:50]
    assert [job.pk for job in response.context["cl"].result_list] == list(newest)


# --- long values ---------------------------------------------------------------------------------


def test_long_values_are_cut_on_the_job_page_and_downloaded_whole(
    admin_client: Client, clock: Clock
) -> None:
    note = "n" * 300_000
    job_id = admin_tasks.admin_ok.defer(note=note)
    run_due_jobs(now=clock.now)
    response = admin_client.get(job_page(job_id))
    html = response.content.decode()
    assert len(html) < 100_000
    assert "more characters]" in html
    assert download(job_id, "arguments") in html
    assert download(job_id, "result") in html  # admin_ok returns its arguments

    whole = admin_client.get(download(job_id, "arguments"))
    assert whole.status_code == 200
    assert whole["Content-Type"] == "application/json; charset=utf-8"
    assert whole["Content-Disposition"] == f'attachment; filename="job-{job_id}-arguments.json"'
    assert json.loads(whole.content) == {"note": note}


def test_a_long_error_and_traceback_are_cut_and_downloaded_whole(
    admin_client: Client, clock: Clock
) -> None:
    message = "m" * 50_000
    job_id = failed_job(clock, message)
    attempt = Attempt.objects.get(job_id=job_id)
    html = admin_client.get(job_page(job_id)).content.decode()
    assert download(job_id, f"error-{attempt.pk}") in html
    assert "more characters]" in html
    error = admin_client.get(download(job_id, f"error-{attempt.pk}"))
    assert error["Content-Type"] == "text/plain; charset=utf-8"
    assert error.content.decode() == attempt.error_message
    traceback = admin_client.get(download(job_id, f"traceback-{attempt.pk}"))
    assert traceback.content.decode() == attempt.traceback


def test_downloads_are_permission_checked(
    django_user_model: type[User], client: Client, clock: Clock
) -> None:
    job_id = failed_job(clock, "secret customer data")
    attempt_id = Attempt.objects.get(job_id=job_id).pk
    other = failed_job(clock, "another job")
    urls = [download(job_id, "arguments"), download(job_id, f"traceback-{attempt_id}")]

    for url in urls:  # anonymous: to the login page
        assert client.get(url).status_code == 302
    no_permission = staff_with_name(django_user_model, "nobody")
    for url in urls:
        assert no_permission.get(url).status_code == 403
    viewer = staff_with_name(django_user_model, "viewer", "view_job")
    for url in urls:
        response = viewer.get(url)
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment;")
    assert viewer.get(download(other, f"traceback-{attempt_id}")).status_code == 404
    assert viewer.get(download(job_id, "error-999999999")).status_code == 404
    assert viewer.get(download(job_id, "password")).status_code == 404
    assert viewer.get(download(job_id, "error")).status_code == 404
    assert viewer.get(download(999_999_999, "arguments")).status_code in (302, 404)


# --- values Python cannot read back --------------------------------------------------------------


def store_raw_arguments(job_id: int, text: str) -> None:
    """Write ``text`` as the job's arguments behind Django's back, as another program could."""
    table = Job._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":  # past SQLite's own JSON depth check, as raw SQL can
            cursor.execute("PRAGMA ignore_check_constraints = ON")
        try:
            cast = "::jsonb" if connection.vendor == "postgresql" else ""
            cursor.execute(
                f"UPDATE {table} SET task_kwargs = %s{cast}, return_value = %s{cast} WHERE id = %s",
                [text, text, job_id],
            )
        finally:
            if connection.vendor == "sqlite":
                cursor.execute("PRAGMA ignore_check_constraints = OFF")


def test_a_value_nested_too_deep_for_python_renders_everywhere(
    admin_client: Client, clock: Clock
) -> None:
    job_id = admin_tasks.admin_ok.defer()
    run_due_jobs(now=clock.now)
    deep = "[" * 10_000 + "]" * 10_000
    store_raw_arguments(job_id, deep)
    assert isinstance(Job.objects.get(pk=job_id).task_kwargs, UndecodableJSON)

    assert job_id in listed_ids(admin_client)
    assert job_id in listed_ids(admin_client, "?q=admin_ok")
    page = admin_client.get(job_page(job_id))
    assert page.status_code == 200
    assert "[[[[" in page.content.decode()
    whole = admin_client.get(download(job_id, "arguments"))
    assert whole.content.decode() == deep  # as stored, though Python cannot read it back


# --- the dashboard's workers ---------------------------------------------------------------------


def test_view_only_staff_cannot_see_workers_on_the_dashboard(
    django_user_model: type[User],
) -> None:
    WorkerRow.objects.create(name="web-1-4242-abc", host="web-1.internal", pid=4242)
    viewer = staff_with(django_user_model, "view_job")
    html = viewer.get(reverse(DASHBOARD)).content.decode()
    assert "web-1.internal" not in html and "4242" not in html and "rt-workers" not in html

    with_workers = staff_with_name(django_user_model, "watcher", "view_job", "view_worker")
    html = with_workers.get(reverse(DASHBOARD)).content.decode()
    assert "web-1.internal" in html and "4242" in html
