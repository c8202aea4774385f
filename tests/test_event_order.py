"""Issue 18 scope 1: the event log becomes visible in seq order on PostgreSQL, so a browser
that resyncs (or starts from a snapshot's seq) while several writers commit misses nothing.

A sequence hands out `seq` at INSERT, not at COMMIT: writer A takes seq n, writer B takes
n + 1 and commits first. A reader in between used to receive n + 1 and move its cursor past
n, which it then never saw (roadwatch/store/events.py explains the fix). SQLite has one
writer at a time, so only PostgreSQL is tested here.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
import socketio
from sqlalchemy import text

from roadwatch.store.events import LiveEvent, record_events
from tests.support.auth import PASSWORD, make_user, staff_client
from tests.support.server import live_server


def _ranking(week: str) -> list[tuple[str, dict[str, Any]]]:
    # a city-wide event every staff user receives, touching no other table
    return [("ranking", {"week": week, "url": f"/rankings/{week}"})]


def _wait_blocked_or_done(engine: Any, done: threading.Event, timeout: float = 10.0) -> None:
    """Until the other writer has committed or waits on a lock: either way the reader
    below runs while writer A is still open, whatever the code under test does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done.is_set():
            return
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("writer B neither committed nor waited for a lock")


@pytest.mark.parametrize(
    "runtime", [pytest.param("postgresql", marks=pytest.mark.integration)], indirect=True
)
def test_a_resync_never_passes_an_event_whose_transaction_is_still_open(runtime: Any) -> None:
    rt = runtime
    now = dt.datetime.now(dt.UTC)
    user = make_user(rt, "viewer")
    with live_server(rt) as server:
        staff = staff_client(server.app, rt, "viewer")
        received: list[int] = []
        c = socketio.Client()
        c.on("ranking", lambda p: received.append(int(p["seq"])), namespace="/live")
        c.connect(
            server.url,
            namespaces=["/live"],
            transports=["websocket"],
            auth={"username": user.username, "password": PASSWORD},
        )

        def resync(since: int) -> tuple[dict[str, Any], list[int]]:
            received.clear()
            answer = c.call("resync", {"since": since}, namespace="/live", timeout=10)
            time.sleep(0.2)  # the replayed events come before the answer; let them land
            return answer, list(received)

        try:
            cursor = resync(0)[0]["seq"]
            assert staff.get("/api/centre/state").get_json()["seq"] == cursor

            # A takes its seq and stays open; B writes and commits (or waits to).
            conn_a = rt.engine.connect()
            tx_a = conn_a.begin()
            (ev_a,) = record_events(conn_a, _ranking("2026-W01"), now)
            b_events: list[LiveEvent] = []
            b_done = threading.Event()

            def writer_b() -> None:
                with rt.engine.begin() as conn_b:
                    b_events.extend(record_events(conn_b, _ranking("2026-W02"), now))
                b_done.set()

            b = threading.Thread(target=writer_b, daemon=True)
            b.start()
            try:
                _wait_blocked_or_done(rt.engine, b_done)
                # What a browser gets now must stop before A's event: B's, replayed
                # alone, would move its cursor past A's for good.
                answer, seqs = resync(cursor)
                assert answer == {"ok": True, "seq": cursor}, (answer, ev_a.payload["seq"])
                assert seqs == [], seqs
                # the pages' starting seqs likewise
                assert staff.get("/api/centre/state").get_json()["seq"] == cursor
                assert staff.get("/api/segments").get_json()["seq"] == cursor
                since = (now - dt.timedelta(minutes=1)).isoformat()
                res = staff.get("/api/events", query_string={"since": since})
                assert res.status_code == 200, res.get_data(as_text=True)
                assert res.get_json()["items"] == []
            finally:
                tx_a.commit()
                conn_a.close()
            b.join(timeout=10)
            assert b_done.is_set() and len(b_events) == 1
            seq_a, seq_b = int(ev_a.payload["seq"]), int(b_events[0].payload["seq"])
            assert seq_a < seq_b

            # Once A has committed, a resync from the same cursor returns both, in order.
            answer, seqs = resync(cursor)
            assert seqs == [seq_a, seq_b]
            assert answer == {"ok": True, "seq": seq_b}
            assert staff.get("/api/centre/state").get_json()["seq"] == seq_b
        finally:
            c.disconnect()


@pytest.mark.parametrize(
    "runtime", [pytest.param("postgresql", marks=pytest.mark.integration)], indirect=True
)
def test_a_writer_left_open_holds_the_others_back_only_briefly(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process stopped between its events and its commit (SIGSTOP, a hang) must not stall
    every other writer: PostgreSQL ends its session after events.HOLD_TIMEOUT_MS idle."""
    from sqlalchemy.exc import DBAPIError

    from roadwatch.store import events

    monkeypatch.setattr(events, "HOLD_TIMEOUT_MS", 500)
    rt = runtime
    now = dt.datetime.now(dt.UTC)
    conn_a = rt.engine.connect()
    tx_a = conn_a.begin()
    record_events(conn_a, _ranking("2026-W03"), now)
    started = time.monotonic()
    with rt.engine.begin() as conn_b:  # waits for A's session to be ended
        (ev_b,) = record_events(conn_b, _ranking("2026-W04"), now)
    waited = time.monotonic() - started
    assert 0.4 < waited < 5, waited
    with pytest.raises(DBAPIError):  # A's work is gone with its session
        tx_a.commit()
    conn_a.close()
    with rt.engine.connect() as conn:
        weeks = conn.execute(text("SELECT payload->>'week' FROM events")).scalars().all()
    assert weeks == ["2026-W04"] and ev_b.payload["seq"]
