"""`roadwatch network import`: a city's own layer and an OSM extract, end to end into the DB."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from geo.network import load_network
from geo.noise import bars_path, load_fitted_bars
from geo.robust import Bars
from roadwatch.cli import main
from roadwatch.store import db, models

DATA = Path(__file__).parent / "data"


def city_layer(network_ctx: Any, path: Path, n: int = 200) -> Path:
    """The first n demo segments as a city would send them: own names, CGCS2000 GK zone."""
    segs = network_ctx.network.segments[:n]
    gdf = gpd.GeoDataFrame(
        {
            "SEG_ID": [s.id for s in segs],
            "MC": [s.name for s in segs],
            "QX": [s.district for s in segs],
            "LZ": [f"chief-{i % 40}" for i in range(n)],
        },
        geometry=[s.geometry for s in segs],
        crs="EPSG:4326",
    ).to_crs("EPSG:4547")
    gdf.to_file(path, driver="GPKG")
    return path


def test_import_city_layer_and_apply(
    tmp_path: Path,
    network_ctx: Any,
    monkeypatch: pytest.MonkeyPatch,
    runner: CliRunner,
) -> None:
    url = f"sqlite:///{tmp_path / 'imp.sqlite3'}"
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", url)
    src = city_layer(network_ctx, tmp_path / "city.gpkg")
    out = tmp_path / "net.geojson.gz"
    args = [
        "network",
        "import",
        str(src),
        "--out",
        str(out),
        "--id-field",
        "SEG_ID",
        "--name-field",
        "MC",
        "--district-field",
        "QX",
        "--chief-field",
        "LZ",
        "--apply",
    ]
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    text = r.stdout
    assert "imported 200 segments" in text and "200 segments added" in text
    # the network's own snapping bars, fitted after the import and tied to the file
    assert "fitted the snapping bars on 50,000 simulated reports a mode" in text
    assert "(the calibration on 400,000)" in text  # the defaults
    fitted = json.loads(bars_path(out).read_text(encoding="utf-8"))
    assert fitted["network_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert load_fitted_bars(out, fitted["network_sha256"]) == Bars(**fitted["bars"])
    net = load_network(out)
    assert len(net.segments) == 200
    first = network_ctx.network.segments[0]
    got = net.segment_by_id(first.id)
    assert got.name == first.name and got.road == first.road
    assert abs(got.length_m - first.length_m) < 0.5  # reprojected back within centimetres
    engine = db.make_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(models.Segment)) == 200
    engine.dispose()
    # The same file again: nothing changes, history untouched.
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "0 segments added, 0 changed (new version), 0 retired" in r.stdout


def test_import_refuses_outside_city(tmp_path: Path, network_ctx: Any, runner: CliRunner) -> None:
    src = city_layer(network_ctx, tmp_path / "city.gpkg", n=20)
    out = tmp_path / "net.geojson.gz"
    r = runner.invoke(
        main,
        [
            "network",
            "import",
            str(src),
            "--out",
            str(out),
            "--id-field",
            "SEG_ID",
            "--name-field",
            "MC",
            "--district-field",
            "QX",
            "--bounds",
            "24.9,60.1,25.0,60.2",
        ],
    )
    assert r.exit_code == 2, r.output
    err = r.stderr
    assert "nothing was imported" in err and "row 1" in err
    assert not out.exists()  # nothing half-imported


# The whole OSM test extract (no bounds), with a quick fit: the fit's own figures are
# tested in test_network_bars.py.
OSM_IMPORT = ["network", "import", str(DATA / "test.osm.pbf"), "--bounds", "", "--min-length", "60"]
OSM_IMPORT += ["--fit-reports", "5000", "--calibration-reports", "20000"]


def test_import_osm_pbf_with_stable_ids(tmp_path: Path, runner: CliRunner) -> None:
    out = tmp_path / "osm.geojson.gz"
    argv = [*OSM_IMPORT, "--out", str(out)]
    r = runner.invoke(main, argv)
    assert r.exit_code == 0, r.output
    assert "bars on 5,000 simulated reports a mode (the calibration on 20,000)" in r.stdout
    first = load_network(out)
    assert len(first.segments) > 20
    assert all("（" in s.name and "至" in s.name for s in first.segments)
    assert runner.invoke(main, argv).exit_code == 0
    second = load_network(out)
    assert [s.id for s in second.segments] == [s.id for s in first.segments]


def test_import_writes_gzip_when_the_out_name_says_so(
    tmp_path: Path, network_ctx: Any, runner: CliRunner
) -> None:
    # once written through "<out>.part", whose name does not end in .gz: plain JSON in a
    # file called .geojson.gz (the default name), readable only by roadwatch itself
    src = city_layer(network_ctx, tmp_path / "city.gpkg", n=3)
    base = ["network", "import", str(src), "--id-field", "SEG_ID", "--name-field", "MC"]
    base += ["--district-field", "QX", "--fit-reports", "1000", "--calibration-reports", "10000"]
    gz, plain = tmp_path / "net.geojson.gz", tmp_path / "net.geojson"
    for out in (gz, plain):
        r = runner.invoke(main, [*base, "--out", str(out)])
        assert r.exit_code == 0, r.output
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    assert plain.read_bytes()[:1] == b"{"
    assert [s.id for s in load_network(gz).segments] == [s.id for s in load_network(plain).segments]
    # the fitted bars are tied to the bytes on disk
    assert load_fitted_bars(gz, hashlib.sha256(gz.read_bytes()).hexdigest()) is not None


@pytest.mark.parametrize("suffix", [".osm", ".osm.bz2", ".osm.gz"])
def test_import_reads_osm_xml_as_it_reads_pbf(
    tmp_path: Path, runner: CliRunner, suffix: str
) -> None:
    # OSM XML was once read by GDAL as a segment layer (its "points" layer): a pyogrio
    # warning, a "-0%" progress bar and "no field 'id'"; the same extract as XML, plain or
    # compressed, now gives the network its PBF gives
    import osmium

    xml = tmp_path / f"city{suffix}"
    with osmium.SimpleWriter(str(xml)) as writer:
        for obj in osmium.FileProcessor(str(DATA / "test.osm.pbf")):
            writer.add(obj)
    if suffix == ".osm":
        assert xml.read_bytes().lstrip().startswith(b"<?xml")
    nets = {}
    for src in (DATA / "test.osm.pbf", xml):
        out = tmp_path / f"{src.name}.geojson.gz"
        argv = ["network", "import", str(src), "--bounds", "", "--min-length", "60"]
        argv += ["--fit-reports", "1000", "--calibration-reports", "10000"]
        r = runner.invoke(main, [*argv, "--out", str(out)])
        assert r.exit_code == 0, r.output
        nets[src.suffix] = load_network(out)
    pbf, from_xml = nets[".pbf"], nets[xml.suffix]
    assert len(from_xml.segments) == len(pbf.segments) > 50
    assert [(s.id, s.name) for s in from_xml.segments] == [(s.id, s.name) for s in pbf.segments]


def test_import_refuses_a_file_that_is_not_the_osm_xml_its_name_says(
    tmp_path: Path, runner: CliRunner
) -> None:
    src = tmp_path / "city.osm.bz2"
    src.write_text('<?xml version="1.0"?><osm version="0.6"></osm>', encoding="utf-8")
    out = tmp_path / "net.geojson.gz"
    r = runner.invoke(main, ["network", "import", str(src), "--out", str(out), "--bounds", ""])
    assert r.exit_code == 2, r.output
    assert r.stderr == (
        f"roadwatch: {src}: not OpenStreetMap XML (no <osm> element at its start, or not the "
        "compression its name says); download the extract again, or in PBF format (.osm.pbf)\n"
    )
    assert not out.exists()


def test_import_osm_pbf_pairs_dual_carriageways_unless_asked(
    tmp_path: Path, runner: CliRunner
) -> None:
    paired, separate = tmp_path / "paired.geojson.gz", tmp_path / "separate.geojson.gz"
    r = runner.invoke(main, [*OSM_IMPORT, "--out", str(paired)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, [*OSM_IMPORT, "--out", str(separate), "--separate-carriageways"])
    assert r.exit_code == 0, r.output
    p, s = load_network(paired).segments, load_network(separate).segments
    multi = [x for x in p if x.geometry.geom_type == "MultiLineString"]
    assert multi  # Kotka has a few dual carriageways
    assert all(x.geometry.geom_type == "LineString" for x in s)
    assert len(s) > len(p)


def test_import_with_a_crs_the_importer_does_not_know(
    tmp_path: Path, network_ctx: Any, runner: CliRunner
) -> None:
    src = city_layer(network_ctx, tmp_path / "city.gpkg", n=5)
    r = runner.invoke(
        main, ["network", "import", str(src), "--out", str(tmp_path / "n.gz"), "--crs", "Amap"]
    )
    rc = r.exit_code
    assert rc == 2
    err = r.stderr
    assert "unknown coordinate reference system 'Amap'" in err and "GCJ02" in err
    assert not (tmp_path / "n.gz").exists()


def test_import_a_network_of_one_segment_fits_its_bars(
    tmp_path: Path, network_ctx: Any, runner: CliRunner
) -> None:
    # every simulated report lands on the one segment: all raw posteriors equal, which
    # once crashed the calibration fit with a traceback after the file was written
    src = city_layer(network_ctx, tmp_path / "one.gpkg", n=1)
    out = tmp_path / "one.geojson.gz"
    argv = ["network", "import", str(src), "--out", str(out), "--id-field", "SEG_ID"]
    argv += ["--name-field", "MC", "--district-field", "QX"]
    argv += ["--fit-reports", "1000", "--calibration-reports", "10000"]
    r = runner.invoke(main, argv)
    assert r.exit_code == 0, r.output
    assert "imported 1 segments" in r.stdout and "fitted the snapping bars" in r.stdout
    assert bars_path(out).exists()


@pytest.mark.parametrize(
    ("bounds", "says"),
    [("abc", "four numbers"), ("113,34,114", "four numbers"), ("114,35,113,34", "min < max")],
)
def test_import_refuses_bad_bounds_in_one_line(
    tmp_path: Path, network_ctx: Any, runner: CliRunner, bounds: str, says: str
) -> None:
    src = city_layer(network_ctx, tmp_path / "city.gpkg", n=2)
    out = tmp_path / "net.geojson.gz"
    r = runner.invoke(main, ["network", "import", str(src), "--out", str(out), "--bounds", bounds])
    assert r.exit_code == 2, r.output  # once a traceback (ValueError, IndexError)
    assert r.stderr.startswith("roadwatch: --bounds: must be") and says in r.stderr
    assert not out.exists()


def test_import_to_an_out_that_cannot_be_written(
    tmp_path: Path, network_ctx: Any, runner: CliRunner
) -> None:
    src = city_layer(network_ctx, tmp_path / "city.gpkg", n=2)
    out = tmp_path / "taken"
    out.mkdir()  # a directory where the network file should go
    argv = ["network", "import", str(src), "--out", str(out), "--id-field", "SEG_ID"]
    argv += ["--name-field", "MC", "--district-field", "QX"]
    r = runner.invoke(main, argv)
    assert r.exit_code == 2, r.output  # once a traceback (IsADirectoryError)
    assert f"roadwatch: cannot write {out}: " in r.stderr and "Traceback" not in r.output
    assert out.is_dir() and not (tmp_path / "taken.part").exists()


def test_import_osm_pbf_with_no_road_in_the_city_keeps_the_previous_file(
    tmp_path: Path, runner: CliRunner
) -> None:
    out = tmp_path / "osm.geojson.gz"
    assert runner.invoke(main, [*OSM_IMPORT, "--out", str(out)]).exit_code == 0
    previous = out.read_bytes()
    # the Kotka extract against the default city area (Zhengzhou): nothing inside
    argv = ["network", "import", str(DATA / "test.osm.pbf"), "--out", str(out)]
    r = runner.invoke(main, argv)
    assert r.exit_code == 2, r.output  # once an empty file written, then a traceback
    assert "no segments to import" in r.stderr and "city area (lon 112.7..114.25" in r.stderr
    assert out.read_bytes() == previous
