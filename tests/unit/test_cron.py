"""Tick arithmetic without a database: parsing, time zones, daylight saving time, catch-up."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from django_retrytasks import cron

PERIODIC_DOCS = Path(__file__).resolve().parents[2] / "docs" / "periodic.md"
PARIS = ZoneInfo("Europe/Paris")


def at(text: str, zone: ZoneInfo = PARIS) -> int:
    """A wall time in ``zone`` as Unix seconds ("2026-03-29 01:30")."""
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp())


def walk(expression: str, zone: ZoneInfo, after: int, count: int) -> list[str]:
    ticks = []
    for tick in cron.ticks_after(cron.parse(expression), zone, after):
        ticks.append(cron.moment(tick, zone).isoformat(sep=" "))
        if len(ticks) == count:
            return ticks
    return ticks


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "stored", "with_seconds"),
    [
        ("*/5 * * * *", "*/5 * * * *", False),
        ("  0   3 * *  mon-fri ", "0 3 * * mon-fri", False),
        ("* * * * * */10", "* * * * * */10", True),
        ("@Daily", "@daily", False),
        ("0 0 L * *", "0 0 L * *", False),
    ],
)
def test_five_fields_or_six_with_seconds_last(
    expression: str, stored: str, with_seconds: bool
) -> None:
    parsed = cron.parse(expression)
    assert str(parsed) == stored
    assert parsed.with_seconds is with_seconds


def test_the_sixth_field_is_seconds() -> None:
    start = at("2026-01-01 00:00")
    assert walk("* * * * * */20", PARIS, start, 3) == [
        "2026-01-01 00:00:20+01:00",
        "2026-01-01 00:00:40+01:00",
        "2026-01-01 00:01:00+01:00",
    ]
    # Five fields: minutes, never seconds.
    assert walk("*/20 * * * *", PARIS, start, 2) == [
        "2026-01-01 00:20:00+01:00",
        "2026-01-01 00:40:00+01:00",
    ]


@pytest.mark.parametrize(
    ("expression", "error", "message"),
    [
        ("* * * *", ValueError, "cron '* * * *' has 4 fields; give 5 fields"),
        ("* * * * * * 2030", ValueError, "has 7 fields; give 5 fields"),
        ("", ValueError, "cron '' has 0 fields"),
        ("61 * * * *", ValueError, "cron '61 * * * *' is not valid: "),
        ("* * * * * 75", ValueError, "is not valid"),
        ("*/0 * * * *", ValueError, "is not valid"),
        ("0 0 30 2 *", ValueError, "names no moment that exists"),
        ("H * * * *", ValueError, "field 1 ('H') is random or hashed"),
        ("0 R(1-5) * * *", ValueError, "field 2 ('R(1-5)') is random or hashed"),
        ("@reboot", ValueError, "has 1 fields"),
        (5, TypeError, "cron must be a string such as '*/5 * * * *', got int"),
    ],
)
def test_a_bad_expression_is_named(expression: object, error: type, message: str) -> None:
    with pytest.raises(error) as raised:
        cron.parse(expression)
    assert message in str(raised.value)


def test_month_and_weekday_names_are_not_taken_for_random_fields() -> None:
    assert str(cron.parse("0 0 * mar fri")) == "0 0 * mar fri"


def test_time_zones_are_iana_names() -> None:
    assert cron.zone("Europe/Paris") == PARIS
    for bad in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(ValueError, match="unknown time zone"):
            cron.zone(bad)
    with pytest.raises(TypeError, match="IANA time zone name"):
        cron.zone(PARIS)


# --- daylight saving time: croniter's rules, as docs/periodic.md shows them ----------------------


def documented_dst_examples() -> list[tuple[str, str, str, list[str]]]:
    """The rows of the table in docs/periodic.md: cron, zone, counting from, the next ticks."""
    text = PERIODIC_DOCS.read_text()
    table = text[text.index("| cron | time zone |") :].split("\n\n")[0]
    rows = []
    for line in table.splitlines()[2:]:
        expression, zone, after, ticks = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((expression.strip("`"), zone, after, [t.strip() for t in ticks.split(",")]))
    return rows


def test_the_documented_examples_are_all_tested() -> None:
    assert len(documented_dst_examples()) >= 8


@pytest.mark.parametrize(
    ("expression", "zone", "after", "ticks"),
    documented_dst_examples(),
    ids=lambda value: re.sub(r"\W+", "-", str(value))[:30],
)
def test_daylight_saving_time_follows_the_documented_rules(
    expression: str, zone: str, after: str, ticks: list[str]
) -> None:
    assert walk(expression, ZoneInfo(zone), at(after, ZoneInfo(zone)), len(ticks)) == ticks


def test_spring_a_fixed_hour_in_the_gap_ticks_once_at_the_end_of_the_gap() -> None:
    # Paris, 29 March 2026: 02:00 becomes 03:00.
    assert walk("30 2 * * *", PARIS, at("2026-03-28 12:00"), 2) == [
        "2026-03-29 03:00:00+02:00",
        "2026-03-30 02:30:00+02:00",
    ]


def test_spring_an_hourly_schedule_keeps_its_pace_in_real_time() -> None:
    ticks = list(
        cron.ticks_between(
            cron.parse("0 * * * *"), PARIS, at("2026-03-28 23:30"), at("2026-03-29 05:30")
        )
    )
    assert [later - earlier for earlier, later in itertools.pairwise(ticks)] == [3600] * 4
    assert len(ticks) == 5  # 00:00, 01:00, 03:00, 04:00, 05:00: 02:00 does not exist


def test_autumn_a_repeated_wall_time_ticks_twice() -> None:
    # Paris, 25 October 2026: 03:00 becomes 02:00 again.
    ticks = list(
        cron.ticks_between(
            cron.parse("30 2 * * *"), PARIS, at("2026-10-24 12:00"), at("2026-10-26 12:00")
        )
    )
    assert [cron.moment(tick, PARIS).isoformat(sep=" ") for tick in ticks] == [
        "2026-10-25 02:30:00+02:00",
        "2026-10-25 02:30:00+01:00",
        "2026-10-26 02:30:00+01:00",
    ]
    assert ticks[1] - ticks[0] == 3600


def test_in_utc_a_daily_schedule_ticks_once_a_day_all_year() -> None:
    ticks = cron.ticks_between(
        cron.parse("30 2 * * *"), UTC, at("2026-01-01 00:00", UTC), at("2027-01-01 00:00", UTC)
    )
    assert len(ticks) == 365
    assert {later - earlier for earlier, later in itertools.pairwise(ticks)} == {86400}


def test_walking_from_any_moment_finds_the_same_ticks_across_a_change() -> None:
    """Workers start counting at different moments: they must agree on the ticks."""
    expression = cron.parse("*/20 * * * *")
    start, end = at("2026-10-25 00:00"), at("2026-10-25 05:00")
    ticks = cron.ticks_between(expression, PARIS, start, end)
    for moment in range(start, end - 1200, 60):
        assert cron.next_tick(expression, PARIS, moment) == min(t for t in ticks if t > moment)


# --- catch-up -------------------------------------------------------------------------------------


EVERY_TEN_MINUTES = cron.parse("*/10 * * * *")


def test_ticks_within_the_max_delay_are_due_oldest_first() -> None:
    start = at("2026-06-01 12:00", UTC)
    due = cron.due_ticks(EVERY_TEN_MINUTES, UTC, after=start, now=start + 1500, max_delay=900)
    assert due == cron.Due(ticks=(start + 600, start + 1200), skipped_from=None, resume_after=start)


def test_a_tick_exactly_max_delay_old_is_still_due() -> None:
    start = at("2026-06-01 12:00", UTC)
    due = cron.due_ticks(EVERY_TEN_MINUTES, UTC, after=start, now=start + 1200, max_delay=600)
    assert due.ticks == (start + 600, start + 1200)
    assert due.skipped_from is None


def test_older_ticks_are_skipped_and_only_the_first_is_named() -> None:
    start = at("2026-06-01 12:00", UTC)
    now = start + 3 * 86400 + 300  # three days later, 5 minutes past a tick
    due = cron.due_ticks(EVERY_TEN_MINUTES, UTC, after=start, now=now, max_delay=600)
    assert due.ticks == (now - 300,)
    assert due.skipped_from == start + 600
    assert due.resume_after == now - 600 - 1


def test_nothing_is_due_before_the_next_tick() -> None:
    start = at("2026-06-01 12:00", UTC)
    due = cron.due_ticks(EVERY_TEN_MINUTES, UTC, after=start, now=start + 599.9, max_delay=600)
    assert due == cron.Due(ticks=(), skipped_from=None, resume_after=start)


def test_a_tick_counts_as_due_from_its_own_second() -> None:
    start = at("2026-06-01 12:00", UTC)
    every_second = cron.parse("* * * * * *")
    due = cron.due_ticks(every_second, UTC, after=start, now=start + 3.0, max_delay=600)
    assert due.ticks == (start + 1, start + 2, start + 3)
