"""Import a city's own segment layer (or OpenStreetMap data) as a roadwatch Network.

A city hands over its responsibility segments as a GIS layer: GeoJSON,
GeoPackage, Shapefile or FlatGeobuf, in whatever CRS its surveyors use, with
its own attribute names. :func:`read_segment_layer` reads such a file with
pyogrio (no geopandas on the hot path: the raw reader hands back WKB and numpy
columns, which shapely turns into geometries in one vectorised call), checks
every row and either returns a complete :class:`~geo.network.Network` or
raises :class:`NetworkImportError` listing *every* problem, by row, with what
to fix. Nothing is ever half-imported.

Attribute names are given by a :class:`FieldMapping`, from command-line
options or from the ``[fields]`` table of a TOML file::

    [fields]
    id = "SEG_ID"
    name = "MC"          # 名称: "航海路（二十一大街至二十二大街）"
    district = "QX"      # 区县
    chief = "LZ_ID"      # 路长 id (optional)
    chief_name = "LZ_XM" # 路长姓名 (optional)
    road = ""            # "" = not in the file: derived from the name

A city with only OpenStreetMap data reads a ``.osm.pbf`` (or OSM XML) with
:func:`read_osm_pbf` and cuts it into segments with
:func:`geo.segmentize.segmentize`.

Pyarrow (``use_arrow=True``) is not used: it is not a dependency, and the raw
numpy reader already spends most of the import time inside GDAL itself.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import json
import math
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyogrio
import pyproj
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from shapely.geometry import LineString, MultiPolygon, Polygon

from geo.crs import to_wgs84, utm_epsg
from geo.network import (
    ROAD_CLASSES,
    Assignment,
    District,
    Network,
    Person,
    Segment,
)

__all__ = [
    "DEFAULT_DRIVABLE",
    "FieldMapping",
    "NetworkImportError",
    "ProgressFn",
    "RowError",
    "districts_from_segments",
    "geodesic_lengths",
    "OSM_XML_SUFFIXES",
    "is_osm_file",
    "read_osm_pbf",
    "read_segment_layer",
    "road_class_of",
    "split_segment_name",
]

ProgressFn = Callable[[str, int, int], None]

MAX_LISTED: Final = 20  # errors shown in str(NetworkImportError)
DISTRICT_BUFFER_M: Final = 300.0
ALL_DISTRICT: Final = "ALL"

# OSM highway values that carry traffic and so have road chiefs.
DEFAULT_DRIVABLE: Final[frozenset[str]] = frozenset(
    {
        "motorway",
        "trunk",
        "primary",
        "secondary",
        "tertiary",
        "unclassified",
        "residential",
        "living_street",
        "service",
        "pedestrian",
        "motorway_link",
        "trunk_link",
        "primary_link",
        "secondary_link",
        "tertiary_link",
    }
)

# OSM highway / common Chinese road grades -> roadwatch road class.
_CLASS_OF: Final[dict[str, str]] = {
    "motorway": "arterial",
    "trunk": "arterial",
    "primary": "arterial",
    "motorway_link": "arterial",
    "trunk_link": "arterial",
    "primary_link": "arterial",
    "快速路": "arterial",
    "主干路": "arterial",
    "secondary": "secondary",
    "tertiary": "secondary",
    "secondary_link": "secondary",
    "tertiary_link": "secondary",
    "次干路": "secondary",
    "支路": "local",
}

# "航海路（二十一大街至二十二大街）"; ASCII brackets are accepted on input too.
_NAME_RE: Final = re.compile(
    r"^\s*(?P<road>.+?)\s*[（(]\s*(?P<a>.+?)\s*至\s*(?P<b>.+?)\s*[）)]\s*$"
)

# Geometry type ids (shapely.get_type_id).
_POINT, _LINESTRING, _LINEARRING, _POLYGON = 0, 1, 2, 3
_MULTIPOINT, _MULTILINESTRING, _MULTIPOLYGON, _COLLECTION = 4, 5, 6, 7
_TYPE_NAMES: Final = {
    _POINT: "a Point",
    _POLYGON: "a Polygon",
    _MULTIPOINT: "a MultiPoint",
    _MULTIPOLYGON: "a MultiPolygon",
    _COLLECTION: "a GeometryCollection",
}
_WHAT_LINE: Final = "segments must be LineStrings (or MultiLineStrings that form one line)"


# -- the mapping of a city's attribute names -----------------------------------------


@dataclass(frozen=True)
class FieldMapping:
    """Which attribute of the city's file holds what; None: not in the file.

    ``road``, ``from_road`` and ``to_road`` at their defaults are optional: when
    the file has no such field they are derived from a ``Road（A至B）`` name.
    Every other mapped field must exist in the file.
    """

    id: str | None = "id"
    name: str | None = "name"
    road: str | None = "road"
    from_road: str | None = "from"
    to_road: str | None = "to"
    district: str | None = "district"
    chief: str | None = None
    chief_name: str | None = None
    road_class: str | None = None  # values: arterial/secondary/local, OSM highway, 主干路...
    subdistrict: str | None = None

    @classmethod
    def attributes(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_options(cls, **kw: str | None) -> FieldMapping:
        """A mapping from command-line options: None leaves the default, "" means "not in the file".

        Keys are the attribute names of this class (``id``, ``name``, ``road``,
        ``from_road``/``from``, ``to_road``/``to``, ``district``, ``chief``,
        ``chief_name``, ``road_class``, ``subdistrict``).
        """
        values: dict[str, str | None] = {}
        for key, value in kw.items():
            attr = {"from": "from_road", "to": "to_road"}.get(key, key)
            if attr not in cls.attributes():
                raise ValueError(
                    f"unknown field option {key!r}; known: {', '.join(cls.attributes())}"
                )
            if value is None:
                continue
            values[attr] = value.strip() or None
        return replace(cls(), **values)

    @classmethod
    def from_toml(cls, path: str | Path) -> FieldMapping:
        """The ``[fields]`` table of a TOML file; "" means "not in the file"."""
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{p}: no such field-mapping file") from None
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{p}: not a valid TOML file ({exc})") from None
        table = doc.get("fields")
        if not isinstance(table, dict):
            raise ValueError(
                f'{p}: no [fields] table; write e.g. [fields] id = "SEG_ID", name = "MC"'
            )
        known = {k: k for k in cls.attributes()} | {"from": "from_road", "to": "to_road"}
        unknown = sorted(k for k in table if k not in known)
        if unknown:
            raise ValueError(
                f"{p}: unknown key{'s' if len(unknown) > 1 else ''} in [fields]: "
                f"{', '.join(unknown)}; the keys are: {', '.join(cls.attributes())} "
                '(use "" for a field the file does not have)'
            )
        values: dict[str, str | None] = {}
        for key, value in table.items():
            if not isinstance(value, str):
                raise ValueError(
                    f"{p}: [fields] {key} must be a string (an attribute name of the file, "
                    f'or "" for none), not {value!r}'
                )
            values[known[key]] = value.strip() or None
        return replace(cls(), **values)


# -- errors --------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One problem: the row (1-based feature number; None for the whole file) and what to fix."""

    row: int | None
    field: str | None
    message: str  # the full sentence the user sees, starting with "row N:" for a row

    def __str__(self) -> str:
        return self.message


