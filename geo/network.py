"""The road network data model and its file format.

A network is the set of responsibility segments (责任路段) of a city together
with the districts they lie in, the sub-district offices (街道办事处), the road
chiefs (路长) and which chief answers for which segment at which level.

File format: a GeoJSON FeatureCollection (RFC 7946, WGS84 lon/lat) of the
segments, so any GIS tool opens it, plus a foreign member ``"roadwatch"`` that
carries everything that is not a segment line::

    {"type": "FeatureCollection",
     "features": [{"type": "Feature", "id": "ZZ-JS-0173",
                   "properties": {"id", "name", "road", "from", "to", "district",
                                  "subdistrict", "road_class", "length_m"},
                   "geometry": {"type": "LineString", ...}}, ...],
       (a MultiLineString for a segment drawn as several lines: both
       carriageways of a dual carriageway)
     "roadwatch": {"version": 1, "name": ..., "crs": "EPSG:4326",
                   "districts": [GeoJSON Features], "subdistricts": [...],
                   "people": [...], "assignments": [...]}}

Saved files are byte-for-byte reproducible (sorted keys, fixed separators,
coordinates rounded to 7 decimals, gzip header without name or mtime) so the
bundled demo file can be compared with a fresh generation and its digest can
tell a database whether it already holds this network.

Loading avoids geopandas on purpose: json plus vectorised shapely constructors
read the 2,495-segment demo in a small fraction of a second, which matters
because every server start and every test loads it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from shapely.errors import GEOSException
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Polygon

__all__ = [
    "DISTRICT_KINDS",
    "FORMAT_VERSION",
    "LEVELS",
    "ROAD_CLASSES",
    "Assignment",
    "District",
    "Network",
    "Person",
    "Segment",
    "Subdistrict",
    "load_network",
    "network_bytes",
    "network_to_json",
    "save_network",
]

FORMAT_VERSION: Final = 1
COORD_DECIMALS: Final = 7  # ~1 cm: far below any GPS error, and keeps files small
ROAD_CLASSES: Final[tuple[str, ...]] = ("arterial", "secondary", "local")
DISTRICT_KINDS: Final[tuple[str, ...]] = ("district", "zone")
# 0 总路长 (district head), 1 一级路长, 2 二级路长 (sub-district), 3 三级路长/路段长
LEVELS: Final[tuple[int, ...]] = (0, 1, 2, 3)


@dataclass(frozen=True, slots=True)
class District:
    """An administrative district (区) or a functional zone (新区/开发区, kind "zone")."""

    code: str  # "JS": the middle part of segment ids
    name: str  # "金水区"
    kind: str  # "district" | "zone"
    pinyin: str  # "jinshui": the middle part of person ids
    geometry: Polygon | MultiPolygon  # WGS84 lon/lat


@dataclass(frozen=True, slots=True)
class Subdistrict:
    """A sub-district office (街道办事处); it sets the 二级路长 of its segments."""

    code: str  # "JS-03"
    name: str  # "花园路街道"
    district: str  # district code


@dataclass(frozen=True, slots=True)
class Segment:
    """A responsibility segment: one road between two crossing roads."""

    id: str  # "ZZ-JS-0173"
    name: str  # "花园路（农业路至黄河路）"
    road: str
    from_road: str
    to_road: str
    district: str  # district code, by the segment's midpoint
    subdistrict: str  # sub-district code
    road_class: str  # "arterial" | "secondary" | "local"
    length_m: float  # geodesic length on WGS84, 0.1 m
    geometry: LineString | MultiLineString  # WGS84 lon/lat; Multi: both carriageways


@dataclass(frozen=True, slots=True)
class Person:
    """A road chief. Levels: 0 总路长, 1 一级路长, 2 二级路长, 3 三级路长 (路段长)."""

    id: str  # "zz-jinshui-0421"
    name: str
    level: int
    district: str
    subdistrict: str | None  # None above the sub-district level
    title: str  # "金水区区长", "花园路街道办事处主任", "路段长"


@dataclass(frozen=True, slots=True)
class Assignment:
    """Who answers for a segment at one level, and when (chiefs rotate)."""

    segment_id: str
    person_id: str
    level: int
    role: str  # "road_chief"
    valid_from: dt.date
    valid_to: dt.date | None  # None: still in office


@dataclass(frozen=True, kw_only=True)
class Network:
    name: str
    crs: str = "EPSG:4326"
    districts: tuple[District, ...]
    subdistricts: tuple[Subdistrict, ...]
    segments: tuple[Segment, ...]
    people: tuple[Person, ...]
    assignments: tuple[Assignment, ...]
    # Lookup tables, built once; frozen dataclasses need object.__setattr__ for that.
    _segment_index: dict[str, Segment] = field(init=False, repr=False, compare=False)
    _district_index: dict[str, District] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_segment_index", {s.id: s for s in self.segments})
        object.__setattr__(self, "_district_index", {d.code: d for d in self.districts})

    def segment_by_id(self, segment_id: str) -> Segment:
        """The segment with this id; KeyError if there is none."""
        return self._segment_index[segment_id]

    def district_by_code(self, code: str) -> District:
        """The district with this code; KeyError if there is none."""
        return self._district_index[code]

    def info(self) -> dict[str, Any]:
        """Counts for a human: what `roadwatch network info` prints."""
        by_district = Counter(s.district for s in self.segments)
        by_class = Counter(s.road_class for s in self.segments)
        by_level = Counter(p.level for p in self.people)
        return {
            "name": self.name,
            "crs": self.crs,
            "segments": len(self.segments),
            "segments_by_district": {d.code: by_district[d.code] for d in self.districts},
            "segments_by_road_class": {c: by_class[c] for c in ROAD_CLASSES if by_class[c]},
            "roads": len({s.road for s in self.segments}),
            "length_km": round(sum(s.length_m for s in self.segments) / 1000.0, 1),
            "districts": len(self.districts),
            "subdistricts": len(self.subdistricts),
            "people": len(self.people),
            "people_by_level": {lvl: by_level[lvl] for lvl in LEVELS},
            "assignments": len(self.assignments),
        }


# -- writing -------------------------------------------------------------------------


def _round_coords(coords: Any) -> Any:
    """Nested coordinate lists with every number rounded to COORD_DECIMALS."""
    if isinstance(coords, (int, float)):
        return round(float(coords), COORD_DECIMALS)
    return [_round_coords(c) for c in coords]


def _geometry_json(geom: shapely.Geometry) -> dict[str, Any]:
    mapping = json.loads(shapely.to_geojson(geom))
    mapping["coordinates"] = _round_coords(mapping["coordinates"])
    return {"type": mapping["type"], "coordinates": mapping["coordinates"]}


def _line_json(line: LineString | MultiLineString) -> dict[str, Any]:
    # Segments are most of the file: skip the to_geojson/json.loads round trip.
    if isinstance(line, MultiLineString):
        parts = [np.round(shapely.get_coordinates(p), COORD_DECIMALS).tolist() for p in line.geoms]
        return {"type": "MultiLineString", "coordinates": parts}
    xy = np.round(shapely.get_coordinates(line), COORD_DECIMALS)
    return {"type": "LineString", "coordinates": xy.tolist()}


def segment_feature(s: Segment) -> dict[str, Any]:
    """One segment as a GeoJSON Feature (as stored in the file and served by the API)."""
    return {
        "type": "Feature",
        "id": s.id,
        "properties": {
            "id": s.id,
            "name": s.name,
            "road": s.road,
            "from": s.from_road,
            "to": s.to_road,
            "district": s.district,
            "subdistrict": s.subdistrict,
            "road_class": s.road_class,
            "length_m": round(s.length_m, 1),
        },
        "geometry": _line_json(s.geometry),
    }


def network_to_json(net: Network) -> dict[str, Any]:
    """The network as the JSON document that save_network writes."""
    features = [segment_feature(s) for s in net.segments]
    districts = [
        {
            "type": "Feature",
            "id": d.code,
            "properties": {"code": d.code, "name": d.name, "kind": d.kind, "pinyin": d.pinyin},
            "geometry": _geometry_json(d.geometry),
        }
        for d in net.districts
    ]
    return {
        "type": "FeatureCollection",
        "features": features,
        "roadwatch": {
            "version": FORMAT_VERSION,
            "name": net.name,
            "crs": net.crs,
            "districts": districts,
            "subdistricts": [
                {"code": s.code, "name": s.name, "district": s.district} for s in net.subdistricts
            ],
            "people": [
                {
                    "id": p.id,
                    "name": p.name,
                    "level": p.level,
                    "district": p.district,
                    "subdistrict": p.subdistrict,
                    "title": p.title,
                }
                for p in net.people
            ],
            "assignments": [
                {
                    "segment_id": a.segment_id,
                    "person_id": a.person_id,
                    "level": a.level,
                    "role": a.role,
                    "valid_from": a.valid_from.isoformat(),
                    "valid_to": a.valid_to.isoformat() if a.valid_to else None,
                }
                for a in net.assignments
            ],
        },
    }


def network_bytes(net: Network, *, compress: bool) -> bytes:
    """The exact bytes save_network writes; deterministic for a given network."""
    text = json.dumps(
        network_to_json(net), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )
    raw = (text + "\n").encode("utf-8")
    if not compress:
        return raw
    buf = io.BytesIO()
    # filename="" and mtime=0 keep the gzip header free of anything that varies.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    return buf.getvalue()


def save_network(net: Network, path: str | Path) -> None:
    """Write the network as GeoJSON; gzip-compressed when the name ends in .gz."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = network_bytes(net, compress=p.name.endswith(".gz"))
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(p)  # a reader never sees half a file


