"""A failed run's traceback as text, as Python prints it, at a fraction of the cost.

On the retry path every failure's traceback is formatted, and the standard library's
formatting took about a fifth of the worker's time there (profiled, with the ``^^^^`` marks
already left out): it asks the file system whether each source file changed, a ``stat``
per file per traceback, and placing the marks would parse every line of source again. The attempt row needs neither:
the source lines of a running worker are the ones it loaded (linecache keeps them), and
the marks are noise in the admin. The common case, a chain of plain exceptions, is written
here; exception groups and very deep tracebacks (where Python folds repeated lines) go
through the standard library with the marks left out.
"""

from __future__ import annotations

import linecache
import traceback

#: Past this many frames in a chain the standard library formats it (it folds recursion).
MAX_PLAIN_FRAMES = 100

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def format_traceback(error: BaseException) -> str:
    """The traceback of ``error`` with its causes and contexts, without ``^^^^`` marks.

    Never raises: an error that cannot be described is described as such.
    """
    try:
        text = _plain_chain(error)
        return text if text is not None else _standard(error)
    except BaseException as failure:
        return f"<the traceback could not be formatted: {error_type_name(failure)}>"


def _plain_chain(error: BaseException) -> str | None:
    """The chain formatted here, oldest exception first; None when it is not a plain one."""
    blocks: list[str] = []
    seen: set[int] = set()
    frames = 0
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, BaseExceptionGroup):
            return None
        seen.add(id(current))
        block = ["Traceback (most recent call last):\n"] if current.__traceback__ else []
        for frame, line_number in traceback.walk_tb(current.__traceback__):
            frames += 1
            if frames > MAX_PLAIN_FRAMES or line_number is None:
                return None
            code = frame.f_code
            block.append(f'  File "{code.co_filename}", line {line_number}, in {code.co_name}\n')
            line = linecache.getline(code.co_filename, line_number, frame.f_globals).strip()
            if line:
                block.append(f"    {line}\n")
        block.extend(traceback.format_exception_only(type(current), current))
        older, link = current.__cause__, _CAUSE
        if older is None and not current.__suppress_context__:
            older, link = current.__context__, _CONTEXT
        if older is None or id(older) in seen:
            older, link = None, ""
        blocks.append(link + "".join(block))
        current = older
    return "".join(reversed(blocks))


def _standard(error: BaseException) -> str:
    report = traceback.TracebackException.from_exception(error)
    pending = [report]
    while pending:
        part = pending.pop()
        for frame in part.stack:
            frame.colno = None  # no column: no marks
        pending.extend(filter(None, (part.__cause__, part.__context__)))
        pending.extend(part.exceptions or ())
    return "".join(report.format())


def error_type_name(error: BaseException) -> str:
    """The error's class as the attempt row names it: builtins bare, others with their module."""
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
