"""A property of ``defer``, ``configure`` and ``batch_defer`` over generated input.

Each call either stores jobs whose options and arguments read back equal (same values of the
same JSON kinds), or raises ``ValueError``/``TypeError`` and stores nothing (or, for a batch of
several jobs with one queueing lock, ``AlreadyEnqueued``: one waiting job per queueing lock). Which of the two
is computed here from the input alone, by rules written independently of the code under test
(:func:`expected_refusal`), so the outcome cannot depend on the database: the suite runs once on
SQLite and once on PostgreSQL, and passing on both means both agree. The examples are drawn
from a fixed seed (``derandomize``), so both runs see the same inputs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from django_retrytasks import AlreadyEnqueued, App
from django_retrytasks.models import Job
from tests.test_limits import nested

pytestmark = pytest.mark.django_db

local = App()


@local.task(name="property.takes_anything")
def takes_anything(**kwargs: Any) -> None: ...


#: A small size limit, so that arguments on both sides of it are cheap to generate.
MAX_SIZE = 2000
#: Characters that meet the rules (NUL, surrogates) and harmless oddities.
AWKWARD = ["\x00", "\ud800", "\udfff", "\ud83d", "\ude00", "😀", "\u2028", "\x1b", "é", "\\", '"']

characters = st.one_of(st.characters(), st.sampled_from(AWKWARD))
short_text = st.one_of(
    st.text(characters, max_size=12), st.sampled_from(["\ud83d\ude00", "\x1b[2J", "a\x00"])
)
# Lengths around the columns' limits (128 for queues, 255 for locks).
long_text = st.builds(
    lambda start, length: (start * length)[:length],
    st.text(characters, min_size=1, max_size=3),
    st.sampled_from([127, 128, 129, 254, 255, 256, 1000]),
)
plain_name = st.from_regex(r"[a-z][a-z0-9._-]{0,15}", fullmatch=True)
# Mostly names that work, so that more calls get as far as their arguments.
names = st.one_of(plain_name, plain_name, plain_name, short_text, long_text)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e16, -1e16, 9999999999999998.0, 1e23, 5e-324, -0.0, 1e15 + 0.5]),
)
integers = st.one_of(
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1]),
    # Around Python's limit of 4,300 digits for int to text (built, not listed: too long to
    # print in a report).
    st.builds(
        lambda sign, digits: sign * 10**digits,
        st.sampled_from([1, -1]),
        st.sampled_from([4299, 4300]),
    ),
)
scalars = st.one_of(st.none(), st.booleans(), integers, floats, short_text)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(short_text, children, max_size=4),
    ),
    max_leaves=12,
)
deep = st.builds(nested, st.sampled_from([98, 99, 100, 101, 5_000, 20_000]))
# Strings around MAX_SIZE once wrapped in {"blob":"..."} (11 bytes); "é" takes 2 bytes.
big = st.builds(
    lambda char, count: char * count,
    st.sampled_from(["x", "é"]),
    st.sampled_from([900, 994, 995, 1000, 1989, 1990]),
)
arguments = st.dictionaries(short_text, st.one_of(json_like, json_like, deep, big), max_size=4)


@dataclass
class Call:
    """One generated call: how, with which options, with which arguments."""

    how: str  # "defer", "configure" or "batch_defer"
    options: dict[str, str] = field(default_factory=dict)
    generated: list[dict[str, Any]] = field(default_factory=list)

    @property
    def arguments(self) -> list[dict[str, Any]]:
        """One dict of arguments per job: several for ``batch_defer``, else one."""
        return self.generated if self.how == "batch_defer" else self.generated[:1]


calls = st.builds(
    Call,
    how=st.sampled_from(["defer", "configure", "batch_defer"]),
    options=st.dictionaries(st.sampled_from(["queue", "lock", "queueing_lock"]), names),
    generated=st.lists(arguments, min_size=1, max_size=3),
)


# --- the expectation, from the rules alone ---------------------------------------------------


def unstorable_text(text: str) -> bool:
    return any(char == "\x00" or 0xD800 <= ord(char) <= 0xDFFF for char in text)


def depth(value: Any) -> int:
    """Levels of nesting of lists and dicts (0 for a scalar); stops counting past 200."""
    levels = 0
    layer = [value]
    while layer and levels <= 200:
        containers = [item for item in layer if isinstance(item, list | tuple | dict)]
        if not containers:
            break
        levels += 1
        layer = [
            child
            for container in containers
            for child in (container.values() if isinstance(container, dict) else container)
        ]
    return levels


def bad_scalar(value: Any) -> bool:
    if isinstance(value, str):
        return unstorable_text(value)
    if isinstance(value, float):
        return not math.isfinite(value) or abs(value) >= 1e16
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) >= 10**4300  # more than 4,300 digits
    return False


def leaves_and_keys(value: Any) -> tuple[list[Any], list[str]]:
    leaves: list[Any] = []
    keys: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            keys.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        else:
            leaves.append(item)
    return leaves, keys


def json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def expected_refusal(call: Call) -> type[Exception] | None:
    """The exception the call must raise (None: it must store its jobs), by the rules."""
    limits = {"queue": 128, "lock": 255, "queueing_lock": 255}
    for option, value in call.options.items():
        if not value or len(value) > limits[option] or unstorable_text(value):
            return ValueError
    for kwargs in call.arguments:
        if depth(kwargs) > 100:
            return TypeError
        leaves, keys = leaves_and_keys(kwargs)
        if any(map(bad_scalar, leaves)) or any(map(unstorable_text, keys)):
            return TypeError
        if json_bytes(kwargs) > MAX_SIZE:
            return TypeError
    if call.options.get("queueing_lock") and len(call.arguments) > 1:
        return AlreadyEnqueued  # one waiting job per queueing lock
    return None


def as_json_kinds(value: Any) -> Any:
    """``value`` as JSON reads it back: tuples are lists."""
    if isinstance(value, dict):
        return {key: as_json_kinds(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_json_kinds(item) for item in value]
    return value


def same(stored: Any, expected: Any) -> bool:
    """Equal values of the same JSON kinds (``1``, ``1.0`` and ``True`` differ)."""
    if type(stored) is not type(expected):
        return False
    if isinstance(expected, dict):
        return stored.keys() == expected.keys() and all(
            same(stored[key], expected[key]) for key in expected
        )
    if isinstance(expected, list):
        return len(stored) == len(expected) and all(map(same, stored, expected))
    return bool(stored == expected)


# --- the property ------------------------------------------------------------------------------


def make(call: Call) -> list[int]:
    if call.how == "batch_defer":
        return takes_anything.configure(**call.options).batch_defer(*call.arguments)
    [kwargs] = call.arguments
    if call.how == "configure":
        return [takes_anything.configure(**call.options).defer(**kwargs)]
    # Plain defer() takes no options: here they are the options the task is declared with.
    declared = App().task(name="property.declared", **call.options)(lambda **kwargs: None)
    return [declared.defer(**kwargs)]


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(call=calls)
def test_each_call_stores_what_reads_back_equal_or_refuses_with_nothing_stored(call: Call) -> None:
    expected = expected_refusal(call)
    event(f"{call.how}: {'stored' if expected is None else expected.__name__}")
    with override_settings(RETRYTASKS_MAX_ARGUMENTS_SIZE=MAX_SIZE), transaction.atomic():
        if expected is not None:
            with pytest.raises((ValueError, TypeError, AlreadyEnqueued)) as caught:
                make(call)
            assert isinstance(caught.value, expected), caught.value
            assert not Job.objects.exists()
        else:
            ids = make(call)
            jobs = Job.objects.in_bulk(ids)
            assert len(jobs) == len(call.arguments)
            for job_id, kwargs in zip(ids, call.arguments, strict=True):
                job = jobs[job_id]
                assert same(job.task_kwargs, as_json_kinds(kwargs))
                assert job.queue == call.options.get("queue", "default")
                assert job.lock == call.options.get("lock")
                assert job.queueing_lock == call.options.get("queueing_lock")
        transaction.set_rollback(True)
