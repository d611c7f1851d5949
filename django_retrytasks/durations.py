"""Delays and moments: timedelta-style arguments to seconds, and adding them without overflow.

A leaf module (no Django, nothing of this package), used by retry strategies, snoozes,
``configure(schedule_in=...)`` and the test helpers alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

#: The latest moment a retry is ever scheduled for. Far-future delays saturate here
#: instead of overflowing ``datetime`` (year 9999 fits every supported database).
LATEST_RETRY_AT = datetime(9999, 12, 31, tzinfo=UTC)

_TIMEDELTA_UNITS_IN_SECONDS = {
    "weeks": 604800.0,
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
    "microseconds": 0.000001,
}


def delay_to_seconds(delay: Mapping[str, float] | timedelta | float | int, *, name: str) -> float:
    """Return a delay given as timedelta keyword arguments, a timedelta or seconds, in seconds.

    Unlike ``timedelta(**kwargs)`` this never overflows: a delay too long for a
    datetime comes back as a huge (or infinite) float, which :func:`add_delay` saturates.
    """
    if isinstance(delay, timedelta):
        return delay.total_seconds()
    if isinstance(delay, bool):
        raise TypeError(f"{name} must be a dict of timedelta arguments or a timedelta, not a bool")
    if isinstance(delay, int | float):
        seconds = float(delay)
    elif isinstance(delay, Mapping):
        seconds = 0.0
        for unit, amount in delay.items():
            if unit not in _TIMEDELTA_UNITS_IN_SECONDS:
                raise TypeError(
                    f"{name} has an unknown unit {unit!r}; use any of "
                    + ", ".join(_TIMEDELTA_UNITS_IN_SECONDS)
                )
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise TypeError(f"{name}[{unit!r}] must be a number, not {type(amount).__name__}")
            seconds += float(amount) * _TIMEDELTA_UNITS_IN_SECONDS[unit]
    else:
        raise TypeError(
            f"{name} must be a dict of timedelta arguments (e.g. {{'seconds': 10}}) or a "
            f"timedelta, not {type(delay).__name__}"
        )
    if math.isnan(seconds):
        raise ValueError(f"{name} is not a number (NaN)")
    return seconds


def add_delay(now: datetime, seconds: float) -> tuple[datetime, bool]:
    """Return ``now`` plus ``seconds`` and whether the result had to be clamped to the latest time."""
    if seconds >= (LATEST_RETRY_AT - now).total_seconds():
        return LATEST_RETRY_AT, True
    return now + timedelta(seconds=seconds), False


def check_aware(moment: datetime, *, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (with a tzinfo), got {moment!r}")
    return moment
