"""When a schedule runs (job_tasks/storing/schedule_runs.py, cron.py) and how its "schedule"
is checked (job_manager/schedule_requests.py parse_timing): cron lines, periods, missed
periods."""

from datetime import UTC, date, datetime, timedelta

import pytest

from job_manager.errors import ApiError
from job_manager.job_requests import parse_job_request
from job_manager.schedule_requests import parse_timing
from job_tasks.settings import Settings
from job_tasks.storing.cron import BadSchedule, cron_next, cron_shortest_gap, parse_cron
from job_tasks.storing.schedule_runs import Timing


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "line",
    ["* * * * *", "*/15 * * * *", "30 6 * * mon-fri", "0 0 1 1 *", "0,30 8-18 * * 1-5"],
)
def test_good_cron_lines_are_read(line):
    parse_cron(line)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("", "5 fields"),
        ("* * * *", "5 fields"),
        ("* * * * * *", "5 fields"),
        ("60 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day of month"),
        ("* * * 13 *", "month of year"),
        ("* * * * 7", "day of week"),
        ("a * * * *", "minute"),
        ("* * * jan *", "month of year"),  # names only in the day-of-week field
        ("*/0 * * * *", "minute"),
        ("5,,6 * * * *", "minute"),
        ("* * * * xyz", "day of week"),
        ("0 0 31 2 *", "never"),  # 31 February never comes
    ],
)
def test_bad_cron_lines_name_what_is_wrong(line, says):
    with pytest.raises(BadSchedule) as info:
        parse_cron(line)
    assert says in str(info.value)
    assert info.value.field == "cron"


def test_cron_next_is_the_first_matching_minute_after():
    assert cron_next("30 6 * * *", at("2026-01-01T06:29:59")) == at("2026-01-01T06:30:00")
    assert cron_next("30 6 * * *", at("2026-01-01T06:30:00")) == at("2026-01-02T06:30:00")
    # 2026-01-02 is a Friday: the next weekday midnight is Monday's.
    assert cron_next("0 0 * * mon-fri", at("2026-01-02T12:00:00")) == at("2026-01-05T00:00:00")


def test_every_n_minutes_runs_first_at_once_then_every_period():
    timing = Timing(every_minutes=10)
    now = at("2026-03-01T12:00:00")

    assert timing.first_run(now) == now
    assert timing.next_run(now, now) == at("2026-03-01T12:10:00")
    # A tick a little late does not move the grid.
    assert timing.next_run(now, now + timedelta(seconds=7)) == at("2026-03-01T12:10:00")


def test_missed_periods_are_skipped_not_made_up():
    timing = Timing(every_minutes=10)
    due = at("2026-03-01T12:00:00")

    # Beat was away for 35 minutes: one run now, the next on the grid still to come.
    assert timing.next_run(due, at("2026-03-01T12:35:00")) == at("2026-03-01T12:40:00")
    # Exactly on a grid point: that point is now, so the next one is a period later.
    assert timing.next_run(due, at("2026-03-01T12:30:00")) == at("2026-03-01T12:40:00")


def test_cron_first_and_next_runs_skip_missed_minutes():
    timing = Timing(cron="0 * * * *")

    assert timing.first_run(at("2026-03-01T12:20:00")) == at("2026-03-01T13:00:00")
    # Due at 13:00 but started at 15:30: the next is 16:00, not 14:00.
    assert timing.next_run(at("2026-03-01T13:00:00"), at("2026-03-01T15:30:00")) == at(
        "2026-03-01T16:00:00"
    )


def test_resuming_keeps_a_period_but_not_a_missed_cron_minute():
    past, now = at("2026-03-01T12:00:00"), at("2026-03-01T12:45:00")

    assert Timing(every_minutes=10).resume_at(past, now) == past  # runs at once
    assert Timing(cron="0 * * * *").resume_at(past, now) == at("2026-03-01T13:00:00")
    future = at("2026-03-01T13:00:00")
    assert Timing(cron="0 * * * *").resume_at(future, now) == future


def test_timing_shows_itself_as_the_api_takes_it():
    assert Timing(every_minutes=5).as_json() == {"every_minutes": 5}
    assert Timing(cron="0 6 * * *").as_json() == {"cron": "0 6 * * *"}


FLOOR = 10  # WORDCRAWL_MIN_SCHEDULE_MINUTES's default