# -- reading -------------------------------------------------------------------------


def _read_document(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such network file: {path}") from None
    if raw[:2] == b"\x1f\x8b":  # gzip magic: trust the content, not the file name
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt gzip data ({exc})") from exc
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a roadwatch network: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise ValueError(f"{path}: not a roadwatch network: not a GeoJSON FeatureCollection")
    meta = doc.get("roadwatch")
    if not isinstance(meta, dict):
        raise ValueError(
            f"{path}: not a roadwatch network: a GeoJSON FeatureCollection without the "
            '"roadwatch" member (districts, chiefs, assignments)'
        )
    version = meta.get("version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: roadwatch network format version {version!r} is not supported "
            f"(this code reads version {FORMAT_VERSION})"
        )
    return doc


def _need(obj: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return obj[key]
    except (KeyError, TypeError):
        raise ValueError(f"{where}: missing {key!r}") from None


def _date(value: Any, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: not an ISO date: {value!r}") from None


def _segments(features: Iterable[Any], path: Path) -> tuple[Segment, ...]:
    props: list[Mapping[str, Any]] = []
    coords: list[Any] = []  # one list of positions per line part
    owner: list[int] = []  # the feature of each part
    multi: list[bool] = []
    for i, f in enumerate(features):
        where = f"{path}: feature {i}"
        geom = _need(f, "geometry", where)
        kind = geom.get("type") if isinstance(geom, dict) else None
        if kind not in ("LineString", "MultiLineString"):
            raise ValueError(f"{where}: segment geometry must be a LineString or MultiLineString")
        c = _need(geom, "coordinates", where)
        parts = c if kind == "MultiLineString" and isinstance(c, list) else [c]
        if not parts:
            raise ValueError(f"{where}: a MultiLineString needs at least one line")
        for part in parts:
            if not isinstance(part, list) or len(part) < 2:
                raise ValueError(f"{where}: a LineString needs at least 2 positions")
            coords.append(part)
            owner.append(i)
        props.append(_need(f, "properties", where))
        multi.append(kind == "MultiLineString")
    if not coords:
        return ()
    # One vectorised constructor call for all lines instead of one per segment.
    counts = np.fromiter((len(c) for c in coords), dtype=np.int64, count=len(coords))
    try:
        flat = np.array([xy for c in coords for xy in c], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: malformed segment coordinates ({exc})") from exc
    if flat.ndim != 2 or flat.shape[1] != 2:
        raise ValueError(f"{path}: segment coordinates must be [lon, lat] pairs")
    part_lines = shapely.linestrings(flat, indices=np.repeat(np.arange(len(coords)), counts))
    lines = part_lines
    if any(multi):
        lines = np.empty(len(props), dtype=object)
        single = np.array(owner)
        first = np.flatnonzero(np.r_[True, single[1:] != single[:-1]])
        lines[:] = part_lines[first]
        for i in np.flatnonzero(multi).tolist():
            lines[i] = shapely.multilinestrings(part_lines[single == i])
    out = []
    for i, (p, line) in enumerate(zip(props, lines, strict=True)):
        where = f"{path}: feature {i}"
        try:
            out.append(
                Segment(
                    id=str(p["id"]),
                    name=str(p["name"]),
                    road=str(p["road"]),
                    from_road=str(p["from"]),
                    to_road=str(p["to"]),
                    district=str(p["district"]),
                    subdistrict=str(p["subdistrict"]),
                    road_class=str(p["road_class"]),
                    length_m=float(p["length_m"]),
                    geometry=line,
                )
            )
        except KeyError as exc:
            raise ValueError(f"{where}: missing property {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: bad property value ({exc})") from None
    return tuple(out)


def _districts(items: Iterable[Any], path: Path) -> tuple[District, ...]:
    out = []
    for i, f in enumerate(items):
        where = f"{path}: roadwatch.districts[{i}]"
        p = _need(f, "properties", where)
        try:
            geom = shapely.from_geojson(json.dumps(_need(f, "geometry", where)))
        except GEOSException as exc:
            raise ValueError(f"{where}: bad geometry ({exc})") from exc
        if not isinstance(geom, (Polygon, MultiPolygon)):
            raise ValueError(f"{where}: district geometry must be a Polygon or MultiPolygon")
        out.append(
            District(
                code=str(_need(p, "code", where)),
                name=str(_need(p, "name", where)),
                kind=str(_need(p, "kind", where)),
                pinyin=str(_need(p, "pinyin", where)),
                geometry=geom,
            )
        )
    return tuple(out)


def load_network(path: str | Path) -> Network:
    """Read a file written by save_network (plain or gzip-compressed).

    Raises ValueError, naming the file and the problem, for anything that is not
    a roadwatch network, and FileNotFoundError when there is no file.
    """
    p = Path(path)
    doc = _read_document(p)
    meta = doc["roadwatch"]
    features = doc.get("features")
    if not isinstance(features, list):
        raise ValueError(f"{p}: not a roadwatch network: 'features' is not a list")
    segments = _segments(features, p)
    districts = _districts(_need(meta, "districts", f"{p}: roadwatch"), p)
    subdistricts = tuple(
        Subdistrict(
            code=str(_need(s, "code", f"{p}: subdistrict")),
            name=str(_need(s, "name", f"{p}: subdistrict")),
            district=str(_need(s, "district", f"{p}: subdistrict")),
        )
        for s in _need(meta, "subdistricts", f"{p}: roadwatch")
    )
    people = []
    for i, q in enumerate(_need(meta, "people", f"{p}: roadwatch")):
        where = f"{p}: roadwatch.people[{i}]"
        sub = _need(q, "subdistrict", where)
        people.append(
            Person(
                id=str(_need(q, "id", where)),
                name=str(_need(q, "name", where)),
                level=int(_need(q, "level", where)),
                district=str(_need(q, "district", where)),
                subdistrict=None if sub is None else str(sub),
                title=str(_need(q, "title", where)),
            )
        )
    assignments = []
    for i, a in enumerate(_need(meta, "assignments", f"{p}: roadwatch")):
        where = f"{p}: roadwatch.assignments[{i}]"
        valid_to = _need(a, "valid_to", where)
        assignments.append(
            Assignment(
                segment_id=str(_need(a, "segment_id", where)),
                person_id=str(_need(a, "person_id", where)),
                level=int(_need(a, "level", where)),
                role=str(_need(a, "role", where)),
                valid_from=_date(_need(a, "valid_from", where), where),
                valid_to=None if valid_to is None else _date(valid_to, where),
            )
        )
    net = Network(
        name=str(meta.get("name", p.name)),
        crs=str(meta.get("crs", "EPSG:4326")),
        districts=districts,
        subdistricts=subdistricts,
        segments=segments,
        people=tuple(people),
        assignments=tuple(assignments),
    )
    _check_references(net, p)
    return net


def _check_references(net: Network, path: Path) -> None:
    """Cheap integrity checks, so a broken file fails at load, not mid-request."""
    ids = {s.id for s in net.segments}
    if len(ids) != len(net.segments):
        dup = next(i for i, n in Counter(s.id for s in net.segments).items() if n > 1)
        raise ValueError(f"{path}: duplicate segment id {dup!r}")
    districts = {d.code for d in net.districts}
    bad = next((s.id for s in net.segments if s.district not in districts), None)
    if bad is not None:
        raise ValueError(f"{path}: segment {bad} names an unknown district")
    people = {q.id for q in net.people}
    for a in net.assignments:
        if a.segment_id not in ids:
            raise ValueError(f"{path}: assignment for unknown segment {a.segment_id!r}")
        if a.person_id not in people:
            raise ValueError(f"{path}: assignment to unknown person {a.person_id!r}")