class NetworkImportError(ValueError):
    """The file cannot be imported; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[RowError], source: str | Path | None = None) -> None:
        self.errors: list[RowError] = sorted(errors, key=lambda e: (e.row is not None, e.row or 0))
        self.source = None if source is None else str(source)
        super().__init__(self._text())

    def _text(self) -> str:
        n = len(self.errors)
        if n == 1 and self.errors[0].row is None:
            return self.errors[0].message  # a file-level message names the file itself
        where = f"{self.source}: " if self.source else ""
        head = f"{where}{n} problem{'s' if n != 1 else ''}, nothing was imported:"
        lines = [head] + [f"  {e.message}" for e in self.errors[:MAX_LISTED]]
        if n > MAX_LISTED:
            lines.append(f"  ... and {n - MAX_LISTED} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._text()


def _row(row: int, field: str | None, text: str) -> RowError:
    return RowError(row, field, f"row {row}: {text}")


# -- small shared helpers (also used by geo.segmentize) -------------------------------


def split_segment_name(name: str) -> tuple[str, str, str] | None:
    """("航海路", "二十一大街", "二十二大街") for "航海路（二十一大街至二十二大街）", else None."""
    m = _NAME_RE.match(name)
    return (m["road"], m["a"], m["b"]) if m else None


def road_class_of(value: str | None) -> str | None:
    """A roadwatch road class for a class/grade value; None if it is not one we know."""
    if value is None:
        return None
    v = value.strip()
    if v in ROAD_CLASSES:
        return v
    return _CLASS_OF.get(v, "local" if v in DEFAULT_DRIVABLE else None)


def _transform(geoms: Any, transformer: pyproj.Transformer) -> Any:
    def f(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, f)


def geodesic_lengths(lines: Sequence[LineString] | npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Geodesic length (m, WGS84 ellipsoid) of each lon/lat line, vectorised over all lines."""
    arr = np.asarray(lines, dtype=object)
    if len(arr) == 0:
        return np.zeros(0)
    xy, idx = shapely.get_coordinates(arr, return_index=True)
    if len(xy) < 2:
        return np.zeros(len(arr))
    same = idx[1:] == idx[:-1]
    _, _, d = pyproj.Geod(ellps="WGS84").inv(xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1])
    d = np.where(same, np.abs(d), 0.0)
    return np.bincount(idx[1:], weights=d, minlength=len(arr)).astype(np.float64)


