"""Outputs of a ranking's content: table rows (CSV, XLSX) and the 示意图 map as SVG. Pure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from xml.sax.saxutils import escape

HEADER = (
    "week",
    "kind",
    "district",
    "district_name",
    "rank",
    "id",
    "name",
    "flag",
    "card",
    "shrunk_rate",
    "index",
    "points",
    "findings",
    "third_party",
    "expected",
    "exposure_km",
    "p_high",
    "p_low",
    "prev_rank",
)
FLAG_NAMES = {"red": "红旗", "black": "黑旗", None: ""}
CARD_NAMES = {"yellow_card": "黄牌警告", "commendation": "通报表扬", None: ""}
MEASURE_NAMES = {
    "overdue": "超期",
    "reopened": "返工",
    "unresolved": "未结案",
    "recurrence": "重复发生",
    "own_fix_credit": "自查自改（加分）",
    "patrol_missed_days": "巡查未履职天数",
}
SOURCE_NAMES = {"evaluator": "第三方测评", "covert": "暗访", "public": "其他上报", "self": "自报"}
KIND_NAMES = {"segment": "路段", "partner_unit": "驻区单位", "merchant": "门前三包商户"}


def rows(content: Mapping[str, Any]) -> Iterator[tuple[Any, ...]]:
    for lg in content["leagues"]:
        for s in lg["scores"]:
            yield (
                content["week"],
                lg["kind"],
                lg["district"],
                lg["district_name"],
                s["rank"],
                s["id"],
                s["name"],
                s["flag"] or "",
                s["card"] or "",
                s["shrunk_rate"],
                s["index"],
                s["points"],
                s["findings"],
                s["third_party"],
                s["expected"],
                s["exposure_km"],
                s["p_high"],
                s["p_low"],
                s["prev_rank"] if s["prev_rank"] is not None else "",
            )


def drilldown_rows(content: Mapping[str, Any]) -> Iterator[tuple[Any, ...]]:
    for lg in content["leagues"]:
        for s in lg["scores"]:
            for f in s.get("drilldown", ()):
                yield (
                    content["week"],
                    lg["kind"],
                    s["id"],
                    s["flag"] or "",
                    f["id"],
                    f["category"],
                    f["severity"],
                    f["source"],
                    f.get("observed_at", ""),
                    f.get("reporter_id") or f.get("reporter_kind", ""),  # the public: a kind
                    "yes" if f["overdue"] else "",
                    "yes" if f["reopened"] else "",
                    "yes" if f["unresolved"] else "",
                    "yes" if f["recurrence"] else "",
                )


DRILLDOWN_HEADER = (
    "week",
    "kind",
    "unit",
    "flag",
    "report_id",
    "category",
    "severity",
    "source",
    "observed_at",
    "reporter_id",
    "overdue",
    "reopened",
    "unresolved",
    "recurrence",
)


def map_svg(
    segments: Iterable[tuple[str, list[list[float]]]],
    flags: Mapping[str, str],
    width: int = 900,
    height: int = 640,
) -> str:
    """Segments as polylines (equirectangular, north up); red and black flags drawn on top.

    A sketch (示意图), not a survey map: it shows where the flags are, nothing more.
    """
    segs = [(sid, coords) for sid, coords in segments if coords]
    if not segs:
        return ""
    lons = [c[0] for _, cs in segs for c in cs]
    lats = [c[1] for _, cs in segs for c in cs]
    x0, x1, y0, y1 = min(lons), max(lons), min(lats), max(lats)
    kx = math.cos(math.radians((y0 + y1) / 2))
    span = max((x1 - x0) * kx, y1 - y0) or 1.0
    scale = min(width, height - 30) / span

    def path(coords: list[list[float]]) -> str:
        pts = [f"{(c[0] - x0) * kx * scale:.1f},{(y1 - c[1]) * scale + 24:.1f}" for c in coords]
        return "M" + "L".join(pts)

    base = "".join(path(cs) for sid, cs in segs if sid not in flags)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="红黑旗路段示意图" class="rw-rank-map">',
        '<rect width="100%" height="100%" fill="#fbfbf8"/>',
        '<text x="8" y="18" font-size="14" fill="#555">示意图（非测绘地图）'
        " · 红：红旗 · 黑：黑旗</text>",
        f'<path d="{base}" fill="none" stroke="#c8c8c8" stroke-width="1"/>',
    ]
    for flag, colour in (("red", "#d7191c"), ("black", "#111111")):
        d = "".join(path(cs) for sid, cs in segs if flags.get(sid) == flag)
        if d:
            out.append(
                f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="4" '
                f'stroke-linecap="round"><title>{escape(FLAG_NAMES[flag])}</title></path>'
            )
    out.append("</svg>")
    return "".join(out)


def line_coords(geometry: Mapping[str, Any]) -> list[list[float]]:
    if geometry.get("type") == "LineString":
        return [list(c) for c in geometry.get("coordinates", [])]
    if geometry.get("type") == "MultiLineString":
        return [list(c) for part in geometry.get("coordinates", []) for c in part]
    return []
