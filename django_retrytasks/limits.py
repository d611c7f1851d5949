"""What a job may hold, and the checks that refuse the rest before anything is stored.

Every limit here exists because SQLite and PostgreSQL would otherwise store the same input
differently (or one of them not at all): a queue name longer than its column, a NUL
character, which PostgreSQL text cannot hold, a surrogate code point, which UTF-8 cannot
encode, JSON nested deeper than a parser can read back. The checks run at ``defer()`` so that
a project developed on SQLite meets the error there, not in production on PostgreSQL.

Pure functions over plain values, with no Django import: unit-tested without a database.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django_retrytasks.exceptions import ArgumentsNotSerializable, ArgumentsTooLarge

#: Characters of a task name (the ``task_name`` column).
MAX_TASK_NAME_LENGTH = 255
#: Characters of a queue name (the ``queue`` column).
MAX_QUEUE_LENGTH = 128
#: Characters of a ``lock`` or ``queueing_lock`` (their columns).
MAX_LOCK_LENGTH = 255
#: Levels of nesting of a job's stored arguments, the arguments' own dict being level 1.
#: SQLite's JSON1 refuses documents nested deeper than 1,000 levels (2,000 before 3.45),
#: PostgreSQL's parser runs out of stack (``max_stack_depth``) somewhere past 10,000, and
#: Python's ``json`` meets its recursion limit before 1,000: 100 leaves every one of them,
#: and whatever Python code walks the value, a wide margin.
MAX_JSON_DEPTH = 100
#: Floats this large or larger are written with an exponent (``1e+23``); PostgreSQL keeps
#: them as exact decimals and reads them back as whole numbers (``100000000000000000000000``,
#: a different value than the float), SQLite as the float: such a float is refused.
MAX_FLOAT_MAGNITUDE = 1e16
#: Digits of an integer argument: beyond this Python refuses to convert it to text (and so
#: to write or read it as JSON) unless ``sys.set_int_max_str_digits`` says otherwise.
MAX_INT_DIGITS = 4300
_INT_BOUND = 10**MAX_INT_DIGITS
#: Bytes of a job's arguments written as compact UTF-8 JSON, unless the
#: ``RETRYTASKS_MAX_ARGUMENTS_SIZE`` setting says otherwise.
DEFAULT_MAX_ARGUMENTS_SIZE = 1024 * 1024
#: Characters of an attempt's stored ``error_message`` and ``traceback``.
MAX_ERROR_MESSAGE_LENGTH = 64 * 1024
MAX_TRACEBACK_LENGTH = 256 * 1024
#: Words of an admin search, and characters of each: a search is a few short words.
MAX_SEARCH_WORDS = 5
MAX_SEARCH_WORD_LENGTH = 100
#: Characters of a search word (other than a job id): the text index finds trigrams.
MIN_SEARCH_WORD_LENGTH = 3
#: The setting that moves :data:`DEFAULT_MAX_ARGUMENTS_SIZE` (named in its error message).
ARGUMENTS_SIZE_SETTING = "RETRYTASKS_MAX_ARGUMENTS_SIZE"

#: A NUL character or a surrogate code point: text neither database stores alike.
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


# --- text ------------------------------------------------------------------------------------


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored alike on SQLite and PostgreSQL, or None when it can.

    A NUL character: PostgreSQL's text and JSON types cannot hold it. A surrogate code point
    (U+D800 to U+DFFF, paired or not): not Unicode text, UTF-8 cannot encode it, and
    PostgreSQL reads an escaped pair back as the one character it stands for.
    """
    found = _UNSTORABLE_CHARACTER.search(text)
    if found is None:
        return None
    character = found.group()
    kind = "a NUL character" if character == "\x00" else "a surrogate code point"
    return f"contains {kind} (U+{ord(character):04X}) at position {found.start()}"


def check_name(value: object, *, option: str, max_length: int, allow_none: bool) -> str | None:
    """Return ``value`` if it can be stored as a task name, queue or lock; else ``ValueError``."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{option} must be a non-empty string, got {value!r}")
    if len(value) > max_length:
        raise ValueError(f"{option} is at most {max_length} characters, got {len(value):,}")
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"{option} {problem}, which the database cannot store")
    return value


def cut_text(text: str, limit: int, *, length: int | None = None) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and a marker saying
    how much was cut, ``limit`` characters in all.

    ``length``: the length of the whole when ``text`` is only its start (a head read from the
    database), so that the marker counts what the whole lost.
    """
    return _cut(text, limit, len(text) if length is None else length, keep_end=False)


def cut_start(text: str, limit: int, *, length: int | None = None) -> str:
    """Like :func:`cut_text`, but keeps the end (of a traceback, say), the marker first;
    ``text`` may be only the end of the whole, of ``length`` characters."""
    return _cut(text, limit, len(text) if length is None else length, keep_end=True)


