"""Configuration files (TOML) checked by pydantic models, with one error format.

Every configuration file (config/sla.toml, config/ranking/*.toml, config/categories.toml)
is read with `read_toml` and checked with `validate`; a mistake is refused with a
`ConfigFileError` whose text names the file, the line and the field:

    config/sla.toml:42: calendar.holidays.2027[3]: not a date (got '2027-13-01')

The field is the path of keys from the top of the file (dotted), with list positions in
brackets counted from 0. tomllib gives no positions, so `TomlLocator` finds the line by
reading the TOML text: table headers, key lines and the elements of multi-line arrays.

Pure: standard library and pydantic only.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

__all__ = [
    "ConfigFile",
    "ConfigFileError",
    "ConfigProblem",
    "TomlLocator",
    "field_name",
    "read_toml",
    "validate",
]

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


def format_error(path: str | None, line: int | None, field: str | None, reason: str) -> str:
    head = ""
    if path:
        head = f"{path}:{line}: " if line else f"{path}: "
    if field:
        head += f"{field}: "
    return head + reason


class ConfigFileError(ValueError):
    """A configuration file that cannot be used; str() is `file:line: field: reason`."""

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path, self.line, self.field, self.reason = path, line, field, reason
        super().__init__(format_error(path, line, field, reason))


class ConfigProblem(Exception):
    """Raised inside a model's validator to name an exact place (relative to the model
    being validated), e.g. the third date of a list. Not a ValueError on purpose: pydantic
    lets it through untouched and `validate` turns it into the file's error."""

    def __init__(self, loc: Sequence[str | int], reason: str) -> None:
        super().__init__(reason)
        self.loc: Loc = tuple(loc)
        self.reason = reason


def field_name(loc: Sequence[str | int]) -> str:
    """("calendar", "holidays", "2027", 3) → "calendar.holidays.2027[3]"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "":
            out += ("." if out else "") + part
    return out


# --------------------------------------------------------------------------- the locator

_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER_RE = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_KEYLINE_RE = re.compile(rf"^\s*({_DOTTED})\s*=\s*")
_PART_RE = re.compile(_KEY)


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = []
    for m in _PART_RE.finditer(dotted):
        p = m.group(0)
        parts.append(p[1:-1] if p[:1] in "\"'" else p)
    return tuple(parts)


class TomlLocator:
    """Line numbers of keys in a TOML text, by key path (array-of-tables by occurrence)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.keys: dict[tuple[str | int, ...], tuple[int, int]] = {}  # path → (line, col)
        self.headers: dict[tuple[str | int, ...], int] = {}
        self._scan()

    def _scan(self) -> None:
        table: tuple[str | int, ...] = ()
        counts: dict[tuple[str, ...], int] = {}
        depth = 0  # open brackets of a value that goes on over several lines
        in_string: str | None = None  # the delimiter of an open multi-line string
        for n, raw in enumerate(self.lines, start=1):
            if depth == 0 and in_string is None:
                h = _HEADER_RE.match(raw)
                if h:
                    path = _split_key(h.group(2))
                    if h.group(1) == "[[":
                        i = counts.get(path, 0)
                        counts[path] = i + 1
                        self.headers.setdefault(path, n)
                        table = (*path, i)
                    else:
                        table = path
                    self.headers.setdefault(table, n)
                    continue
                k = _KEYLINE_RE.match(raw)
                if k is None:
                    continue
                key = (*table, *_split_key(k.group(1)))
                self.keys.setdefault(key, (n, k.end()))
                depth, in_string = _brackets(raw, k.end(), 0, None)
            else:
                depth, in_string = _brackets(raw, 0, depth, in_string)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of the deepest known key on `loc` (a list position inside it if given)."""
        path = tuple(p for p in loc if p != "")
        for k in range(len(path), 0, -1):
            prefix = path[:k]
            if prefix in self.keys:
                line, col = self.keys[prefix]
                rest = path[k:]
                if rest and isinstance(rest[0], int):
                    return self._element_line(line, col, rest[0]) or line
                return line
            if prefix in self.headers:
                return self.headers[prefix]
        return None

    def _element_line(self, line: int, col: int, index: int) -> int | None:
        """The line on which element `index` of the array starting at (line, col) starts."""
        depth = 0
        expecting = False
        count = -1
        in_string: str | None = None
        for n in range(line, len(self.lines) + 1):
            text = self.lines[n - 1]
            i = col if n == line else 0
            while i < len(text):
                c = text[i]
                if in_string is not None:
                    i, in_string = _string_step(text, i, in_string)
                    continue
                if c == "#":
                    break
                if c.isspace():
                    i += 1
                    continue
                if depth == 1 and expecting and c not in ",]":
                    count += 1
                    expecting = False
                    if count == index:
                        return n
                if c in "\"'":
                    in_string = c * 3 if text.startswith(c * 3, i) else c
                    i += len(in_string)
                    continue
                if c in "[{":
                    depth += 1
                    if depth == 1:
                        if c != "[":
                            return None
                        expecting = True
                elif c in "]}":
                    depth -= 1
                    if depth == 0:
                        return None
                elif c == "," and depth == 1:
                    expecting = True
                i += 1
        return None


def _string_step(text: str, i: int, in_string: str) -> tuple[int, str | None]:
    """One step inside an open TOML string whose quote is `in_string` (one or three quote
    characters): the next index, and the quote still open (None once the string closes).
    Basic strings (double quotes) have backslash escapes; literal ones do not."""
    if text[i] == "\\" and in_string.startswith('"'):
        return i + 2, in_string
    if text.startswith(in_string, i):
        return i + len(in_string), None
    return i + 1, in_string


def _brackets(text: str, start: int, depth: int, in_string: str | None) -> tuple[int, str | None]:
    """Bracket depth and open multi-line string after reading `text` from `start`."""
    i = start
    while i < len(text):
        c = text[i]
        if in_string is not None:
            i, in_string = _string_step(text, i, in_string)
            continue
        if c == "#":
            break
        if c in "\"'":
            in_string = c * 3 if text.startswith(c * 3, i) else c
            i += len(in_string)
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    if in_string is not None and len(in_string) == 1:
        in_string = None  # a one-line string cannot go on to the next line
    return depth, in_string


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ConfigFile:
    """A configuration file as read: its name, bytes, text and parsed document."""

    path: str
    raw: bytes
    text: str
    doc: dict[str, Any]

    def locator(self) -> TomlLocator:
        return TomlLocator(self.text)


def read_toml(path: str | Path, error: type[ConfigFileError] = ConfigFileError) -> ConfigFile:
    """Read and parse a TOML file; unreadable, non-UTF-8 or invalid TOML is `error`."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read the file ({exc.strerror or exc})", path=name) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error("the file is not UTF-8 text", path=name) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        line = int(m.group(1)) if m else None
        raise error(f"not valid TOML: {reason}", path=name, line=line) from None
    return ConfigFile(name, raw, text, doc)


