"""Read a cron line "m h dom mon dow" (UTC): check it, find its next run, and how close
two of its runs can come. Pure, no I/O: the schedules (schedule_runs.py) and the manager's
checks of a submission (job_manager/schedule_requests.py) use it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

from celery.schedules import ParseException, crontab, crontab_parser

from ..celery_app import app

MINUTES_PER_DAY = 24 * 60
# Weekdays and dates repeat every 28 years (from 1901 to 2099): a cron line's days that
# can come one after another do so within that span if ever.
CALENDAR_CYCLE_DAYS = 28 * 366
# A cron line's five fields, in cron's order, as (crontab's keyword, highest, lowest).
CRON_FIELDS = (
    ("minute", 59, 0),
    ("hour", 23, 0),
    ("day_of_month", 31, 1),
    ("month_of_year", 12, 1),
    ("day_of_week", 6, 0),
)
# Numbers, *, ranges, lists and steps; day names (mon-fri) only in the last field.
NUMERIC_FIELD = re.compile(r"[0-9*,/-]+")
DAY_FIELD = re.compile(r"[0-9a-zA-Z*,/-]+")


class BadSchedule(ValueError):
    """A schedule that cannot run: the message says why, `field` where."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def parse_cron(line: str) -> crontab:
    """Read "m h dom mon dow" into Celery's crontab; raise BadSchedule naming the field."""
    parts = line.split()
    if len(parts) != len(CRON_FIELDS):
        raise BadSchedule(
            "a cron line has 5 fields: minute hour day-of-month month day-of-week", "cron"
        )
    fields: dict[str, str] = {}
    for (name, highest, lowest), part in zip(CRON_FIELDS, parts, strict=True):
        allowed = DAY_FIELD if name == "day_of_week" else NUMERIC_FIELD
        label = name.replace("_", " ")
        if not allowed.fullmatch(part):
            raise BadSchedule(f"cron {label} {part!r} is not a cron field", "cron")
        try:
            values = crontab_parser(highest - lowest + 1, lowest).parse(part)
        except (ValueError, ParseException) as err:
            raise BadSchedule(f"cron {label} {part!r}: {err}", "cron") from err
        if not values or not all(lowest <= value <= highest for value in values):
            raise BadSchedule(f"cron {label} must be from {lowest} to {highest}", "cron")
        fields[name] = part
    # Celery's crontab takes its arguments in another order than a cron line: name them.
    try:
        schedule = crontab(app=app, **fields)
        _next_of(schedule, datetime.now(UTC))
    except ValueError as err:  # e.g. day 31 of February: it never comes
        raise BadSchedule(f"cron {line!r}: {err}", "cron") from err
    return schedule


def cron_next(line: str, after: datetime) -> datetime:
    """Return the first minute after `after` that a cron line matches."""
    return _next_of(parse_cron(line), after)


def cron_shortest_gap(line: str, today: date) -> int:
    """Return the fewest minutes between two runs of a cron line, from its parsed fields.

    A matching day runs at the same times of day, the hour x minute pairs: the closest
    two are either neighbours within a day, or the day's last run and the next matching
    day's first. Whether two matching days can follow each other is read off the
    calendar (day of month, month and weekday must all match, as in Celery's crontab).
    Days further apart are counted as two days: the gap given is then at most the real
    one, never more, so a floor above a day may refuse a line that keeps it.
    """
    schedule = parse_cron(line)
    times = sorted(hour * 60 + minute for hour in schedule.hour for minute in schedule.minute)
    within_a_day = min((b - a for a, b in pairwise(times)), default=None)
    days_between = 1 if _days_follow_each_other(schedule, today) else 2
    across_days = days_between * MINUTES_PER_DAY - (times[-1] - times[0])
    return min(across_days, within_a_day or across_days)


def _days_follow_each_other(schedule: crontab, today: date) -> bool:
    """Say whether two consecutive days can both match a crontab's day fields."""

    def matches(day: date) -> bool:
        return (
            day.day in schedule.day_of_month
            and day.month in schedule.month_of_year
            and day.isoweekday() % 7 in schedule.day_of_week  # crontab's Sunday is 0
        )

    previous = matches(today)
    for offset in range(1, CALENDAR_CYCLE_DAYS):
        current = matches(today + timedelta(days=offset))
        if previous and current:
            return True
        previous = current
    return False


def _next_of(schedule: crontab, after: datetime) -> datetime:
    last, forward, _ = schedule.remaining_delta(after.astimezone(UTC))
    return (last + forward).astimezone(UTC)
