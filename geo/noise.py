"""The phone-noise model of issue 21 and the per-network fit of the snapper's bars.

One home for the model that bench/bench_phone_noise.py measures with and that
``roadwatch network import`` fits a city's bars with (pure: numpy, shapely, pyproj):

* the person stands anywhere along a segment and 3-10 m to either side of the centre
  line (the pavement). Which segment: per metre of street (a long segment gets more
  reports) or per segment (each equally often, whatever its length: each has a chief);
  a city's reports lie somewhere between, and a fit holds under both (FIT_PER_SEGMENT);
* the fix is that spot plus 2-D Student-t noise, nu = 3, scaled so that its 68 %
  radius is the stated accuracy (10 m; "understated": the real radius is twice that);
* direction of travel: the local bearing either way + N(0, 15 deg), and one fix in
  twenty a uniformly random compass (a phone at rest or a wrong sensor).

:func:`fit_bars` simulates reports on one network, snaps them with a RobustSnapper and
picks, per mode (with / without direction), the lowest accepting bar whose confidently
wrong share stays within ``WRONG_BUDGET`` and the lowest asking bar whose wrong share
with the on-the-spot choice stays within ``CHOICE_WRONG_BUDGET``. A dense network needs
higher bars than a sparse one; fitting per network lets a sparse city review less.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyproj
import shapely

from geo.robust import (
    BOUNDARY_TOL_M,
    IDENTITY,
    Bars,
    Calibration,
    RobustSnapper,
    fit_isotonic,
)
from geo.snap import SegmentIndex

__all__ = [
    "BAR_GRID",
    "CHOICE_RIGHT",
    "CHOICE_WRONG_BUDGET",
    "FIT_MIN_SEGMENT_M",
    "FIT_PER_SEGMENT",
    "FIT_REPORTS",
    "STATED_M",
    "WRONG_BUDGET",
    "BarFit",
    "bars_path",
    "load_fitted_bars",
    "save_fitted_bars",
    "Outcome",
    "Sample",
    "bar_outcomes",
    "fit_bars",
    "fit_calibration",
    "outcome",
    "pick_bars",
    "right_of",
    "sample",
    "sample_index",
    "t2_noise",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Progress = Callable[[str, int, int], None]

STATED_M: Final = 10.0
T_SCALE: Final = 1.0 / np.sqrt(3.0 * (0.32 ** (-2.0 / 3.0) - 1.0))  # 2-D t3: 68 % radius = 1
HEADING_NOISE_DEG: Final = 15.0
HEADING_GARBAGE: Final = 0.05
CHOICE_RIGHT: Final = 0.95  # the chief taps the true candidate when it is offered
WRONG_BUDGET: Final = 0.009  # confidently wrong at the accepting bar
CHOICE_WRONG_BUDGET: Final = 0.005  # wrong with the on-the-spot choice at the asking bar
# From 0.80: a sparse network meets the budgets below 0.90 (Kotka with direction does).
BAR_GRID: Final = np.round(np.arange(0.80, 0.996, 0.0025), 4)
# Reports for a city's fit (each snapped once per mode): ~450 wrong at the budget, so the
# chosen bar moves by about one grid step between seeds; the 2,495-segment demo network
# fits in ~5 s on one core. Bars below 0.80 are never chosen: the server does not accept
# an answer it states to be wrong one time in five, whatever the budget would allow.
FIT_REPORTS: Final = 50_000
# Reports for a network's own calibration (each snapped once per mode, in chunks): with
# 50,000 the middle bands came out up to 5 points (4 standard errors) off on fresh reports,
# the isotonic fit's own noise; with 400,000 the bands of over a thousand reports hold
# within about 1 point. It is most of a fit's time: central Helsinki 15 s in all, the
# 2,495-segment demo network 5 s (import prints a progress bar).
CALIBRATION_REPORTS: Final = 400_000
CALIBRATION_CHUNK: Final = 100_000
# Where a city's reports fall is not known when its network is imported: per metre of
# street, or per segment (each equally often: short ones get more per metre). A posterior
# calibrated on one alone stated confidences 2-3 points off under the other (central
# Helsinki, fitted per metre, sampled per segment: 2.0-3.4 points too high in the bands
# from 0.4 to 0.8) and the bars let 1.1 % through confidently wrong. So the calibration
# is fitted on an even mixture, and the bars must hold on each alone (and on reports
# drawn per segment among the FIT_MIN_SEGMENT_M ones only). The per-segment half
# draws among segments of FIT_MIN_SEGMENT_M or more, as issue 21's check does: a shorter
# piece is the stub of a junction, no chief's stretch of street, and drawing it as often
# as a whole street put the low bands 4-10 points off for reports that never fall there.
FIT_PER_SEGMENT: Final = 0.5
FIT_MIN_SEGMENT_M: Final = 30.0


@dataclass
class Sample:
    lon: FloatArray
    lat: FloatArray
    truth: IntArray
    on_line: npt.NDArray[np.object_]  # the true foot point on the centre line (metres)
    accuracy: FloatArray
    heading: FloatArray


def t2_noise(n: int, r68: float, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """2-D Student-t (nu = 3) noise whose 68 % radius is r68."""
    z = rng.normal(0.0, 1.0, (n, 2))
    chi = rng.chisquare(3.0, n)
    k = (T_SCALE * r68) * np.sqrt(3.0 / chi)
    return z[:, 0] * k, z[:, 1] * k


def sample(
    projected: npt.NDArray[np.object_],
    to_ll: pyproj.Transformer,
    n: int,
    rng: np.random.Generator,
    understate: bool,
    real_scale: float = 1.0,
    stated_m: float = STATED_M,
    per_segment: float = 0.0,
    min_segment_m: float = 0.0,
) -> Sample:
    """``n`` reports on the segments ``projected`` (metres; ``to_ll`` back to lon/lat),
    each stating ``stated_m``. ``real_scale``: the real 68 % radius over the stated one
    (times 2 more if ``understate``). ``per_segment``: the share of reports on a segment
    drawn uniformly among those at least ``min_segment_m`` long (then a spot uniform
    along it); the rest on a metre of street drawn uniformly (a long segment gets more)."""
    parts, owner = shapely.get_parts(projected, return_index=True)
    lengths = shapely.length(parts)
    p = lengths / lengths.sum()
    if per_segment > 0.0:
        seg_len = np.bincount(owner, weights=lengths, minlength=len(projected))
        drawn = (seg_len > 0) & (seg_len >= min_segment_m)
        per_seg = np.divide(
            lengths, seg_len[owner], out=np.zeros_like(lengths), where=drawn[owner]
        ) / max(int(np.count_nonzero(drawn)), 1)
        p = (1.0 - per_segment) * p + per_segment * per_seg
    part = rng.choice(lengths.size, n, p=p)
    along = rng.uniform(0, 1, n) * lengths[part]
    geoms = parts[part]
    on = shapely.line_interpolate_point(geoms, along)
    a = shapely.line_interpolate_point(geoms, np.maximum(along - 1.0, 0.0))
    b = shapely.line_interpolate_point(geoms, np.minimum(along + 1.0, lengths[part]))
    bx, by = shapely.get_x(b) - shapely.get_x(a), shapely.get_y(b) - shapely.get_y(a)
    norm = np.hypot(bx, by)
    norm[norm == 0] = 1.0
    ux, uy = bx / norm, by / norm
    bearing = np.degrees(np.arctan2(ux, uy))
    heading = (
        bearing + 180.0 * rng.integers(0, 2, n) + rng.normal(0, HEADING_NOISE_DEG, n)
    ) % 360.0
    garbage = rng.uniform(0, 1, n) < HEADING_GARBAGE
    heading[garbage] = rng.uniform(0, 360, int(garbage.sum()))
    offset = rng.uniform(3.0, 10.0, n) * rng.choice([-1.0, 1.0], n)
    nx, ny = t2_noise(n, stated_m * real_scale * (2.0 if understate else 1.0), rng)
    x = shapely.get_x(on) + offset * uy + nx  # (uy, -ux) is the normal
    y = shapely.get_y(on) - offset * ux + ny
    lon, lat = to_ll.transform(x, y)
    return Sample(
        np.asarray(lon),
        np.asarray(lat),
        owner.astype(np.int64)[part],
        on,
        np.full(n, stated_m),
        heading,
    )


def sample_index(
    index: SegmentIndex,
    n: int,
    rng: np.random.Generator,
    understate: bool = False,
    real_scale: float = 1.0,
    stated_m: float = STATED_M,
    per_segment: float = 0.0,
    min_segment_m: float = 0.0,
) -> Sample:
    """:func:`sample` on the segments of an index (its own metric CRS)."""
    to_ll = pyproj.Transformer.from_crs(index.epsg, 4326, always_xy=True)
    return sample(
        index.geometries,
        to_ll,
        n,
        rng,
        understate,
        real_scale,
        stated_m,
        per_segment,
        min_segment_m,
    )


def right_of(index: SegmentIndex, pred: IntArray, s: Sample) -> BoolArray:
    """The true segment, or a same-road continuation within the boundary tolerance."""
    ok: BoolArray = np.asarray(pred == s.truth, dtype=bool)
    near = (pred >= 0) & ~ok
    if near.any():
        cont = np.zeros(pred.size, dtype=bool)
        cont[near] = index._continues(pred[near], s.truth[near])
        sel = np.flatnonzero(cont)
        if sel.size:
            dist = shapely.distance(index.geometries[pred[sel]], s.on_line[sel])
            ok[sel[dist <= BOUNDARY_TOL_M]] = True
    return ok


@dataclass
class Outcome:
    right: float
    wrong: float
    review: float
    c_right: float  # with the on-the-spot choice
    c_wrong: float
    c_review: float
    mistap_wrong: float  # wrong with the choice if the other 5 % tap a wrong candidate


def outcome(
    index: SegmentIndex,
    s: Sample,
    pred: IntArray,
    certain: BoolArray,
    cands: IntArray,
    rng: np.random.Generator,
    asked: BoolArray | None = None,
    right: BoolArray | None = None,
    cand_right: Sequence[BoolArray] | None = None,
) -> Outcome:
    """``asked``: where the phone offers the candidates (default: wherever not certain);
    where it does not, the server's own answer stands. ``right`` and ``cand_right``:
    :func:`right_of` of ``pred`` and of each candidate column, when already known."""
    n = pred.size
    ok = right_of(index, pred, s) if right is None else right
    certain = certain & (pred >= 0)
    right_, wrong = certain & ok, certain & ~ok
    review = ~certain
    sure = certain if asked is None else ~asked & (pred >= 0)
    c_auto_right, c_wrong = sure & ok, sure & ~ok
    c_ask = ~sure
    # the chief's tap: is the true segment (or an accepted neighbour) among the candidates?
    hit = np.zeros(n, dtype=bool)
    first_wrong = np.full(n, -1, dtype=np.int64)
    for j in range(cands.shape[1]):
        c = cands[:, j]
        okj = (c >= 0) & (right_of(index, c, s) if cand_right is None else cand_right[j])
        hit |= okj
        fill = (c >= 0) & ~okj & (first_wrong < 0)
        first_wrong[fill] = c[fill]
    tap = rng.uniform(0, 1, n) < CHOICE_RIGHT
    c_right = c_auto_right | (c_ask & hit & tap)
    mistap = c_wrong | (c_ask & hit & ~tap & (first_wrong >= 0))
    c_review = c_ask & ~c_right
    return Outcome(
        *(float(v.sum() / n) for v in (right_, wrong, review, c_right, c_wrong, c_review, mistap))
    )


def bar_outcomes(
    snapper: RobustSnapper,
    s: Sample,
    heading: bool,
    tap_seed: Any,
    grid: npt.NDArray[np.float64] | None = None,
) -> dict[float, Outcome]:
    """Per bar of ``grid`` (default BAR_GRID), the outcome when the server accepts (and
    the phone stops asking) at that bar: one snap of the sample, every bar read off its
    confidence."""
    index = snapper.index
    new = snapper.snap_many(
        s.lon, s.lat, accuracy_m=s.accuracy, heading_deg=s.heading if heading else None
    )
    ok = right_of(index, new.index, s)
    cand_ok = [right_of(index, new.cand[:, j], s) for j in range(new.cand.shape[1])]
    out = {}
    for b in (BAR_GRID if grid is None else grid).tolist():
        sure = new.confidence >= b
        out[b] = outcome(
            index,
            s,
            new.index,
            sure,
            new.cand,
            np.random.default_rng(tap_seed),
            ~sure,
            right=ok,
            cand_right=cand_ok,
        )
    return out


def pick_bars(per: Sequence[dict[float, Outcome]]) -> tuple[float | None, float | None]:
    """(accepting, asking): the lowest bars at which every one of ``per`` (a network's
    outcomes by bar) stays within its budget; None where no bar of the grid does."""
    grid = sorted(per[0])
    accept = next((b for b in grid if max(p[b].wrong for p in per) <= WRONG_BUDGET), None)
    ask = next((b for b in grid if max(p[b].c_wrong for p in per) <= CHOICE_WRONG_BUDGET), None)
    return accept, ask


@dataclass(frozen=True)
class BarFit:
    bars: Bars
    reports: int  # per mode
    seed: int
    seconds: float
    # per mode (True: with direction): the outcome at the fitted accepting / asking bar
    at_accept: dict[bool, Outcome]
    at_ask: dict[bool, Outcome]
    fell_back: tuple[str, ...]  # bars no grid value met (kept at the global default)
    # the network's own calibration (None: the global one), per mode
    calibration: Calibration | None = None
    calibration_reports: int = 0  # per mode

    def snapper(self, index: SegmentIndex) -> RobustSnapper:
        """A RobustSnapper on ``index`` with what was fitted."""
        return RobustSnapper(index, **asdict(self.bars), calibration=self.calibration)


def fit_bars(
    index: SegmentIndex,
    *,
    reports: int = FIT_REPORTS,
    seed: int = 0,
    snapper: RobustSnapper | None = None,
    progress: Progress | None = None,
    own_calibration: bool = True,
    calibration_reports: int = CALIBRATION_REPORTS,
) -> BarFit:
    """Simulate ``reports`` honest phone reports per mode on ``index``'s network (seed
    ``seed``) and pick that network's bars. With ``own_calibration`` (the default, what
    import does) the network's own isotonic calibration is fitted first, on
    ``calibration_reports`` reports of its own, so that a stated confidence means the
    same on a network the global table never saw (a grid of short blocks was 3 points off
    in two bands); else the reports are snapped with ``snapper`` (default: a RobustSnapper
    with the global calibration). The bars are the lowest that hold on ``reports`` drawn
    per metre of street, as many drawn per segment, and as many drawn per segment of
    FIT_MIN_SEGMENT_M or more (as issue 21's check draws); the outcomes kept are the
    per-metre sample's. A bar no grid value meets stays at the
    global default (listed in ``fell_back``)."""
    t0 = time.perf_counter()
    calibration: Calibration | None = None
    if own_calibration:
        calibration = fit_calibration(index, calibration_reports, seed, progress)
        snapper = RobustSnapper(index, calibration=calibration)
    s = sample_index(index, reports, np.random.default_rng([seed, 21]))
    # the bars hold however a checker draws: per metre, per segment, per segment of 30 m+
    held = [
        sample_index(index, reports, np.random.default_rng([seed, 23]), per_segment=1.0),
        sample_index(
            index,
            reports,
            np.random.default_rng([seed, 24]),
            per_segment=1.0,
            min_segment_m=FIT_MIN_SEGMENT_M,
        ),
    ]
    snapper = snapper or RobustSnapper(index)
    default = Bars()
    got: dict[str, float] = {}
    at_accept: dict[bool, Outcome] = {}
    at_ask: dict[bool, Outcome] = {}
    fell_back: list[str] = []
    for step, h in enumerate((True, False)):
        if progress is not None:
            progress("fit bars", step, 2)
        per = bar_outcomes(snapper, s, h, [seed, 7])
        accept, ask = pick_bars(
            [per, *(bar_outcomes(snapper, x, h, [seed, 8 + j]) for j, x in enumerate(held))]
        )
        for name, bar in (("certain", accept), ("ask", ask)):
            key = name if h else f"{name}_no_heading"
            if bar is None:
                fell_back.append(key)
                got[key] = getattr(default, key)
            else:
                got[key] = bar
        # the grid step nearest each bar (a kept default lies on the grid, give or take float)
        for where, name in ((at_accept, "certain"), (at_ask, "ask")):
            bar = got[name if h else f"{name}_no_heading"]
            where[h] = per[min(per, key=lambda b: abs(b - bar))]
    if progress is not None:
        progress("fit bars", 2, 2)
    return BarFit(
        Bars(**got),
        reports,
        seed,
        time.perf_counter() - t0,
        at_accept,
        at_ask,
        tuple(fell_back),
        calibration,
        calibration_reports if calibration is not None else 0,
    )


def fit_calibration(
    index: SegmentIndex,
    reports: int,
    seed: int,
    progress: Progress | None = None,
    per_segment: float = FIT_PER_SEGMENT,
) -> Calibration:
    """The network's own isotonic calibration, per mode: ``reports`` honest reports
    (seed ``seed``; drawn in chunks to bound memory; a share ``per_segment`` of them
    per segment of FIT_MIN_SEGMENT_M or more, the rest per metre of street), each
    snapped with and without its direction by an uncalibrated RobustSnapper, then raw
    posterior -> share right."""
    if reports < 1:
        raise ValueError(f"a calibration needs simulated reports, not {reports}")
    raw_snapper = RobustSnapper(index, calibration=IDENTITY)
    raws: dict[bool, list[FloatArray]] = {True: [], False: []}
    oks: dict[bool, list[BoolArray]] = {True: [], False: []}
    chunks = max(1, -(-reports // CALIBRATION_CHUNK))
    for c in range(chunks):
        if progress is not None:
            progress("fit calibration", c * CALIBRATION_CHUNK, reports)
        n = min(CALIBRATION_CHUNK, reports - c * CALIBRATION_CHUNK)
        s = sample_index(
            index,
            n,
            np.random.default_rng([seed, 22, c]),
            per_segment=per_segment,
            min_segment_m=FIT_MIN_SEGMENT_M,
        )
        for h in (True, False):
            snapped = raw_snapper.snap_many(
                s.lon, s.lat, accuracy_m=s.accuracy, heading_deg=s.heading if h else None
            )
            placed = snapped.index >= 0
            raws[h].append(snapped.raw[placed])
            oks[h].append(right_of(index, snapped.index, s)[placed])
    if progress is not None:
        progress("fit calibration", reports, reports)
    return {h: fit_isotonic(np.concatenate(raws[h]), np.concatenate(oks[h])) for h in raws}


# -- the fitted bars beside the network file ------------------------------------------

BARS_FORMAT: Final = "roadwatch-bars"
# 2: with the network's own calibration; a version 1 sidecar (bars only) is still read
BARS_VERSION: Final = 2
_MAX_KNOTS: Final = 2_000


def bars_path(network_file: Path) -> Path:
    """The sidecar that holds a network file's fitted bars: ``<file>.bars.json``. Beside
    the file rather than inside it, so the network's bytes (and the digest that tells a
    database whether it holds this network) do not change with a refit."""
    return network_file.with_name(network_file.name + ".bars.json")


def save_fitted_bars(network_file: Path, fit: BarFit, network_sha256: str) -> Path:
    """Write ``fit`` beside ``network_file`` (atomically); returns the sidecar's path."""
    doc = {
        "format": BARS_FORMAT,
        "version": BARS_VERSION,
        "network_sha256": network_sha256,
        "bars": asdict(fit.bars),
        "reports_per_mode": fit.reports,
        "seed": fit.seed,
        "seconds": round(fit.seconds, 2),
        "budgets": {"wrong": WRONG_BUDGET, "wrong_with_choice": CHOICE_WRONG_BUDGET},
        "kept_default": list(fit.fell_back),
        # the bars hold on reports drawn per metre of street and drawn per segment
        "bars_hold_on": ["per metre", "per segment", f"per segment of {FIT_MIN_SEGMENT_M:g} m+"],
    }
    if fit.calibration is not None:
        doc["calibration_reports_per_mode"] = fit.calibration_reports
        doc["calibration_per_segment_share"] = FIT_PER_SEGMENT  # the mixture it was fit on
        doc["calibration_min_segment_m"] = FIT_MIN_SEGMENT_M
        doc["calibration"] = {
            mode: {"x": fit.calibration[h][0].tolist(), "y": fit.calibration[h][1].tolist()}
            for mode, h in (("heading", True), ("none", False))
        }
    out = bars_path(network_file)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def load_fitted_bars(network_file: Path, network_sha256: str) -> Bars:
    """The bars fitted for this very file (:func:`load_fitted`)."""
    return load_fitted(network_file, network_sha256)[0]


