"""Issue 15, scope 5: staff actions are the logged-in person's; district scope on every read
and write; viewers change nothing; nobody decides their own dispute; the audit log.

Each test is named after the attack it shows refused (docs/security.md, section 7).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy import delete, select, update

from roadwatch.ranking.week import Week
from roadwatch.store import models
from tests.support.auth import PASSWORD, make_user
from tests.support.examples import contract_example
from tests.support.review import in_review_beside
from tests.test_pipeline import inbound


@pytest.fixture
def app(app: Any, runtime: Any) -> Iterator[Any]:
    """The shared app; afterwards the disputes go (they point at reports the next test drops)."""
    yield app
    with runtime.sessions.begin() as session:
        session.execute(delete(models.RankingDispute))


def _name(client: FlaskClient) -> str:
    name: str = client.user.username  # type: ignore[attr-defined]
    return name


def _segment_of(runtime: Any, district: str) -> str:
    return next(s.id for s in runtime.ctx.network.segments if s.district == district)


def _in_review(runtime: Any, district: str = "JS") -> str:
    """A report waiting in the review queue, in `district`, beside one of its segments."""
    return in_review_beside(runtime, _segment_of(runtime, district))


def _accepted(runtime: Any) -> str:
    """A report of this week on a segment of 金水区 (JS)."""
    body = contract_example()
    (out,) = runtime.pipeline.process([inbound(body)])
    assert out.status == "accepted" and out.district == "金水区"
    return str(body["report_id"])


def _week(runtime: Any) -> str:
    return Week.containing(models.utcnow(), runtime.settings.tz).label


def _dispute(report_id: str, **extra: Any) -> dict[str, Any]:
    return {"report_id": report_id, "reason": "照片显示已整改", "evidence": ["sha-1"], **extra}


def _report(runtime: Any, rid: str) -> models.Report:
    with runtime.sessions() as session:
        row = session.get(models.Report, rid)
        assert row is not None
        session.expunge(row)
        return row


def _transitions(runtime: Any, rid: str) -> list[str | None]:
    with runtime.sessions() as session:
        t = models.ReportTransition
        return list(session.scalars(select(t.by).where(t.report_id == rid).order_by(t.id)))


def _audit(runtime: Any, **where: Any) -> list[dict[str, Any]]:
    a = models.AuditEntry
    with runtime.sessions() as session:
        q = select(a).order_by(a.id)
        for k, v in where.items():
            q = q.where(getattr(a, k) == v)
        return [
            {c: getattr(e, c) for c in ("actor", "actor_id", "action", "target", "detail")}
            for e in session.scalars(q)
        ]


# -- the acting person is the logged-in one -----------------------------------------------
def test_forged_by_on_a_review_decision_is_refused(login_as: Any, runtime: Any) -> None:
    admin = login_as("admin")
    rid = _in_review(runtime)
    target = _segment_of(runtime, "JS")
    forged = admin.post(f"/api/review/{rid}", json={"segment_id": target, "by": "chief-wang"})
    assert forged.status_code == 400
    assert forged.get_json()["errors"][0]["field"] == "by"
    assert _report(runtime, rid).status == "needs_review"  # nothing was decided
    ok = admin.post(f"/api/review/{rid}", json={"segment_id": target})
    assert ok.status_code == 200
    assert _transitions(runtime, rid)[0] == _name(admin)  # the logged-in user, stored


def test_forged_by_on_a_dispute_is_refused(login_as: Any, runtime: Any) -> None:
    admin = login_as("admin")
    rid, week = _accepted(runtime), _week(runtime)
    url = f"/api/rankings/{week}/disputes"
    forged = admin.post(url, json=_dispute(rid, by="chief-wang"))
    assert forged.status_code == 400 and forged.get_json()["errors"][0]["field"] == "by"
    ok = admin.post(url, json=_dispute(rid))
    assert ok.status_code == 201
    with runtime.sessions() as session:
        d = session.get(models.RankingDispute, ok.get_json()["id"])
        assert d is not None and d.filed_by == _name(admin)


# -- viewers change nothing; nobody decides their own dispute ------------------------------
def test_viewer_files_a_dispute_is_refused(login_as: Any, runtime: Any) -> None:
    viewer = login_as("viewer")
    rid = _accepted(runtime)
    mine = _dispute(rid, by=_name(viewer))  # in their own name (main took `by` as given)
    res = viewer.post(f"/api/rankings/{_week(runtime)}/disputes", json=mine)
    assert res.status_code == 403
    assert "viewer" in res.get_json()["errors"][0]["message"]
    with runtime.sessions() as session:
        assert session.scalar(select(sa.func.count()).select_from(models.RankingDispute)) == 0


def test_self_decided_dispute_is_refused_even_for_an_admin(login_as: Any, runtime: Any) -> None:
    admin, other = login_as("admin"), login_as("admin")
    rid, week = _accepted(runtime), _week(runtime)
    url = f"/api/rankings/{week}/disputes"
    # the attack: file under someone else's name, then decide it oneself
    assert admin.post(url, json=_dispute(rid, by="chief-wang")).status_code == 400
    filed = admin.post(url, json=_dispute(rid, by=_name(admin)))  # one's own name is fine
    assert filed.status_code == 201
    did = filed.get_json()["id"]
    own = admin.post(f"/api/rankings/disputes/{did}", json={"decision": "upheld"})
    assert own.status_code == 403 and own.get_json()["errors"][0]["code"] == "own_dispute"
    with runtime.sessions() as session:
        d = session.get(models.RankingDispute, did)
        assert d is not None and d.decision is None
    ok = other.post(f"/api/rankings/disputes/{did}", json={"decision": "rejected"})
    assert ok.status_code == 200


def test_district_user_disputes_another_districts_report_is_refused(
    login_as: Any, runtime: Any
) -> None:
    zy = login_as("district_staff", "ZY")
    rid = _accepted(runtime)  # in JS
    mine = _dispute(rid, by=_name(zy))
    res = zy.post(f"/api/rankings/{_week(runtime)}/disputes", json=mine)
    assert res.status_code == 403


def test_district_user_reads_another_districts_disputes_is_refused(
    login_as: Any, runtime: Any
) -> None:
    """Who disputed what, and why, is for the report's district (and the city's staff);
    another district's user reads only the city-wide counts the public reads too."""
    admin, js, zy = (
        login_as("admin"),
        login_as("district_staff", "JS"),
        login_as("district_staff", "ZY"),
    )
    rid, week = _accepted(runtime), _week(runtime)  # a report of JS
    url = f"/api/rankings/{week}/disputes"
    assert js.post(url, json=_dispute(rid)).status_code == 201
    for client, sees in ((js, [rid]), (admin, [rid]), (zy, [])):
        body = client.get(url).get_json()
        assert [d["report_id"] for d in body["items"]] == sees
        assert body["filed"] == 1 and body["pending"] == 1  # the counts stay city-wide


