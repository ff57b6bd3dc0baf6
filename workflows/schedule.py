"""Local-time rules of a workflow: time-node release times and the calling window.

All arithmetic is done on local calendar dates and converted to UTC at the end, so a
09:00 release stays 09:00 across a DST change (adding 24 h in UTC would drift by an hour).
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _at(day: date, clock: time, tz: ZoneInfo) -> datetime:
    # fold=0: an ambiguous local time (clocks going back) is its first occurrence; a
    # non-existent one (clocks going forward) lands just after the gap.
    local = datetime.combine(day, clock, tzinfo=tz)
    return local.astimezone(UTC).astimezone(tz)


def next_local_time(now: datetime, clock: time, tz: ZoneInfo) -> datetime:
    """The first instant strictly after `now` when the wall clock in `tz` reads `clock`."""
    today = now.astimezone(tz).date()
    for offset in range(0, 3):
        candidate = _at(today + timedelta(days=offset), clock, tz)
        if candidate > now:
            return candidate.astimezone(UTC)
    raise AssertionError("unreachable: a local time recurs every day")


def parse_clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def release_time(now: datetime, config: dict, tz: ZoneInfo) -> datetime:
    """When a lead entering a time node at `now` is released (config checked by graph.py)."""
    if "delay_seconds" in config:
        return now + timedelta(seconds=int(config["delay_seconds"]))
    return next_local_time(now, parse_clock(config["at_local_time"]), tz)


def window_opening(
    now: datetime, start: time | None, end: time | None, days: list[int], tz: ZoneInfo
) -> datetime | None:
    """None if a call may be placed at `now`; otherwise when the calling window next opens.

    The window is [start, end) in local time on the given weekdays (Monday = 0).
    """
    if start is None or end is None:
        return None
    open_days = set(days) if days else set(range(7))
    local = now.astimezone(tz)
    if local.weekday() in open_days and start <= local.time() < end:
        return None
    for offset in range(0, 8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in open_days:
            continue
        opening = _at(day, start, tz)
        if opening > now:
            return opening.astimezone(UTC)
    raise ValueError("the calling window has no open day")
