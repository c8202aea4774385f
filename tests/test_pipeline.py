"""The shared ingest pipeline, on SQLite and on PostgreSQL (the `runtime` fixture)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from geo.crs import wgs84_to_gcj02
from roadwatch.ingest.messages import Inbound
from roadwatch.store import models
from roadwatch.store.events import LiveEvent
from tests.support.examples import contract_example


def inbound(body: dict[str, Any] | bytes, reporter: str | None = "zz-jinshui-0421") -> Inbound:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return Inbound(
        transport="mqtt",
        kind="report",
        payload=raw,
        received_at=models.utcnow(),
        topic=f"roadwatch/v1/reports/{reporter}",
        topic_reporter=reporter,
    )


def test_contract_example_lands_on_huayuan_road(runtime: Any) -> None:
    body = contract_example()
    (out,) = runtime.pipeline.process([inbound(body)])
    assert out.status == "accepted", out
    assert out.segment_name.startswith("花园路（")
    assert out.district == "金水区"
    assert out.snap["distance_m"] < 30 and 0.5 < out.snap["confidence"] <= 1
    with runtime.sessions() as s:
        row = s.get(models.Report, body["report_id"])
        assert row is not None
        assert row.segment_id == out.segment_id
        assert row.raw == json.dumps(body, ensure_ascii=False).encode()  # verbatim
        assert (row.lat_in, row.lon_in, row.crs) == (34.77281, 113.68352, "GCJ02")
        # Stored WGS84 is the GCJ-02 input with the offset removed (≈ 0.5 km away).
        glon, glat = wgs84_to_gcj02(row.lon, row.lat)
        assert abs(glon - 113.68352) < 1e-7 and abs(glat - 34.77281) < 1e-7
        assert row.observed_at.tzinfo is not None and row.observed_at.utcoffset() == dt.timedelta()


@pytest.mark.parametrize("one_by_one", [True, False])
def test_a_fix_stating_kilometres_of_error_goes_to_review(runtime: Any, one_by_one: bool) -> None:
    """accuracy_m may be up to 10,000: a phone stating 5 km, its fix beside Huayuan Road,
    was accepted onto it at confidence 0.999 and dispatched to its chief, as if it had said
    10 m. Now it waits in review (reason poor_accuracy), with the road as a candidate; the
    same fix stating 10 m is still accepted, on the live and on the batch path."""
    wide, sharp = (contract_example(accuracy_m=a, heading_deg=None) for a in (5000.0, 10.0))
    if one_by_one:
        outs = [runtime.pipeline.process([inbound(b)])[0] for b in (wide, sharp)]
    else:
        outs = runtime.pipeline.process([inbound(wide), inbound(sharp)])
    (far, near) = outs
    assert (far.status, far.segment_id) == ("needs_review", None), far
    assert far.snap["reason"] == "poor_accuracy" and near.segment_id in far.snap["candidates"]
    assert near.status == "accepted" and near.segment_name.startswith("花园路（")


def test_resend_is_a_duplicate_and_changes_nothing(runtime: Any) -> None:
    body = contract_example()
    first = runtime.pipeline.process([inbound(body)])[0]
    # Same id twice in one batch, and again later: one row, the rest duplicates.
    again = runtime.pipeline.process([inbound(body), inbound(body)])
    assert [o.status for o in again] == ["duplicate", "duplicate"]
    assert again[0].segment_id == first.segment_id
    both = runtime.pipeline.process([inbound(contract_example()), inbound(body)])
    assert [o.status for o in both] == ["accepted", "duplicate"]
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.Report)) == 2


def test_duplicate_within_one_fresh_batch(runtime: Any) -> None:
    body = contract_example()
    outs = runtime.pipeline.process([inbound(body), inbound(body)])
    assert [o.status for o in outs] == ["accepted", "duplicate"]


def test_another_reporters_report_id_is_rejected_not_a_duplicate(runtime: Any) -> None:
    """A report id is the idempotency key of one reporter's messages. Another reporter's
    message under it (a broken UUID generator, a name-based UUID, a guessed one) is not a
    resend: answering it "duplicate" lost that report silently and showed its sender the
    other reporter's segment and case. Like a patrol id (not_yours), it is rejected."""
    body = contract_example()
    assert runtime.pipeline.process([inbound(body)])[0].status == "accepted"
    other = {**body, "reporter_id": "zz-jinshui-0105", "category": "C0101", "note": "mine"}
    (out,) = runtime.pipeline.process([inbound(other, reporter="zz-jinshui-0105")])
    assert out.status == "rejected" and out.segment_id is None and out.case_status is None
    assert [(e.field, e.code) for e in out.errors] == [("report_id", "not_yours")]
    # within one batch too; the owner's own resend is still a duplicate
    fresh = contract_example()
    outs = runtime.pipeline.process(
        [
            inbound(fresh),
            inbound({**fresh, "reporter_id": "zz-jinshui-0105"}, reporter="zz-jinshui-0105"),
            inbound(body),
        ]
    )
    assert [o.status for o in outs] == ["accepted", "rejected", "duplicate"]
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.Report)) == 2
        kept = s.scalars(select(models.RejectedMessage).order_by(models.RejectedMessage.id)).all()
        assert [(r.message_id, r.reporter_id) for r in kept] == [
            (body["report_id"], "zz-jinshui-0105"),
            (fresh["report_id"], "zz-jinshui-0105"),
        ]
        assert s.get(models.Report, body["report_id"]).reporter_id == "zz-jinshui-0421"