# -- district scope of review decisions ----------------------------------------------------
def test_district_user_moves_a_report_onto_another_districts_segment_is_refused(
    login_as: Any, runtime: Any
) -> None:
    js = login_as("district_staff", "JS")
    rid = _in_review(runtime, "JS")
    onto_zy = {"segment_id": _segment_of(runtime, "ZY"), "by": _name(js)}
    res = js.post(f"/api/review/{rid}", json=onto_zy)
    assert res.status_code == 403
    assert res.get_json()["errors"][0]["code"] == "other_district"
    row = _report(runtime, rid)
    assert row.status == "needs_review" and row.district == "JS" and row.segment_id is None
    ok = js.post(f"/api/review/{rid}", json={"segment_id": _segment_of(runtime, "JS")})
    assert ok.status_code == 200  # within their district they may


def test_district_user_settles_another_districts_report_is_refused(
    login_as: Any, runtime: Any
) -> None:
    zy = login_as("district_staff", "ZY")
    rid = _in_review(runtime, "JS")
    onto_zy = {"segment_id": _segment_of(runtime, "ZY"), "by": _name(zy)}
    assert zy.post(f"/api/review/{rid}", json=onto_zy).status_code == 403
    invalid = zy.post(f"/api/review/{rid}", json={"invalid": True, "by": _name(zy)})
    assert invalid.status_code == 403
    assert _report(runtime, rid).status == "needs_review"


def test_district_user_reads_another_districts_review_labels_or_similar_is_refused(
    login_as: Any, runtime: Any
) -> None:
    """`/api/review/labels` listed every district's review decisions (report id, exact
    position, category, who decided) to any district user, and `/api/review/{id}/similar`
    answered for another district's report in review. Now a district user reads the labels
    of their own district's reports only, and another district's report reads as 404."""
    js, zy = login_as("district_staff", "JS"), login_as("district_staff", "ZY")
    decided, waiting = _in_review(runtime, "JS"), _in_review(runtime, "JS")
    target = _segment_of(runtime, "JS")
    assert js.post(f"/api/review/{decided}", json={"segment_id": target}).status_code == 200

    seen = zy.get("/api/review/labels")
    assert seen.status_code == 200
    assert decided not in seen.get_data(as_text=True)
    assert seen.get_json()["count"] == 0
    assert zy.get(f"/api/review/{waiting}/similar").status_code == 404
    assert zy.get(f"/api/review/{decided}/similar").status_code == 404  # not 409 either

    # their own district's, and everything for a viewer of the whole city
    assert decided in js.get("/api/review/labels").get_data(as_text=True)
    assert js.get(f"/api/review/{waiting}/similar").get_json()["ids"] == [waiting]
    viewer = login_as("viewer")
    assert decided in viewer.get("/api/review/labels").get_data(as_text=True)


