"""How job data is written for people, in the admin and on the command line.

Job data is whatever a caller deferred or a task raised: values may be long, nested deeper
than a printer can walk, or hold terminal control sequences. Pure functions, no Django.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: C0 and C1 control characters, DEL, and the Unicode controls that reorder text
#: (bidirectional marks, embeddings, overrides and isolates) or hide (the byte order mark):
#: what a terminal obeys, or a reader misreads, instead of plain text.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_MULTILINE_KEPT = frozenset("\n\t")


def escape_controls(text: str, *, multiline: bool = False) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\u202e``),
    so that printing it cannot move the cursor, retitle the window or clear the screen.
    ``multiline`` keeps newlines and tabs as they are."""

    def escape(found: re.Match[str]) -> str:
        character = found.group()
        if multiline and character in _MULTILINE_KEPT:
            return character
        code = ord(character)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _CONTROLS.sub(escape, text)


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as JSON text for reading: indented, keys sorted, non-ASCII kept.

    Never raises: a value that is not JSON (such as ``UndecodableJSON``, a stored value that
    could not be read back) is written as its ``str()``, and one nested deeper than the
    printer can walk is written compactly, or described.
    """
    for options in ({"indent": indent}, {"indent": None}):
        try:
            return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str, **options)
        except RecursionError:
            continue  # the indenting printer is Python code: the compact one goes deeper
        except (TypeError, ValueError) as error:
            return f"<cannot be shown as JSON: {error}>"
    return "<nested too deep to show>"