def test_report_stored_meanwhile_by_another_worker_is_a_duplicate(
    runtime: Any, monkeypatch: Any, caplog: Any
) -> None:
    """Two workers on a shared subscription get the same report id (a phone's resend) at
    once: both look it up, neither finds it, one commits first. The other's insert hits the
    primary key; it must answer a duplicate, not log an error and store one by one."""
    body = contract_example()
    first = runtime.pipeline.process([inbound(body)])[0]
    assert first.status == "accepted"
    real = runtime.pipeline._existing
    calls = []

    def lookup_before_the_other_commit(session: Any, ids: list[str]) -> Any:
        calls.append(ids)
        return ({}, {}) if len(calls) == 1 else real(session, ids)

    monkeypatch.setattr(runtime.pipeline, "_existing", lookup_before_the_other_commit)
    with caplog.at_level("INFO", logger="roadwatch.pipeline"):
        (again,) = runtime.pipeline.process([inbound(body)])
    assert again.status == "duplicate" and again.segment_id == first.segment_id
    assert len(calls) == 2  # the retry looked again
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.Report)) == 1


def test_rejection_is_stored_with_raw_bytes(runtime: Any) -> None:
    raw = b'{"v":1, "report_id": "0b9f7c1e-3c53-4a53-9a1f-6f0d7b0a1a42", "category": 5'
    bad_cat = contract_example(category="E9999")
    outs = runtime.pipeline.process([inbound(raw), inbound(bad_cat)])
    assert [o.status for o in outs] == ["rejected", "rejected"]
    assert outs[0].errors[0].code == "invalid_json"
    assert outs[1].id == bad_cat["report_id"]
    assert outs[1].errors[0].code == "unknown_category"
    with runtime.sessions() as s:
        rows = s.scalars(select(models.RejectedMessage).order_by(models.RejectedMessage.id)).all()
    assert [r.raw for r in rows][0] == raw
    assert rows[1].message_id == bad_cat["report_id"]
    assert "unknown category code E9999" in rows[1].reason
    assert rows[1].topic == "roadwatch/v1/reports/zz-jinshui-0421"


def test_far_away_point_is_needs_review_not_forced(runtime: Any) -> None:
    # Zhengzhou East station area, 20 km outside the demo extent? No: the Yellow River.
    far = contract_example(lat=34.95, lon=113.60, crs="WGS84")
    (out,) = runtime.pipeline.process([inbound(far)])
    assert out.status == "needs_review"
    assert out.segment_id is None
    assert out.snap["reason"] in ("too_far", "outside_city")


def test_segment_hint_without_position(runtime: Any) -> None:
    seg = runtime.ctx.network.segments[10]
    body = contract_example(lat=None, lon=None, segment_hint=seg.id)
    (out,) = runtime.pipeline.process([inbound(body)])
    assert (out.status, out.segment_id) == ("accepted", seg.id)
    unknown = contract_example(lat=None, lon=None, segment_hint="ZZ-NOPE-1")
    (out2,) = runtime.pipeline.process([inbound(unknown)])
    assert out2.status == "rejected" and out2.errors[0].code == "unknown_segment"


