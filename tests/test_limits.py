"""The pure checks of :mod:`django_retrytasks.limits`, without a database."""

from __future__ import annotations

from typing import Any

import pytest

from django_retrytasks import limits
from django_retrytasks.exceptions import ArgumentsNotSerializable, ArgumentsTooLarge


def nested(levels: int) -> Any:
    """A value of ``levels`` nested lists: ``nested(1) == []``."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_the_numbers() -> None:
    assert limits.MAX_QUEUE_LENGTH == 128
    assert limits.MAX_LOCK_LENGTH == 255
    assert limits.MAX_TASK_NAME_LENGTH == 255
    assert limits.DEFAULT_MAX_ARGUMENTS_SIZE == 1_048_576
    assert limits.MAX_ERROR_MESSAGE_LENGTH == 65_536
    assert limits.MAX_TRACEBACK_LENGTH == 262_144


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("x" * 100, 40, "x" * 13 + "… [cut: 87 more characters]"),
        ("x" * 10_000_000, 60, "x" * 26 + "… [cut: 9,999,974 more characters]"),
        ("abcdef", 3, "abc"),  # no room for a marker
        ("abc", 0, ""),
    ],
)
def test_cut_text(text: str, limit: int, expected: str) -> None:
    assert limits.cut_text(text, limit) == expected
    assert len(limits.cut_text(text, limit)) <= limit


def test_cut_text_counts_exactly_what_it_cut() -> None:
    # Lengths where the count gains a digit as the marker grows.
    for length in range(60, 2000, 7):
        text = "y" * length
        cut = limits.cut_text(text, 50)
        kept = cut.index("…")
        assert len(cut) == 50
        assert cut.endswith(f"[cut: {length - kept:,} more characters]")


def test_cut_text_refuses_a_negative_limit() -> None:
    with pytest.raises(ValueError, match="limit must be >= 0"):
        limits.cut_text("x", -1)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("plain", None),
        ("ünïcødé 😀 \t\n", None),
        ("a\x00b", "contains a NUL character (U+0000) at position 1"),
        ("\ud800", "contains a surrogate code point (U+D800) at position 0"),
        ("ok\ud83d\ude00", "contains a surrogate code point (U+D83D) at position 2"),
        ("x\udfff", "contains a surrogate code point (U+DFFF) at position 1"),
    ],
)
def test_text_problem(text: str, problem: str | None) -> None:
    assert limits.text_problem(text) == problem


def test_check_json_turns_tuples_into_lists_and_keeps_the_rest() -> None:
    value = {"a": (1, 2.5, None, True), "b": {"c": "ü"}, "d": -(10**40), "e": 1e15}
    assert limits.check_json(value) == {
        "a": [1, 2.5, None, True],
        "b": {"c": "ü"},
        "d": -(10**40),
        "e": 1e15,
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"a": "x\x00"}, "job argument a contains a NUL character (U+0000) at position 1"),
        ({"a": {"b": ["\ud800"]}}, "job argument a['b'][0] contains a surrogate code point"),
        ({"k\x00": 1}, "job arguments have a key that contains a NUL character"),
        ({"a": [{"\udc00": 1}]}, "job argument a[0] has a key that contains a surrogate"),
        ({"a": 1e16}, "job argument a is the float 1e+16, which PostgreSQL reads back"),
        ({"a": -1.5e300}, "job argument a is the float -1.5e+300"),
        ({"a": float("inf")}, "job argument a is inf, which JSON cannot hold"),
        ({"a": 10**4300}, "job argument a is an integer of more than 4,300 digits"),
        ({"a": {1: 2}}, "job argument a has a non-string key 1"),
        ({"a": b"x"}, "job argument a is a bytes, which is not JSON-serialisable"),
    ],
)
def test_check_json_refusals(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentsNotSerializable) as caught:
        limits.check_json(arguments)
    assert str(caught.value).startswith(message)


def test_depth_limit_counts_the_arguments_dict_as_level_one() -> None:
    deepest = nested(limits.MAX_JSON_DEPTH - 1)
    assert limits.check_json({"v": deepest}) == {"v": deepest}
    with pytest.raises(ArgumentsNotSerializable, match="nested too deep: more than 100 levels"):
        limits.check_json({"v": nested(limits.MAX_JSON_DEPTH)})


@pytest.mark.parametrize("levels", [5_000, 20_000, 1_000_000])
def test_any_depth_is_refused_without_recursion_error(levels: int) -> None:
    with pytest.raises(ArgumentsNotSerializable) as caught:
        limits.check_json({"v": nested(levels)})
    # The path is named, cut short: not a million subscripts.
    assert str(caught.value) == (
        "job argument v[0][0][0][0][0][0][0][0][…] is nested too deep: more than 100 levels, "
        "past what every database and JSON parser reads back alike"
    )


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ArgumentsNotSerializable, match="nested too deep: more than 100 levels"):
        limits.check_json({"loop": loop})


def test_size_is_measured_in_utf8_bytes_of_compact_json() -> None:
    # {"t":"..."} is 8 bytes around the text; "é" is 2 bytes in UTF-8.
    assert limits.check_arguments({"t": "é" * 46}, max_size=100) == {"t": "é" * 46}
    with pytest.raises(ArgumentsTooLarge) as caught:
        limits.check_arguments({"t": "é" * 47}, max_size=100)
    assert str(caught.value) == (
        "job arguments are 102 bytes as JSON, more than the 100 bytes "
        "RETRYTASKS_MAX_ARGUMENTS_SIZE allows; store large data elsewhere (a file, a row) and "
        "pass its key, or raise the setting"
    )
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("value", "option", "message"),
    [
        ("q" * 129, "queue", "queue is at most 128 characters, got 129"),
        ("l" * 256, "lock", "lock is at most 255 characters, got 256"),
        ("a\x00", "lock", "lock contains a NUL character (U+0000) at position 1, which the"),
        ("\udbff", "queue", "queue contains a surrogate code point (U+DBFF) at position 0"),
        ("", "queue", "queue must be a non-empty string, got ''"),
        (3, "lock", "lock must be a non-empty string, got 3"),
    ],
)
def test_check_name(value: object, option: str, message: str) -> None:
    max_length = limits.MAX_QUEUE_LENGTH if option == "queue" else limits.MAX_LOCK_LENGTH
    with pytest.raises(ValueError) as caught:
        limits.check_name(value, option=option, max_length=max_length, allow_none=True)
    assert str(caught.value).startswith(message)


def test_check_name_keeps_good_names() -> None:
    assert limits.check_name("q" * 128, option="queue", max_length=128, allow_none=False)
    assert limits.check_name(None, option="lock", max_length=255, allow_none=True) is None


# --- the task function's signature -----------------------------------------------------------


def order(order_id: int, *, dry_run: bool = False) -> None: ...


def with_context(context: object, /, steps: int = 3) -> None: ...


def anything(context: object, **kwargs: object) -> None: ...


def positional_only(a: int, /) -> None: ...


def no_parameters() -> None: ...


@pytest.mark.parametrize(
    ("func", "pass_context", "names", "problem"),
    [
        (order, False, ["order_id"], None),
        (order, False, ["order_id", "dry_run"], None),
        (
            order,
            False,
            ["order_idd"],
            "got an unknown argument 'order_idd' (did you mean 'order_id'?); "
            "the task takes dry_run, order_id",
        ),
        (order, False, [], "is missing the required argument 'order_id'"),
        (with_context, True, [], None),
        (with_context, True, ["steps"], None),
        (
            with_context,
            True,
            ["context"],
            "got an unknown argument 'context'; the task takes steps",
        ),
        (anything, True, ["any", "name"], None),
        # Without pass_context the first parameter is an ordinary keyword argument.
        (anything, False, ["any"], "is missing the required argument 'context'"),
        (
            positional_only,
            False,
            ["a"],
            "cannot run: the function's parameter 'a' is positional-only, and jobs pass "
            "keyword arguments only",
        ),
        (
            no_parameters,
            True,
            [],
            "cannot run: pass_context=True, but the function has no positional parameter to "
            "take the context",
        ),
        (no_parameters, False, ["x"], "got an unknown argument 'x'; the task takes no arguments"),
    ],
)
def test_call_shape(func: Any, pass_context: bool, names: list[str], problem: str | None) -> None:
    shape = limits.call_shape(func, pass_context=pass_context)
    assert shape is not None
    assert shape.problem(names) == problem


def test_a_signature_python_cannot_read_is_not_checked() -> None:
    unreadable = type("Unreadable", (), {"__signature__": "not a signature", "__call__": None})()
    assert limits.call_shape(unreadable, pass_context=False) is None
