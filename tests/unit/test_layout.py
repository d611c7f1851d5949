"""The package's layout rules, read from its source (no database)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "django_retrytasks"
#: Methods that write rows when called on a manager, a queryset or a model instance.
WRITES = {
    "save",
    "delete",
    "create",
    "update",
    "bulk_create",
    "bulk_update",
    "get_or_create",
    "update_or_create",
}
SQL_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


def modules(*, outside: tuple[str, ...]) -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if not any(path.relative_to(PACKAGE).parts[0] == part for part in outside)
    ]


def is_orm_write(call: ast.Call) -> bool:
    """``X.objects....update(...)``, ``row.save()``, ``row.delete()`` and the like."""
    if not isinstance(call.func, ast.Attribute) or call.func.attr not in WRITES:
        return False
    if call.func.attr in {"save", "delete"}:
        return True
    node: ast.expr = call.func.value
    while isinstance(node, ast.Call | ast.Attribute):
        if isinstance(node, ast.Attribute) and node.attr == "objects":
            return True
        node = node.func if isinstance(node, ast.Call) else node.value
    return False


def writes_sql(call: ast.Call) -> bool:
    return (
        isinstance(call.func, ast.Attribute)
        and call.func.attr == "execute"
        and bool(call.args)
        and isinstance(call.args[0], ast.Constant | ast.JoinedStr)
        and bool(SQL_WRITE.match(ast.unparse(call.args[0]).strip("f'\"")))
    )


def test_only_the_store_writes_jobs_attempts_and_workers() -> None:
    offenders = []
    for path in modules(outside=("store", "migrations")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (is_orm_write(node) or writes_sql(node)):
                where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
                offenders.append(f"{where}: {ast.unparse(node)[:60]}")
    assert offenders == []


@pytest.mark.parametrize(
    ("source", "writes"),
    [
        ("Job.objects.filter(pk=1).update(status='x')", True),
        ("Attempt.objects.using('default').create(number=1)", True),
        ("row.save()", True),
        ("cursor.execute('UPDATE t SET a = 1')", True),
        ("cursor.execute(f'DELETE FROM {table}')", True),
        ("changes.update(a=1)", False),
        ("cursor.execute('PRAGMA data_version')", False),
    ],
)
def test_the_rule_tells_writes_from_other_calls(source: str, writes: bool) -> None:
    call = ast.parse(source).body[0].value  # type: ignore[attr-defined]
    assert (is_orm_write(call) or writes_sql(call)) is writes


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_every_foreign_key_to_a_job_is_one_that_pruning_follows() -> None:
    from django.db import models

    from django_retrytasks.models import Attempt, Schedule
    from django_retrytasks.store.operations import relations_to_jobs

    relations = relations_to_jobs()
    assert {relation.related_model for relation in relations} == {Attempt, Schedule}
    for relation in relations:
        assert relation.on_delete in (models.CASCADE, models.SET_NULL), relation


def test_nothing_under_the_worker_imports_the_django_tasks_backend() -> None:
    for path in sorted((PACKAGE / "worker").glob("*.py")):
        assert not any(
            name.startswith("django_retrytasks.backends") for name in imported_modules(path)
        ), path.name


def test_pure_modules_import_no_django() -> None:
    pure = (
        "cron.py",
        "retry.py",
        "durations.py",
        "exceptions.py",
        "jobs.py",
        "records.py",
        "worker/judging.py",
        "worker/pace.py",
        "worker/results.py",
        "worker/tracebacks.py",
    )
    for name in pure:
        imported = imported_modules(PACKAGE / name)
        assert {module for module in imported if module.startswith("django.")} == set(), name


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in modules(outside=("migrations",))
        if (lines := len(path.read_text().splitlines())) > 500
    }
    assert long == {}
