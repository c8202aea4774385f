"""The holiday rule (issue 16, acceptance g): a year whose public holidays are not configured
is not silently treated as ordinary days.

The clock is set to December of the last configured year: /healthz and the log warn that
next year's holidays are missing, a deadline that runs into next year is counted on
weekdays only and marked provisional on the case, and once next year is configured the
case clock recomputes it (with a transition and a live event)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from roadwatch.cases.calendar import Sla, SlaConfigError, WorkCalendar, load_sla
from roadwatch.cases.clock import Scheduler
from roadwatch.settings import CONFIG_DIR
from roadwatch.store import models
from roadwatch.web import create_app
from tests.test_cases import case_row, report

CST = dt.timezone(dt.timedelta(hours=8))
SHIPPED = load_sla()
assert SHIPPED.calendar.known_years, "config/sla.toml lists its holidays by year"
LAST = max(SHIPPED.calendar.known_years)  # the last configured year
NEXT = LAST + 1


def last_working_day_of(year: int) -> dt.date:
    d = dt.date(year, 12, 31)
    while SHIPPED.calendar.periods_on(d) == ():
        d -= dt.timedelta(days=1)
    return d


def with_next_year(tmp_path: Path) -> Sla:
    """The shipped sla.toml plus next year's holidays (a week from 1 January)."""
    text = (CONFIG_DIR / "sla.toml").read_text(encoding="utf-8")
    header = "[calendar.holidays]\n"
    assert header in text
    entry = f"{NEXT} = [[{NEXT}-01-01, {NEXT}-01-07]]  # 元旦 (test)\n"
    path = tmp_path / "sla.toml"
    path.write_text(text.replace(header, header + entry, 1), encoding="utf-8")
    sla = load_sla(path, SHIPPED.limits.keys())
    assert sla.calendar.known_years == SHIPPED.calendar.known_years | {NEXT}
    return sla


def use_sla(runtime: Any, sla: Sla) -> None:
    runtime.pipeline.sla = sla
    runtime.pipeline.dispatcher.sla = sla


@pytest.fixture
def shipped(runtime: Any) -> Any:
    before = runtime.pipeline.sla, runtime.pipeline.dispatcher.sla, runtime.pipeline.clock
    use_sla(runtime, SHIPPED)
    yield runtime
    runtime.pipeline.sla, runtime.pipeline.dispatcher.sla, runtime.pipeline.clock = before


def test_the_warning_starts_on_1_november_of_the_last_configured_year() -> None:
    cal = SHIPPED.calendar
    assert cal.holiday_warning(dt.datetime(LAST, 10, 31, 23, 59, tzinfo=CST)) is None
    assert cal.missing_years(dt.datetime(LAST, 11, 1, 0, 0, tzinfo=CST)) == [NEXT]
    warning = cal.holiday_warning(dt.datetime(LAST, 12, 15, 9, tzinfo=CST))
    assert warning is not None and str(NEXT) in warning and "not configured" in warning
    # Past the last configured year the current year itself is missing.
    assert cal.missing_years(dt.datetime(NEXT, 3, 1, tzinfo=CST)) == [NEXT]


