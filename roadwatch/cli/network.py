"""`roadwatch network generate | import | info`: segment networks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from .common import CommandError, ProgressBar, settings_for, setup_logging


@click.group(help="segment networks")
def network() -> None:
    pass


@network.command(help="(re)generate the bundled Zhengzhou demo network")
@click.option("--out", help="output file (default: the bundled demo file)")
@click.option("--seed", type=int, default=20180501, show_default=True)
@click.option("--segments", type=int, default=2495, show_default=True)
def generate(out: str | None, seed: int, segments: int) -> int:
    from geo.demo import generate_demo_network
    from geo.network import save_network

    from ..network.context import DEMO_NETWORK

    target = Path(out) if out else DEMO_NETWORK
    t0 = time.perf_counter()
    try:
        net = generate_demo_network(seed=seed, target_segments=segments)
    except ValueError as exc:
        raise CommandError(f"cannot generate the network: {exc}") from None
    save_network(net, target)
    print(f"wrote {len(net.segments)} segments to {target} in {time.perf_counter() - t0:.1f} s")
    _print_info(net.info())
    return 0


@network.command(help="counts of a network file (default: the configured one)")
@click.argument("path", required=False)
def info(path: str | None) -> int:
    from geo.network import load_network

    from ..network.context import network_path

    where = Path(path) if path else network_path(settings_for())
    t0 = time.perf_counter()
    try:
        net = load_network(where)
    except ValueError as exc:
        raise CommandError(f"{where} is not a usable network file: {exc}") from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CommandError(f"cannot read {where}: {exc.strerror or exc}") from None
    print(f"{where} (loaded in {time.perf_counter() - t0:.2f} s)")
    _print_info(net.info())
    return 0


def _bounds(text: str, where: str = "--bounds") -> tuple[float, float, float, float] | None:
    """The city's box, or CommandError in the words of the setting's own check."""
    if not text.strip():
        return None
    try:
        w, s, e, n = (float(x) for x in text.split(","))
    except ValueError:
        raise CommandError(
            f"{where}: must be minLon,minLat,maxLon,maxLat (four numbers), not {text!r}"
        ) from None
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise CommandError(
            f"{where}: must be minLon,minLat,maxLon,maxLat with min < max, not {text!r}"
        )
    return (w, s, e, n)


@network.command(
    "import",
    help="a city's segment layer (GeoJSON, GeoPackage, Shapefile, FlatGeobuf; any CRS) "
    "or an OpenStreetMap extract (.osm.pbf, or XML .osm/.osm.bz2/.osm.gz) cut into segments",
)
@click.argument("file")
@click.option("--out", help="network file to write (default var/networks/NAME.geojson.gz)")
@click.option("--apply", is_flag=True, help="also write it into the database now (history is kept)")
@click.option(
    "--bounds",
    help="minLon,minLat,maxLon,maxLat of the city "
    "(default: ROADWATCH_CITY_BOUNDS; '' for no check)",
)
@click.option("--layer", help="layer name in a multi-layer file")
@click.option("--mapping", help="TOML file with a [fields] table naming the attributes")
@click.option(
    "--id-field",
    metavar="ATTR",
    help="the attribute holding the segment's id",
)
@click.option(
    "--name-field",
    metavar="ATTR",
    help="the attribute holding the segment's name",
)
@click.option(
    "--road-field",
    metavar="ATTR",
    help="the attribute holding the segment's road",
)
@click.option(
    "--from-field",
    metavar="ATTR",
    help="the attribute holding the segment's from",
)
@click.option(
    "--to-field",
    metavar="ATTR",
    help="the attribute holding the segment's to",
)
@click.option(
    "--district-field",
    metavar="ATTR",
    help="the attribute holding the segment's district",
)
@click.option(
    "--chief-field",
    metavar="ATTR",
    help="the attribute holding the segment's chief",
)
@click.option(
    "--chief-name-field",
    metavar="ATTR",
    help="the attribute holding the segment's chief name",
)
@click.option(
    "--road-class-field",
    metavar="ATTR",
    help="the attribute holding the segment's road class",
)
@click.option(
    "--crs",
    help="the coordinate system the layer was drawn in, when the file does not say or says "
    "wrong (a GeoJSON always says WGS84): an EPSG code such as EPSG:4547, or GCJ02 "
    "(Amap, Tencent) / BD09 (Baidu)",
)
@click.option(
    "--districts",
    help="district polygons (fields code or adcode, and name; a bare JSON array of "
    "GeoJSON features, as DataV/GeoAtlas writes them, is read too)",
)
@click.option("--districts-crs", help="the district layer's CRS (default: --crs)")
@click.option(
    "--min-length",
    type=float,
    default=80.0,
    show_default=True,
    help="OSM: merge pieces shorter than this (m)",
)
@click.option("--target-count", type=int, help="OSM: aim at this many segments")
@click.option(
    "--id-prefix", default="SEG", show_default=True, help="OSM: prefix of new segment ids"
)
@click.option(
    "--separate-carriageways",
    is_flag=True,
    help="OSM: keep the two carriageways of a dual carriageway as separate segments",
)
@click.option(
    "--fit-reports",
    type=click.IntRange(min=1000),
    help="simulated phone reports to fit the network's snapping bars on "
    "(default: geo.noise.FIT_REPORTS)",
)
@click.option(
    "--calibration-reports",
    type=click.IntRange(min=10_000),
    help="simulated phone reports to fit the network's calibration on; fewer fit faster "
    "but state the middle confidences less exactly (default: geo.noise.CALIBRATION_REPORTS)",
)
def import_(
    file: str,
    out: str | None,
    apply: bool,
    bounds: str | None,
    layer: str | None,
    mapping: str | None,
    id_field: str | None,
    name_field: str | None,
    road_field: str | None,
    from_field: str | None,
    to_field: str | None,
    district_field: str | None,
    chief_field: str | None,
    chief_name_field: str | None,
    road_class_field: str | None,
    crs: str | None,
    districts: str | None,
    districts_crs: str | None,
    min_length: float,
    target_count: int | None,
    id_prefix: str,
    separate_carriageways: bool,
    fit_reports: int | None,
    calibration_reports: int | None,
) -> int:
    settings = settings_for()
    setup_logging("WARNING")
    from geo.importer import FieldMapping, NetworkImportError, is_osm_file, read_segment_layer
    from geo.network import load_network, network_bytes
    from geo.segmentize import network_from_osm

    src = Path(file)
    target = Path(out) if out else Path("var/networks") / (src.name.split(".")[0] + ".geojson.gz")
    box = (
        _bounds(bounds)
        if bounds is not None
        else _bounds(settings.city_bounds, "ROADWATCH_CITY_BOUNDS")
    )
    progress = ProgressBar()
    t0 = time.perf_counter()
    try:
        if is_osm_file(src):
            previous = load_network(target) if target.exists() else None
            net = network_from_osm(
                src,
                bounds=box,
                min_length_m=min_length,
                target_count=target_count,
                id_prefix=id_prefix,
                previous=previous,
                pair_carriageways=not separate_carriageways,
            )
        else:
            if mapping:
                fields = FieldMapping.from_toml(mapping)
            else:
                fields = FieldMapping.from_options(
                    id=id_field,
                    name=name_field,
                    road=road_field,
                    from_road=from_field,
                    to_road=to_field,
                    district=district_field,
                    chief=chief_field,
                    chief_name=chief_name_field,
                    road_class=road_class_field,
                )
            net = read_segment_layer(
                src,
                fields,
                layer=layer,
                bounds=box,
                district_layer=districts,
                progress=progress,
                crs=crs,
                district_crs=districts_crs or crs,
            )
    except NetworkImportError as exc:
        raise CommandError(str(exc)) from None
    except (ValueError, OSError) as exc:
        raise CommandError(f"cannot import {src}: {exc}") from None
    if not net.segments:  # an OSM extract with no named road in the box: keep what is there
        where = (
            f" inside the city area (lon {box[0]:g}..{box[2]:g}, lat {box[1]:g}..{box[3]:g})"
            if box
            else ""
        )
        raise CommandError(
            f"{src}: no segments to import: the file has no named road{where}; check the file "
            "and the city area (--bounds, ROADWATCH_CITY_BOUNDS; '' for no check)"
        )
    tmp = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # compressed as the target's name says (save_network would go by the ".part" name
        # and write plain JSON into a file called .gz)
        tmp.write_bytes(network_bytes(net, compress=target.name.endswith(".gz")))
        tmp.replace(target)  # atomic: a failed import leaves the previous file in place
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from None
    print(
        f"imported {len(net.segments):,} segments in {len(net.districts)} districts from {src} "
        f"in {time.perf_counter() - t0:.1f} s -> {target}"
    )
    _fit(net, target, settings, fit_reports, calibration_reports, progress)
    if apply:
        import hashlib

        from ..network.sync import sync
        from ..store import db, models

        engine = db.make_engine(settings.database_url)
        db.upgrade(engine)
        with db.make_sessionmaker(engine).begin() as session:
            summary = sync(session, net, settings.tz)
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            session.merge(models.Meta(key="network_digest", value=digest))
        print(f"database: {summary}")
    print(f"use it with: ROADWATCH_NETWORK={target} roadwatch serve")
    return 0


@network.command("fit-bars", help="fit a network file's snapping bars (import does this)")
@click.argument("path", required=False)
@click.option(
    "--reports",
    type=click.IntRange(min=1000),
    help="simulated phone reports (default: geo.noise.FIT_REPORTS)",
)
@click.option(
    "--calibration-reports",
    type=click.IntRange(min=10_000),
    help="simulated phone reports for the calibration (default: geo.noise.CALIBRATION_REPORTS)",
)
def fit_bars_(path: str | None, reports: int | None, calibration_reports: int | None) -> int:
    from geo.network import load_network

    from ..network.context import network_path

    settings = settings_for()
    where = Path(path) if path else network_path(settings)
    try:
        net = load_network(where)
    except (ValueError, OSError) as exc:
        raise CommandError(f"{where} is not a usable network file: {exc}") from None
    _fit(net, where, settings, reports, calibration_reports, ProgressBar())
    return 0


def _fit(
    net: Any,
    target: Path,
    settings: Any,
    reports: int | None,
    calibration_reports: int | None,
    progress: ProgressBar,
) -> None:
    """Fit the network's accepting and asking bars (geo.noise.fit_bars) and store them
    beside the file, tied to its digest: the pipeline snaps with them."""
    import hashlib
    import zlib

    from geo.noise import CALIBRATION_REPORTS, FIT_REPORTS, fit_bars, save_fitted_bars

    from ..network.context import segment_index

    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    # A fixed seed per file: a re-import of the same data fits the same bars.
    fit = fit_bars(
        segment_index(net, settings),
        reports=reports or FIT_REPORTS,
        seed=zlib.crc32(digest.encode()),
        progress=progress,
        calibration_reports=calibration_reports or CALIBRATION_REPORTS,
    )
    out = save_fitted_bars(target, fit, digest)
    b = fit.bars
    print(
        f"fitted the snapping bars on {fit.reports:,} simulated reports a mode "
        f"(the calibration on {fit.calibration_reports:,}) in {fit.seconds:.1f} s -> {out}\n"
        f"  with direction: accept at {b.certain:.4f} "
        f"({100 * fit.at_accept[True].wrong:.1f} % wrong, "
        f"{100 * fit.at_accept[True].review:.1f} % review), "
        f"ask below {b.ask:.4f} ({100 * fit.at_ask[True].c_review:.1f} % review with the choice)\n"
        f"  without:        accept at {b.certain_no_heading:.4f} "
        f"({100 * fit.at_accept[False].wrong:.1f} % wrong, "
        f"{100 * fit.at_accept[False].review:.1f} % review), "
        f"ask below {b.ask_no_heading:.4f} "
        f"({100 * fit.at_ask[False].c_review:.1f} % review with the choice)\n"
        "  (those figures: reports drawn per metre of street; the bars hold as well on "
        "reports drawn per segment, each segment as often, and per segment of 30 m or more)"
    )
    if fit.fell_back:
        print(f"  no bar met the budget for {', '.join(fit.fell_back)}: the shared default kept")
    if fit.calibration is not None:
        print(
            "  confidence calibrated on this network: "
            f"{fit.calibration[True][0].size} knots with direction, "
            f"{fit.calibration[False][0].size} without"
        )


def _print_info(info: dict[str, Any], indent: str = "  ") -> None:
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _print_info(value, indent + "  ")
        else:
            print(f"{indent}{key}: {value}")
