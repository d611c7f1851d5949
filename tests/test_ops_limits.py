"""The command line and the worker's start-up with hostile and oversized job data, and WAL
only on the SQLite databases the app writes to."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.backends.signals import connection_created
from django.db.utils import ConnectionHandler
from django.test import override_settings

from django_retrytasks import apps
from django_retrytasks.models import Attempt, Job
from django_retrytasks.testing import run_due_jobs
from testproject.demo import admin_tasks
from tests.conftest import Clock, manage
from tests.test_admin_limits import store_raw_arguments
from tests.test_ops_cli import command

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e"
ESCAPED = "\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202e"


def assert_no_controls(text: str) -> None:
    for character in "\x1b\x07\x9b\u202e":
        assert character not in text


@pytest.mark.django_db
def test_show_and_list_escape_control_characters(clock: Clock) -> None:
    job_id = admin_tasks.admin_broken.configure(lock=f"lock{ESCAPES}").defer(
        message=f"bad {ESCAPES}\nsecond line"
    )
    run_due_jobs(now=clock.now)
    Job.objects.create(task_name=f"gone{ESCAPES}", queue=f"q{ESCAPES}")
    for output in (
        command("show", str(job_id), "--tracebacks"),
        command("show", str(job_id), "--full", "--tracebacks"),
        command("show", str(job_id), "--json"),
        command("list"),
        command("list", "--json"),
        command("stats"),
    ):
        assert_no_controls(output)
    shown = command("show", str(job_id))
    assert f"lock: lock{ESCAPED}" in shown
    assert f"ValueError: bad {ESCAPED}\nsecond line" in shown  # newlines kept in a message
    assert f"gone{ESCAPED} queue=q{ESCAPED}" in command("list")
    assert json.loads(command("show", str(job_id), "--json"))["lock"] == f"lock{ESCAPES}"


@pytest.mark.django_db
def test_show_cuts_long_values_unless_asked_for_them_whole(clock: Clock) -> None:
    note = "n" * 50_000  # under the 64 KiB an attempt keeps of a message
    job_id = admin_tasks.admin_broken.defer(message=note)
    run_due_jobs(now=clock.now)
    shown = command("show", str(job_id), "--tracebacks")
    assert len(shown) < 20_000
    assert "more characters]" in shown and "characters before] …" in shown
    cut = json.loads(command("show", str(job_id), "--json"))
    assert cut["task_kwargs"].endswith("more characters]")  # the cut JSON text, a string
    assert len(cut["history"][0]["error_message"]) == 2_000

    whole = json.loads(command("show", str(job_id), "--json", "--full"))
    assert whole["task_kwargs"] == {"message": note}
    assert whole["history"][0]["error_message"] == note
    assert whole["history"][0]["traceback"] == Attempt.objects.get(job_id=job_id).traceback
    assert note in command("show", str(job_id), "--full")


@pytest.mark.django_db
def test_show_a_value_nested_too_deep_for_python(clock: Clock) -> None:
    job_id = admin_tasks.admin_ok.defer()
    run_due_jobs(now=clock.now)
    deep = "[" * 10_000 + "]" * 10_000
    store_raw_arguments(job_id, deep)
    assert "task_kwargs: [[[[" in command("show", str(job_id))
    assert json.loads(command("show", str(job_id), "--json", "--full"))["task_kwargs"] == deep
    assert "more characters]" in json.loads(command("show", str(job_id), "--json"))["task_kwargs"]


# --- runworker --queues ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_runworker_warns_about_a_queue_no_task_or_job_knows() -> None:
    admin_tasks.admin_ok.configure(queue="stored-only").defer()
    result = manage("runworker", "--burst", "--queues", "defualt,stored-only,mail")
    assert result.returncode == 0, result.stderr
    assert (
        "No registered task declares, and no stored job uses, the queue 'defualt'; the known "
        "queues are: "
    ) in result.stderr
    known = result.stderr.split("the known queues are: ")[1].split(". Starting anyway.")[0]
    assert {"default", "mail", "emails", "stored-only"} <= set(known.split(", "))

    quiet = manage("runworker", "--burst", "--queues", "stored-only,mail,default")
    assert quiet.returncode == 0 and "No registered task declares" not in quiet.stderr


# --- WAL ------------------------------------------------------------------------------------------


def journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as raw:
        return str(raw.execute("PRAGMA journal_mode").fetchone()[0])


@pytest.fixture
def two_sqlite_files(tmp_path: Path) -> Iterator[ConnectionHandler]:
    """Connections to two fresh SQLite files, ``default`` and ``reports`` (the app's is
    ``default`` unless a router says otherwise)."""
    handler = ConnectionHandler(
        {
            alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / f"{alias}.db")}
            for alias in ("default", "reports")
        }
    )
    yield handler
    handler.close_all()


class ReportsRouter:
    """Sends django-retrytasks to the ``reports`` database."""

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "reports" if model._meta.app_label == "django_retrytasks" else None


@pytest.mark.django_db
def test_wal_only_on_the_databases_the_app_writes_to(
    two_sqlite_files: ConnectionHandler, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert connection_created.has_listeners()
    caplog.set_level("INFO", logger="django_retrytasks.apps")
    for alias in ("default", "reports"):
        two_sqlite_files[alias].ensure_connection()
    assert journal_mode(tmp_path / "default.db") == "wal"
    assert journal_mode(tmp_path / "reports.db") == "delete"  # a database the app never uses
    switched = [record.getMessage() for record in caplog.records if "WAL" in record.getMessage()]
    assert len(switched) <= 1  # once per process and alias (the test database came first)


@pytest.mark.django_db
def test_a_router_decides_which_database_gets_wal(
    two_sqlite_files: ConnectionHandler, tmp_path: Path
) -> None:
    with override_settings(DATABASE_ROUTERS=[f"{__name__}.ReportsRouter"]):
        assert apps.written_databases() == {"default", "reports"}
        two_sqlite_files["reports"].ensure_connection()
    assert journal_mode(tmp_path / "reports.db") == "wal"


@pytest.mark.django_db
def test_the_opt_out_leaves_every_journal_mode_alone(
    two_sqlite_files: ConnectionHandler, tmp_path: Path
) -> None:
    with override_settings(RETRYTASKS_SQLITE_WAL=False):
        two_sqlite_files["default"].ensure_connection()
    assert journal_mode(tmp_path / "default.db") == "delete"


@pytest.mark.django_db
def test_the_test_database_itself_is_in_wal_when_on_sqlite() -> None:
    if connection.vendor != "sqlite":
        assert apps.written_databases() == {"default"}  # WAL is SQLite's alone
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
