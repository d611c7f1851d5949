"""The Python examples of README.md and docs/, found by page and section for the tests that run them.

Every ```python block of those pages must be run by some test: tests/test_docs.py finds the
``python_blocks(page, *sections)`` calls in the test modules and fails for a block none of
them takes. A block preceded by the line ``% docs-example: not run yet (...)`` (a MyST comment,
invisible on the page) is left out: for a feature documented before it lands, on a page listed
in ``NOT_RUN_YET_PAGES``. When the feature lands, delete the marker lines, empty the list and
add a test that runs the page's blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

ROOT = Path(__file__).resolve().parent.parent
NOT_RUN_YET = "% docs-example: not run yet"
#: The pages that may hold examples marked NOT_RUN_YET (none at the moment).
NOT_RUN_YET_PAGES: set[str] = set()
HEADING = re.compile(r"^(#{1,6}) (.+)$")


@dataclass(frozen=True)
class Example:
    page: str  # relative to the repository's root, e.g. "docs/howto/retries.md"
    line: int  # of the opening fence
    sections: tuple[str, ...]  # the headings it sits under, outermost first
    code: str
    runs: bool  # False for a block marked NOT_RUN_YET


def examples(page: str) -> list[Example]:
    """Every ```python block of ``page``, in order, with the headings it sits under."""
    found = []
    headings: list[tuple[int, str]] = []
    fence: str | None = None  # the language of the fenced block we are in, if any
    code: list[str] = []
    start = 0
    previous = ""
    for number, line in enumerate((ROOT / page).read_text().splitlines(), start=1):
        if fence is None and line.startswith("```"):
            fence, code, start, marked = line[3:].strip(), [], number, previous
        elif fence is not None and line.rstrip() == "```":
            if fence == "python":
                found.append(
                    Example(
                        page=page,
                        line=start,
                        sections=tuple(title for _, title in headings),
                        code="\n".join(code) + "\n",
                        runs=not marked.startswith(NOT_RUN_YET),
                    )
                )
            fence = None
        elif fence is not None:
            code.append(line)
        elif heading := HEADING.match(line):
            level = len(heading.group(1))
            headings = [h for h in headings if h[0] < level] + [(level, heading.group(2))]
        previous = line
    return found


def python_blocks(page: str, *sections: str) -> list[str]:
    """The runnable Python blocks of ``page``, or of its ``sections`` (heading texts) in order."""
    runnable = [example for example in examples(page) if example.runs]
    if not sections:
        blocks = [example.code for example in runnable]
    else:
        blocks = []
        for section in sections:
            inside = [example.code for example in runnable if section in example.sections]
            if not inside:
                raise LookupError(f"{page} has no Python example under a heading {section!r}")
            blocks += inside
    if not blocks:
        raise LookupError(f"{page} has no Python example to run")
    return blocks


def compiled(page: str, block: str) -> CodeType:
    """``block`` compiled with the page as its file name, so that tracebacks name the page."""
    return compile(block, str(ROOT / page), "exec")
