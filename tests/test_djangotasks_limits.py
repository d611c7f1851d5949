"""``enqueue()`` through the django.tasks backend refuses what ``defer()`` refuses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django
import pytest

# As in test_djangotasks: the demo's django.tasks tasks need Django 6.1.
if django.VERSION < (6, 1):
    pytest.skip("@task(retry=...) needs Django 6.1 or later", allow_module_level=True)

from django_retrytasks.exceptions import ArgumentsNotSerializable, ArgumentsTooLarge
from testproject.demo.djangotasks_django import echo
from tests.test_limits import nested
from tests.test_refusals import assert_refused

pytestmark = pytest.mark.django_db

REFUSALS: dict[str, tuple[Callable[[], Any], type[Exception], str]] = {
    "NUL in an argument": (
        lambda: echo.enqueue("a\x00"),
        ArgumentsNotSerializable,
        "job argument args[0] contains a NUL character (U+0000) at position 1, which the "
        "database cannot store",
    ),
    "surrogate in a key": (
        lambda: echo.enqueue(data={"\ud800": 1}),
        ArgumentsNotSerializable,
        "job argument kwargs['data'] has a key that contains a surrogate code point (U+D800) "
        "at position 0, which the database cannot store",
    ),
    "nested 20,000 deep": (
        lambda: echo.enqueue(nested(20_000)),
        ArgumentsNotSerializable,
        "job arguments are nested too deep: more than 100 levels",
    ),
    "nested 101 deep": (
        lambda: echo.enqueue(nested(101)),
        ArgumentsNotSerializable,
        "job argument args[0][0][0][0][0][0][0][0][…] is nested too deep: more than 100 "
        "levels, past what every database and JSON parser reads back alike",
    ),
    "over 1 MiB": (
        # {"args":["..."],"kwargs":{}} is 25 bytes around the text.
        lambda: echo.enqueue("x" * 1_048_576),
        ArgumentsTooLarge,
        "job arguments are 1,048,601 bytes as JSON, more than the 1,048,576 bytes "
        "RETRYTASKS_MAX_ARGUMENTS_SIZE allows; store large data elsewhere (a file, a row) and "
        "pass its key, or raise the setting",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_enqueue_refuses_alike_and_stores_nothing(case: str) -> None:
    assert_refused(*REFUSALS[case])