# --------------------------------------------------------------------------- validating


def validate(
    model: type[M],
    doc: Any,
    *,
    error: type[ConfigFileError] = ConfigFileError,
    path: str | None = None,
    text: str | None = None,
    prefix: Sequence[str | int] = (),
    context: Mapping[str, Any] | None = None,
) -> M:
    """`model` validated from `doc`; the first problem becomes `error` with file and line.

    `prefix` is where `doc` sits in the file (e.g. ("calendar",) for the [calendar] table).
    """
    try:
        return model.model_validate(doc, context=dict(context or {}))
    except ConfigProblem as p:
        loc, reason = (*prefix, *p.loc), p.reason
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        inner = tuple(x for x in first["loc"] if x != "[key]")
        loc = (*prefix, *inner)
        reason = _reason(model, inner, first)
    line = TomlLocator(text).line_of(loc) if text is not None else None
    raise error(reason, path=path, line=line, field=field_name(loc) or None)


def _reason(model: type[BaseModel], loc: Loc, err: Any) -> str:
    kind, msg = err["type"], str(err["msg"])
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        return "unknown key" + (f" (expected one of {', '.join(allowed)})" if allowed else "")
    if kind == "missing":
        return "missing"
    for lead in ("Value error, ", "Assertion failed, "):
        if msg.startswith(lead):
            return msg[len(lead) :]
    got = err.get("input")
    if isinstance(got, str | int | float | bool) or got is None:
        return f"{msg[:1].lower()}{msg[1:]} (got {got!r})"
    return msg[:1].lower() + msg[1:]


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the model allows at `loc` (for "unknown key" messages); [] if unsure."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(part)
        if info is None:
            return []
        current = info.annotation
        while get_origin(current) is not None:  # list[Step], Step | None, ...
            args = [a for a in get_args(current) if isinstance(a, type)]
            if not args:
                return []
            current = args[-1]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []
