"""Issue 20: notices a road chief can read (Chinese, naming the case and its deadline), and
none for the chief's own report."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from roadwatch.cases.notices import names_from_db, texts, with_text
from roadwatch.cases.workflow import Notice
from tests.test_cases import FRIDAY_1630, at, case_row, chief_of, report  # noqa: F401

SH = ZoneInfo("Asia/Shanghai")
CAT = ("暴露垃圾", "exposed rubbish")


def test_each_kind_reads_in_chinese_with_the_case_and_deadline() -> None:
    due = "2026-11-23T03:30:00+00:00"  # 11:30 in Zhengzhou
    body = {"case_id": "c1", "segment_id": "s1", "due_at": due}
    zh, en = texts({**body, "kind": "dispatch", "severity": 3}, CAT, "花园路", SH)
    assert zh == "新案件：暴露垃圾·花园路（紧急），请于 11月23日 11:30 前整改"
    assert en == "New case: exposed rubbish, 花园路 (urgent), to be fixed by 23 Nov 11:30"
    zh, _ = texts({**body, "kind": "overdue"}, CAT, "花园路", SH)
    assert zh == "案件已超期：暴露垃圾·花园路，期限 11月23日 11:30，请尽快整改"
    zh, _ = texts({**body, "kind": "escalation", "level": 2}, CAT, "花园路", SH)
    assert zh == "案件升级至二级路长：暴露垃圾·花园路，期限 11月23日 11:30 已过"
    zh, _ = texts({**body, "kind": "reopened", "note": "仍有垃圾"}, CAT, None, SH)
    assert zh == "整改未通过核查，案件重新打开：暴露垃圾：仍有垃圾"
    # Nothing English in what the chief sees by default.
    (n,) = with_text(
        [Notice("p", {**body, "kind": "dispatch", "category": "E0102", "severity": 1})],
        {"E0102": CAT},
        lambda ids: {i: "花园路" for i in ids},
        SH,
    )
    assert (
        n.body["message"].startswith("新案件：暴露垃圾·花园路（一般）")
        and n.body["case_id"] == "c1"
    )


def test_no_dispatch_notice_for_the_chiefs_own_report(
    runtime: Any,
    at: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Notice] = []
    monkeypatch.setattr(runtime, "send_notices", sent.extend)  # what the dispatcher delivers
    at(FRIDAY_1630)
    first, _ = report(runtime, FRIDAY_1630, category="E0102")
    chief = chief_of(runtime, first.segment_id, 3)
    sent.clear()
    # The chief reports a problem on their own road: the case is theirs, no notice.
    when = FRIDAY_1630 + dt.timedelta(minutes=1)
    own, body = report(runtime, when, category="E0504", reporter_id=chief)
    assert own.status == "accepted" and case_row(runtime, body["report_id"]).assignee_id == chief
    assert [n for n in sent if n.body.get("case_id") == body["report_id"]] == []
    # Someone else's report on that road: a notice to the chief, in Chinese words.
    other, body2 = report(runtime, when + dt.timedelta(minutes=1), category="E0301")
    assert other.case_status == "dispatched"
    (n,) = [n for n in sent if n.body.get("case_id") == body2["report_id"]]
    assert n.person_id == chief and n.body["kind"] == "dispatch"
    # The case service (under `worker`) names segments from the database.
    names = names_from_db(runtime.engine)({first.segment_id, "no-such-segment"})
    with runtime.engine.connect() as conn:
        assert names_from_db(conn)({first.segment_id}) == names
    assert names == {
        first.segment_id: runtime.ctx.features[runtime.ctx.position[first.segment_id]][
            "properties"
        ]["name"]
    }