# -- district scope of rejected payloads ----------------------------------------------------
def test_district_user_reads_another_districts_rejected_payloads_is_refused(
    login_as: Any, runtime: Any
) -> None:
    a, s = models.Assignment, models.Segment
    now = models.utcnow()
    chiefs: dict[str, str] = {}
    with runtime.sessions.begin() as session:
        for district in ("JS", "ZY"):
            chiefs[district] = session.scalar(
                select(a.reporter_id)
                .join(s, s.id == a.segment_id)
                .where(s.district == district, a.valid_to.is_(None), a.valid_from <= now)
                .limit(1)
            )
            session.add(
                models.RejectedMessage(
                    received_at=now,
                    transport="mqtt",
                    topic=f"roadwatch/v1/reports/{chiefs[district]}",
                    reporter_id=chiefs[district],
                    message_id=None,
                    reason="invalid",
                    errors=[],
                    raw=json.dumps({"secret": f"payload of {district}"}).encode(),
                    raw_size=40,
                )
            )
    js = login_as("district_staff", "JS")
    seen = js.get("/api/rejected").get_json()["items"]
    assert [x["reporter_id"] for x in seen] == [chiefs["JS"]]
    assert all("payload of ZY" not in x["raw"] for x in seen)
    admin = login_as("admin")
    assert len(admin.get("/api/rejected").get_json()["items"]) == 2


# -- the audit log ----------------------------------------------------------------------------
def test_audit_log_records_staff_actions_and_only_admins_read_it(
    app: Any, login_as: Any, runtime: Any
) -> None:
    admin = login_as("admin")
    js = login_as("district_staff", "JS")
    # a failed login is recorded too
    page = app.test_client()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.get("/login").get_data(as_text=True))
    assert csrf is not None
    wrong = page.post(
        "/login", data={"username": _name(js), "password": PASSWORD + "x", "csrf": csrf[1]}
    )
    assert wrong.status_code == 401
    rid = _in_review(runtime, "JS")
    assert js.post(f"/api/review/{rid}", json={"invalid": True}).status_code == 200
    filed = admin.post(
        f"/api/rankings/{_week(runtime)}/disputes", json=_dispute(_accepted(runtime))
    )
    assert filed.status_code == 201
    assert admin.get("/api/cases.csv?district=JS").status_code == 200

    mine = _audit(runtime, actor=_name(js))
    assert [e["action"] for e in mine] == ["login", "login_failed", "review.settle"]
    assert mine[2]["target"] == rid and mine[2]["actor_id"] == js.user.id  # type: ignore[attr-defined]
    theirs = [e["action"] for e in _audit(runtime, actor=_name(admin))]
    assert theirs == ["login", "dispute.file", "export"]

    doc = admin.get(f"/api/audit?actor={_name(admin)}&action=export").get_json()
    assert [e["target"] for e in doc["items"]] == ["cases.csv"]
    assert doc["items"][0]["detail"]["args"] == {"district": "JS"}
    page1 = admin.get(f"/api/audit?actor={_name(js)}&limit=2").get_json()
    assert [e["action"] for e in page1["items"]] == ["review.settle", "login_failed"]
    page2 = admin.get(page1["next"]).get_json()
    assert [e["action"] for e in page2["items"]] == ["login"] and page2["next"] is None
    assert js.get("/api/audit").status_code == 403
    assert login_as("viewer").get("/api/audit").status_code == 403
    assert app.test_client().get("/api/audit").status_code == 401


def test_audit_log_cannot_be_rewritten(runtime: Any) -> None:
    """Append-only in the database too: UPDATE and DELETE of an entry are refused."""
    user = make_user(runtime, "viewer")  # account changes are audited: one entry at least
    a = models.AuditEntry
    with runtime.sessions() as session:
        entry = session.scalar(
            select(a.id).where(a.action == "user.add", a.target == user.username)
        )
    assert entry is not None
    for stmt in (
        update(a).where(a.id == entry).values(actor="nobody"),
        delete(a).where(a.id == entry),
    ):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):  # noqa: SIM117
            with runtime.sessions.begin() as session:
                session.execute(stmt)
    assert _audit(runtime, target=user.username)[0]["actor"] == "system"


def test_account_changes_are_audited_with_the_cli_operator(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, runner: Any
) -> None:
    from roadwatch.cli import main
    from roadwatch.store import db

    url = f"sqlite:///{tmp_path / 'users.sqlite3'}"
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", url)
    name = f"u-{uuid.uuid4().hex[:6]}"
    add = ["users", "add", name, "--role", "viewer", "--password-stdin"]
    r = runner.invoke(main, add, input="s3cret-pass-1\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["users", "passwd", name, "--password-stdin"], input="s3cret-pass-2\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["users", "role", name, "--role", "admin"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["users", "disable", name])
    assert r.exit_code == 0, r.output
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(models.AuditEntry.actor, models.AuditEntry.action)
                .where(models.AuditEntry.target == name)
                .order_by(models.AuditEntry.id)
            ).all()
    finally:
        engine.dispose()
    assert [r.action for r in rows] == ["user.add", "user.passwd", "user.role", "user.active"]
    assert all(r.actor.startswith("cli:") for r in rows)
