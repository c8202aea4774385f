"""Cells that a spreadsheet shows as text, never runs as a formula (CSV and XLSX exports).

Names in exports come from outside: road names from OpenStreetMap and the city's files,
notes typed on phones. Excel, LibreOffice and Google Sheets run a cell that starts with
`=`, `+`, `-` or `@` as a formula (`=HYPERLINK(…)` leaks data, `=cmd|…` used DDE), and a
leading tab or carriage return does not stop them. OWASP's rule (CSV injection): such a
text gets a leading `'`, so it is shown as the text it is. Every CSV and XLSX the platform
writes goes through `safe_text` (here, and only here); XLSX cells are also written with the
string type, so no text ever becomes a formula cell.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# The characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_SPACE = " \t\r\n\u00a0\u3000"


def safe_text(value: Any) -> Any:
    """`value` unchanged unless it is text: then without control characters, and with a
    leading `'` when it would start a formula (also after leading blanks)."""
    if not isinstance(value, str):
        return value
    text = "".join(c for c in value if c >= " " or c in "\t\n\r")
    if text.startswith(FORMULA_TRIGGERS) or text.lstrip(_SPACE).startswith(FORMULA_TRIGGERS[:4]):
        return "'" + text
    return text


def csv_row(row: Iterable[Any]) -> list[Any]:
    """A row for csv.writer: None as an empty cell, text neutralised."""
    return ["" if v is None else safe_text(v) for v in row]


def xlsx_row(ws: Any, row: Iterable[Any]) -> list[Any]:
    """A row for an openpyxl write-only sheet: text neutralised and typed as a string (so
    openpyxl never stores it as a formula), other values as they are."""
    from openpyxl.cell import WriteOnlyCell

    out: list[Any] = []
    for v in row:
        safe = safe_text(v)
        if isinstance(v, str) and safe is not v and safe.startswith("'"):
            cell = WriteOnlyCell(ws, value=safe)
            cell.data_type = "s"  # a string cell whatever openpyxl would guess
            out.append(cell)
        else:
            out.append(safe)  # text that starts no formula is stored as a string anyway
    return out