def load_fitted(network_file: Path, network_sha256: str) -> tuple[Bars, Calibration | None]:
    """The bars and calibration fitted for this very file (calibration None: a version 1
    sidecar, fitted before networks had their own). FileNotFoundError: none were fitted;
    ValueError (saying why): the sidecar is unreadable, malformed or of another file."""
    path = bars_path(network_file)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no fitted bars beside {network_file}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != BARS_FORMAT:
        raise ValueError(f"{path}: not a {BARS_FORMAT} file")
    if doc.get("version") not in (1, BARS_VERSION):
        raise ValueError(f"{path}: version {doc.get('version')!r} is not 1 or {BARS_VERSION}")
    if doc.get("network_sha256") != network_sha256:
        raise ValueError(f"{path}: fitted for another version of {network_file.name}")
    raw = doc.get("bars")
    names = {f.name for f in fields(Bars)}
    if not isinstance(raw, dict) or set(raw) != names:
        raise ValueError(f"{path}: 'bars' must hold exactly {sorted(names)}")
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.5 <= v < 1.0:
            raise ValueError(f"{path}: bar {k}={v!r} is not a number in [0.5, 1)")
    if raw["ask"] < raw["certain"] or raw["ask_no_heading"] < raw["certain_no_heading"]:
        raise ValueError(f"{path}: an asking bar below its accepting bar")
    bars = Bars(**{k: float(v) for k, v in raw.items()})
    if doc["version"] == 1:
        return bars, None
    return bars, _calibration_of(path, doc.get("calibration"))


