"""A failed run's traceback: the text Python prints, marks left out, whatever the error."""

from __future__ import annotations

import traceback
from collections.abc import Callable

import pytest

from django_retrytasks.worker.tracebacks import MAX_PLAIN_FRAMES, format_traceback


def as_python_prints_it(error: BaseException) -> str:
    """The standard library's text, without the ``^^^^`` marks under the lines."""
    report = traceback.TracebackException.from_exception(error)
    pending = [report]
    while pending:
        part = pending.pop()
        for frame in part.stack:
            frame.colno = None
        pending.extend(filter(None, (part.__cause__, part.__context__)))
    return "".join(report.format())


def raised(function: Callable[[], object]) -> BaseException:
    try:
        function()
    except BaseException as error:
        return error
    raise AssertionError("did not raise")


def plain() -> None:
    raise ValueError("a message\nover two lines")


def with_cause() -> None:
    try:
        plain()
    except ValueError as error:
        raise RuntimeError("the cause follows") from error


def with_context() -> None:
    try:
        with_cause()
    except RuntimeError:
        raise KeyError("while handling")  # noqa: B904 (the context is what is tested)


def context_suppressed() -> None:
    try:
        plain()
    except ValueError:
        raise TypeError("no context shown") from None


def with_note() -> None:
    error = LookupError("noted")
    error.add_note("a note added by the task")
    raise error


def over_two_lines() -> None:
    (1 + int("not a number"))


def deep(levels: int) -> None:
    if levels:
        deep(levels - 1)
    raise ValueError("at the bottom")


@pytest.mark.parametrize(
    "function",
    [plain, with_cause, with_context, context_suppressed, with_note, over_two_lines],
)
def test_a_chain_of_plain_exceptions_reads_as_python_prints_it(
    function: Callable[[], None],
) -> None:
    error = raised(function)
    text = format_traceback(error)
    assert text == as_python_prints_it(error)
    assert "^" not in text


def test_causes_and_contexts_come_first_with_pythons_words() -> None:
    text = format_traceback(raised(with_context))
    assert text.index("ValueError: a message") < text.index("RuntimeError: the cause follows")
    assert "The above exception was the direct cause of the following exception:" in text
    assert "During handling of the above exception, another exception occurred:" in text
    assert text.endswith("KeyError: 'while handling'\n")
    assert "ValueError" not in format_traceback(raised(context_suppressed))


def test_a_deep_traceback_is_folded_as_python_folds_it() -> None:
    error = raised(lambda: deep(MAX_PLAIN_FRAMES * 2))
    text = format_traceback(error)
    assert "[Previous line repeated" in text
    assert text.endswith("ValueError: at the bottom\n")


def test_an_exception_group_lists_its_exceptions() -> None:
    def group() -> None:
        raise ExceptionGroup("two failed", [raised(plain), raised(with_note)])

    text = format_traceback(raised(group))
    assert "ExceptionGroup: two failed (2 sub-exceptions)" in text
    assert "ValueError: a message" in text and "a note added by the task" in text
    assert "^" not in text


def test_an_error_never_raised_is_its_type_and_message() -> None:
    assert format_traceback(ValueError("never raised")) == "ValueError: never raised\n"


def test_an_error_that_points_at_itself_ends() -> None:
    error = raised(plain)
    error.__context__ = error
    assert format_traceback(error).count("ValueError: a message") == 1
