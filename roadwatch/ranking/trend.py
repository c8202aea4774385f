"""The last weeks' flags beside this week's (issue 22): per unit and per district, from the
published weeks only (a draft is no history)."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from sqlalchemy import Connection, select

from ..store import models
from .week import Week

WEEKS = 12


@dataclass
class FlagHistory:
    weeks: list[str]  # oldest first, the weeks before the one shown
    units: dict[str, list[str | None]] = field(default_factory=dict)  # "kind:id" → flags
    # district → per week (red, black), None where the week is not published
    districts: dict[str, list[tuple[int, int] | None]] = field(default_factory=dict)


def flag_history(conn: Connection, week: Week, weeks: int = WEEKS) -> FlagHistory:
    labels: list[str] = []
    w = week
    for _ in range(weeks):
        w = w.previous()
        labels.append(w.label)
    labels.reverse()
    rk = models.Ranking.__table__.c
    rows = dict(conn.execute(select(rk.week, rk.content).where(rk.week.in_(labels))).all())
    out = FlagHistory(labels)
    for k, label in enumerate(labels):
        content = rows.get(label)
        if content is None:
            continue
        for lg in orjson.loads(content)["leagues"]:
            district = lg.get("district")
            if lg.get("kind") == "segment" and district:
                per = out.districts.setdefault(district, [None] * len(labels))
                red, black = per[k] or (0, 0)
                for s in lg["scores"]:
                    red += s.get("flag") == "red"
                    black += s.get("flag") == "black"
                per[k] = (red, black)
            for s in lg["scores"]:
                if s.get("flag"):
                    key = f"{lg['kind']}:{s['id']}"
                    out.units.setdefault(key, [None] * len(labels))[k] = s["flag"]
    return out
