from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import django
import pytest
from django.db import connection

from django_retrytasks.records import Claim
from django_retrytasks.worker.announcing import Announcer
from django_retrytasks.worker.completer import InlineCompleter
from django_retrytasks.worker.processing import Processor

ROOT = Path(__file__).resolve().parent.parent
#: The tests run through a transaction pooler (``make test-pgbouncer``).
BEHIND_A_POOLER = os.environ.get("DATABASE_POOLED") == "1"


def pytest_ignore_collect(collection_path: Path, config: Any) -> bool | None:
    # The PgBouncer tests need a PgBouncer: ``make test-pgbouncer`` starts one (CI does).
    if collection_path.name == "test_pgbouncer.py" and not BEHIND_A_POOLER:
        return True
    return None
IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")

# Tests that only make sense on some Django versions are left out of collection elsewhere,
# never skipped: under CI=true a skipped test is a failure (see pytest_runtest_makereport).
collect_ignore = []
if django.VERSION < (6, 1):
    # Their tasks use @task(retry=...), which Django 6.1 added (django.tasks itself is 6.0).
    collect_ignore += ["test_djangotasks.py", "test_djangotasks_limits.py", "test_boundary.py"]
if not (6, 0) <= django.VERSION < (6, 1):
    collect_ignore.append("test_djangotasks_60.py")
if django.VERSION >= (6, 0):
    collect_ignore.append("test_django52.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out tests marked ``needs_django(major, minor)`` on an older Django."""
    too_new = [
        item
        for item in items
        if (marker := item.get_closest_marker("needs_django")) and marker.args > django.VERSION[:2]
    ]
    if too_new:
        config.hook.pytest_deselected(items=too_new)
        items[:] = [item for item in items if item not in too_new]


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    report = yield
    if IN_CI and report.skipped:  # a module that skips itself as a whole
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where nothing may be skipped: {report.longrepr}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where nothing may be skipped: {report.longrepr}"
    return report


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    # Ahead of the real clock, so that jobs deferred "now" during the test (however slow
    # the machine: one second proved too little under load) are due at the hand-moved time.
    return Clock(datetime.now(UTC) + timedelta(seconds=30))


def database_url() -> str:
    """A DATABASE_URL that points a subprocess at the test database in use."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    scheme, default_port = ("mysql", "3306") if connection.vendor == "mysql" else ("postgres", "5432")
    user = quote(settings.get("USER") or "", safe="")
    password = quote(settings.get("PASSWORD") or "", safe="")
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or default_port
    login = f"{user}:{password}" if password else user
    return f"{scheme}://{login}@{host}:{port}/{settings['NAME']}"


def manage(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py`` in a subprocess against the test database."""
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


@pytest.fixture
def last_attempt_log() -> Iterator[list[int]]:
    from testproject.demo import tasks

    tasks.last_attempt_warnings.clear()
    yield tasks.last_attempt_warnings
    tasks.last_attempt_warnings.clear()


def run_claim(claim: Claim, *, clock: Callable[[], datetime], name: str = "test-worker") -> bool:
    """Run, judge and store one claimed job on this thread, as a worker's runner does."""
    processor = Processor(worker_name=name, clock=clock)
    completer = InlineCompleter(announcer=Announcer(worker_name=name), using="default")
    return processor.process_and_complete(claim, completer)
