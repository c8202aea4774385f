"""Working-time calendar and time limits (roadwatch.cases.calendar, config/sla.toml).

Every instant is fixed in the test (a controlled clock): nothing reads the wall clock.
2026-03-13 is a Friday with no public holiday nearby.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roadwatch.cases.calendar import (
    Limit,
    Sla,
    SlaConfigError,
    WorkCalendar,
    WorkingDays,
    load_sla,
)
from roadwatch.categories import load_categories

REPO = Path(__file__).resolve().parent.parent
SLA_TOML = REPO / "config" / "sla.toml"
SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)

FRI = date(2026, 3, 13)
MON = date(2026, 3, 16)
TUE = date(2026, 3, 17)
SAT = date(2026, 3, 14)


def at(d: date, hh: int, mm: int = 0, tz: ZoneInfo = SH) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=tz)


def single(**extra: object) -> WorkCalendar:
    """08:30–17:30 Monday to Friday, no lunch break."""
    return WorkCalendar.from_toml_table({"hours": [["08:30", "17:30"]], **extra})


@pytest.fixture(scope="module")
def sla() -> Sla:
    return load_sla(SLA_TOML, load_categories().codes)


# ---------------------------------------------------------------- the acceptance case


def test_friday_1630_plus_4_working_hours_is_monday_1130_without_lunch_break() -> None:
    cal = single()
    assert cal.add_working(at(FRI, 16, 30), 4 * H) == at(MON, 11, 30)


def test_acceptance_case_through_sla_with_a_4h_category(tmp_path: Path) -> None:
    path = tmp_path / "sla.toml"
    path.write_text(
        '[calendar]\ntimezone = "Asia/Shanghai"\nhours = [["08:30", "17:30"]]\n'
        '[limits]\ndefault = "1d"\nE0102 = "4h"\n',
        encoding="utf-8",
    )
    sla = load_sla(path, {"E0102"})
    assert sla.limit_for("E0102", 1) == Limit(4, "h")
    assert sla.deadline("E0102", 1, at(FRI, 16, 30)) == at(MON, 11, 30)


def test_public_holiday_on_monday_shifts_to_tuesday() -> None:
    cal = single(holidays=[MON])
    assert cal.add_working(at(FRI, 16, 30), 4 * H) == at(TUE, 11, 30)


def test_make_up_saturday_counts() -> None:
    cal = single(workdays=[SAT])
    assert cal.add_working(at(FRI, 16, 30), 4 * H) == at(SAT, 11, 30)


def test_lunch_break_calendar_from_sla_toml(sla: Sla) -> None:
    cal = sla.calendar  # 08:30–12:00, 13:30–17:30
    # The 3 h left on Monday fit before lunch: same deadline as without a break ...
    assert cal.add_working(at(FRI, 16, 30), 4 * H) == at(MON, 11, 30)
    assert sla.deadline("E0102", 1, at(FRI, 16, 30)) == at(MON, 11, 30)
    # ... but one more hour crosses the lunch break: 12:30 becomes 14:00.
    assert single().add_working(at(FRI, 16, 30), 5 * H) == at(MON, 12, 30)
    assert cal.add_working(at(FRI, 16, 30), 5 * H) == at(MON, 14, 0)
    # Dirty road (2 h) reported at 11:00 on Monday: 1 h before lunch, 1 h after.
    assert sla.deadline("E0104", 1, at(MON, 11, 0)) == at(MON, 14, 30)


def test_real_2026_holidays_and_make_up_days(sla: Sla) -> None:
    # 2026-02-14 (Saturday) is a make-up working day before 春节.
    assert sla.deadline("E0102", 1, at(date(2026, 2, 13), 16, 30)) == at(date(2026, 2, 14), 11, 30)
    # 春节 2026-02-15..23: Saturday 14th 16:00 + 4 h → Tuesday 24th.
    assert sla.deadline("E0102", 1, at(date(2026, 2, 14), 16, 0)) == at(date(2026, 2, 24), 11, 0)
    # 国庆 2026-10-01..07: 1.5 h on 30 Sept, the other 2.5 h on Thursday 8 Oct.
    assert sla.deadline("E0102", 1, at(date(2026, 9, 30), 16, 0)) == at(date(2026, 10, 8), 11, 0)
    # 2026-10-10 is a make-up Saturday, 2026-10-11 an ordinary Sunday.
    assert sla.calendar.is_working(at(date(2026, 10, 10), 9))
    assert not sla.calendar.is_working(at(date(2026, 10, 11), 9))
    assert not sla.calendar.is_working(at(date(2026, 5, 5), 9))  # 劳动节, a Tuesday


# ---------------------------------------------------------------- working hours


def test_is_working_uses_half_open_periods(sla: Sla) -> None:
    cal = sla.calendar
    assert cal.is_working(at(MON, 8, 30))
    assert not cal.is_working(at(MON, 8, 29))
    assert not cal.is_working(at(MON, 12, 0))
    assert cal.is_working(at(MON, 13, 30))
    assert not cal.is_working(at(MON, 17, 30))
    assert not cal.is_working(at(SAT, 10))


def test_start_outside_hours_counts_from_next_working_moment(sla: Sla) -> None:
    cal = sla.calendar
    assert cal.add_working(at(SAT, 10), H) == at(MON, 9, 30)
    assert cal.add_working(at(MON, 12, 15), H) == at(MON, 14, 30)
    assert cal.add_working(at(MON, 6, 0), H) == at(MON, 9, 30)
    assert cal.next_working(at(FRI, 18)) == at(MON, 8, 30)
    assert cal.next_working(at(MON, 9)) == at(MON, 9)


def test_deadline_that_fills_a_day_ends_at_the_day_end_not_next_morning(sla: Sla) -> None:
    assert sla.calendar.add_working(at(FRI, 13, 30), 4 * H) == at(FRI, 17, 30)
    assert sla.calendar.add_working(at(FRI, 16, 30), timedelta(0)) == at(FRI, 16, 30)


def test_any_zone_in_same_zone_out() -> None:
    start = at(FRI, 16, 30).astimezone(BERLIN)
    assert start.hour == 9  # 08:30 UTC, CET
    due = single().add_working(start, 4 * H)
    assert due.tzinfo is BERLIN
    assert due == at(MON, 11, 30)
    assert due.hour == 4
    utc_due = single().add_working(at(FRI, 16, 30).astimezone(UTC), 4 * H)
    assert utc_due.tzinfo is UTC and utc_due == at(MON, 11, 30)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        single().add_working(datetime(2026, 3, 13, 16, 30), H)


def test_dst_calendar_counts_real_elapsed_time() -> None:
    # Berlin springs forward on 2026-03-29 at 02:00; a round-the-clock Sunday loses an hour.
    cal = WorkCalendar.from_toml_table(
        {
            "timezone": "Europe/Berlin",
            "weekdays": [],
            "weekday_hours": {"sun": [["00:00", "24:00"]]},
        }
    )
    sun = date(2026, 3, 29)
    start = at(sun, 0, 0, BERLIN)
    assert cal.working_between(start, at(date(2026, 3, 30), 0, 0, BERLIN)) == 23 * H
    assert cal.add_working(start, 3 * H) == at(sun, 4, 0, BERLIN)
    # Autumn: 2026-10-25 has 25 hours.
    oct25 = date(2026, 10, 25)
    assert cal.working_between(at(oct25, 0, 0, BERLIN), at(date(2026, 10, 26), 0, 0, BERLIN)) == (
        25 * H
    )


def test_clock_calendar_without_pausing() -> None:
    cal = single(pause_outside_hours=False)
    assert cal.is_working(at(SAT, 3))
    assert cal.add_working(at(FRI, 16, 30), 4 * H) == at(FRI, 20, 30)
    assert cal.add_working(at(FRI, 16, 30), WorkingDays(2)) == at(date(2026, 3, 15), 16, 30)
    assert cal.working_between(at(FRI, 16, 30), at(MON, 8, 30)) == 64 * H


# ---------------------------------------------------------------- working days


def test_two_working_days_same_time_of_day(sla: Sla) -> None:
    cal = sla.calendar
    wed = date(2026, 3, 18)
    assert cal.add_working(at(MON, 10), WorkingDays(2)) == at(wed, 10)
    assert cal.add_working(at(FRI, 16, 30), WorkingDays(2)) == at(TUE, 16, 30)
    assert cal.add_limit(at(FRI, 16, 30), Limit.parse("2d")) == at(TUE, 16, 30)


def test_working_days_from_outside_hours_start_at_next_working_moment(sla: Sla) -> None:
    cal = sla.calendar
    wed = date(2026, 3, 18)
    assert cal.add_working(at(SAT, 10), WorkingDays(2)) == at(wed, 8, 30)
    assert cal.add_working(at(MON, 12, 15), WorkingDays(1)) == at(TUE, 13, 30)
    assert cal.add_working(at(SAT, 10), WorkingDays(0)) == at(MON, 8, 30)


def test_working_days_skip_holidays_and_use_make_up_days(sla: Sla) -> None:
    cal = sla.calendar
    # Thursday 2026-04-02 + 2d: Friday 3rd, (清明 4–6 April), Tuesday 7th.
    assert cal.add_working(at(date(2026, 4, 2), 9), WorkingDays(2)) == at(date(2026, 4, 7), 9)
    # Friday 2026-05-08 + 1d → make-up Saturday 9 May.
    assert cal.add_working(at(date(2026, 5, 8), 15), WorkingDays(1)) == at(date(2026, 5, 9), 15)


def test_working_days_landing_after_a_shorter_day_end_at_its_last_period() -> None:
    cal = single(weekday_hours={"fri": [["08:30", "12:00"], ["13:30", "16:30"]]})
    thu = date(2026, 3, 12)
    assert cal.add_working(at(thu, 17, 0), WorkingDays(1)) == at(FRI, 16, 30)
    assert cal.add_working(at(thu, 12, 30), WorkingDays(1)) == at(FRI, 16, 30)  # lunch on Friday
    assert cal.add_working(at(thu, 10, 0), WorkingDays(1)) == at(FRI, 10, 0)


def test_fractional_working_days_add_a_fraction_of_the_standard_day(sla: Sla) -> None:
    # 15d at severity 3 (factor 0.5) = 7.5d: 7 working days, then 3 h 45 min.
    assert sla.limit_for("E0101", 3) == Limit(7.5, "d")
    assert sla.deadline("E0101", 1, at(FRI, 16, 30)) == at(date(2026, 4, 3), 16, 30)
    assert sla.deadline("E0101", 3, at(FRI, 16, 30)) == at(date(2026, 3, 25), 11, 15)


# ---------------------------------------------------------------- working_between


def test_working_between_is_antisymmetric_and_additive(sla: Sla) -> None:
    cal = sla.calendar
    a, b, c = at(FRI, 16, 30), at(MON, 11, 30), at(MON, 15)
    assert cal.working_between(a, b) == 4 * H
    assert cal.working_between(b, a) == -4 * H
    assert cal.working_between(a, a) == timedelta(0)
    assert cal.working_between(a, b) + cal.working_between(b, c) == cal.working_between(a, c)
    # Both ends inside the same non-working gap: nothing elapsed, either way round.
    assert cal.working_between(at(FRI, 18), at(MON, 8)) == timedelta(0)
    assert cal.working_between(at(MON, 8), at(FRI, 18)) == timedelta(0)
    # A lunch break in the middle, symmetric around it.
    assert cal.working_between(at(MON, 11), at(MON, 14, 30)) == 2 * H
    assert cal.working_between(at(MON, 14, 30), at(MON, 11)) == -2 * H


WORK_CALS = [
    load_sla(SLA_TOML).calendar,
    WorkCalendar.from_toml_table(
        {
            "timezone": "Europe/Berlin",
            "hours": [["00:00", "02:30"], ["07:00", "12:00"], ["23:00", "24:00"]],
            "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat"],
            "holidays": [[date(2026, 12, 24), date(2026, 12, 26)]],
        }
    ),
]
ZONES = [SH, BERLIN, UTC, ZoneInfo("America/New_York")]
starts = st.datetimes(
    min_value=datetime(2025, 6, 1),
    max_value=datetime(2027, 6, 1),
    timezones=st.sampled_from(ZONES),
    allow_imaginary=False,
)
deltas = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=400))


@settings(deadline=None, max_examples=300)
@given(cal=st.sampled_from(WORK_CALS), start=starts, d1=deltas, d2=deltas)
def test_add_working_is_monotonic_in_delta(
    cal: WorkCalendar, start: datetime, d1: timedelta, d2: timedelta
) -> None:
    lo, hi = sorted((d1, d2))
    assert cal.add_working(start, lo) <= cal.add_working(start, hi)


@settings(deadline=None, max_examples=300)
@given(cal=st.sampled_from(WORK_CALS), start=starts, d=deltas)
def test_working_between_inverts_add_working(
    cal: WorkCalendar, start: datetime, d: timedelta
) -> None:
    due = cal.add_working(start, d)
    assert due.tzinfo is start.tzinfo
    assert cal.working_between(start, due) == d
    assert cal.working_between(due, start) == -d
    if d:
        assert cal.is_working(due - timedelta(microseconds=1))


@settings(deadline=None, max_examples=100)
@given(start=starts, n=st.integers(0, 30))
def test_working_days_are_monotonic(start: datetime, n: int) -> None:
    cal = WORK_CALS[0]
    assert cal.add_working(start, WorkingDays(n)) <= cal.add_working(start, WorkingDays(n + 1))


# ---------------------------------------------------------------- vectorised


@pytest.mark.parametrize("limit", ["4h", "30m", "2ch", "2d", "1.5d", "1cd"])
def test_vectorised_deadlines_match_scalar(sla: Sla, limit: str) -> None:
    lim = Limit.parse(limit)
    base = at(date(2026, 9, 28), 7, 3)
    starts_ = [(base + timedelta(minutes=37 * i)).astimezone(ZONES[i % 4]) for i in range(800)]
    expected = [sla.calendar.add_limit(s, lim) for s in starts_]
    got = sla.calendar.deadlines(starts_, lim)
    assert got == expected
    assert [g.tzinfo for g in got] == [s.tzinfo for s in starts_]
    arr = np.array([s.astimezone(UTC).replace(tzinfo=None) for s in starts_], "datetime64[us]")
    got_np = sla.calendar.deadlines(arr, lim)
    want_np = np.array([e.astimezone(UTC).replace(tzinfo=None) for e in expected], "datetime64[us]")
    assert got_np.dtype == np.dtype("datetime64[us]")
    assert (got_np == want_np).all()
    assert sla.calendar.deadlines([], lim) == []


# ---------------------------------------------------------------- limits and the SLA file


def test_every_category_has_its_own_limit() -> None:
    import tomllib

    doc = tomllib.loads(SLA_TOML.read_text(encoding="utf-8"))
    codes = load_categories().codes
    missing = sorted(codes - set(doc["limits"]))
    assert not missing, f"categories without a limit in sla.toml: {missing}"
    assert doc["limits"]["default"] == "1d"


def test_limits_from_domain(sla: Sla) -> None:
    assert sla.limit_for("E0102", 1) == Limit(4, "h")
    assert sla.limit_for("E0104", 1) == Limit(2, "h")
    assert sla.limit_for("E0406", 2) == Limit(4, "h")
    assert sla.limit_for("E0101", 1) == Limit(15, "d")
    assert sla.limit_for("C0102", 1) == Limit(2, "h")
    assert sla.limit_for("E0401", 1) == Limit(2, "ch")
    assert sla.limit_for("E0102", 3) == Limit(2, "h")  # urgent halves
    assert sla.limit_for("Z9999", 1) == sla.default == Limit(1, "d")
    assert sla.limit_for("E0102", 7) == Limit(4, "h")  # unknown severity: factor 1
    assert sla.merchant_grace == Limit(30, "m")


def test_clock_units_run_day_and_night(sla: Sla) -> None:
    assert sla.deadline("E0401", 1, at(FRI, 17)) == at(FRI, 19)
    assert sla.deadline("E0401", 3, at(SAT, 23, 30)) == at(date(2026, 3, 15), 0, 30)
    assert sla.calendar.add_limit(at(SAT, 10), Limit.parse("1cd")) == at(date(2026, 3, 15), 10)


def test_merchant_grace_is_working_time(sla: Sla) -> None:
    assert sla.merchant_deadline(at(MON, 9)) == at(MON, 9, 30)
    assert sla.merchant_deadline(at(FRI, 17, 15)) == at(MON, 8, 45)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4h", Limit(4, "h")),
        ("15d", Limit(15, "d")),
        ("2ch", Limit(2, "ch")),
        ("30m", Limit(30, "m")),
        (" 1.5 d ", Limit(1.5, "d")),
    ],
)
def test_limit_parse(text: str, expected: Limit) -> None:
    assert Limit.parse(text) == expected
    assert Limit.parse(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("4x", "unknown unit 'x'"), ("-4h", "negative"), ("4", "no unit"), ("h", "not a time limit")],
)
def test_limit_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Limit.parse(text)


# ---------------------------------------------------------------- escalation


def test_escalation_ladder_by_responsible_level(sla: Sla) -> None:
    due = at(MON, 11, 30)
    steps = sla.escalation_steps(due, 3)
    assert [(s.level, s.at) for s in steps] == [
        (2, due),  # the superior, at the deadline
        (1, at(MON, 15, 0)),  # +2 working hours across lunch
        (0, at(TUE, 11, 30)),  # +1 working day
    ]
    assert [s.level_name for s in steps] == ["二级路长", "一级路长", "总路长"]
    assert [(s.level, s.at) for s in sla.escalation_steps(due, 2)] == [
        (1, due),
        (0, at(TUE, 11, 30)),
    ]
    assert [(s.level, s.at) for s in sla.escalation_steps(due, 1)] == [(0, due)]
    assert sla.escalation_steps(due, 0) == []
    assert sla.escalation_at(due, 1) == due
    assert sla.escalation_at(due, 2) == at(MON, 15, 0)
    assert sla.escalation_at(due, 3) == at(TUE, 11, 30)
    assert sla.escalation_at(due, 4) is None


# ---------------------------------------------------------------- bad configuration


GOOD = """\
[calendar]
timezone = "Asia/Shanghai"
hours = [["08:30", "12:00"], ["13:30", "17:30"]]
holidays = [2026-05-01, [2026-10-01, 2026-10-07]]
workdays = [2026-05-09]

