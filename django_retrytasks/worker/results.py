"""How one run went, as the executor saw it, with its error described in bounded, safe text.

Plain values (no database, no Django): judging reads a :class:`RunResult`, unit tests
build one by hand.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django_retrytasks.handlers import JobHandler
from django_retrytasks.limits import (
    MAX_ERROR_MESSAGE_LENGTH,
    MAX_TRACEBACK_LENGTH,
    cut_start,
    cut_text,
)
from django_retrytasks.records import Claim
from django_retrytasks.worker.tracebacks import error_type_name, format_traceback


class RunKind(enum.Enum):
    RETURNED = "returned"  #: the function returned a value that JSON can hold
    RAISED = "raised"  #: the function raised (or ran past its timeout)
    UNSTORABLE = "unstorable"  #: the function returned a value that JSON cannot hold
    CANNOT_RUN = "cannot run"  #: the function was never called (see ``handlers.CannotRun``)


@dataclass(frozen=True, slots=True)
class ErrorText:
    """An error as the attempt row stores it: bounded, and safe whatever the error does."""

    type: str = ""
    message: str = ""
    traceback: str = ""

    @classmethod
    def of(cls, error: BaseException) -> ErrorText:
        return cls(
            type=error_type_name(error)[:255],
            message=cut_text(safe_str(error), MAX_ERROR_MESSAGE_LENGTH),
            # The end of a traceback (where the error was raised) is kept.
            traceback=cut_start(format_traceback(error), MAX_TRACEBACK_LENGTH),
        )


@dataclass(frozen=True, slots=True)
class RunResult:
    """How one run of a claimed job went."""

    claim: Claim
    kind: RunKind
    finished_at: datetime
    #: The handler that ran it; ``None`` when none could be found.
    handler: JobHandler | None = None
    return_value: Any = None
    error: BaseException | None = None
    error_text: ErrorText = ErrorText()
    #: Why the job could not run (``CANNOT_RUN``), as its attempt records it.
    reason: str = ""


def safe_str(error: BaseException) -> str:
    """``str(error)``, or a description when that raises (a broken ``__str__``)."""
    try:
        return str(error)
    except BaseException as failure:
        return f"<{error_type_name(error)} whose str() raised {error_type_name(failure)}>"
