"""Issue 22 scope 5: the last 12 weeks' flags beside this week's, on the ranking page."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from sqlalchemy import delete, insert

from roadwatch.ranking.trend import flag_history
from roadwatch.ranking.week import Week
from roadwatch.store import models
from tests.test_ranking_jobs import formula, golden_fixture, rank_rt, rt  # noqa: F401
from tests.test_ranking_web import published  # noqa: F401


def _week_row(label: str, leagues: list[dict[str, Any]]) -> dict[str, Any]:
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return dict(
        week=label, formula_version="v", formula_sha256="0" * 64, as_of=t, published_at=t,
        published_by="t", content=json.dumps({"leagues": leagues}), content_sha256="0" * 64,
        chain_sha256="0" * 64,
    )  # fmt: skip


def test_flag_history(runtime: Any) -> None:
    tz = runtime.settings.tz

    def league(red: list[str], black: list[str]) -> dict[str, Any]:
        scores = [{"id": s, "flag": "red"} for s in red] + [
            {"id": s, "flag": "black"} for s in black
        ]
        return {"kind": "segment", "district": "EQ", "scores": [*scores, {"id": "q", "flag": None}]}

    with runtime.engine.begin() as conn:
        conn.execute(delete(models.RankingDispute))
        conn.execute(delete(models.Ranking))
        conn.execute(insert(models.Ranking).values(_week_row("2026-W44", [league(["a"], ["b"])])))
        conn.execute(insert(models.Ranking).values(_week_row("2026-W46", [league(["a", "c"], [])])))
        conn.execute(insert(models.Ranking).values(_week_row("2026-W47", [league([], ["a"])])))
        conn.execute(insert(models.Ranking).values(_week_row("2026-W34", [league(["a"], [])])))
    with runtime.engine.connect() as conn:
        h = flag_history(conn, Week.parse("2026-W47", tz))
    assert h.weeks[0] == "2026-W35" and h.weeks[-1] == "2026-W46" and len(h.weeks) == 12
    assert h.units["segment:a"][-3:] == ["red", None, "red"]  # W44, W45 unpublished, W46
    assert h.units["segment:b"][-3] == "black" and "segment:q" not in h.units
    assert h.districts["EQ"][-3:] == [(1, 1), None, (2, 0)]
    assert "2026-W47" not in h.weeks and "2026-W34" not in h.weeks
    with runtime.engine.begin() as conn:
        conn.execute(delete(models.Ranking))


def test_ranking_page_shows_the_weeks_before(published: Any) -> None:  # noqa: F811
    client, _ = published
    page = client.get("/rankings/2026-W47").get_data(as_text=True)
    assert "近 12 周" in page
    # W46 was published before W47: its flags appear as the last of the 12 weeks' marks.
    cells = re.findall(r'<td class="rw-trend" data-trend="([^"]+)">(.*?)</td>', page, re.S)
    assert cells
    w46 = client.get("/api/rankings/2026-W46").get_json()
    flags46 = {
        s["id"]: s["flag"] for lg in w46["leagues"] if lg["kind"] == "segment" for s in lg["scores"]
    }
    last = []
    for sid, cell in cells:
        marks = re.findall(r">(红|黑|·)</span>", cell)
        assert len(marks) == 12
        want = {"red": "红", "black": "黑"}.get(flags46.get(sid) or "", "·")
        assert marks[-1] == want, (sid, marks)
        last.append(marks[-1])
    assert set(last) - {"·"}, "no segment flagged in W47 was flagged in W46 either"
    assert "data-district-trend" in page