def _calibration_of(path: Path, doc: Any) -> Calibration:
    """A sidecar's calibration, checked: per mode knots x and y of equal length (2 to
    _MAX_KNOTS), each non-decreasing within [0, 1], x from 0 to 1."""
    if not isinstance(doc, dict) or set(doc) != {"heading", "none"}:
        raise ValueError(f"{path}: 'calibration' must hold 'heading' and 'none'")
    out: Calibration = {}
    for mode, h in (("heading", True), ("none", False)):
        knots = doc[mode]
        if not isinstance(knots, dict) or set(knots) != {"x", "y"}:
            raise ValueError(f"{path}: calibration {mode!r} must hold 'x' and 'y'")
        try:
            xs = np.asarray(knots["x"], dtype=np.float64)
            ys = np.asarray(knots["y"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: calibration {mode!r}: knots must be numbers") from None
        ok = (
            xs.ndim == 1
            and xs.shape == ys.shape
            and 2 <= xs.size <= _MAX_KNOTS
            and bool(np.all(np.isfinite(xs)) and np.all(np.isfinite(ys)))
            and bool(np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= 0))
            and xs[0] == 0.0
            and xs[-1] == 1.0
            and ys[0] >= 0.0
            and ys[-1] <= 1.0
        )
        if not ok:
            raise ValueError(
                f"{path}: calibration {mode!r}: x and y must be equal-length non-decreasing "
                "knots in [0, 1], x from 0 to 1"
            )
        out[h] = (xs, ys)
    return out