def test_events_carry_increasing_seq_and_segment_state(runtime: Any, monkeypatch: Any) -> None:
    seen: list[LiveEvent] = []
    monkeypatch.setattr(runtime.pipeline, "on_events", seen.extend)
    monkeypatch.setattr(runtime.broadcaster, "publish", seen.extend)  # the dispatcher's
    # b is another category at the same spot: a second case, not a corroboration
    a, b = contract_example(), contract_example(severity=3, category="E0505")
    runtime.pipeline.process([inbound(a)])
    runtime.pipeline.process([inbound(b), inbound(a)])
    kinds = [e.kind for e in seen]
    # stored (report + segment), then dispatched (case) per batch; dispatching leaves the
    # segment's live state as it was (new and dispatched are both open), so no second
    # segment event; the resent a is a duplicate and adds no event at all
    assert kinds == ["report", "segment", "case"] * 2
    assert seen[0].payload["id"] == a["report_id"]
    assert seen[2].payload["status"] == "dispatched" and seen[2].payload["due_at"]
    assert seen[2].payload["assignee_id"]
    seqs = [e.payload["seq"] for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == 6
    last_segment = [e for e in seen if e.kind == "segment"][-1].payload
    assert last_segment["open"] == 2
    assert last_segment["score"] == 100 - 5 - 10  # serious + urgent
    rep = seen[0].payload
    assert set(rep) >= {
        "id",
        "segment_id",
        "district",
        "category",
        "severity",
        "status",
        "lat",
        "lon",
        "observed_at",
        "received_at",
        "seq",
    }
    assert rep["observed_at"].endswith("+08:00")


def test_bd09_and_wgs84_inputs_agree(runtime: Any) -> None:
    from geo.crs import wgs84_to_bd09

    seg = runtime.ctx.network.segments[100]
    mid = seg.geometry.interpolate(0.5, normalized=True)
    blon, blat = wgs84_to_bd09(mid.x, mid.y)
    outs = runtime.pipeline.process(
        [
            inbound(contract_example(lat=mid.y, lon=mid.x, crs="WGS84", accuracy_m=None)),
            inbound(contract_example(lat=float(blat), lon=float(blon), crs="BD09")),
        ]
    )
    assert [o.segment_id for o in outs] == [seg.id, seg.id]


def test_a_bug_in_one_message_rejects_only_that_message(runtime: Any, monkeypatch: Any) -> None:
    import roadwatch.pipeline as pl

    real_place = pl.place

    def flaky(report: Any, ctx: Any, photos: Any = None) -> Any:
        if report.note == "boom":
            raise RuntimeError("simulated bug")
        return real_place(report, ctx, photos)

    def batch_bug(reports: Any, ctx: Any, photos: Any = None) -> Any:
        raise RuntimeError("simulated batch bug")

    monkeypatch.setattr(pl, "place", flaky)
    monkeypatch.setattr(pl, "place_many", batch_bug)
    outs = runtime.pipeline.process(
        [inbound(contract_example(note="boom")), inbound(contract_example())]
    )
    assert [o.status for o in outs] == ["rejected", "accepted"]
    assert outs[0].errors[0].code == "internal_error"


def test_batch_and_single_placement_agree(runtime: Any) -> None:
    """place_many (the ingest path) decides exactly as place does, report by report."""
    import random

    from roadwatch.geolocate import place, place_many
    from roadwatch.ingest.payloads import ReportIn
    from roadwatch.simulate import ReportFactory, chiefs_of

    rng = random.Random(5)
    net = runtime.ctx.network
    factory = ReportFactory(net, runtime.categories, rng, noise_m=15)
    chiefs = chiefs_of(net, 200, rng)
    now = dt.datetime.now(dt.UTC)
    reports = []
    for i in range(3000):
        b = factory.report(rng.choice(chiefs), now)
        reports.append(
            ReportIn(
                report_id=b["report_id"],
                reporter_id=b["reporter_id"],
                observed_at=now,
                lat=b["lat"] if i % 50 else None,
                lon=b["lon"] if i % 50 else None,
                crs=b["crs"],
                accuracy_m=b["accuracy_m"] if i % 3 else None,
                heading_deg=None,
                category=b["category"],
                severity=1,
                note=None,
                photos=(),
                segment_hint=net.segments[i % len(net.segments)].id if i % 7 == 0 else None,
            )
        )
    # each pass learns the phones afresh (geo.phones), as a fresh process would
    batch = place_many(reports, runtime.ctx)
    runtime.ctx.phones.clear()
    single = [place(r, runtime.ctx) for r in reports]
    # Vectorised and scalar CRS maths may differ in the last bit of a coordinate (1e-14°).
    for b, o in zip(batch, single, strict=True):
        assert (b.status, b.segment_id, b.district, b.distance_m, b.snap) == (
            o.status,
            o.segment_id,
            o.district,
            o.distance_m,
            o.snap,
        )
        if b.lat is not None:
            assert abs(b.lat - o.lat) < 1e-9 and abs(b.lon - o.lon) < 1e-9
    statuses = {p.status for p in batch}
    assert statuses >= {"accepted", "needs_review"}


def test_ack_echoes_the_id_as_sent_and_dedupes_its_canonical_form(runtime: Any) -> None:
    rid = str(uuid.uuid4())
    upper = contract_example(report_id=rid.upper())
    (first,) = runtime.pipeline.process([inbound(upper)])
    assert (first.status, first.id) == ("accepted", rid.upper())
    (again,) = runtime.pipeline.process([inbound(contract_example(report_id=rid))])
    assert (again.status, again.id) == ("duplicate", rid)


def test_text_no_database_can_store_is_rejected_and_ingest_goes_on(runtime: Any) -> None:
    """A NUL (PostgreSQL refuses it) or a lone surrogate (not UTF-8) in one report used to
    fail every attempt to store its batch: ingest stopped for everyone, retrying forever."""
    nul = json.dumps(contract_example(note="x")).replace('"x"', '"a\\u0000b"').encode()
    surrogate = json.dumps(contract_example(note="x")).replace('"x"', '"\\ud800"').encode()
    good = contract_example()
    outs = runtime.pipeline.process([inbound(nul), inbound(surrogate), inbound(good)])
    assert [o.status for o in outs] == ["rejected", "rejected", "accepted"]
    assert [o.errors[0].code for o in outs[:2]] == ["invalid_text", "invalid_text"]
    assert outs[0].errors[0].field == "note"
    # the phone still learns which of its reports this was
    assert [o.id for o in outs] == [json.loads(r)["report_id"] for r in (nul, surrogate)] + [
        good["report_id"]
    ]
    with runtime.sessions() as s:
        raws = s.scalars(select(models.RejectedMessage.raw).order_by(models.RejectedMessage.id))
        assert list(raws) == [nul, surrogate]


def test_a_message_the_database_refuses_costs_only_that_message(
    runtime: Any, monkeypatch: Any
) -> None:
    """Whatever a database refuses in one message (a bug, a limit) is that message's
    rejection, stored with its raw bytes; the rest of its batch is stored as usual."""
    real_row = runtime.pipeline._report_row

    def unstorable(it: Any) -> dict[str, Any]:
        row = real_row(it)
        if row["note"] == "boom":
            row["note"] = "\ud800"  # no driver can encode this
        return row

    monkeypatch.setattr(runtime.pipeline, "_report_row", unstorable)
    bad, good = contract_example(note="boom"), contract_example()
    outs = runtime.pipeline.process([inbound(bad), inbound(good)])
    assert [o.status for o in outs] == ["rejected", "accepted"]
    assert outs[0].id == bad["report_id"] and outs[0].errors[0].code == "unstorable"
    with runtime.sessions() as s:
        assert s.get(models.Report, good["report_id"]) is not None
        assert s.get(models.Report, bad["report_id"]) is None
        (kept,) = s.scalars(select(models.RejectedMessage)).all()
        assert kept.message_id == bad["report_id"]
        assert kept.raw == json.dumps(bad, ensure_ascii=False).encode()


def test_an_overlong_topic_is_kept_as_a_rejection(runtime: Any) -> None:
    """A topic level longer than the columns (255 for a topic, 64 for a reporter) must not
    make the rejection itself unstorable."""
    who = "x" * 300
    outs = runtime.pipeline.process([inbound(contract_example(reporter_id=who), who)])
    assert outs[0].status == "rejected"
    with runtime.sessions() as s:
        (kept,) = s.scalars(select(models.RejectedMessage)).all()
        assert kept.topic is not None and len(kept.topic) <= 255
        assert kept.reporter_id is not None and len(kept.reporter_id) <= 64


def test_a_database_outage_still_means_retry_not_reject(runtime: Any, monkeypatch: Any) -> None:
    """Only a message's own data turns into a rejection; a lost database keeps the batch."""
    import pytest
    from sqlalchemy.exc import OperationalError

    from roadwatch.pipeline import StorageError

    def down(*a: Any, **k: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(runtime.pipeline, "_store", down)
    with pytest.raises(StorageError):
        runtime.pipeline.process([inbound(contract_example())])