def test_parse_timing_accepts_both_kinds():
    assert parse_timing({"every_minutes": 10}, FLOOR) == Timing(every_minutes=10)
    assert parse_timing({"every_minutes": 1}, 1) == Timing(every_minutes=1)
    assert parse_timing({"cron": "  0   6 * * *  "}, FLOOR) == Timing(cron="0 6 * * *")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (None, "schedule"),
        (5, "schedule"),
        ({}, "schedule"),
        ({"every_minutes": 5, "cron": "* * * * *"}, "schedule"),
        ({"every_hours": 1}, "schedule"),
        ({"every_minutes": 0}, "schedule.every_minutes"),
        ({"every_minutes": -1}, "schedule.every_minutes"),
        ({"every_minutes": 1.5}, "schedule.every_minutes"),
        ({"every_minutes": "5"}, "schedule.every_minutes"),
        ({"every_minutes": True}, "schedule.every_minutes"),
        ({"every_minutes": 10**9}, "schedule.every_minutes"),
        ({"cron": 5}, "schedule.cron"),
        ({"cron": "61 * * * *"}, "schedule.cron"),
        ({"cron": "* " * 200}, "schedule.cron"),
    ],
)
def test_parse_timing_refuses_bad_values_naming_the_field(value, field):
    with pytest.raises(ApiError) as info:
        parse_timing(value, FLOOR)
    assert (info.value.status, info.value.code, info.value.field) == (
        400,
        "invalid_value",
        field,
    )


def test_a_submission_may_carry_a_schedule_beside_the_job_fields():
    data = {"urls": ["http://example.com/"], "depth": 1, "schedule": {"every_minutes": 15}}

    job = parse_job_request(data, Settings())

    assert (job.urls, job.depth) == (["http://example.com/"], 1)


@pytest.mark.parametrize(
    ("line", "minutes"),
    [
        ("*/5 * * * *", 5),
        ("0 * * * *", 60),
        ("0 */2 * * *", 120),
        ("0,20 9 * * *", 20),  # the two runs of a day
        ("0 9 * * *", 24 * 60),  # one run a day
        ("55 23 * * *", 24 * 60),
        ("0,50 0,23 * * *", 10),  # 23:50, then 00:00 past midnight
        ("0,50 0,23 * * 1", 50),  # Mondays only: no next day; 00:00 to 00:50 is the closest
        ("58 23 * * 6,0", 24 * 60),  # Saturday 23:58, then Sunday 23:58
        ("59 23 31 12 *", 2 * 24 * 60),  # once a year: counted as two days, at most the truth
    ],
)
def test_a_cron_lines_shortest_gap_comes_from_its_fields(line, minutes):
    assert cron_shortest_gap(line, date(2026, 12, 1)) == minutes


def test_the_gap_across_midnight_needs_two_days_that_follow_each_other():
    # 23:55 and 00:05: ten minutes apart only when the next day runs too.
    assert cron_shortest_gap("5,55 0,23 * * *", date(2026, 12, 1)) == 10
    assert cron_shortest_gap("5,55 0,23 * * sat,sun", date(2026, 12, 1)) == 10
    assert cron_shortest_gap("5,55 0,23 * * mon,wed", date(2026, 12, 1)) == 50
    # The 31st and the 1st follow each other, but only across months that both match.
    assert cron_shortest_gap("5,55 0,23 1,31 * *", date(2026, 12, 1)) == 10
    assert cron_shortest_gap("5,55 0,23 1,31 2 *", date(2026, 12, 1)) == 50


@pytest.mark.parametrize(
    ("value", "field", "says"),
    [
        ({"every_minutes": 5}, "schedule.every_minutes", "runs every 5 minutes:"),
        ({"every_minutes": 1}, "schedule.every_minutes", "runs every 1 minute:"),
        ({"cron": "*/5 * * * *"}, "schedule.cron", "can come 5 minutes apart"),
        ({"cron": "* 6 * * *"}, "schedule.cron", "can come 1 minute apart"),
        ({"cron": "0,55 0,23 * * *"}, "schedule.cron", "can come 5 minutes apart"),
    ],
)
def test_schedules_closer_than_the_floor_are_refused_saying_both(value, field, says):
    with pytest.raises(ApiError) as info:
        parse_timing(value, FLOOR)

    assert (info.value.status, info.value.code, info.value.field) == (400, "invalid_value", field)
    assert says in info.value.message
    assert "at least 10 minutes between two runs" in info.value.message


def test_the_floor_itself_is_allowed():
    assert parse_timing({"every_minutes": FLOOR}, FLOOR).shortest_gap() == FLOOR
    assert parse_timing({"cron": "*/10 * * * *"}, FLOOR).shortest_gap() == FLOOR
    assert parse_timing({"cron": "0,50 0,23 * * *"}, FLOOR).shortest_gap() == FLOOR
