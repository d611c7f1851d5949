"""The README and the documentation site tell the truth: every Python example runs, every
setting and command-line option is documented, the version and the length are right."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
import types
from argparse import ArgumentParser, _SubParsersAction
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import load_command_class
from django.test import Client, override_settings

from django_retrytasks import app
from django_retrytasks.conf import get_settings
from django_retrytasks.exceptions import ArgumentsTooLarge
from django_retrytasks.models import Job
from django_retrytasks.testing import JobRunner

from .conftest import ROOT, Clock
from .docs_examples import NOT_RUN_YET_PAGES, Example, compiled, examples, python_blocks

PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]
# Options every Django management command has; the reference points to Django's docs for them.
DJANGO_COMMON_OPTIONS = {
    "-h", "--help", "--version", "-v", "--verbosity", "--settings", "--pythonpath",
    "--traceback", "--no-color", "--force-color", "--skip-checks",
}  # fmt: skip


def literal_calls(name: str) -> list[tuple[str, ...]]:
    """The string arguments of every ``name(...)`` call with literal arguments in tests/."""
    calls = []
    for module in sorted((ROOT / "tests").glob("*.py")):
        tree = ast.parse(module.read_text())
        constants = {  # NAME = "..." and NAME = ((page, (sections)), ...), at any level
            target.id: node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == name:
                arguments = [
                    constants.get(arg.id, arg) if isinstance(arg, ast.Name) else arg
                    for arg in node.args
                ]
                if all(isinstance(arg, ast.Constant) for arg in arguments):
                    calls.append(tuple(arg.value for arg in arguments))  # type: ignore[union-attr]
        # Tables of (page, (section, ...)) pairs looped over into python_blocks(page, *sections).
        for value in constants.values():
            if isinstance(value, ast.Tuple) and all(
                isinstance(item, ast.Tuple) and len(item.elts) == 2 for item in value.elts
            ):
                for item in value.elts:
                    page, sections = item.elts  # type: ignore[attr-defined]
                    if isinstance(page, ast.Constant) and isinstance(sections, ast.Tuple):
                        calls.append((page.value, *(s.value for s in sections.elts)))  # type: ignore[attr-defined]
    return calls


def test_every_python_example_is_run_by_a_test() -> None:
    taken: set[tuple[str, str]] = set()
    for page, *sections in literal_calls("python_blocks"):
        taken.update((page, block) for block in python_blocks(page, *sections))
    everything: list[Example] = [example for page in PAGES for example in examples(page)]
    assert len(everything) > 30
    never_run = [
        f"{example.page}:{example.line}"
        for example in everything
        if example.runs and (example.page, example.code) not in taken
    ]
    assert never_run == [], "Python examples that no test runs"
    # The marker that keeps an example from running is for the pages that declare it.
    marked = {example.page for example in everything if not example.runs}
    assert marked <= NOT_RUN_YET_PAGES


def test_every_setting_is_in_the_settings_reference() -> None:
    source = " ".join(path.read_text() for path in (ROOT / "django_retrytasks").rglob("*.py"))
    names = set(re.findall(r"\bRETRYTASKS_[A-Z_]*[A-Z]\b", source))
    assert len(names) >= 8
    reference = (ROOT / "docs/reference/settings.md").read_text()
    assert sorted(name for name in names if f"`{name}`" not in reference) == []


def options_of(parser: ArgumentParser, prefix: str = "") -> set[str]:
    found = set()
    for action in parser._actions:
        if isinstance(action, _SubParsersAction):
            for name, subparser in action.choices.items():
                found.add(f"{prefix}{name}")
                found |= options_of(subparser, f"{prefix}{name} ")
        else:
            found |= {f"{prefix}{option}" for option in action.option_strings}
    return found


@pytest.mark.parametrize("command", ["runworker", "retrytasks"])
def test_every_command_line_option_is_in_the_command_line_reference(command: str) -> None:
    parser = load_command_class("django_retrytasks", command).create_parser("manage.py", command)
    reference = (ROOT / "docs/reference/cli.md").read_text()
    missing = []
    for option in options_of(parser):
        *subcommand, name = option.split(" ")
        if name in DJANGO_COMMON_OPTIONS:
            continue
        if f"`{name}" not in reference or (subcommand and f"`{subcommand[0]}" not in reference):
            missing.append(option)
    assert sorted(missing) == []


def test_the_changelog_and_the_package_name_the_version_of_pyproject() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    first = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), flags=re.MULTILINE)
    assert first is not None and first.group(1) == version
    assert importlib.metadata.version("django-retrytasks") == version


def test_the_readme_is_short_and_links_to_the_references() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "(docs/reference/settings.md)" in readme and "(docs/reference/cli.md)" in readme
    for link in re.findall(r"\]\(((?:docs/|CHANGELOG|LICENSE)[^)#]*)", readme):
        assert (ROOT / link).exists(), link


def test_the_install_page_settings_example() -> None:
    namespace: dict[str, Any] = {}
    for block in python_blocks("docs/install.md"):
        exec(compiled("docs/install.md", block), namespace)
    assert namespace["INSTALLED_APPS"][-1] == "django_retrytasks"


def test_the_settings_reference_example_is_valid() -> None:
    namespace: dict[str, Any] = {}
    [block] = python_blocks("docs/reference/settings.md")
    exec(compiled("docs/reference/settings.md", block), namespace)
    values = {name: value for name, value in namespace.items() if name.startswith("RETRYTASKS_")}
    with override_settings(**values):
        settings = get_settings()
    assert settings.retention["cancelled"] is None
    assert settings.retention["aborted"] == settings.retention["failed"]
    assert (settings.prune_interval, settings.heartbeat_timeout) == (300, 30)


TUTORIAL = "docs/tutorial.md"


@pytest.mark.django_db
def test_the_tutorial_ends_with_a_retried_job_in_the_admin(
    clock: Clock, monkeypatch: pytest.MonkeyPatch, admin_client: Client, admin_user: User
) -> None:
    settings_block, tasks_block, shell_block = python_blocks(TUTORIAL)
    settings: dict[str, Any] = {}
    exec(compiled(TUTORIAL, settings_block), settings)
    assert {"billing", "django_retrytasks", "django.contrib.admin"} <= set(
        settings["INSTALLED_APPS"]
    )
    # billing/tasks.py, as the reader writes it, importable as in their project.
    billing, billing_tasks = types.ModuleType("billing"), types.ModuleType("billing.tasks")
    billing.tasks = billing_tasks  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "billing", billing)
    monkeypatch.setitem(sys.modules, "billing.tasks", billing_tasks)
    exec(compiled(TUTORIAL, tasks_block), billing_tasks.__dict__)
    shell: dict[str, Any] = {}
    exec(compiled(TUTORIAL, shell_block), shell)

    runner = JobRunner(now=clock())
    assert runner.run() == 1  # the first run fails; the retry waits 10 s
    assert runner.job(shell["job_id"]).status == "todo"
    assert runner.run(advance=True) == 2
    job = Job.objects.get(pk=shell["job_id"])
    assert (job.task_name, job.status, job.attempts) == (
        "billing.tasks.charge_order",
        "succeeded",
        3,
    )
    assert job.return_value == "order 42 charged"
    runs = list(job.attempt_history.order_by("number"))
    assert [(run.outcome, run.error_type) for run in runs][:2] == [
        ("failed", "ConnectionError")
    ] * 2
    assert (runs[1].retry_at - runs[1].finished_at).total_seconds() == pytest.approx(10, abs=1)

    listing = admin_client.get("/admin/django_retrytasks/job/").content.decode()
    assert "billing.tasks.charge_order" in listing and "3 / 4" in listing
    page = admin_client.get(f"/admin/django_retrytasks/job/{job.pk}/change/").content.decode()
    assert page.count("ConnectionError: the payment provider did not answer") >= 2


ASYNC_GUIDE = "docs/howto/async.md"


@pytest.mark.django_db
def test_the_async_guide_examples_run(clock: Clock) -> None:
    namespace: dict[str, Any] = {"__name__": "docs_async"}
    for block in python_blocks(ASYNC_GUIDE):
        exec(compiled(ASYNC_GUIDE, block), namespace)
    runner = JobRunner(now=clock())
    assert runner.run(advance=True) == 2  # the first run fails, the retry 5 s later succeeds
    job = runner.job(namespace["job_id"])
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert job.return_value == {"currency": "EUR", "rate": "1.08"}
    [failed, succeeded] = job.attempt_history.order_by("number")
    assert (failed.error_type, succeeded.outcome) == ("ConnectionError", "succeeded")
    assert (failed.retry_at - failed.finished_at).total_seconds() == pytest.approx(5, abs=1)


LIMITS = "docs/limits.md"


@app.task(name="docs.noop_with_payload")
def noop_with_payload(payload: str) -> None:
    """A task whose argument can be as large as a test needs."""


@pytest.mark.django_db
def test_the_limits_page_setting_lets_larger_arguments_through() -> None:
    namespace: dict[str, Any] = {}
    [block] = python_blocks(LIMITS, "`RETRYTASKS_MAX_ARGUMENTS_SIZE`")
    exec(compiled(LIMITS, block), namespace)
    two_mib = "x" * (2 * 1024 * 1024)
    with pytest.raises(ArgumentsTooLarge):
        noop_with_payload.defer(payload=two_mib)
    with override_settings(**namespace):
        job_id = noop_with_payload.defer(payload=two_mib)
    assert len(Job.objects.get(pk=job_id).task_kwargs["payload"]) == len(two_mib)


DEPLOYMENT = "docs/howto/deployment.md"


def test_the_pgbouncer_settings_give_the_listener_a_direct_connection() -> None:
    from django.db.utils import ConnectionHandler

    namespace: dict[str, Any] = {}
    [block] = python_blocks(DEPLOYMENT, "Behind PgBouncer")
    exec(compiled(DEPLOYMENT, block), namespace)
    handler = ConnectionHandler(namespace["DATABASES"])
    pooled, direct = handler["default"], handler[namespace["RETRYTASKS_LISTEN_DATABASE"]]
    assert pooled.vendor == direct.vendor == "postgresql"
    assert pooled.settings_dict["DISABLE_SERVER_SIDE_CURSORS"]
    assert pooled.settings_dict["PORT"] != direct.settings_dict["PORT"]
    assert direct.settings_dict["TEST"]["MIRROR"] == "default"