[limits]
default = "1d"
E0102 = "4h"
E0101 = "15d"

[severity_factor]
3 = 0.5

[[escalation.step]]
notify = "superior"
after = "0m"

[[escalation.step]]
notify = 0
after = "1d"

[merchant]
grace = "30m"
"""
KNOWN = {"E0101", "E0102"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sla.toml"
    path.write_text(text, encoding="utf-8")
    return path


def line_no(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_good_config_loads(tmp_path: Path) -> None:
    sla = load_sla(write(tmp_path, GOOD), KNOWN)
    assert sla.calendar.holidays >= {date(2026, 5, 1), date(2026, 10, 4)}
    assert len(sla.calendar.holidays) == 8
    assert sla.severity_factor == {3: 0.5}


@pytest.mark.parametrize(
    ("old", "new", "message", "line_of"),
    [
        ('E0102 = "4h"', 'E0102 = "4x"', "limits.E0102: '4x': unknown unit 'x'", "E0102"),
        ('E0102 = "4h"', 'E0102 = "-4h"', "limits.E0102: '-4h': negative amount", "E0102"),
        ('E0102 = "4h"', 'E0102 = "0h"', "greater than zero", "E0102"),
        ('E0102 = "4h"', 'E9999 = "4h"', "limits.E9999: unknown category code 'E9999'", "E9999"),
        ('E0102 = "4h"', 'road = "4h"', "'road' is not a category code", "road ="),
        (
            '[["08:30", "12:00"], ["13:30", "17:30"]]',
            '[["08:30", "12:30"], ["12:00", "17:30"]]',
            "calendar.hours: period 12:00–17:30 overlaps 08:30–12:30",
            "hours",
        ),
        (
            '[["08:30", "12:00"], ["13:30", "17:30"]]',
            '[["13:30", "17:30"], ["08:30", "12:00"]]',
            "calendar.hours: periods are not in ascending order",
            "hours",
        ),
        (
            '[["08:30", "12:00"], ["13:30", "17:30"]]',
            '[["08:30", "25:00"]]',
            "'25:00' is not a valid time of day",
            "hours",
        ),
        (
            "workdays = [2026-05-09]",
            "workdays = [\n  2026-05-09,\n  2026-10-03,\n]",
            "calendar.workdays[1]: 2026-10-03 is listed both in holidays and in workdays",
            "2026-10-03",
        ),
        ('"Asia/Shanghai"', '"Asia/Zhengzhou"', "unknown time zone 'Asia/Zhengzhou'", "timezone"),
        (
            "[merchant]",
            '[limits.calendar_hours]\nE0401 = "2h"\n[merchant]',
            "unit suffix",
            "[limits.calendar_hours]",
        ),
        (
            "[merchant]",
            '[merchant]\nwindow = "1h"',
            "merchant.window: unknown key (expected one of grace)",
            "window",
        ),
        ("timezone =", "time_zone =", "calendar.time_zone: unknown key", "time_zone"),
        ("3 = 0.5", "3 = -1", "severity_factor.3: factor must be a positive number", "3 = -1"),
        (
            "notify = 0",
            "notify = 5",
            'escalation.step[1].notify: expected "superior" or a level 0..3',
            "notify = 5",
        ),
        (
            'after = "1d"',
            'after = "1y"',
            "escalation.step[1].after: '1y': unknown unit 'y'",
            'after = "1y"',
        ),
    ],
)
def test_bad_config_is_refused_with_key_and_line(
    tmp_path: Path, old: str, new: str, message: str, line_of: str
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    path = write(tmp_path, text)
    with pytest.raises(SlaConfigError) as info:
        load_sla(path, KNOWN)
    msg = str(info.value)
    assert message in msg
    assert msg.startswith(f"{path}:{line_no(text, line_of)}: "), msg


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SlaConfigError, match="not valid TOML"):
        load_sla(write(tmp_path, "[limits\n"))
    with pytest.raises(SlaConfigError, match="cannot read"):
        load_sla(tmp_path / "nope.toml")


def test_no_working_weekday_is_refused() -> None:
    with pytest.raises(SlaConfigError, match="no weekday has working hours"):
        WorkCalendar.from_toml_table({"weekdays": []})
    # ... unless the clock never pauses.
    assert WorkCalendar.from_toml_table({"weekdays": [], "pause_outside_hours": False})


def test_table_errors_without_a_file_still_name_the_key() -> None:
    with pytest.raises(
        SlaConfigError, match=r"^calendar.holidays\[0\]: not a date \(got '2026-13-01'\)"
    ):
        WorkCalendar.from_toml_table({"holidays": ["2026-13-01"]})
    with pytest.raises(SlaConfigError, match=r"^limits.E0102: '4x': unknown unit"):
        Sla.from_toml({"limits": {"E0102": "4x"}})
    assert isinstance(SlaConfigError("x"), ValueError)


# ---------------------------------------------------------------- one error format


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "sla.toml",
            'E0102 = "4h"',
            'E0102 = "4x"',
            "limits.E0102: '4x': unknown unit 'x' (expected one of m, h, d, cm, ch, cd)",
        ),
        (
            "categories.toml",
            'group = "clean", weight = 10',
            'group = "clean", weight = -1',
            "categories.E0102.weight: a weight must be a finite number ≥ 0 (got -1)",
        ),
        (
            "ranking/v1.toml",
            "E0505 = { points = 2.0, cap = 20.0 }",
            "E0505 = { points = 2.0, cap = -5 }",
            "categories.E0505.cap: a cap cannot be below 0 (got -5)",
        ),
        ("ranking/v1.toml", "alpha = 0.05", "alpha = 1.5", "statistics.alpha: must be between 0"),
    ],
)
def test_every_config_file_names_file_line_and_field(
    tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    """sla.toml, categories.toml and the ranking formula share one error format."""
    from roadwatch.categories import load_categories
    from roadwatch.configfile import ConfigFileError
    from roadwatch.ranking.formula import load_formula
    from roadwatch.settings import CONFIG_DIR

    text = (CONFIG_DIR / file).read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new, 1)
    path = tmp_path / Path(file).name
    path.write_text(text, encoding="utf-8")
    loader = {
        "sla.toml": lambda: load_sla(path),
        "categories.toml": lambda: load_categories(path),
        "ranking/v1.toml": lambda: load_formula(path),
    }[file]
    with pytest.raises(ConfigFileError) as info:
        loader()
    assert str(info.value).startswith(f"{path}:{line_no(text, new)}: {expected}")
