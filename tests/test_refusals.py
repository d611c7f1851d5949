"""Input that SQLite and PostgreSQL would store differently is refused at ``defer()``.

The suite runs once on each database: every test here names the exact exception and message,
so passing on both means both databases meet the same error, and that nothing was stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import override_settings

from django_retrytasks import App, JobContext, limits
from django_retrytasks.exceptions import ArgumentsNotSerializable, ArgumentsTooLarge
from django_retrytasks.models import Job
from tests.test_limits import nested

pytestmark = pytest.mark.django_db

local = App()


@local.task(name="refusals.takes_anything")
def takes_anything(**kwargs: Any) -> None: ...


@local.task(name="refusals.push_order_to_erp")
def push_order_to_erp(order_id: int, *, dry_run: bool = False) -> None: ...


@local.task(name="refusals.with_context", pass_context=True)
def with_context(job_context: JobContext, steps: int = 3) -> None: ...


LONG_QUEUE = "q" * 129
LONG_LOCK = "l" * 256

#: (how to call, exception type, exact message): each call must store nothing.
REFUSALS: dict[str, tuple[Callable[[], Any], type[Exception], str]] = {
    "queue over 128": (
        lambda: takes_anything.configure(queue=LONG_QUEUE).defer(),
        ValueError,
        "queue is at most 128 characters, got 129",
    ),
    "lock over 255": (
        lambda: takes_anything.configure(lock=LONG_LOCK).defer(),
        ValueError,
        "lock is at most 255 characters, got 256",
    ),
    "queueing lock over 255": (
        lambda: takes_anything.configure(queueing_lock=LONG_LOCK).batch_defer({}, {}),
        ValueError,
        "queueing_lock is at most 255 characters, got 256",
    ),
    "NUL in a queue": (
        lambda: takes_anything.configure(queue="mail\x00").defer(),
        ValueError,
        "queue contains a NUL character (U+0000) at position 4, which the database cannot store",
    ),
    "NUL in a lock": (
        lambda: takes_anything.configure(lock="\x00").defer(),
        ValueError,
        "lock contains a NUL character (U+0000) at position 0, which the database cannot store",
    ),
    "surrogate in a queueing lock": (
        lambda: takes_anything.configure(queueing_lock="a\udc80").defer(),
        ValueError,
        "queueing_lock contains a surrogate code point (U+DC80) at position 1, which the "
        "database cannot store",
    ),
    "NUL in an argument": (
        lambda: takes_anything.defer(note="x\x00y"),
        ArgumentsNotSerializable,
        "job argument note contains a NUL character (U+0000) at position 1, which the database "
        "cannot store",
    ),
    "NUL in a key": (
        lambda: takes_anything.defer(data={"ok": 1, "k\x00": 2}),
        ArgumentsNotSerializable,
        "job argument data has a key that contains a NUL character (U+0000) at position 1, "
        "which the database cannot store",
    ),
    "lone surrogate in an argument": (
        lambda: takes_anything.batch_defer({"ok": 1}, {"items": ["fine", "\ud800"]}),
        ArgumentsNotSerializable,
        "job argument items[1] contains a surrogate code point (U+D800) at position 0, which "
        "the database cannot store",
    ),
    "surrogate in a key": (
        lambda: takes_anything.defer(**{"\udfff": 1}),
        ArgumentsNotSerializable,
        "job arguments have a key that contains a surrogate code point (U+DFFF) at position 0, "
        "which the database cannot store",
    ),
    "nested 20,000 deep": (
        lambda: takes_anything.defer(deep=nested(20_000)),
        ArgumentsNotSerializable,
        "job argument deep[0][0][0][0][0][0][0][0][…] is nested too deep: more than 100 "
        "levels, past what every database and JSON parser reads back alike",
    ),
    "float PostgreSQL reads back as a whole number": (
        lambda: takes_anything.defer(amount=1e23),
        ArgumentsNotSerializable,
        "job argument amount is the float 1e+23, which PostgreSQL reads back as a whole number "
        "and SQLite as a float; pass an int (or a string) instead",
    ),
    "unknown argument": (
        lambda: push_order_to_erp.defer(order_idd=1),
        TypeError,
        "task 'refusals.push_order_to_erp' got an unknown argument 'order_idd' (did you mean "
        "'order_id'?); the task takes dry_run, order_id; nothing was stored",
    ),
    "missing argument": (
        lambda: push_order_to_erp.configure(priority=3).batch_defer({"order_id": 1}, {}),
        TypeError,
        "task 'refusals.push_order_to_erp' is missing the required argument 'order_id'; "
        "nothing was stored",
    ),
    "the context's parameter passed as an argument": (
        lambda: with_context.defer(job_context=1),
        TypeError,
        "task 'refusals.with_context' got an unknown argument 'job_context'; the task takes "
        "steps; nothing was stored",
    ),
    "arguments over 1 MiB": (
        # {"blob":"..."} is 11 bytes around the text.
        lambda: takes_anything.defer(blob="x" * (limits.DEFAULT_MAX_ARGUMENTS_SIZE - 10)),
        ArgumentsTooLarge,
        "job arguments are 1,048,577 bytes as JSON, more than the 1,048,576 bytes "
        "RETRYTASKS_MAX_ARGUMENTS_SIZE allows; store large data elsewhere (a file, a row) and "
        "pass its key, or raise the setting",
    ),
}


def assert_refused(call: Callable[[], Any], kind: type[Exception], message: str) -> None:
    """``call`` raises exactly ``kind`` with exactly ``message``, and stores no job."""
    with pytest.raises(kind) as caught:
        call()
    assert type(caught.value) is kind
    assert str(caught.value) == message
    assert not Job.objects.exists()


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_alike_and_nothing_stored(case: str) -> None:
    assert_refused(*REFUSALS[case])


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_leaves_the_callers_transaction_usable(case: str) -> None:
    call, kind, _ = REFUSALS[case]
    with transaction.atomic():
        kept = takes_anything.defer(before=True)
        with pytest.raises(kind):
            call()
        after = takes_anything.defer(after=True)  # no database error poisoned the transaction
    assert list(Job.objects.order_by("id").values_list("id", flat=True)) == [kept, after]


def test_the_largest_values_allowed_are_stored_and_read_back() -> None:
    arguments = {
        "deepest": nested(limits.MAX_JSON_DEPTH - 1),
        "big_int": 10**4299,
        "largest_float": 9999999999999998.0,
        "smallest_float": 5e-324,
        "text": "ü😀\u2028\x01",
    }
    job_id = takes_anything.configure(
        queue="q" * 128, lock="l" * 255, queueing_lock="k" * 255
    ).defer(**arguments)
    job = Job.objects.get(pk=job_id)
    assert job.task_kwargs == arguments
    assert (len(job.queue), len(job.lock or ""), len(job.queueing_lock or "")) == (128, 255, 255)


def test_arguments_of_exactly_the_size_limit_are_stored() -> None:
    blob = "x" * (limits.DEFAULT_MAX_ARGUMENTS_SIZE - 11)
    job_id = takes_anything.defer(blob=blob)
    assert Job.objects.get(pk=job_id).task_kwargs == {"blob": blob}


def test_the_size_limit_is_a_setting() -> None:
    with override_settings(RETRYTASKS_MAX_ARGUMENTS_SIZE=100):
        with pytest.raises(ArgumentsTooLarge, match="more than the 100 bytes"):
            takes_anything.defer(blob="x" * 90)
        takes_anything.defer(blob="x" * 80)
    with override_settings(RETRYTASKS_MAX_ARGUMENTS_SIZE=5 * limits.DEFAULT_MAX_ARGUMENTS_SIZE):
        takes_anything.defer(blob="x" * 2 * limits.DEFAULT_MAX_ARGUMENTS_SIZE)
    assert Job.objects.count() == 2


def test_a_task_declared_with_a_queue_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match="queue is at most 128 characters, got 129"):
        App().task(queue=LONG_QUEUE)(lambda: None)
    with pytest.raises(ValueError, match="name contains a NUL character"):
        App().task(name="bad\x00name")(lambda: None)


def test_a_function_taking_any_keyword_accepts_any_name() -> None:
    job_id = with_context.defer(steps=5)
    anything = takes_anything.defer(job_context=1, any_name="x")
    assert Job.objects.get(pk=job_id).task_kwargs == {"steps": 5}
    assert Job.objects.get(pk=anything).task_kwargs == {"job_context": 1, "any_name": "x"}


@pytest.mark.parametrize("value", ["1MB", 0, -5, 1.5, True, None])
def test_a_bad_size_setting_is_named_by_defer_and_by_the_system_check(value: object) -> None:
    with override_settings(RETRYTASKS_MAX_ARGUMENTS_SIZE=value):
        with pytest.raises(ImproperlyConfigured, match="RETRYTASKS_MAX_ARGUMENTS_SIZE must be"):
            takes_anything.defer()
        errors = [message for message in run_checks() if message.id == "django_retrytasks.E004"]
    assert [str(error.msg) for error in errors] == [
        f"RETRYTASKS_MAX_ARGUMENTS_SIZE must be a whole number >= 1, got {value!r}"
    ]
    assert not Job.objects.exists()