def _cut(text: str, limit: int, length: int, *, keep_end: bool) -> str:
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if length <= limit and len(text) <= limit:
        return text
    # The marker's length depends on the count it shows, which depends on the marker's
    # length: grow it until it stops growing (a few steps at most).
    marker = ""
    while True:
        kept = max(limit - len(marker), 0)
        settled = len(marker)
        cut = (
            f"{length - kept:,} more characters"
            if not keep_end
            else f"{length - kept:,} characters before"
        )
        marker = f"[cut: {cut}] …" if keep_end else f"… [cut: {cut}]"
        if len(marker) == settled:
            break
    if len(marker) > limit:  # no room for a marker: the bare piece
        return text[len(text) - limit :] if keep_end else text[:limit]
    if keep_end:
        return marker + text[len(text) - kept :]
    return text[:kept] + marker


# --- JSON arguments --------------------------------------------------------------------------


#: Subscripts of a path named in an error; a deeper one ends with "[…]".
_PATH_KEYS_SHOWN = 8


class _Path:
    """Where a value sits in the arguments, spelled out only when an error names it."""

    __slots__ = ("key", "parent")

    def __init__(self, parent: _Path | None, key: str | int) -> None:
        self.parent = parent
        self.key = key

    def __str__(self) -> str:
        keys: list[str | int] = []
        node: _Path | None = self
        while node is not None:
            keys.append(node.key)
            node = node.parent
        root, *rest = reversed(keys)
        shown = "".join(f"[{key!r}]" for key in rest[:_PATH_KEYS_SHOWN])
        name = root if isinstance(root, str) and root.isidentifier() else repr(root)
        return f"{name}{shown}{'[…]' if len(rest) > _PATH_KEYS_SHOWN else ''}"


def _refuse(path: _Path, problem: str, noun: str) -> ArgumentsNotSerializable:
    return ArgumentsNotSerializable(f"{noun} {path} {problem}")


def _check_scalar(value: Any, path: _Path, noun: str) -> None:
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise _refuse(path, f"{problem}, which the database cannot store", noun)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _refuse(path, f"is {value!r}, which JSON cannot hold", noun)
        if abs(value) >= MAX_FLOAT_MAGNITUDE:
            raise _refuse(
                path,
                f"is the float {value!r}, which PostgreSQL reads back as a whole number and "
                "SQLite as a float; pass an int (or a string) instead",
                noun,
            )
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -_INT_BOUND < value < _INT_BOUND:
            raise _refuse(path, f"is an integer of more than {MAX_INT_DIGITS:,} digits", noun)
    elif value is not None and not isinstance(value, bool):
        raise _refuse(
            path,
            f"is a {type(value).__name__}, which is not JSON-serialisable; "
            "pass str, int, float, bool, None, lists or dicts",
            noun,
        )


def _check_keys(container: Mapping[Any, Any], path: _Path | None, noun: str) -> None:
    for key in container:
        if type(key) is str and _UNSTORABLE_CHARACTER.search(key) is None:
            continue
        where = f"{noun} {path} has" if path else f"{noun}s have"
        if not isinstance(key, str):
            raise ArgumentsNotSerializable(
                f"{where} a non-string key {key!r}; JSON keys are strings"
            )
        problem = text_problem(key)
        if problem is not None:
            raise ArgumentsNotSerializable(
                f"{where} a key that {problem}, which the database cannot store"
            )


def _check_tree(arguments: Mapping[str, Any], noun: str) -> None:
    """Walk every value (without recursion, so no depth raises RecursionError) and refuse
    anything that would not be stored and read back alike.

    On the hot path of ``defer()``: plain strings and ints are checked inline, and a value's
    path is only built for an error message.
    """
    # (container, its path, its level); the arguments' own dict is level 1.
    pending: list[tuple[Any, _Path | None, int]] = [(arguments, None, 1)]
    while pending:
        container, path, level = pending.pop()
        items: Iterable[tuple[str | int, Any]]
        if isinstance(container, Mapping):
            _check_keys(container, path, noun)
            items = container.items()
        else:
            items = enumerate(container)
        for key, value in items:
            kind = type(value)
            if kind is str:
                if _UNSTORABLE_CHARACTER.search(value) is None:
                    continue
            elif kind is int:
                if -_INT_BOUND < value < _INT_BOUND:
                    continue
            elif kind is bool or value is None:
                continue
            elif isinstance(value, list | tuple | dict):
                if level + 1 > MAX_JSON_DEPTH:
                    raise _refuse(
                        _Path(path, key),
                        f"is nested too deep: more than {MAX_JSON_DEPTH} levels, past what every "
                        "database and JSON parser reads back alike",
                        noun,
                    )
                pending.append((value, _Path(path, key), level + 1))
                continue
            _check_scalar(value, _Path(path, key), noun)


