"""How job data is written for people (pure functions, no database)."""

from __future__ import annotations

from typing import Any

import pytest

from django_retrytasks import display
from django_retrytasks.models import UndecodableJSON
from tests.test_limits import nested


@pytest.mark.parametrize(
    ("text", "multiline", "shown"),
    [
        ("plain text, ünïcødé 😀", False, "plain text, ünïcødé 😀"),
        ("\x1b]0;pwned\x07", False, "\\x1b]0;pwned\\x07"),  # retitles the terminal
        ("\x1b[2J\x1b[H", False, "\\x1b[2J\\x1b[H"),  # clears the screen
        ("\x9b31m", False, "\\x9b31m"),  # a C1 control sequence introducer
        ("a\u202eb\u2066c", False, "a\\u202eb\\u2066c"),  # text that reorders itself
        ("line\nnext\tcell\r", False, "line\\x0anext\\x09cell\\x0d"),
        ("line\nnext\tcell\r", True, "line\nnext\tcell\\x0d"),
        ("\x00\x7f", True, "\\x00\\x7f"),
    ],
)
def test_escape_controls(text: str, multiline: bool, shown: str) -> None:
    assert display.escape_controls(text, multiline=multiline) == shown


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"b": 1, "a": ["ü", None]}, '{\n  "a": [\n    "ü",\n    null\n  ],\n  "b": 1\n}'),
        (
            UndecodableJSON(error="nested too deep", size=20_000),
            '"<stored JSON that cannot be read back (nested too deep); 20,000 characters>"',
        ),
        (float("nan"), "NaN"),
    ],
)
def test_json_text(value: Any, text: str) -> None:
    assert display.json_text(value) == text


def test_json_text_of_a_value_too_deep_to_indent_or_print_never_raises() -> None:
    # Deeper than the indenting printer (Python code) goes, where the compact one still does.
    text = display.json_text(nested(1_200))
    assert "".join(text.split()) == "[" * 1_200 + "]" * 1_200
    assert display.json_text(nested(50_000)) == "<nested too deep to show>"
