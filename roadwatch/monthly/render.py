"""The pack as a page, a PDF (WeasyPrint: CJK text stays text) and an XLSX.

Charts are SVG drawn here (no plotting library is installed): the same SVG goes into the
page and the PDF. Templates are the web's (roadwatch/web/templates), read with plain Jinja so
the CLI renders without a Flask app.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .pack import CITY

TEMPLATES = Path(__file__).resolve().parents[1] / "web" / "templates"
HEADER = (
    "区域",
    "上报",
    "结案",
    "按时结案",
    "按时率",
    "超期",
    "督办",
    "复发",
    "复发率",
    "红旗",
    "黑旗",
    "上报环比",
    "上报同比",
)


def bar_chart(
    title: str, labels: list[str], series: Sequence[tuple[str, str, Sequence[float]]]
) -> str:
    """Grouped bars: series of (name, colour, values), one group per label."""
    width, height, left, bottom, top = 720, 260, 40, 60, 30
    peak = max([float(v) for _, _, vals in series for v in vals] + [1.0])
    group = (width - left - 10) / max(len(labels), 1.0)
    bar = group * 0.8 / max(len(series), 1.0)
    plot_h = height - bottom - top
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        'class="rw-chart">',
        f'<text x="{left}" y="18" font-size="14">{escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" '
        'stroke="#999"/>',
    ]
    for k, (name, colour, _) in enumerate(series):
        lx = width - 200 + k * 95
        out.append(f'<rect x="{lx}" y="8" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{lx + 16}" y="18" font-size="12">{escape(name)}</text>')
    for i, label in enumerate(labels):
        gx = left + i * group + group * 0.1
        for k, (_, colour, vals) in enumerate(series):
            v = vals[i]
            h = plot_h * v / peak
            x, y = gx + k * bar, height - bottom - h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar * 0.92:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(label)} {v:g}</title></rect>'
            )
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" font-size="10" '
                f'text-anchor="middle">{v:g}</text>'
            )
        out.append(
            f'<text x="{gx + group * 0.4:.1f}" y="{height - bottom + 16}" font-size="12" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def charts(content: dict[str, Any]) -> list[str]:
    areas = [a for a in content["areas"] if a["code"] != CITY]
    names = [a["name"] for a in areas]
    now = [float(a["figures"]["reports"]) for a in areas]
    prev = [
        float(a["figures"]["reports"] - (a["vs_previous_month"] or {}).get("reports", 0))
        for a in areas
    ]
    on_time = [round(100 * (a["figures"]["on_time_rate"] or 0), 1) for a in areas]
    return [
        bar_chart(
            "各区上报数：本月与上月",
            names,
            [("本月", "#c0392b", now), ("上月", "#95a5a6", prev)],
        ),
        bar_chart("各区按时结案率（%）", names, [("按时率", "#2e86c1", on_time)]),
    ]


def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())


PhotoUrl = Callable[[str], str | None]


def web_photo(sha: str) -> str | None:
    return f"/api/photos/{sha}"


def file_photos(folder: str | Path) -> PhotoUrl:
    """Photos straight from the photo store (for the PDF: no HTTP round trip)."""

    def url(sha: str) -> str | None:
        for path in Path(folder).glob(f"{sha}.*"):
            return path.resolve().as_uri()
        return None

    return url


def html(content: dict[str, Any], meta: dict[str, Any], photo: PhotoUrl = web_photo) -> str:
    template = environment().get_template("monthly_review.html")
    return template.render(c=content, meta=meta, charts=charts(content), photo=photo)


def pdf(content: dict[str, Any], meta: dict[str, Any], photo_dir: str | Path) -> bytes:
    from weasyprint import HTML

    page = html(content, meta, file_photos(photo_dir))
    out: bytes = HTML(string=page, base_url=str(Path(photo_dir).resolve())).write_pdf()
    return out


def rows(content: dict[str, Any]) -> list[list[Any]]:
    out = []
    for a in content["areas"]:
        f, prev, year = a["figures"], a["vs_previous_month"] or {}, a["vs_last_year"] or {}
        out.append(
            [
                a["name"],
                f["reports"],
                f["closed"],
                f["on_time"],
                f["on_time_rate"],
                f["overdue"],
                f["escalations"],
                f["recurred"],
                f["recurrence_rate"],
                f["red"],
                f["black"],
                prev.get("reports"),
                year.get("reports"),
            ]
        )
    return out


def xlsx(content: dict[str, Any], *, cells: Callable[[Any, list[Any]], list[Any]]) -> bytes:
    """The pack as a workbook. `cells(sheet, row)` makes each row's cells: the web layer's
    `spreadsheet.xlsx_row`, so that a road or district name shaped like a formula
    (`=HYPERLINK(…)`, from OSM or the city's files) is written as text, never run."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(content["month"])
    ws.append(cells(ws, list(HEADER)))
    for r in rows(content):
        ws.append(cells(ws, r))
    seg = wb.create_sheet("路段")
    seg.append(cells(seg, ["类别", "路段", "名称", "本月发现", "上月发现"]))
    for kind, word in (("best", "好"), ("worst", "差")):
        for s in content["segments"][kind]:
            seg.append(cells(seg, [word, s["segment"], s["name"], s["findings"], s["previous"]]))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