def test_december_of_the_last_year_warns_marks_provisional_and_recomputes(
    shipped: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = shipped
    day = last_working_day_of(LAST)
    now = dt.datetime.combine(day, dt.time(16, 30), tzinfo=CST)
    runtime.pipeline.clock = lambda: now.astimezone(dt.UTC)

    # /healthz names the missing year (a warning, not a failure of the check).
    app, _socketio = create_app(runtime)
    health = app.test_client().get("/healthz").get_json()
    entry = health["checks"]["holidays"]
    assert entry["ok"] is True and str(NEXT) in entry["warning"]

    # A case whose 4 working hours run into next year: weekdays only, marked provisional.
    out, body = report(runtime, now, category="E0102", severity=1)
    assert out.case_status == "dispatched"
    row = case_row(runtime, body["report_id"])
    weekdays_only = WorkCalendar(
        timezone=SHIPPED.calendar.timezone,
        hours=SHIPPED.calendar.hours,
        week=SHIPPED.calendar.week,
        holidays=SHIPPED.calendar.holidays,
        workdays=SHIPPED.calendar.workdays,
    ).add_limit(now, SHIPPED.limit_for("E0102", 1))
    assert row.due_at == weekdays_only
    assert row.due_at.astimezone(CST).year == NEXT
    assert row.due_provisional is True
    # ... while a deadline inside the configured year is not provisional.
    early = now - dt.timedelta(days=20)
    _, inside_body = report(runtime, early, category="E0102", severity=1)
    inside = case_row(runtime, inside_body["report_id"])
    assert inside.due_provisional is False

    # The case clock warns in the log; with the same configuration nothing is recomputed.
    delivered: list[Any] = []
    clock = Scheduler(
        runtime.engine, SHIPPED, lambda ev, _n: delivered.extend(ev), clock=lambda: now
    )
    with caplog.at_level(logging.WARNING, logger="roadwatch.cases.clock"):
        clock.run_once()
    assert any(str(NEXT) in r.getMessage() for r in caplog.records), caplog.text
    assert case_row(runtime, body["report_id"]).due_provisional is True

    # Next year is configured: the clock recomputes the deadline under it, once.
    configured = with_next_year(tmp_path)
    expected = configured.deadline("E0102", 1, now)
    assert expected > weekdays_only  # the first week of January is a holiday now
    assert configured.is_provisional(now, expected) is False
    clock.set_sla(configured)
    assert clock.check_calendar() == 1
    assert clock.check_calendar() == 0
    row = case_row(runtime, body["report_id"])
    assert row.due_at == expected and row.due_provisional is False
    assert row.next_escalation_at == expected
    with runtime.sessions() as s:
        notes = s.execute(
            select(models.ReportTransition.by, models.ReportTransition.data).where(
                models.ReportTransition.report_id == body["report_id"],
                models.ReportTransition.note.like("deadline recomputed%"),
            )
        ).all()
    assert [(by, dt.datetime.fromisoformat(data["due_at"])) for by, data in notes] == [
        ("clock", expected)
    ]
    assert any(e.kind == "case" and e.payload["id"] == body["report_id"] for e in delivered), (
        delivered
    )
    assert configured.holiday_warning(now) is None  # and the warning is gone


def test_a_wrong_date_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "sla.toml"
    path.write_text(
        '[calendar]\ntimezone = "Asia/Shanghai"\n\n[calendar.holidays]\n'
        f"{NEXT} = [\n  {NEXT}-01-01,\n  [{NEXT}-02-05, {NEXT}-02-11],\n"
        f'  {NEXT}-05-01,\n  "{NEXT}-13-01",\n]\n',
        encoding="utf-8",
    )
    with pytest.raises(SlaConfigError) as info:
        load_sla(path)
    assert str(info.value) == (
        f"{path}:9: calendar.holidays.{NEXT}[3]: not a date (got '{NEXT}-13-01')"
    )
    assert info.value.line == 9 and info.value.field == f"calendar.holidays.{NEXT}[3]"


def test_a_date_under_the_wrong_year_is_refused() -> None:
    with pytest.raises(SlaConfigError, match=r"^calendar.holidays.2027\[0\]: 2026-10-01 is not"):
        WorkCalendar.from_toml_table({"holidays": {"2027": [dt.date(2026, 10, 1)]}})


def test_an_empty_year_is_configured_without_holidays() -> None:
    cal = WorkCalendar.from_toml_table({"holidays": {"2026": [], "2027": []}})
    assert cal.known_years == {2026, 2027} and not cal.holidays
    assert cal.holiday_warning(dt.datetime(2027, 12, 1, tzinfo=CST)) is not None
    assert cal.holiday_warning(dt.datetime(2026, 12, 1, tzinfo=CST)) is None


def test_the_chinesecalendar_package_fills_the_years_it_covers_and_config_wins() -> None:
    constants = pytest.importorskip("chinese_calendar.constants")
    covered = {d.year for d in constants.holidays}
    cal = WorkCalendar.from_toml_table({"holiday_source": "chinesecalendar"})
    assert cal.known_years == covered
    assert dt.date(2026, 2, 17) in cal.holidays and dt.date(2026, 2, 28) in cal.workdays
    # a year the configuration lists itself wins as a whole (here: no holidays in 2026)
    local = WorkCalendar.from_toml_table(
        {"holiday_source": "chinesecalendar", "holidays": {"2026": []}}
    )
    assert dt.date(2026, 2, 17) not in local.holidays
    assert dt.date(2025, 10, 1) in local.holidays
    assert dt.date(2026, 2, 28) not in local.workdays  # make-up days of 2026 are local too
