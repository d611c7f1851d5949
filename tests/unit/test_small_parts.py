"""Backoff, decision checks, errors described safely (no database)."""

from __future__ import annotations

import pytest

from django_retrytasks import RetryDecision
from django_retrytasks.store.sql import sized_chunks
from django_retrytasks.worker.outages import Backoff
from django_retrytasks.worker.results import ErrorText, safe_str


def test_backoff_doubles_up_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(first=0.1, cap=0.5)
    waits = [backoff.next_wait() for _ in range(6)]
    for wait, full in zip(waits, [0.1, 0.2, 0.4, 0.5, 0.5, 0.5], strict=True):
        assert 0.75 * full <= wait <= full
    backoff.reset()
    assert backoff.next_wait() <= 0.1


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"priority": 2**40}, ValueError, "priority must fit in 32 bits"),
        ({"priority": -(2**31) - 1}, ValueError, "priority must fit in 32 bits"),
        ({"priority": "1"}, TypeError, "priority must be an int"),
        ({"queue": "q" * 129}, ValueError, "queue is at most 128 characters, got 129"),
        ({"queue": ""}, ValueError, "queue must be a non-empty string"),
        ({"lock": "l" * 256}, ValueError, "lock is at most 255 characters, got 256"),
        ({"lock": "a\x00b"}, ValueError, "lock contains a NUL character"),
        ({"queue": "\ud800"}, ValueError, "queue contains a surrogate code point"),
        ({"lock": 5}, ValueError, "lock must be a non-empty string"),
    ],
)
def test_a_decision_no_column_can_hold_is_refused_when_built(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RetryDecision(**options)  # type: ignore[arg-type]


def test_a_decision_at_the_limits_is_accepted() -> None:
    decision = RetryDecision(priority=2**31 - 1, queue="q" * 128, lock="l" * 255)
    assert (decision.priority, len(decision.queue or ""), len(decision.lock or "")) == (
        2**31 - 1,
        128,
        255,
    )


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_an_error_whose_str_raises_is_still_described() -> None:
    assert safe_str(Unprintable()) == f"<{__name__}.Unprintable whose str() raised RuntimeError>"
    text = ErrorText.of(Unprintable())
    assert text.type == f"{__name__}.Unprintable"
    assert "Unprintable" in text.traceback


@pytest.mark.parametrize(
    ("count", "largest", "sizes"),
    [
        (0, 512, []),
        (1, 512, [1]),
        (37, 512, [32, 4, 1]),
        (64, 512, [64]),
        (1500, 512, [512, 512, 256, 128, 64, 16, 8, 4]),
        (2000, 1024, [1024, 512, 256, 128, 64, 16]),
    ],
)
def test_rows_go_in_chunks_of_a_few_sizes_in_their_order(
    count: int, largest: int, sizes: list[int]
) -> None:
    rows = list(range(count))
    chunks = list(sized_chunks(rows, largest))
    assert [len(chunk) for chunk in chunks] == sizes
    assert [row for chunk in chunks for row in chunk] == rows
