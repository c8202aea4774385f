"""Import a synthetic 250,000-segment layer: acceptance c of "Geolocation that a city can trust".

Writes a grid-like segment layer in EPSG:32649 (UTM 49N, Zhengzhou) with
id/name/district attributes to a temporary GeoPackage (or FlatGeobuf), then
times ``read_segment_layer`` and ``save_network`` with a progress line.

    .venv/bin/python -m bench.bench_import [--segments 250000] [--format gpkg|fgb]

Target: read + check + build under 60 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyogrio.raw
import shapely

from geo.importer import read_segment_layer
from geo.network import save_network

ORIGIN = (740000.0, 3840000.0)  # metres in EPSG:32649, near Zhengzhou's centre
SPACING = 100.0  # metres between parallel roads
BLOCK = 100.0  # segment length


def write_layer(path: Path, n: int) -> None:
    """n segments: east-west roads cut every BLOCK metres, 3 vertices each, 10 districts."""
    per_road = int(np.ceil(np.sqrt(n)))
    k = np.arange(n)
    road, pos = k // per_road, k % per_road
    x0 = ORIGIN[0] + pos * BLOCK
    y0 = ORIGIN[1] + road * SPACING
    xs = np.column_stack([x0, x0 + BLOCK / 2, x0 + BLOCK])
    ys = np.column_stack([y0, y0 + 3.0, y0])  # a slight bend
    coords = np.column_stack([xs.ravel(), ys.ravel()])
    lines = shapely.linestrings(coords, indices=np.repeat(k, 3))
    names = np.array(
        [f"{r}路（{p}街至{p + 1}街）" for r, p in zip(road.tolist(), pos.tolist(), strict=True)],
        dtype=object,
    )
    ids = np.array([f"ZZ-{i:06d}" for i in k.tolist()], dtype=object)
    districts = np.array([f"D{(r * 10) // per_road:02d}" for r in road.tolist()], dtype=object)
    driver = "FlatGeobuf" if path.suffix == ".fgb" else "GPKG"
    pyogrio.raw.write(
        path,
        shapely.to_wkb(lines),
        [ids, names, districts],
        ["id", "name", "district"],
        geometry_type="LineString",
        crs="EPSG:32649",
        driver=driver,
        **({"SPATIAL_INDEX": "NO"} if driver == "FlatGeobuf" else {}),
    )


class Progress:
    """One self-overwriting progress line on stderr."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        pct = 100.0 * done / total if total else 100.0
        bar = "#" * int(pct / 5)
        sys.stderr.write(
            f"\r  {stage:<10} [{bar:<20}] {pct:5.1f}%  {time.perf_counter() - self.t0:6.1f} s"
        )
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--segments", type=int, default=250_000)
    ap.add_argument("--format", choices=("gpkg", "fgb"), default="gpkg")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"segments.{args.format}"
        t = time.perf_counter()
        write_layer(src, args.segments)
        t_write = time.perf_counter() - t
        print(
            f"wrote {args.segments:,} segments to {src.name} "
            f"({src.stat().st_size / 1e6:.1f} MB) in {t_write:.1f} s"
        )

        t = time.perf_counter()
        net = read_segment_layer(src, name="bench", progress=Progress())
        t_read = time.perf_counter() - t
        t = time.perf_counter()
        out = Path(tmp) / "network.json"
        save_network(net, out)
        t_save = time.perf_counter() - t
        t = time.perf_counter()
        out_gz = Path(tmp) / "network.json.gz"
        save_network(net, out_gz)
        t_save_gz = time.perf_counter() - t

        total = t_read + t_save
        print(
            f"read_segment_layer: {t_read:6.1f} s  ({len(net.segments):,} segments, "
            f"{len(net.districts)} districts)"
        )
        print(f"save_network .json: {t_save:6.1f} s  ({out.stat().st_size / 1e6:.1f} MB)")
        print(f"save_network .gz:   {t_save_gz:6.1f} s  ({out_gz.stat().st_size / 1e6:.1f} MB)")
        verdict = "OK" if total < 60.0 else "TOO SLOW"
        print(f"import + save:      {total:6.1f} s  (target < 60 s: {verdict})")
    return 0 if total < 60.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
