"""The case permission table (roadwatch.cases.permissions), decided without a database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from roadwatch.cases.permissions import (
    ACTIONS,
    STAFF_ONLY,
    CaseFacts,
    Reporter,
    Staff,
    clamp_done_at,
    may,
    table_markdown,
)
from roadwatch.cases.workflow import Holder

T0 = dt.datetime(2026, 11, 20, 8, 30, tzinfo=dt.UTC)
YEAR_AGO = T0 - dt.timedelta(days=365)


def chief(person: str, level: int, until: dt.datetime | None = None) -> Holder:
    return Holder(person, "road_chief", level, YEAR_AGO, until, None, None)


HOLDERS = (
    chief("c0", 0),
    chief("c1", 1),
    chief("c2", 2),
    chief("c3", 3),
    chief("c3-old", 3, until=T0 - dt.timedelta(days=30)),
    Holder("unit", "partner_unit", None, YEAR_AGO, None, None, None),
    Holder("shop", "merchant", None, YEAR_AGO, None, 100.0, 140.0),
)


def case(**changes: object) -> CaseFacts:
    values: dict[str, object] = {
        "id": "case-1",
        "segment_id": "ZZ-JS-0001",
        "district": "410105",
        "assignee_id": "c3",
        "at": T0,
        "holders": HOLDERS,
        "fixer_id": "c3",
        "chainage_m": 120.0,
    }
    values.update(changes)
    return CaseFacts(**values)  # type: ignore[arg-type]


def verdict(actor: Reporter | Staff, action: str, **changes: object) -> str:
    return may(actor, action, case(**changes)).code


# -- rectify ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("person", "expected"),
    [
        ("c3", "ok"),  # the assignee
        ("c2", "ok"),  # holds the segment at the case's time
        ("c0", "ok"),
        ("unit", "ok"),  # the partner unit adopting the segment
        ("shop", "ok"),  # the merchant whose frontage covers the spot
        ("c3-old", "not_responsible"),  # held it until a month ago
        ("c3-elsewhere", "not_responsible"),
    ],
)
def test_who_may_rectify(person: str, expected: str) -> None:
    assert verdict(Reporter(person, "person"), "rectify") == expected


def test_a_merchant_answers_only_for_their_frontage() -> None:
    assert verdict(Reporter("shop", "merchant"), "rectify", chainage_m=300.0) == "not_responsible"
    assert verdict(Reporter("shop", "merchant"), "rectify", chainage_m=None) == "ok"


def test_the_assignee_may_rectify_after_leaving_the_post() -> None:
    assert verdict(Reporter("c3-old"), "rectify", assignee_id="c3-old") == "ok"


def test_staff_evaluators_and_covert_checkers_do_not_rectify() -> None:
    assert verdict(Staff("boss", "admin"), "rectify") == "not_permitted"
    assert verdict(Staff("d", "district_staff", "410105"), "rectify") == "not_permitted"
    assert verdict(Reporter("e", "evaluator"), "rectify") == "not_responsible"
    assert verdict(Reporter("k", "covert"), "rectify") == "not_responsible"


def test_the_responsibility_check_uses_the_cases_time() -> None:
    before = T0 - dt.timedelta(days=40)
    assert verdict(Reporter("c3-old"), "rectify", at=before) == "ok"
    assert verdict(Reporter("c3-old"), "rectify") == "not_responsible"


# -- verify -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("actor", "fixer", "expected"),
    [
        (Reporter("c3"), "c3", "same_person"),
        (Reporter("c2"), "c3", "ok"),  # the superior
        (Reporter("c1"), "c3", "ok"),
        (Reporter("c0"), "c3", "ok"),
        (Reporter("c2"), "c2", "same_person"),
        (Reporter("c3"), "c2", "not_permitted"),  # the assignee, below the fixer
        (Reporter("c1"), "c2", "ok"),
        (Reporter("c3-elsewhere"), "c3", "not_permitted"),  # an unrelated chief
        (Reporter("c3-old"), "c3", "not_permitted"),  # a former chief
        (Reporter("unit"), "c3", "not_permitted"),
        (Reporter("shop"), "c3", "not_permitted"),
        (Reporter("e", "evaluator"), "c3", "ok"),
        (Reporter("e", "evaluator"), "e", "same_person"),
        (Reporter("k", "covert"), "c3", "not_permitted"),
        (Reporter("nobody", None), "c3", "not_permitted"),
        (Staff("boss", "admin"), "c3", "ok"),
        (Staff("jinshui", "district_staff", "410105"), "c3", "ok"),
        (Staff("erqi", "district_staff", "410103"), "c3", "not_permitted"),
        (Staff("nodistrict", "district_staff", None), "c3", "not_permitted"),
        (Staff("v", "viewer"), "c3", "not_permitted"),
    ],
)
def test_who_may_verify(actor: Reporter | Staff, fixer: str, expected: str) -> None:
    assert verdict(actor, "verify", fixer_id=fixer) == expected


def test_a_merchants_fix_is_verified_by_the_segment_chief() -> None:
    assert verdict(Reporter("c3"), "verify", assignee_id="shop", fixer_id="shop") == "ok"
    assert verdict(Reporter("unit"), "verify", assignee_id="shop", fixer_id="shop") == (
        "not_permitted"
    )


def test_without_an_assignee_the_segments_most_junior_chief_is_the_reference() -> None:
    assert verdict(Reporter("c2"), "verify", assignee_id=None, fixer_id="gone") == "ok"
    assert verdict(Reporter("c3"), "verify", assignee_id=None, fixer_id="gone") == "not_permitted"


def test_refusals_say_why_in_plain_words() -> None:
    d = may(Reporter("c3-elsewhere"), "verify", case())
    assert not d and not d.allowed
    assert "c3-elsewhere" in d.reason and "case-1" in d.reason and "无权" in d.reason
    ok = may(Reporter("c2"), "verify", case())
    assert ok and ok.code == "ok"


# -- staff actions ------------------------------------------------------------------------
@pytest.mark.parametrize("action", sorted(STAFF_ONLY))
def test_staff_actions_by_role_and_district(action: str) -> None:
    assert verdict(Staff("boss", "admin"), action) == "ok"
    assert verdict(Staff("js", "district_staff", "410105"), action) == "ok"
    assert verdict(Staff("eq", "district_staff", "410103"), action) == "not_permitted"
    assert verdict(Staff("v", "viewer"), action) == "not_permitted"
    for person in ("c0", "c3", "unit"):
        assert verdict(Reporter(person), action) == "not_permitted"
    assert verdict(Reporter("e", "evaluator"), action) == "not_permitted"


@pytest.mark.parametrize("finder", ["evaluator", "covert"])
def test_an_independent_finding_is_ended_only_by_an_admin(finder: str) -> None:
    """A district's own staff may work an evaluator's or covert checker's finding, but
    not take it out of their district's weekly flags by closing it as invalid or as a
    duplicate, or by merging it away: an admin (or a dispute) decides that."""
    js, boss = Staff("js", "district_staff", "410105"), Staff("boss", "admin")
    for action in ("close_invalid", "close_duplicate", "merge"):
        refused = may(js, action, case(finder_kind=finder))
        assert refused.code == "not_permitted"
        assert "independent check" in refused.reason and "admin" in refused.reason
        assert verdict(boss, action, finder_kind=finder) == "ok"
        assert verdict(js, action, finder_kind="person") == "ok"  # a chief's own report
    for action in ("reassign", "extend", "suspend", "reopen"):  # working it stays theirs
        assert verdict(js, action, finder_kind=finder) == "ok"


def test_staff_only_actions_are_the_ones_the_workbench_needs() -> None:
    assert {"reassign", "extend", "close_invalid", "close_duplicate", "reopen"} <= STAFF_ONLY
    assert "verify" not in STAFF_ONLY and "rectify" not in STAFF_ONLY


def test_comments_come_from_people_with_a_part_in_the_case() -> None:
    assert verdict(Reporter("c3"), "comment") == "ok"
    assert verdict(Reporter("c1"), "comment") == "ok"
    assert verdict(Reporter("e", "evaluator"), "comment") == "ok"
    assert verdict(Staff("js", "district_staff", "410105"), "comment") == "ok"
    assert verdict(Reporter("c3-elsewhere"), "comment") == "not_permitted"
    assert verdict(Staff("v", "viewer"), "comment") == "not_permitted"


def test_request_extension_is_for_the_people_responsible() -> None:
    assert verdict(Reporter("c3"), "request_extension") == "ok"
    assert verdict(Reporter("c3-elsewhere"), "request_extension") == "not_responsible"
    assert verdict(Staff("boss", "admin"), "request_extension") == "not_permitted"


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize(
    "actor",
    [
        Reporter("c3"),
        Reporter("x"),
        Reporter("e", "evaluator"),
        Staff("a", "admin"),
        Staff("d", "district_staff", "410105"),
        Staff("v", "viewer"),
    ],
)
def test_every_action_is_decided_for_every_actor(actor: Reporter | Staff, action: str) -> None:
    d = may(actor, action, case())
    assert d.code in ("ok", "not_permitted", "not_responsible", "same_person")
    assert d.allowed == (d.code == "ok") and d.reason


def test_an_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown case action"):
        may(Staff("a", "admin"), "delete", case())


def test_the_documented_table_is_the_codes_table() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "security.md").read_text(encoding="utf-8")
    assert table_markdown() in doc


# -- the clamp ------------------------------------------------------------------------
def test_done_at_is_clamped_between_the_start_of_the_work_and_receipt() -> None:
    start, got = T0, T0 + dt.timedelta(hours=6)
    inside = clamp_done_at(T0 + dt.timedelta(hours=1), start, got, "dispatch")
    assert inside.used == T0 + dt.timedelta(hours=1) and inside.clamped is None
    early = clamp_done_at(T0 - dt.timedelta(days=2), start, got, "case was dispatched")
    assert early.used == start and early.clamped == "earliest"
    assert early.as_json()["claimed"] == (T0 - dt.timedelta(days=2)).isoformat()
    assert early.as_json()["why"] == "before the case was dispatched"
    late = clamp_done_at(got + dt.timedelta(minutes=5), start, got, "x")
    assert late.used == got and late.clamped == "latest"
    # a message received before the dispatch (it waited in a queue): the dispatch wins
    queued = clamp_done_at(T0 + dt.timedelta(minutes=1), T0, T0 - dt.timedelta(minutes=1), "x")
    assert queued.used == T0 and queued.clamped == "latest"
    free = clamp_done_at(T0 - dt.timedelta(days=9), None, got, "x")
    assert free.used == T0 - dt.timedelta(days=9) and free.clamped is None
