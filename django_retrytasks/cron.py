"""Tick arithmetic for periodic tasks: which moments a cron expression names, in a time zone.

Pure: croniter and zoneinfo, no Django, unit-tested without a database. A *tick* is one
moment a schedule names, as whole Unix seconds (what a periodic task receives as
``timestamp``). Expressions are read in the schedule's time zone by croniter, so daylight
saving time follows croniter's rules (docs/periodic.md shows them with examples):

- a wall time the spring change skips is ticked once, at the first wall time after the gap,
  when the expression names a fixed hour ("30 2 * * *" ticks at 03:00 that day); with ``*``
  in the hour field, the skipped times are simply not ticked ("30 * * * *" goes from 01:30
  to 03:30);
- a wall time the autumn change repeats is ticked twice, once at each UTC offset ("30 2 * *
  *" ticks at 02:30+02:00 and again at 02:30+01:00 in Paris), because they are two moments.

Ticks are always walked forward from a tick already known (the last one handled), never
found backwards, so that every worker walking the same schedule finds the same ticks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

#: What a cron expression may look like, for error messages.
FORMS = (
    "5 fields (minute hour day-of-month month day-of-week), or 6 with seconds as the last "
    "field, such as '*/5 * * * *' or '* * * * * */10'"
)
#: croniter's shorthands, each the same as a 5-field expression ("@daily" is "0 0 * * *").
ALIASES = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
#: croniter's random ("R") and hashed ("H") fields: every worker would pick its own moments.
_RANDOM_OR_HASHED = re.compile(r"^[hr](\(\d+-\d+\))?(/\d+)?$", re.IGNORECASE)
#: Where :func:`parse` checks that an expression ever ticks (croniter looks 50 years ahead).
_PROBE_FROM = 946_684_800  # 2000-01-01T00:00:00Z


@dataclass(frozen=True)
class Cron:
    """A checked cron expression (fields separated by single spaces)."""

    expression: str

    @property
    def with_seconds(self) -> bool:
        return len(self.expression.split(" ")) == 6

    def __str__(self) -> str:
        return self.expression


def parse(expression: object) -> Cron:
    """Return ``expression`` checked: ``TypeError`` or ``ValueError`` naming what is wrong."""
    if not isinstance(expression, str):
        raise TypeError(
            f"cron must be a string such as '*/5 * * * *', got {type(expression).__name__}"
        )
    text = " ".join(expression.split())
    if text.lower() in ALIASES:
        return Cron(text.lower())
    fields = text.split(" ") if text else []
    if len(fields) not in (5, 6):
        raise ValueError(f"cron {expression!r} has {len(fields)} fields; give {FORMS}")
    for position, field in enumerate(fields, start=1):
        if _RANDOM_OR_HASHED.match(field):
            raise ValueError(
                f"cron {expression!r}: field {position} ({field!r}) is random or hashed, so "
                "each worker would tick at other moments; give the values"
            )
    try:
        croniter(text, _PROBE_FROM).get_next(float)
    except (ValueError, TypeError, KeyError, IndexError) as error:
        # croniter's errors are ValueErrors; its parser lets a few others through.
        problem = str(error) or type(error).__name__
        if "failed to find next date" in problem:
            problem = "it names no moment that exists (such as the 30th of February)"
        raise ValueError(f"cron {expression!r} is not valid: {problem}") from None
    return Cron(text)


def zone(name: object) -> ZoneInfo:
    """The IANA time zone ``name`` ("Europe/Paris", "UTC"); ``ValueError`` naming an unknown one."""
    if not isinstance(name, str):
        raise TypeError(
            f"timezone must be an IANA time zone name such as 'Europe/Paris', got "
            f"{type(name).__name__}"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: give an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from None


def ticks_after(cron: Cron, zone: tzinfo, after: int) -> Iterator[int]:
    """The ticks strictly after ``after`` (Unix seconds), in order, for ever."""
    walker = croniter(cron.expression, datetime.fromtimestamp(after, tz=zone))
    while True:
        yield int(walker.get_next(float))


def next_tick(cron: Cron, zone: tzinfo, after: int) -> int:
    """The first tick strictly after ``after``."""
    return next(ticks_after(cron, zone, after))


def ticks_between(cron: Cron, zone: tzinfo, after: int, until: float) -> list[int]:
    """The ticks in ``(after, until]``, oldest first."""
    found = []
    for tick in ticks_after(cron, zone, after):
        if tick > until:
            break
        found.append(tick)
    return found


@dataclass(frozen=True)
class Due:
    """What one look at a schedule found: ticks to defer, and ticks too old for it."""

    #: Ticks to defer now, oldest first.
    ticks: tuple[int, ...]
    #: The first tick too old to defer, when there were such ticks; then every tick from it
    #: to :attr:`resume_after` is skipped.
    skipped_from: int | None
    #: Where the next look starts when no tick of :attr:`ticks` is handled.
    resume_after: int


def due_ticks(cron: Cron, zone: tzinfo, *, after: int, now: float, max_delay: float) -> Due:
    """The ticks in ``(after, now]``: those at most ``max_delay`` seconds old are due, the
    older ones skipped (only the first is named, so that a long gap costs nothing)."""
    oldest_due = math.ceil(now - max_delay)
    first = next_tick(cron, zone, after)
    if first < oldest_due:
        start = max(after, oldest_due - 1)
        return Due(tuple(ticks_between(cron, zone, start, now)), first, start)
    return Due(tuple(ticks_between(cron, zone, after, now)), None, after)


def moment(tick: int, zone: tzinfo = UTC) -> datetime:
    """A tick as an aware datetime in ``zone``."""
    return datetime.fromtimestamp(tick, tz=zone)