def _checked_text(arguments: Any, noun: str = "job argument") -> str:
    """The arguments as compact JSON text, after checking they round-trip unchanged in kind.

    ``noun`` names what is checked in an error message (``job argument x is ...``).
    """
    if not isinstance(arguments, Mapping):
        raise ArgumentsNotSerializable(
            f"{noun}s must be a dict, not {type(arguments).__name__}"
        )
    _check_tree(arguments, noun)
    try:
        return json.dumps(dict(arguments), ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:  # a str or float subclass that misbehaves
        raise ArgumentsNotSerializable(f"{noun}s cannot be written as JSON: {error}") from error


def check_json(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``arguments`` as plain JSON data (tuples become lists) after checking that both
    databases store it and read it back alike; else :class:`ArgumentsNotSerializable`."""
    result: dict[str, Any] = json.loads(_checked_text(arguments))
    return result


def check_return_value(value: Any) -> Any:
    """``value`` as plain JSON data if both databases store it and read it back alike; else
    :class:`ArgumentsNotSerializable`, naming it ``return value``."""
    return json.loads(_checked_text({"value": value}, noun="return"))["value"]


def check_priority(value: object) -> int:
    """Return ``value`` if it is an int the ``priority`` column holds (32 bits)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"priority must be an int, not {type(value).__name__}")
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"priority must fit in 32 bits, got {value}")
    return value


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (a surrogate-free string)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def check_arguments(arguments: Mapping[str, Any], *, max_size: int) -> dict[str, Any]:
    """:func:`check_json`, and refuse arguments over ``max_size`` bytes as compact UTF-8 JSON
    (:class:`ArgumentsTooLarge`, both a ``TypeError`` and a ``ValueError``)."""
    return checked_arguments(arguments, max_size=max_size)[0]


def checked_arguments(
    arguments: Mapping[str, Any], *, max_size: int
) -> tuple[dict[str, Any], str]:
    """Like :func:`check_arguments`, with the arguments' compact JSON text (what is stored)."""
    text = _checked_text(arguments)
    # Four bytes a character at most: a short text need not be encoded to be measured.
    if len(text) * 4 > max_size and (size := utf8_size(text)) > max_size:
        raise ArgumentsTooLarge(
            f"job arguments are {size:,} bytes as JSON, more than the {max_size:,} bytes "
            f"{ARGUMENTS_SIZE_SETTING} allows; store large data elsewhere (a file, a row) and "
            "pass its key, or raise the setting"
        )
    result: dict[str, Any] = json.loads(text)
    return result, text


# --- the task function's signature -----------------------------------------------------------


@dataclass(frozen=True)
class CallShape:
    """The keyword arguments a task function accepts, read once from its signature."""

    #: Parameters that must be given (no default).
    required: tuple[str, ...]
    #: Every name accepted; None when the function takes ``**kwargs``.
    accepted: frozenset[str] | None
    #: Why no job of this function can ever run (e.g. a required positional-only
    #: parameter), or None.
    impossible: str | None = None

    def problem(self, names: Iterable[str]) -> str | None:
        """Why a call with keyword arguments ``names`` would fail, or None when it would bind."""
        if self.impossible is not None:
            return self.impossible
        given = set(names)
        unknown = [] if self.accepted is None else sorted(given - self.accepted)
        if unknown:
            name = unknown[0]
            hint = difflib.get_close_matches(name, sorted(self.accepted or ()), n=1)
            takes = ", ".join(sorted(self.accepted or ())) or "no arguments"
            guess = f" (did you mean {hint[0]!r}?)" if hint else ""
            return f"got an unknown argument {name!r}{guess}; the task takes {takes}"
        missing = [name for name in self.required if name not in given]
        if missing:
            listed = ", ".join(map(repr, missing))
            return f"is missing the required argument{'s' if len(missing) > 1 else ''} {listed}"
        return None


def call_shape(func: Callable[..., Any], *, pass_context: bool) -> CallShape | None:
    """The keyword arguments ``func`` accepts when called as a task, or None when its
    signature cannot be read (some callables written in C)."""
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return None
    kind = inspect.Parameter
    if pass_context:
        # The worker passes the context as the first positional argument.
        if parameters and parameters[0].kind in (kind.POSITIONAL_ONLY, kind.POSITIONAL_OR_KEYWORD):
            parameters = parameters[1:]
        elif not any(parameter.kind == kind.VAR_POSITIONAL for parameter in parameters):
            return CallShape(
                required=(),
                accepted=frozenset(),
                impossible="cannot run: pass_context=True, but the function has no positional "
                "parameter to take the context",
            )
    required_positional = [
        parameter.name
        for parameter in parameters
        if parameter.kind == kind.POSITIONAL_ONLY and parameter.default is parameter.empty
    ]
    if required_positional:
        return CallShape(
            required=(),
            accepted=frozenset(),
            impossible=f"cannot run: the function's parameter {required_positional[0]!r} is "
            "positional-only, and jobs pass keyword arguments only",
        )
    by_keyword = [
        parameter
        for parameter in parameters
        if parameter.kind in (kind.POSITIONAL_OR_KEYWORD, kind.KEYWORD_ONLY)
    ]
    takes_any = any(parameter.kind == kind.VAR_KEYWORD for parameter in parameters)
    return CallShape(
        required=tuple(p.name for p in by_keyword if p.default is p.empty),
        accepted=None if takes_any else frozenset(p.name for p in by_keyword),
    )
