"""`roadwatch demo seed` (issue 17): a reduced run (two weeks of one district) through the
real paths gives every state the demo must show, the same seed gives the same published
hashes, and a database with real data is refused and left as it was."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from roadwatch import clock
from roadwatch.demo.seed import DemoRefused, Seeder, SeedResult
from roadwatch.store import models
from tests.conftest import make_settings

UNTIL = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
REDUCED: dict[str, Any] = {
    "weeks": 2,
    "seed": 7,
    "until": UNTIL,
    "districts": ["EQ"],  # 二七区: flags by quota, so a red and a black every week
    "findings_per_week": 1500.0,
    "progress": None,
}


def _seed(tmp: Path, **kw: Any) -> tuple[SeedResult, Path]:
    settings = make_settings(tmp)
    result = Seeder(settings, **{**REDUCED, **kw}).run()
    return result, tmp / "roadwatch.sqlite3"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[SeedResult, Path]:
    return _seed(tmp_path_factory.mktemp("demo-a"))


def test_the_settable_clock_is_the_one_everything_reads() -> None:
    fixed = clock.SetClock(dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC))
    with clock.use(fixed):
        assert models.utcnow() == dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
        fixed.advance(dt.timedelta(hours=2))
        assert models.utcnow().hour == 3
        with pytest.raises(ValueError):
            fixed.set(dt.datetime(2026, 3, 1, tzinfo=dt.UTC))  # never backwards
    assert abs((models.utcnow() - clock.wall()).total_seconds()) < 5  # the wall clock again


def test_reduced_seed_shows_every_state(seeded: tuple[SeedResult, Path]) -> None:
    result, db = seeded
    assert [w for w, _, _ in result.weeks] == ["2026-W47", "2026-W48"]
    with sqlite3.connect(db) as conn:
        flags: dict[str, set[str]] = {}
        cards: set[str] = set()
        for week, content in conn.execute("SELECT week, content FROM rankings ORDER BY week"):
            for lg in json.loads(content)["leagues"]:
                for s in lg["scores"]:
                    if s["flag"]:
                        flags.setdefault(week, set()).add(s["flag"])
                    if s.get("card"):
                        cards.add(s["card"])
        assert any({"red", "black"} <= f for f in flags.values()), flags
        assert cards & {"yellow_card", "commendation"}, cards
        states = dict(conn.execute("SELECT case_status, count(*) FROM reports GROUP BY 1"))
        assert states.get("closed", 0) > 100, states
        assert states.get("dispatched", 0) + states.get("reopened", 0) > 0, states
        overdue_open = conn.execute(
            "SELECT count(*) FROM reports WHERE overdue AND case_status IN "
            "('dispatched', 'reopened', 'rectified')"
        ).fetchone()[0]
        assert overdue_open > 0
        assert (
            conn.execute(
                "SELECT count(*) FROM report_transitions WHERE to_status = 'reopened'"
            ).fetchone()[0]
            > 0
        )  # failed verifications
        kinds = dict(
            conn.execute(
                "SELECT r.kind, count(*) FROM reports p JOIN reporters r ON r.id = p.reporter_id "
                "GROUP BY 1"
            )
        )
        assert kinds.get("evaluator") and kinds.get("covert") and kinds.get("person"), kinds
        assert conn.execute("SELECT count(*) FROM patrol_coverage").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM ranking_disputes").fetchone()[0] > 0
        photos = conn.execute("SELECT count(*) FROM photo_meta").fetchone()[0]
        assert photos > 0
        rejected = conn.execute("SELECT count(*) FROM rejected_messages").fetchone()[0]
        assert rejected == 0, "every demo message must pass the real checks"
        marker = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'demo'").fetchone()[0])
        assert marker["state"] == "done" and marker["seed"] == 7


def test_same_seed_gives_the_same_published_hashes(
    seeded: tuple[SeedResult, Path], tmp_path: Path
) -> None:
    again, _ = _seed(tmp_path)
    assert again.weeks == seeded[0].weeks


def _one_real_report(tmp: Path) -> None:
    from roadwatch.ingest.messages import Inbound
    from roadwatch.runtime import Runtime

    rt = Runtime.build(make_settings(tmp))
    try:
        seg = rt.ctx.network.segments[0]
        chief = next(a.person_id for a in rt.ctx.network.assignments if a.segment_id == seg.id)
        p = seg.geometry.interpolate(0.5, normalized=True)
        body = {
            "v": 1,
            "report_id": "0b9f7c1e-3c53-4a53-9a1f-6f0d7b0a1a42",
            "reporter_id": chief,
            "observed_at": models.utcnow().isoformat(),
            "lat": p.y,
            "lon": p.x,
            "category": "E0504",
        }
        out = rt.pipeline.process(
            [
                Inbound(
                    "mqtt",
                    "report",
                    json.dumps(body).encode(),
                    models.utcnow(),
                    topic=f"roadwatch/v1/reports/{chief}",
                    topic_reporter=chief,
                )
            ]
        )
        assert out[0].status == "accepted"
    finally:
        rt.engine.dispose()


def test_seed_refuses_a_database_with_real_reports(tmp_path: Path) -> None:
    _one_real_report(tmp_path)
    db = tmp_path / "roadwatch.sqlite3"
    before = db.read_bytes()
    with pytest.raises(DemoRefused, match="already holds real data"):
        Seeder(make_settings(tmp_path), **REDUCED).run()
    assert db.read_bytes() == before  # nothing changed, not even a migration


def test_cli_refusal_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: Any
) -> None:
    from roadwatch.cli import main

    _one_real_report(tmp_path)
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'roadwatch.sqlite3'}")
    monkeypatch.setenv("ROADWATCH_PHOTO_DIR", str(tmp_path / "photos"))
    r = runner.invoke(main, ["demo", "seed", "--weeks", "2"])
    assert r.exit_code == 3, r.output
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("roadwatch demo seed: refused: "), err
    assert "1 reports" in err[0]


def test_unknown_districts_are_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: Any
) -> None:
    """`demo seed --districts XX,YY` (codes the network does not have) played a week of
    nothing, "0 weeks published", exit 0, and marked the database a demo: the next
    `run.sh` started on an empty city. A wrong code is a wrong option: one line, exit 2."""
    from roadwatch.cli import main
    from roadwatch.demo.seed import demo_marker

    url = f"sqlite:///{tmp_path / 'roadwatch.sqlite3'}"
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", url)
    monkeypatch.setenv("ROADWATCH_PHOTO_DIR", str(tmp_path / "photos"))
    r = runner.invoke(main, ["demo", "seed", "--weeks", "1", "--districts", "EQ,XX,YY"])
    assert r.exit_code == 2, r.output
    err = r.stderr.strip().splitlines()
    assert err == [
        "roadwatch demo seed: --districts: XX, YY not in the network "
        "(its districts: EQ, GC, GX, HJ, JK, JS, ZD, ZY)"
    ], err
    assert demo_marker(url) is None


def test_if_new_names_a_seed_that_did_not_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: Any
) -> None:
    """A seed killed midway (here SIGKILL, once its mark says "seeding") leaves part of its
    history. `run.sh`'s `demo seed --if-new` took it for a finished demo ("already a demo;
    not seeding again", exit 0) and started the platform on it at every start; now it says
    the seed did not finish, in one line, with the refusal's exit code 3."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from roadwatch.cli import main
    from roadwatch.demo.seed import demo_marker

    url = f"sqlite:///{tmp_path / 'roadwatch.sqlite3'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")},
        "ROADWATCH_DATABASE_URL": url,
        "ROADWATCH_PHOTO_DIR": str(tmp_path / "photos"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "roadwatch.cli", "demo", "seed", "--weeks", "4"],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if (demo_marker(url) or {}).get("state") == "seeding":
                    break
            except Exception:  # the schema is being created meanwhile
                pass
            time.sleep(0.1)
        assert proc.poll() is None, "the seed ended before it could be interrupted"
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (demo_marker(url) or {}).get("state") == "seeding"
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", url)
    monkeypatch.setenv("ROADWATCH_PHOTO_DIR", str(tmp_path / "photos"))
    r = runner.invoke(main, ["demo", "seed", "--if-new", "--weeks", "1"])
    assert r.exit_code == 3, r.output
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("roadwatch demo seed: "), err
    assert "did not finish" in err[0] and "delete the database" in err[0]