def districts_from_segments(
    lines: Sequence[LineString] | npt.NDArray[Any],
    codes: Sequence[str],
    names: dict[str, str] | None = None,
    *,
    buffer_m: float = DISTRICT_BUFFER_M,
) -> tuple[District, ...]:
    """One district polygon per code: the area within about ``buffer_m`` of its segments.

    A true buffer-and-union of 250,000 lines takes minutes in GEOS, so this is a
    raster dilation instead, in the UTM zone of the data: the lines are densified,
    the grid cells (``buffer_m / 2`` wide) their points fall in are dilated by
    ``buffer_m`` and merged (``coverage_union_all`` of adjacent squares is
    cheap). Every point of every segment lies at least ~0.85 x ``buffer_m``
    inside its district's polygon (points are densified every ``buffer_m / 4``)
    and the polygon reaches at most ~2.1 x ``buffer_m`` beyond its segments; the
    outline is a staircase of ``buffer_m / 2`` steps.
    """
    arr = np.asarray(lines, dtype=object)
    code_arr = np.asarray(codes, dtype=object)
    if len(arr) == 0:
        return ()
    x0, y0, x1, y1 = shapely.total_bounds(arr)
    epsg = utm_epsg((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    fwd = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    back = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)
    cell = buffer_m / 2.0
    metric = shapely.segmentize(_transform(arr, fwd), cell / 2.0)
    xy, idx = shapely.get_coordinates(metric, return_index=True)
    labels = sorted(set(code_arr.tolist()))
    label_of = {c: i for i, c in enumerate(labels)}
    line_label = np.array([label_of[c] for c in code_arr.tolist()], dtype=np.int64)
    ij = np.floor(xy / cell).astype(np.int64)
    keyed = np.unique(np.column_stack([line_label[idx], ij]), axis=0)
    r = int(math.ceil(buffer_m / cell))
    offsets = np.array([(dx, dy) for dx in range(-r, r + 1) for dy in range(-r, r + 1)])
    out = []
    for k, code in enumerate(labels):
        cells = keyed[keyed[:, 0] == k, 1:]
        grown = np.unique((cells[:, None, :] + offsets[None, :, :]).reshape(-1, 2), axis=0)
        squares = shapely.box(
            grown[:, 0] * cell,
            grown[:, 1] * cell,
            (grown[:, 0] + 1) * cell,
            (grown[:, 1] + 1) * cell,
        )
        area = shapely.simplify(shapely.coverage_union_all(squares), 0.0)
        poly = _transform(shapely.segmentize(area, 4 * cell), back)
        if not isinstance(poly, (Polygon, MultiPolygon)):  # pragma: no cover - defensive
            poly = MultiPolygon([g for g in shapely.get_parts(poly) if isinstance(g, Polygon)])
        label = (names or {}).get(code, code)
        out.append(
            District(code=code, name=label, kind="district", pinyin=_pinyin(code), geometry=poly)
        )
    return tuple(out)


def _pinyin(code: str) -> str:
    """The ASCII id part for people of a district; the code itself when it is ASCII."""
    ascii_code = re.sub(r"[^a-z0-9]+", "-", code.lower()).strip("-")
    return ascii_code if ascii_code and code.isascii() else "d" + code.encode().hex()[:12]


def _strings(values: Any) -> list[str | None]:
    """A column as stripped strings; None for null, NaN or blank. Integral floats lose '.0'."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return [str(v) for v in arr.tolist()]
    if arr.dtype.kind == "f":
        return [
            None if math.isnan(v) else (str(int(v)) if v.is_integer() else repr(v))
            for v in arr.tolist()
        ]
    out: list[str | None] = []
    for v in arr.tolist():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            s = str(v).strip()
            out.append(s or None)
    return out


def _file_error(path: Path, text: str, field: str | None = None) -> NetworkImportError:
    return NetworkImportError([RowError(None, field, text)], path)


_FORMATS: Final = "GeoJSON, GeoPackage, Shapefile or FlatGeobuf"


def _open_info(
    path: Path, layer: str | int | None, src: Path | bytes | None = None
) -> dict[str, Any]:
    if not path.exists():
        raise _file_error(path, f"{path}: no such file; check the path")
    try:
        info: dict[str, Any] = pyogrio.read_info(path if src is None else src, layer=layer)
        return info
    except (DataSourceError, DataLayerError) as exc:
        if isinstance(exc, DataLayerError) or "layer" in str(exc).lower():
            layers = ", ".join(str(n) for n, _ in _list_layers(path))
            raise _file_error(
                path, f"{path}: no layer {layer!r} in the file; its layers are: {layers}"
            ) from None
        raise _file_error(
            path,
            f"{path}: not a vector file that can be read ({_FORMATS} expected); "
            "export the segment layer to one of these formats",
        ) from None


def _list_layers(path: Path) -> list[tuple[str, str]]:
    try:
        return [(str(n), str(t)) for n, t in pyogrio.list_layers(path)]
    except (DataSourceError, DataLayerError):  # pragma: no cover - file vanished
        return []


def _is_wgs84(crs: str) -> bool:
    if crs in CHINESE_CRS.values():
        return False
    c = pyproj.CRS.from_user_input(crs)
    return bool(c.equals(pyproj.CRS.from_epsg(4326), ignore_axis_order=True))


# Chinese map providers' coordinates: no EPSG code exists for them, and a GeoJSON file of
# them still says EPSG:4326 (RFC 7946 allows nothing else), so only the user can say so.
CHINESE_CRS: Final = {"GCJ02": "GCJ02", "GCJ-02": "GCJ02", "BD09": "BD09", "BD-09": "BD09"}


def check_crs(crs: str) -> str:
    """A user-given CRS in the form the importer uses, or ValueError in plain words.

    Accepts what pyproj does (EPSG:4547, a WKT or PROJ string) and GCJ02 / BD09.
    """
    text = crs.strip()
    if text.upper() in CHINESE_CRS:
        return CHINESE_CRS[text.upper()]
    try:
        pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError:
        raise ValueError(
            f"unknown coordinate reference system {crs!r}: give an EPSG code such as "
            "EPSG:4547, or GCJ02 (Amap, Tencent) / BD09 (Baidu) for Chinese map coordinates"
        ) from None
    return text


def _crs_name(crs: str) -> str:
    if crs in CHINESE_CRS.values():
        return crs
    return str(pyproj.CRS.from_user_input(crs).to_string())


def _to_lonlat(geoms: Any, crs: str) -> Any:
    """Geometries in ``crs`` → WGS84 lon/lat (GCJ-02 and BD-09 by geo.crs's inverse)."""
    if crs in CHINESE_CRS.values():

        def f(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            lon, lat = to_wgs84(xy[:, 0], xy[:, 1], crs)
            return np.column_stack([lon, lat])

        return shapely.transform(geoms, f)
    if _is_wgs84(crs):
        return geoms
    return _transform(geoms, pyproj.Transformer.from_crs(crs, 4326, always_xy=True))


def _source(path: Path) -> Path | bytes:
    """What GDAL should read: the file, or, for a bare JSON array of GeoJSON Features (as
    DataV/GeoAtlas and some web maps write them), the same features as a FeatureCollection."""
    if path.suffix.lower() not in (".json", ".geojson") or not path.is_file():
        return path
    with path.open("rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"["):
        return path
    try:
        items = json.loads(path.read_bytes())
    except ValueError:
        return path  # not JSON after all: GDAL's own error names the problem
    if not all(isinstance(f, dict) and f.get("type") == "Feature" for f in items):
        return path
    return json.dumps({"type": "FeatureCollection", "features": items}).encode()


def _layer_crs(path: Path, info: dict[str, Any], override: str | None) -> str:
    """The CRS a layer's coordinates are in: the user's word over the file's."""
    if override:
        try:
            return check_crs(override)
        except ValueError as exc:
            raise _file_error(path, f"{path}: {exc}") from None
    crs = info.get("crs")
    if not crs:
        raise _file_error(
            path,
            f"{path}: the file has no coordinate reference system (CRS), so its coordinates "
            "cannot be placed on the map; say which one the data was drawn in (--crs "
            "EPSG:4547, or --crs GCJ02 / BD09 for Amap/Tencent or Baidu coordinates), or "
            "assign it in the file (a .prj next to a Shapefile, ogr2ogr -a_srs) and import again",
        )
    return str(crs)


# -- the city's segment layer ---------------------------------------------------------


def read_segment_layer(
    path: str | Path,
    mapping: FieldMapping = FieldMapping(),  # noqa: B008 - frozen, so a safe default
    *,
    layer: str | int | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    district_layer: str | Path | None = None,
    valid_from: dt.date | None = None,
    name: str | None = None,
    progress: ProgressFn | None = None,
    crs: str | None = None,
    district_crs: str | None = None,
) -> Network:
    """A city's segment layer as a Network, or NetworkImportError listing every problem.

    ``bounds`` is the city's (min_lon, min_lat, max_lon, max_lat); a segment
    reaching outside it is refused. ``progress(stage, done, total)`` is called
    as work proceeds (stages: read, check, segments, districts). ``crs`` (and
    ``district_crs`` for the district layer) say what the coordinates really are when the
    file says nothing or something else: an EPSG code, or GCJ02 / BD09 (see check_crs).
    """
    p = Path(path)
    report: ProgressFn = progress or (lambda stage, done, total: None)
    src = _source(p)
    info = _open_info(p, layer, src)
    n = int(info.get("features") or 0)
    if n == 0:  # -1 (a driver that cannot count) reads on and is checked after the read
        raise _file_error(p, f"{p}: the file has no features (no segments); nothing to import")
    report("read", 0, n)
    crs = _layer_crs(p, info, crs)
    present = [str(f) for f in info["fields"]]
    columns, optional_missing = _check_columns(p, mapping, present)

    _meta, _fids, wkb, field_data = pyogrio.raw.read(
        src, layer=layer, columns=columns, force_2d=True
    )
    n = len(wkb)
    if n == 0:
        raise _file_error(p, f"{p}: the file has no features (no segments); nothing to import")
    report("read", n, n)
    # pyogrio returns the columns in file order, not in the order asked for.
    values = {str(c): _strings(v) for c, v in zip(_meta["fields"], field_data, strict=True)}

    def col(attr: str) -> list[str | None] | None:
        key = getattr(mapping, attr)
        if key is None or attr in optional_missing:
            return None
        return values[key]

    errors: list[RowError] = []
    lines = _check_geometries(wkb, crs, bounds, errors)
    report("check", n // 2, n)

    ids = col("id")
    names = col("name")
    roads, froms, tos = col("road"), col("from_road"), col("to_road")
    dcol = col("district")
    chiefs, chief_names = col("chief"), col("chief_name")
    classes, subs = col("road_class"), col("subdistrict")

    seg_ids = _check_ids(ids, mapping, n, errors)
    if names is not None:
        for i, v in enumerate(names):
            if v is None:
                errors.append(
                    _row(
                        i + 1,
                        "name",
                        (
                            f"no segment name in field {mapping.name!r}; give every segment a "
                            "name such as 航海路（二十一大街至二十二大街）"
                        ),
                    )
                )
    elif roads is None:
        errors.append(
            RowError(
                None,
                "name",
                (
                    f"{p}: neither a name nor a road field is mapped; map the segment name "
                    "(name = ...) or the road name (road = ...)"
                ),
            )
        )
    if dcol is not None:
        for i, v in enumerate(dcol):
            if v is None:
                errors.append(
                    _row(
                        i + 1,
                        "district",
                        (
                            f"no district in field {mapping.district!r}; give every segment "
                            "the district it belongs to"
                        ),
                    )
                )
    road_classes: list[str] = ["local"] * n
    if classes is not None:
        for i, v in enumerate(classes):
            rc = road_class_of(v) if v is not None else "local"
            if rc is None:
                errors.append(
                    _row(
                        i + 1,
                        "road_class",
                        (
                            f"road class {v!r} in field {mapping.road_class!r} is not known; use "
                            f"one of {', '.join(ROAD_CLASSES)} or the OSM highway value of a "
                            f"street ({', '.join(sorted(DEFAULT_DRIVABLE))}; footway, cycleway, "
                            "path, track and steps are not taken)"
                        ),
                    )
                )
            else:
                road_classes[i] = rc
    person_rows = _check_chiefs(chiefs, chief_names, mapping, errors)

    # Districts: from the district layer, or one per district value.
    district_codes: list[str]
    layer_districts: tuple[District, ...] | None = None
    if district_layer is not None:
        layer_districts = _read_district_layer(Path(district_layer), bounds, district_crs)
        known = {d.code for d in layer_districts}
        if dcol is not None:
            district_codes = [v or "" for v in dcol]
            for i, v in enumerate(dcol):
                if v is not None and v not in known:
                    errors.append(
                        _row(
                            i + 1,
                            "district",
                            (
                                f"district {v!r} is not in the district layer "
                                f"{Path(district_layer).name} "
                                f"(codes there: {', '.join(sorted(known))}); fix the code or the "
                                "district layer"
                            ),
                        )
                    )
        else:
            district_codes = _districts_by_midpoint(lines, layer_districts, errors)
    else:
        district_codes = [v or "" for v in dcol] if dcol is not None else [ALL_DISTRICT] * n

    if errors:
        raise NetworkImportError(errors, p)
    report("check", n, n)

    seg_names, seg_roads, seg_from, seg_to = _names(names, roads, froms, tos, n)
    lengths = geodesic_lengths(lines)
    segments: list[Segment] = []
    step = max(1, n // 20)
    for i in range(n):
        code = district_codes[i]
        sub = subs[i] if subs is not None else None
        segments.append(
            Segment(
                id=seg_ids[i],
                name=seg_names[i],
                road=seg_roads[i],
                from_road=seg_from[i],
                to_road=seg_to[i],
                district=code,
                subdistrict=sub or code,
                road_class=road_classes[i],
                length_m=round(float(lengths[i]), 1),
                geometry=lines[i],
            )
        )
        if i % step == 0:
            report("segments", i, n)
    report("segments", n, n)

    report("districts", 0, 1)
    if layer_districts is not None:
        districts = layer_districts
    else:
        districts = districts_from_segments(lines, district_codes)
    report("districts", 1, 1)

    people, assignments = _people(segments, person_rows, chiefs, chief_names, valid_from)
    return Network(
        name=name or p.stem,
        districts=districts,
        subdistricts=(),
        segments=tuple(segments),
        people=people,
        assignments=assignments,
    )


def _check_columns(
    path: Path, mapping: FieldMapping, present: list[str]
) -> tuple[list[str], set[str]]:
    """The columns to read; every explicitly mapped field must exist."""
    defaults = FieldMapping()
    optional = {"road", "from_road", "to_road"}
    columns: list[str] = []
    optional_missing: set[str] = set()
    errors: list[RowError] = []
    what = {
        "id": "segment id",
        "name": "segment name",
        "road": "road name",
        "from_road": "from road",
        "to_road": "to road",
        "district": "district",
        "chief": "chief id",
        "chief_name": "chief name",
        "road_class": "road class",
        "subdistrict": "sub-district",
    }
    for attr in FieldMapping.attributes():
        key = getattr(mapping, attr)
        if key is None:
            continue
        if key not in present:
            if attr in optional and key == getattr(defaults, attr):
                optional_missing.add(attr)
                continue
            option = attr if attr not in ("from_road", "to_road") else attr[:-5]
            errors.append(
                RowError(
                    None,
                    attr,
                    (
                        f"{path}: the file has no field {key!r} (mapped as the {what[attr]}); "
                        f'its fields are: {", ".join(present) or "(none)"}; set {option} = "..." '
                        f'in the [fields] mapping (or "" if the file has no {what[attr]})'
                    ),
                )
            )
        elif key not in columns:
            columns.append(key)
    if errors:
        raise NetworkImportError(errors, path)
    return columns, optional_missing


def _check_geometries(
    wkb: npt.NDArray[Any],
    crs: str,
    bounds: tuple[float, float, float, float] | None,
    errors: list[RowError],
) -> npt.NDArray[Any]:
    """WGS84 LineStrings, one per row (None where the row is bad; errors appended)."""
    n = len(wkb)
    null = np.fromiter((w is None for w in wkb), dtype=bool, count=n)
    with np.errstate(invalid="ignore"):  # a NaN coordinate: reported below, row by row
        geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    unreadable = ~null & shapely.is_missing(geoms)
    types = shapely.get_type_id(geoms)
    empty = ~shapely.is_missing(geoms) & shapely.is_empty(geoms)
    ok = ~null & ~unreadable & ~empty
    is_line = ok & ((types == _LINESTRING) | (types == _LINEARRING))
    is_multi = ok & (types == _MULTILINESTRING)
    wrong = ok & ~is_line & ~is_multi
    lines = np.full(n, None, dtype=object)
    lines[is_line] = geoms[is_line]
    rings = ok & (types == _LINEARRING)
    if rings.any():
        lines[rings] = shapely.linestrings(
            [shapely.get_coordinates(g) for g in geoms[rings]]
        )  # rare: rings are closed lines
    if is_multi.any():
        merged = shapely.line_merge(geoms[is_multi])
        single = shapely.get_type_id(merged) == _LINESTRING
        idx = np.flatnonzero(is_multi)
        lines[idx[single]] = merged[single]
        for i, g in zip(idx[~single], geoms[idx[~single]], strict=True):
            parts = shapely.get_num_geometries(shapely.line_merge(g))
            errors.append(
                _row(
                    int(i) + 1,
                    "geometry",
                    (
                        f"geometry is a MultiLineString of {parts} pieces that do not join into "
                        "one line; a segment is one continuous line: close the gaps or split it "
                        "into one row per piece"
                    ),
                )
            )
    for i in np.flatnonzero(null):
        errors.append(
            _row(
                int(i) + 1,
                "geometry",
                ("no geometry; every segment needs a LineString: draw its line or delete the row"),
            )
        )
    for i in np.flatnonzero(unreadable):
        errors.append(
            _row(
                int(i) + 1,
                "geometry",
                (
                    "the geometry cannot be read (a LineString needs at least two points); "
                    "redraw the line or delete the row"
                ),
            )
        )
    for i in np.flatnonzero(empty):
        errors.append(
            _row(
                int(i) + 1,
                "geometry",
                ("geometry is empty (no coordinates); draw the segment's line or delete the row"),
            )
        )
    for i in np.flatnonzero(wrong):
        tname = _TYPE_NAMES.get(int(types[i]), f"a {geoms[i].geom_type}")
        errors.append(_row(int(i) + 1, "geometry", f"geometry is {tname}; {_WHAT_LINE}"))

    have = np.flatnonzero(~shapely.is_missing(lines))
    if len(have):
        valid = shapely.is_valid(lines[have])
        for i in have[~valid]:
            reason = shapely.is_valid_reason(lines[i])
            errors.append(
                _row(
                    int(i) + 1,
                    "geometry",
                    (
                        f"invalid LineString ({reason}); a segment needs at least two distinct "
                        "points: fix the line or delete the row"
                    ),
                )
            )
            lines[i] = None
        have = have[valid]
    if len(have):
        lines[have] = _to_lonlat(lines[have], crs)
    if len(have):
        b = shapely.bounds(lines[have])
        finite = np.isfinite(b).all(axis=1)
        lonlat = finite & (b[:, 0] >= -180) & (b[:, 2] <= 180) & (b[:, 1] >= -90) & (b[:, 3] <= 90)
        if bounds is not None:
            x0, y0, x1, y1 = bounds
            inside = lonlat & (b[:, 0] >= x0) & (b[:, 2] <= x1) & (b[:, 1] >= y0) & (b[:, 3] <= y1)
        else:
            inside = lonlat
        crs_name = _crs_name(crs)
        for k in np.flatnonzero(~inside):
            i = int(have[k])
            x, y = shapely.get_coordinates(lines[i])[0]
            if not lonlat[k]:
                text = (
                    f"coordinates ({x:.6g}, {y:.6g}) are not a place on Earth in the file's "
                    f"CRS {crs_name}; the file probably declares the wrong CRS: assign the "
                    "CRS the data was drawn in and import again"
                )
            else:
                assert bounds is not None
                text = (
                    f"the segment lies outside the configured city area "
                    f"(lon {bounds[0]:g}..{bounds[2]:g}, lat {bounds[1]:g}..{bounds[3]:g}): it "
                    f"starts at lon {x:.6f}, lat {y:.6f}; check that the file's CRS "
                    f"({crs_name}) is the one the data was drawn in, or fix the line"
                )
            errors.append(_row(i + 1, "geometry", text))
            lines[i] = None
    return lines


def _check_ids(
    ids: list[str | None] | None, mapping: FieldMapping, n: int, errors: list[RowError]
) -> list[str]:
    if ids is None:
        return [f"SEG-{i + 1:05d}" for i in range(n)]
    first: dict[str, int] = {}
    for i, v in enumerate(ids):
        if v is None:
            errors.append(
                _row(
                    i + 1,
                    "id",
                    (f"no segment id in field {mapping.id!r}; give every segment a unique id"),
                )
            )
            continue
        if v in first:
            errors.append(
                _row(
                    i + 1,
                    "id",
                    (
                        f"segment id {v!r} is already used by row {first[v]}; ids must be unique: "
                        "give one of them another id"
                    ),
                )
            )
        else:
            first[v] = i + 1
    return [v or "" for v in ids]


def _check_chiefs(
    chiefs: list[str | None] | None,
    chief_names: list[str | None] | None,
    mapping: FieldMapping,
    errors: list[RowError],
) -> dict[str, int]:
    """Chief id -> first row (0-based) naming them; a chief must have one name."""
    first: dict[str, int] = {}
    if chiefs is None:
        return first
    for i, c in enumerate(chiefs):
        if c is None:
            continue
        if c not in first:
            first[c] = i
        elif chief_names is not None:
            a, b = chief_names[first[c]], chief_names[i]
            if a != b:
                errors.append(
                    _row(
                        i + 1,
                        "chief_name",
                        (
                            f"chief {c!r} is named {b!r} here but {a!r} in row {first[c] + 1}; "
                            "one id, one person: fix the id or the name"
                        ),
                    )
                )
    return first


def _names(
    names: list[str | None] | None,
    roads: list[str | None] | None,
    froms: list[str | None] | None,
    tos: list[str | None] | None,
    n: int,
) -> tuple[list[str], list[str], list[str], list[str]]:
    out_n, out_r, out_a, out_b = [], [], [], []
    for i in range(n):
        nm = names[i] if names is not None else None
        parsed = split_segment_name(nm) if nm else None
        road = (roads[i] if roads is not None else None) or (parsed[0] if parsed else nm) or ""
        a = (froms[i] if froms is not None else None) or (parsed[1] if parsed else "")
        b = (tos[i] if tos is not None else None) or (parsed[2] if parsed else "")
        if not nm:
            nm = f"{road}（{a}至{b}）" if a or b else road
        out_n.append(nm)
        out_r.append(road)
        out_a.append(a)
        out_b.append(b)
    return out_n, out_r, out_a, out_b


def _people(
    segments: Sequence[Segment],
    first_row: dict[str, int],
    chiefs: list[str | None] | None,
    chief_names: list[str | None] | None,
    valid_from: dt.date | None,
) -> tuple[tuple[Person, ...], tuple[Assignment, ...]]:
    if chiefs is None:
        return (), ()
    people = tuple(
        Person(
            id=cid,
            name=(chief_names[i] if chief_names is not None else None) or cid,
            level=3,
            district=segments[i].district,
            subdistrict=None,
            title="路段长",
        )
        for cid, i in first_row.items()
    )
    start = valid_from or dt.date.today()
    assignments = tuple(
        Assignment(s.id, c, 3, "road_chief", start, None)
        for s, c in zip(segments, chiefs, strict=True)
        if c is not None
    )
    return people, assignments


def _read_district_layer(
    path: Path, bounds: tuple[float, float, float, float] | None, crs: str | None = None
) -> tuple[District, ...]:
    src = _source(path)
    info = _open_info(path, None, src)
    crs = _layer_crs(path, info, crs)
    present = [str(f) for f in info["fields"]]
    # 'adcode': the administrative division code of DataV/GeoAtlas (Amap) boundary files.
    code_field = "code" if "code" in present or "adcode" not in present else "adcode"
    missing = [f for f in (code_field, "name") if f not in present]
    if missing:
        raise _file_error(
            path,
            f"{path}: the district layer has no field {' or '.join(map(repr, missing))}; "
            f"its fields are: {', '.join(present) or '(none)'}; a district layer needs "
            "'code' (or 'adcode') and 'name' for each polygon",
        )
    meta, _f, wkb, data = pyogrio.raw.read(src, columns=[code_field, "name"], force_2d=True)
    by_field = {str(f): v for f, v in zip(meta["fields"], data, strict=True)}  # file order
    codes, names = by_field[code_field], by_field["name"]
    with np.errstate(invalid="ignore"):  # a NaN coordinate: reported below, row by row
        geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    errors: list[RowError] = []
    code_s, name_s = _strings(codes), _strings(names)
    types = shapely.get_type_id(geoms)
    seen: dict[str, int] = {}
    for i in range(len(geoms)):
        if shapely.is_missing(geoms[i]) or types[i] not in (_POLYGON, _MULTIPOLYGON):
            errors.append(
                _row(
                    i + 1,
                    "geometry",
                    (
                        f"district geometry must be a Polygon or MultiPolygon in {path.name}; "
                        "fix or delete the row"
                    ),
                )
            )
        code = code_s[i]
        if code is None:
            errors.append(_row(i + 1, "code", f"no district code in {path.name}; add one"))
        elif code in seen:
            errors.append(
                _row(
                    i + 1,
                    "code",
                    (
                        f"district code {code!r} is already used by row {seen[code]} "
                        f"of {path.name}; codes must be unique"
                    ),
                )
            )
        else:
            seen[code] = i + 1
    if errors:
        raise NetworkImportError(errors, path)
    geoms = shapely.make_valid(_to_lonlat(geoms, crs))
    return tuple(
        District(
            code=str(c),
            name=str(nm or c),
            kind="district",
            pinyin=_pinyin(str(c)),
            geometry=g,
        )
        for c, nm, g in zip(code_s, name_s, geoms, strict=True)
    )


def _districts_by_midpoint(
    lines: npt.NDArray[Any], districts: tuple[District, ...], errors: list[RowError]
) -> list[str]:
    have = np.flatnonzero(~shapely.is_missing(lines))
    codes = [""] * len(lines)
    mids = shapely.line_interpolate_point(lines[have], 0.5, normalized=True)
    tree = shapely.STRtree([d.geometry for d in districts])
    pt, poly = tree.query(mids, predicate="within")
    found: dict[int, int] = {}
    for a, b in zip(pt.tolist(), poly.tolist(), strict=True):
        if a not in found or b < found[a]:
            found[a] = b
    for k, i in enumerate(have.tolist()):
        if k in found:
            codes[i] = districts[found[k]].code
        else:
            errors.append(
                _row(
                    i + 1,
                    "district",
                    (
                        "the segment's midpoint lies outside every district of the district layer; "
                        "fix the line, or extend the district layer to cover it"
                    ),
                )
            )
    return codes


# -- OpenStreetMap ----------------------------------------------------------------------


OSM_XML_SUFFIXES = (".osm", ".osm.bz2", ".osm.gz", ".osm.xml")
"""OpenStreetMap XML, plain or compressed: libosmium reads them as it reads ``.osm.pbf``."""


def is_osm_file(path: str | Path) -> bool:
    """Whether ``path`` is named as an OpenStreetMap extract (``.osm.pbf`` or XML ``.osm``)."""
    name = Path(path).name.lower()
    return name.endswith(".pbf") or name.endswith(OSM_XML_SUFFIXES)


def _osm_head(p: Path, xml: bool) -> bytes:
    """The first bytes of the file's OSM data (decompressed for ``.bz2``/``.gz``)."""
    name = p.name.lower()
    opener: Any = bz2.open if xml and name.endswith(".bz2") else open
    if xml and name.endswith(".gz"):
        opener = gzip.open
    try:
        with opener(p, "rb") as fh:
            return bytes(fh.read(512))
    except (OSError, EOFError):  # not the compression its name says
        return b""


def read_osm_pbf(
    path: str | Path,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    highway_classes: frozenset[str] | set[str] = DEFAULT_DRIVABLE,
) -> gpd.GeoDataFrame:
    """The named road ways of an OpenStreetMap extract (columns osm_id, name, highway,
    geometry): an ``.osm.pbf``, or OSM XML (``.osm``, ``.osm.bz2``, ``.osm.gz``).

    Node locations come from pyosmium's location handler; ways that are not
    roads of ``highway_classes`` or have no name are left out, and so are ways
    entirely outside ``bounds`` (min_lon, min_lat, max_lon, max_lat).
    """
    import osmium  # only the OSM path needs it

    p = Path(path)
    if not p.exists():
        raise _file_error(p, f"{p}: no such file; check the path")
    xml = p.name.lower().endswith(OSM_XML_SUFFIXES)
    head = _osm_head(p, xml)
    if xml and b"<osm" not in head:
        raise _file_error(
            p,
            f"{p}: not OpenStreetMap XML (no <osm> element at its start"
            f"{', or not the compression its name says' if p.suffix in ('.bz2', '.gz') else ''});"
            " download the extract again, or in PBF format (.osm.pbf)",
        )
    if not xml and b"OSMHeader" not in head:
        raise _file_error(
            p,
            f"{p}: not an OpenStreetMap PBF file (.osm.pbf); download an extract in PBF "
            "format or import a GIS segment layer instead",
        )
    ids: list[int] = []
    names: list[str] = []
    kinds: list[str] = []
    counts: list[int] = []
    coords: list[tuple[float, float]] = []
    try:
        fp = osmium.FileProcessor(str(p), osmium.osm.NODE | osmium.osm.WAY).with_locations()
        for obj in fp:
            if not isinstance(obj, osmium.osm.Way):
                continue
            tags = obj.tags
            hw = tags.get("highway")
            nm = tags.get("name")
            if hw is None or hw not in highway_classes or not nm:
                continue
            pts = [(n.lon, n.lat) for n in obj.nodes if n.location.valid()]
            if len(pts) < 2:
                continue
            ids.append(obj.id)
            names.append(nm)
            kinds.append(hw)
            counts.append(len(pts))
            coords.extend(pts)
    except RuntimeError as exc:
        kind = "OpenStreetMap XML" if xml else "PBF"
        raise _file_error(
            p, f"{p}: the {kind} file is damaged ({exc}); download it again"
        ) from None
    if coords:
        index = np.repeat(np.arange(len(counts)), counts)
        geoms = shapely.linestrings(np.asarray(coords, dtype=np.float64), indices=index)
    else:
        geoms = np.empty(0, dtype=object)
    gdf = gpd.GeoDataFrame(
        {"osm_id": np.asarray(ids, dtype=np.int64), "name": names, "highway": kinds},
        geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"),
    )
    if bounds is not None and len(gdf):
        box = shapely.box(*bounds)
        gdf = gdf[shapely.intersects(gdf.geometry.values, box)].reset_index(drop=True)
    return gdf.sort_values("osm_id", kind="stable").reset_index(drop=True)
