"""A snapper for real phone noise: heavy tails, people on the pavement, a calibrated answer.

Built on a :class:`geo.snap.SegmentIndex` (its projection, edge table and STRtree are
reused; nothing is copied). Phones are not Gaussian: in streets lined with buildings a
fix is right to its stated ``accuracy_m`` about 68 % of the time but wrong by twice that
one time in twenty, and the person stands on the pavement 3-10 m beside the centre
line. So, per candidate segment, the likelihood of the fix is

* across the line: a Student-t (nu = 3, scale from ``accuracy_m`` so its 68 % radius is
  the stated accuracy) around a *pavement offset* on either side -- a mixture over
  offsets whose weights follow the report's category (a manhole is on the carriageway,
  a stall at the shop front, unknown: both) -- plus a small uniform floor;
* along the line: the chance that a point uniform on the part, moved by the same t
  noise, lands here (t CDF at both ends); at an end where the same road goes on the
  fall-off is dropped for the ranking (the road does not end there);
* times the direction of travel (axial von Mises with a floor) -- compared with the
  bearing of every edge of the segment within 30 m, each weighted by how likely the fix
  comes from it, since at a bend or a joint the nearest edge alone may run another
  way -- and mild bounded factors for the reporter's own and recent segments and for a
  road named in the note;
* times, when a photo says where its camera looked (``look_deg``, EXIF GPSImgDirection),
  a weak "facing" factor: a segment whose nearest spot from the fix lies in that
  direction keeps its weight, one behind the camera keeps ``_LOOK_FLOOR`` of it (a
  directional von Mises with a floor, so it never zeroes a segment and cannot overturn
  clear geometry). Within a street's cross-section the azimuth to its centre line means
  little: there the factor fades to its average over all directions. Grid north of the
  UTM projection is taken as true north (they differ by a degree or two, far inside the
  compass's own spread).

**Boundary rule** (consecutive segments of one road): the road is chosen first (the best
segment and its same-road continuations are one answer); within it the report goes to
the segment most likely right. Within ``BOUNDARY_TOL_M`` of a same-road neighbour either
of the two chiefs is accepted as right (the city's tolerance; the answer says
``boundary: true`` within it of the chosen part's joined end). So the raw posterior is
P(right), and it is what chooses: a segment's weight plus, of each same-road neighbour,
only the share whose spot lies within the tolerance of the segment -- measured on the
geometry (precomputed per part and neighbour, so a neighbour that runs alongside counts
over its whole length, one that goes straight on over its first 15 m) -- a spot farther
from it would make the answer wrong. Mostly that is the segment whose chainage holds the
fix's foot point; not when the nearest is a branch that the direction of travel rules out.

**Reach**: candidates are the segments within 3 x accuracy + 20 m; when even the nearest
is farther than that radius less 20 m, the search goes on as far again beyond the
nearest (at most 150 m): under heavy tails the true segment may lie just outside, and a
posterior over what happens to be inside would be sure of the wrong one.

**Calibration**: the raw road posterior is mapped through an isotonic table fitted by
bench/bench_phone_noise.py ``--fit`` on samples never used for the figures, so a stated
confidence of 0.9 is right about 90 % of the time. A report is certain when the
calibrated confidence is at least ``CERTAIN`` (with a direction of travel) or
``CERTAIN_NO_HEADING`` (without); otherwise the phone offers the candidates and, failing
a choice, staff review it.

``snap_many`` is fully vectorised (one STRtree query for all points, no Python loop
over segments or points); ``snap`` is the same code on one point.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely

from geo.snap import SegmentIndex

__all__ = [
    "BOUNDARY_TOL_M",
    "BAR_ACCURACY_M",
    "BAR_ERROR_FACTOR",
    "LOOK_SIGMA_DEG",
    "MAX_CERTAIN_ACCURACY_M",
    "CATEGORY_KINDS",
    "CERTAIN",
    "CERTAIN_NO_HEADING",
    "ASK",
    "ASK_NO_HEADING",
    "IDENTITY",
    "Bars",
    "Calibration",
    "RobustBatch",
    "RobustSnap",
    "RobustSnapper",
    "calibrate",
    "fit_isotonic",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

BOUNDARY_TOL_M: Final = 15.0
# Edge-table columns of geo.snap (kept in step with it: tested through the results).
_CUM, _ELEN, _UX, _UY, _PLEN, _JOIN = 6, 5, 7, 8, 9, 10
_NU: Final = 3.0
# 2-D Student-t (nu = 3): P(r <= R) = 1 - (1 + R^2 / (3 s^2))^-1.5 = 0.68 at s = R / 1.846.
_T_SCALE: Final = 1.0 / math.sqrt(3.0 * (0.32 ** (-2.0 / 3.0) - 1.0))
_MIN_ACC_M: Final = 5.0
_FLOOR: Final = 1e-3  # uniform share of the across likelihood (gross outliers)
_HEADING_SIGMA_DEG: Final = 15.0
_HEADING_FLOOR: Final = 0.01
# The direction of travel is compared with the bearing of every edge of a segment within
# reach, each weighted by how likely the fix is to come from it (t3 shape of its distance
# less a typical pavement offset): near a bend or a joint the nearest edge alone misleads.
_HEADING_MIX_OFFSET_M: Final = 5.0
_HEADING_MIX_M: Final = 30.0  # edges farther than this weigh nothing: their segment, if
# it has no edge this near, takes its nearest edge's bearing (and the live path less CPU)
# The camera's direction (look_deg): a phone compass in a street full of steel is off by
# 10-20 degrees, and the thing photographed need not be in the middle of the frame, so
# the spread is wide and the floor high: the factor moves a coin toss, never clear
# geometry (at most 1 / _LOOK_FLOOR between a faced segment and one behind the camera).
LOOK_SIGMA_DEG: Final = 30.0
_LOOK_FLOOR: Final = 0.3
# Within a street's own cross-section (the pavement offsets reach 10.5 m) the azimuth from
# the fix to the centre line says little: a person on the pavement may face the road or
# the shop front behind them. So over the first _LOOK_NEAR_M the factor fades to what a
# camera facing anywhere would give on average (the neutral value, below), not to 1:
# fading to 1 would favour the nearer of two streets whenever the camera faced neither.
_LOOK_NEAR_M: Final = 10.0


@functools.lru_cache(maxsize=64)
def _look_neutral1(kappa: float) -> float:
    """:func:`_look_neutral` of one kappa (the live path; np.i0 costs tens of µs a call,
    and a spread takes two or three values in practice)."""
    return float(_look_neutral(np.array([kappa]))[0])


def _look_neutral(kappa: FloatArray) -> FloatArray:
    """The facing factor averaged over all directions (von Mises: I0(kappa) e^-kappa)."""
    out: FloatArray = _LOOK_FLOOR + (1.0 - _LOOK_FLOOR) * np.i0(kappa) * np.exp(-kappa)
    return out


_PRIOR_WEIGHT: Final = 3.0
_HINT_WEIGHT: Final = 4.0
_MAX_CANDIDATES: Final = 3
# Two segments of one road whose scores differ by less than this (relative) are equally
# likely right: where each lies within BOUNDARY_TOL_M of the other over its whole length
# both scores are the same two weights summed in another order, and the live and the
# batch path sum in different orders. The nearer then takes it in both.
_TIE_REL: Final = 1e-9
_ROW_CACHE_MAX_EDGES: Final = 100_000  # ~40 MB of Python lists at most
_CHUNK: Final = 200_000
_FAR_M: Final = 20.0  # nearest segment farther than radius - this: look farther
_MAX_REACH_M: Final = 150.0  # points per chunk in snap_many
# A fix whose stated 68 % radius lies beyond the farthest the snapper looks is never
# certain (the phone asks, a report goes to review): its likelihood is flat over all in
# reach, so the posterior is only a share of what happens to lie next to the fix.
MAX_CERTAIN_ACCURACY_M: Final = _MAX_REACH_M
_OFFSETS: Final = np.array([0.0, 1.5, 3.0, 4.5, 6.0, 7.5, 9.0, 10.5])
# Offset weights per category kind: where on the street cross-section the thing is.
CATEGORY_KINDS: Final = {"unknown": 0, "carriageway": 1, "frontage": 2}
_KIND_WEIGHTS: Final = np.array(
    [
        [0.10, 0.10, 0.10, 0.14, 0.14, 0.14, 0.14, 0.14],  # unknown: mostly the pavement
        [0.40, 0.35, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0],  # carriageway: manhole, pothole
        [0.0, 0.0, 0.10, 0.18, 0.18, 0.18, 0.18, 0.18],  # frontage: stall, shop front
    ]
)

# Isotonic calibration (raw road posterior -> share right), fitted by
# bench/bench_phone_noise.py --fit; between knots linear. Identity until fitted.
# One table with a direction of travel, one without (the raw posterior means more with it).
# Fitted 2026-12-07 on reports drawn half per metre of street, half per segment
# (geo.noise.FIT_PER_SEGMENT), 60,000 a network on Helsinki and Kotka.
Calibration = dict[bool, tuple[FloatArray, FloatArray]]
IDENTITY: Final[Calibration] = {
    True: (np.array([0.0, 1.0]), np.array([0.0, 1.0])),
    False: (np.array([0.0, 1.0]), np.array([0.0, 1.0])),
}
_CAL_HEADING_X: Final = np.array(
    [
        0.0,
        0.36142,
        0.52413,
        0.56585,
        0.60583,
        0.64329,
        0.67992,
        0.71296,
        0.74389,
        0.77091,
        0.80579,
        0.85256,
        0.88035,
        0.9053,
        0.92564,
        0.93445,
        0.94167,
        0.9456,
        0.95202,
        0.95952,
        0.96758,
        0.9761,
        0.98326,
        0.98673,
        0.98811,
        0.98938,
        0.98987,
        0.99137,
        0.9932,
        0.99487,
        0.9964,
        0.99699,
        0.99713,
        0.9974,
        0.9977,
        0.99805,
        0.99976,
        1.0,
    ]
)
_CAL_HEADING_Y: Final = np.array(
    [
        0.0,
        0.38167,
        0.50918,
        0.53,
        0.6227,
        0.62833,
        0.6995,
        0.70117,
        0.75333,
        0.7813,
        0.80984,
        0.85039,
        0.87833,
        0.90405,
        0.91833,
        0.93578,
        0.94324,
        0.94667,
        0.95606,
        0.96051,
        0.96914,
        0.97784,
        0.9809,
        0.985,
        0.98748,
        0.98833,
        0.98998,
        0.99138,
        0.99207,
        0.99354,
        0.99472,
        0.995,
        0.99666,
        0.99722,
        0.9975,
        0.998,
        0.99801,
        0.99801,
    ]
)
_CAL_NONE_X: Final = np.array(
    [
        0.0,
        0.26714,
        0.42752,
        0.48767,
        0.50502,
        0.51432,
        0.52476,
        0.53588,
        0.55721,
        0.57747,
        0.59234,
        0.61568,
        0.64004,
        0.65233,
        0.66552,
        0.67877,
        0.69617,
        0.71837,
        0.7321,
        0.74151,
        0.75578,
        0.77349,
        0.78641,
        0.79877,
        0.81089,
        0.82558,
        0.84292,
        0.85271,
        0.85931,
        0.86832,
        0.88452,
        0.90339,
        0.91428,
        0.91797,
        0.92201,
        0.92571,
        0.92923,
        0.93616,
        0.94761,
        0.96082,
        0.96781,
        0.97127,
        0.97729,
        0.98129,
        0.98259,
        0.98335,
        0.98783,
        0.99156,
        0.99238,
        0.99478,
        0.99786,
        0.99879,
        0.99938,
        1.0,
        1.0,
    ]
)
_CAL_NONE_Y: Final = np.array(
    [
        0.0,
        0.275,
        0.40067,
        0.47832,
        0.48748,
        0.49917,
        0.51586,
        0.54004,
        0.5613,
        0.59299,
        0.60384,
        0.60826,
        0.64137,
        0.66333,
        0.69892,
        0.71786,
        0.71802,
        0.7181,
        0.74958,
        0.75167,
        0.75563,
        0.78899,
        0.80301,
        0.81401,
        0.82638,
        0.8376,
        0.83987,
        0.85833,
        0.85977,
        0.89158,
        0.89825,
        0.90905,
        0.92333,
        0.92654,
        0.92667,
        0.92821,
        0.94157,
        0.94163,
        0.95362,
        0.95925,
        0.96661,
        0.96747,
        0.97553,
        0.97998,
        0.98,
        0.98331,
        0.98781,
        0.98831,
        0.99221,
        0.99316,
        0.99444,
        0.99499,
        0.99666,
        0.9975,
        0.9975,
    ]
)
_CAL: Final[Calibration] = {
    True: (_CAL_HEADING_X, _CAL_HEADING_Y),
    False: (_CAL_NONE_X, _CAL_NONE_Y),
}
# The accepting bars: the lowest at which every network's fit samples stay within 0.9 %
# confidently wrong, drawn per metre of street and drawn per segment alike
# (bench/bench_phone_noise.py --fit prints them; the figures are measured on other
# seeds; central Helsinki drawn per segment sets them). These are the shared defaults:
# a network imported with `roadwatch network import` gets its own (geo.noise.fit_bars,
# stored beside its file).
CERTAIN: Final = 0.9475
CERTAIN_NO_HEADING: Final = 0.9475
# When the person on the spot can choose, the phone asks below a higher bar than the one
# the server accepts at: a tap costs a second and is right 95 % of the time, a confidently
# wrong answer sends the case to the wrong chief. Chosen the same way, budget 0.5 %.
ASK: Final = 0.975
ASK_NO_HEADING: Final = 0.9675
# Bars by stated accuracy. A fixed bar holds the wrong share only for the mix of
# confidences it was fitted on (phones stating 10 m): at 20 or 30 m many more answers sit
# just above it, each still wrong a few times in a hundred, so the share wrong grows
# (honest phones at 20 m: 1.5 %, at 30 m: 2.0 % with a direction, at the 10 m bar),
# though the confidence itself stays calibrated. So the error a bar allows, 1 - bar, is
# multiplied by a factor per stated accuracy (1 at 10 m; linear in log accuracy between
# the knots, the ends beyond them), fitted with the bars by bench_phone_noise.py --fit on
# honest phones stating each accuracy. It applies to every network's bars alike.
BAR_ACCURACY_M: Final = (5.0, 10.0, 20.0, 30.0)
# Never above 1: a bar is not lowered below its 10 m value for a phone that claims 5 m
# (the fit would allow 0.83 with a direction), since in a street canyon that is the phone
# likeliest to overstate its precision. Fitted 2026-12-07 on 60,000 reports a network.
BAR_ERROR_FACTOR: Final[dict[tuple[bool, str], tuple[float, ...]]] = {
    (True, "certain"): (1.0, 1.0, 0.479, 0.284),
    (True, "ask"): (1.0, 1.0, 0.656, 0.197),
    (False, "certain"): (1.0, 1.0, 0.712, 0.582),
    (False, "ask"): (1.0, 1.0, 0.762, 0.500),
}


@dataclass(frozen=True, slots=True)
class Bars:
    """A network's accepting and asking bars, named as RobustSnapper's keywords
    (``RobustSnapper(index, **dataclasses.asdict(bars))``). The defaults are the shared
    bars above; geo.noise.fit_bars fits a network's own."""

    certain: float = CERTAIN
    certain_no_heading: float = CERTAIN_NO_HEADING
    ask: float = ASK
    ask_no_heading: float = ASK_NO_HEADING


def _t3_pdf(x: FloatArray) -> FloatArray:
    """Student-t density, nu = 3 (closed form)."""
    q = 3.0 + x * x
    out: FloatArray = (6.0 * math.sqrt(3.0) / math.pi) / (q * q)
    return out


def _t3_cdf(x: FloatArray) -> FloatArray:
    """Student-t CDF, nu = 3 (closed form)."""
    r = x / math.sqrt(3.0)
    out: FloatArray = 0.5 + (r / (1.0 + r * r) + np.arctan(r)) / math.pi
    return out


_T3_PEAK: Final = 6.0 * math.sqrt(3.0) / math.pi / 9.0


def _t3_cdf1(x: float) -> float:
    r = x / math.sqrt(3.0)
    return 0.5 + (r / (1.0 + r * r) + math.atan(r)) / math.pi


def _interp1(v: float, xs: list[float], ys: list[float]) -> float:
    """np.interp for one value (the live path); the same formula, so the same answer."""
    i = bisect.bisect_right(xs, v)
    if i <= 0:
        return ys[0]
    if i >= len(xs):
        return ys[-1]
    x0, y0, y1 = xs[i - 1], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (v - x0) / (xs[i] - x0)


def _lexsort_grouped(keys: tuple[npt.NDArray[Any], ...]) -> IntArray:
    """``np.lexsort(keys)`` (the last key primary: an integer group), the same order,
    cheaper when most groups hold one row: a stable sort by the group alone (the rows
    come nearly sorted), then a full sort of only the rows whose group is shared, which
    is where the other keys decide. The batch's three full sorts had cost about a fifth
    of it."""
    group = keys[-1]
    order = np.argsort(group, kind="stable")
    g = group[order]
    shared = np.zeros(g.size, dtype=bool)
    same = g[1:] == g[:-1]
    shared[1:] |= same
    shared[:-1] |= same
    if shared.any():
        rows = order[shared]  # whole groups, in group order
        order[shared] = rows[np.lexsort(tuple(k[rows] for k in keys))]
    return order


def calibrate(raw: npt.ArrayLike, xs: FloatArray, ys: FloatArray) -> FloatArray:
    """Calibrated confidence of raw road posteriors (piecewise linear between knots)."""
    return np.interp(np.asarray(raw, dtype=np.float64), xs, ys)


def fit_isotonic(
    raw: FloatArray, right: BoolArray, bins: int = 200
) -> tuple[FloatArray, FloatArray]:
    """Knots of a non-decreasing map raw -> P(right): quantile bins, then pool adjacent
    violators (weighted by bin size). Returns (xs, ys) for :func:`calibrate`."""
    if raw.size == 0:  # nothing placed to learn from: leave the raw posterior as it is
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    order = np.argsort(raw, kind="stable")
    r, y = raw[order], right[order].astype(np.float64)
    edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:  # every raw value the same (a network of one segment): one bin
        edges = np.repeat(edges, 2)
    which = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, edges.size - 2)
    cnt = np.bincount(which, minlength=edges.size - 1).astype(np.float64)
    keep = cnt > 0
    mean_x = np.bincount(which, weights=r, minlength=edges.size - 1)[keep] / cnt[keep]
    mean_y = np.bincount(which, weights=y, minlength=edges.size - 1)[keep] / cnt[keep]
    w = cnt[keep]
    # pool adjacent violators over the bins (a few hundred: a plain loop is fine here)
    vals: list[float] = []
    wts: list[float] = []
    xsum: list[float] = []
    for xv, yv, wv in zip(mean_x.tolist(), mean_y.tolist(), w.tolist(), strict=True):
        vals.append(yv)
        wts.append(wv)
        xsum.append(xv * wv)
        while len(vals) > 1 and vals[-2] >= vals[-1]:
            v2, w2, x2 = vals.pop(), wts.pop(), xsum.pop()
            v1, w1 = vals[-1], wts[-1]
            vals[-1] = (v1 * w1 + v2 * w2) / (w1 + w2)
            wts[-1] = w1 + w2
            xsum[-1] += x2
    xs = np.array([xv / wv for xv, wv in zip(xsum, wts, strict=True)])
    ys = np.array(vals)
    return np.concatenate([[0.0], xs, [1.0]]), np.concatenate([[0.0], ys, [ys[-1]]])


@dataclass(frozen=True, slots=True)
class RobustSnap:
    """One report's answer. ``index`` None: no segment within reach."""

    index: int | None
    distance_m: float | None
    chainage_m: float | None
    confidence: float  # calibrated: P(index is right, boundary tolerance included)
    raw: float  # the road posterior before calibration
    certain: bool
    boundary: bool  # within BOUNDARY_TOL_M of a joint with a same-road continuation
    runner_up: int | None
    # (position, distance_m, share) of up to three alternatives, best first: what the
    # phone offers when the answer is not certain
    candidates: tuple[tuple[int, float, float], ...] = ()
    ask: bool = False  # below the asking bar: the phone offers the candidates


@dataclass(frozen=True, slots=True, eq=False)
class RobustBatch:
    index: IntArray  # -1: nothing within reach
    distance_m: FloatArray
    chainage_m: FloatArray
    confidence: FloatArray
    raw: FloatArray
    certain: BoolArray
    boundary: BoolArray
    runner_up: IntArray
    cand: IntArray  # (n, 3) candidate positions, -1 padded
    cand_d: FloatArray  # (n, 3)
    cand_p: FloatArray  # (n, 3)
    ask: BoolArray  # below the asking bar (ASK / ASK_NO_HEADING)

    def __len__(self) -> int:
        return int(self.index.size)

    def __getitem__(self, i: int) -> RobustSnap:
        s = int(self.index[i])
        if s < 0:
            return _NONE
        ru = int(self.runner_up[i])
        cands = tuple(
            (int(c), float(d), float(p))
            for c, d, p in zip(self.cand[i], self.cand_d[i], self.cand_p[i], strict=True)
            if c >= 0
        )
        return RobustSnap(
            s,
            float(self.distance_m[i]),
            float(self.chainage_m[i]),
            float(self.confidence[i]),
            float(self.raw[i]),
            bool(self.certain[i]),
            bool(self.boundary[i]),
            ru if ru >= 0 else None,
            cands,
            bool(self.ask[i]),
        )


def _empty(n: int) -> RobustBatch:
    return RobustBatch(
        np.full(n, -1, dtype=np.int64),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n, dtype=bool),
        np.zeros(n, dtype=bool),
        np.full(n, -1, dtype=np.int64),
        np.full((n, _MAX_CANDIDATES), -1, dtype=np.int64),
        np.full((n, _MAX_CANDIDATES), np.nan),
        np.zeros((n, _MAX_CANDIDATES)),
        np.zeros(n, dtype=bool),
    )


_NONE: Final = RobustSnap(None, None, None, 0.0, 0.0, False, False, None)


def _continuations(index: SegmentIndex) -> tuple[IntArray, IntArray]:
    """Every ordered pair (a, b) of segments where b continues a (SegmentIndex._continues:
    the same road, sharing an end)."""
    ix = index
    n = len(ix)
    srt = np.argsort(ix._road, kind="stable")
    r = ix._road[srt]
    start = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    size = np.diff(np.append(start, n))
    gs = np.repeat(size, size)
    a = np.repeat(np.arange(n), gs)
    b = np.repeat(np.repeat(start, size), gs) + (
        np.arange(a.size) - np.repeat(np.cumsum(gs) - gs, gs)
    )
    sa, sb = srt[a], srt[b]
    ok = ix._continues(sa, sb)
    return sa[ok], sb[ok]


def _tolerance_table(
    index: SegmentIndex, nb: IntArray, ch: IntArray
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """Where a same-road neighbour's spots count as right for a chosen segment.

    Returns the part of every edge, and sorted keys ``part * len(index) + chosen`` with
    the chainage interval [lo, hi] of that part (of a continuation of ``chosen``) whose
    points lie within BOUNDARY_TOL_M of the chosen segment -- the bench's and the city's
    rule, measured on the geometry (a neighbour that bends back along the chosen one, or
    the second part of a dual carriageway, is within the tolerance over more than the
    first 15 m from the joint). Per edge the distance is interpolated between its ends."""
    ix = index
    e, es = ix._edges, ix._edge_seg
    n = len(ix)
    newpart = np.r_[True, (e[1:, _CUM] == 0.0) | (es[1:] != es[:-1])]
    part = np.cumsum(newpart).astype(np.int64) - 1
    empty = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    if nb.size == 0:  # continuing pairs: (neighbour, chosen)
        return (part, *empty)
    # every edge of the neighbour beside the chosen segment
    first = np.searchsorted(es, np.arange(n))
    count = np.bincount(es, minlength=n)
    k = count[nb]
    edge = np.repeat(first[nb], k) + (np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k))
    cs = np.repeat(ch, k)
    ee = e[edge]
    geo = ix.geometries[cs]
    da = shapely.distance(shapely.points(ee[:, 0], ee[:, 1]), geo)
    db = shapely.distance(shapely.points(ee[:, 0] + ee[:, 2], ee[:, 1] + ee[:, 3]), geo)
    tol, ln = BOUNDARY_TOL_M, ee[:, _ELEN]
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(da <= tol, 0.0, np.where(db <= tol, ln * (da - tol) / (da - db), np.nan))
        hi = np.where(db <= tol, ln, np.where(da <= tol, ln * (tol - da) / (db - da), np.nan))
    got = np.isfinite(lo) & np.isfinite(hi)
    key = part[edge[got]] * np.int64(n) + cs[got]
    lo = ee[got, _CUM] + lo[got]
    hi = ee[got, _CUM] + hi[got]
    order = np.argsort(key, kind="stable")
    key, lo, hi = key[order], lo[order], hi[order]
    if key.size == 0:
        return (part, *empty)
    at = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return part, key[at], np.minimum.reduceat(lo, at), np.maximum.reduceat(hi, at)


class RobustSnapper:
    """Heavy-tailed, pavement-aware, calibrated snapping over a SegmentIndex."""

    def __init__(
        self,
        index: SegmentIndex,
        *,
        max_distance_m: float = 80.0,
        certain: float = CERTAIN,
        certain_no_heading: float = CERTAIN_NO_HEADING,
        ask: float = ASK,
        ask_no_heading: float = ASK_NO_HEADING,
        calibration: Calibration | None = None,
        bar_error_factor: dict[tuple[bool, str], tuple[float, ...]] | None = None,
    ) -> None:
        self.index = index
        self.max_distance_m = float(max_distance_m)
        self.certain = float(certain)
        self.certain_no_heading = float(certain_no_heading)
        self.ask = float(ask)
        self.ask_no_heading = float(ask_no_heading)
        self.calibration = calibration if calibration is not None else _CAL
        factors = BAR_ERROR_FACTOR if bar_error_factor is None else bar_error_factor
        # per (heading known, "certain" | "ask"): the bar at each BAR_ACCURACY_M knot
        self._bar_x = [math.log(a) for a in BAR_ACCURACY_M]
        base = {
            (True, "certain"): self.certain,
            (True, "ask"): self.ask,
            (False, "certain"): self.certain_no_heading,
            (False, "ask"): self.ask_no_heading,
        }
        self._bar_y = {
            key: [min(1.0 - (1.0 - bar) * f, 0.9999) for f in factors[key]]
            for key, bar in base.items()
        }
        # The edge table as plain lists for the live path (numpy's fancy indexing and
        # tolist cost ~7 µs a call for 40 edges, a list lookup ~2), on networks small
        # enough that the copy stays small (~400 bytes an edge).
        small = index._edges.shape[0] <= _ROW_CACHE_MAX_EDGES
        self._rows: list[list[float]] | None = index._edges.tolist() if small else None
        self._segs: list[int] = index._edge_seg.tolist() if small else []
        # plain lists for the live path: np.interp costs ~5 µs a scalar call, bisect ~1.5
        self._cal_lists = {
            h: (xs.tolist(), ys.tolist()) for h, (xs, ys) in self.calibration.items()
        }
        sig = _HEADING_SIGMA_DEG * math.pi / 180.0
        self._h2k = 2.0 / (4.0 * sig * sig)
        # plain-Python copies for the live path: (weight, offset) pairs per category kind
        self._pairs = [
            [(w, o) for w, o in zip(row, _OFFSETS.tolist(), strict=True) if w]
            for row in _KIND_WEIGHTS.tolist()
        ]
        ca, cb = _continuations(index)
        # live path: the segments that continue each one (a set lookup, not _continues_one)
        self._cont: list[set[int]] = [set() for _ in range(len(index))]
        for a, b in zip(ca.tolist(), cb.tolist(), strict=True):
            self._cont[a].add(b)
        self._edge_part, self._tol_key, self._tol_lo, self._tol_hi = _tolerance_table(index, cb, ca)
        self._edge_part_list: list[int] = self._edge_part.tolist()
        self._tol = dict(
            zip(
                self._tol_key.tolist(),
                zip(self._tol_lo.tolist(), self._tol_hi.tolist(), strict=True),
                strict=True,
            )
        )

    def bar_at(
        self, log_accuracy: npt.ArrayLike, heading: bool, which: str = "certain"
    ) -> FloatArray:
        """The accepting (``which="certain"``) or asking bar at each log stated accuracy."""
        return np.interp(
            np.asarray(log_accuracy, dtype=np.float64), self._bar_x, self._bar_y[(heading, which)]
        )

    def _near(
        self,
        x: float,
        y: float,
        point: object,
        radius: float,
        heading: tuple[float, float, float] | None,
        mix: dict[int, list[float]],
    ) -> dict[int, tuple[float, int, float, float, list[float]]]:
        """Segment -> (d, edge, t, raw, row) of its nearest edge within the radius (ties:
        the lower edge). With ``heading`` (hx, hy, s): ``mix`` gets, per segment, the sums
        of weight and weight x heading factor over its edges within the radius."""
        ix = self.index
        if ix._dwithin is not None:
            cand = ix._dwithin(point, np.array([radius]))[1]
        else:
            cand = ix._tree.query(point, predicate="dwithin", distance=radius)[1]
        per_seg: dict[int, tuple[float, int, float, float, list[float]]] = {}
        mix.clear()
        h2k, keep = self._h2k, 1.0 - _HEADING_FLOOR
        mix_m = _HEADING_MIX_M if heading is not None else -1.0
        hx, hy, s = heading if heading is not None else (0.0, 0.0, 1.0)
        if self._rows is not None:  # plain lists: no numpy fancy index + tolist a call
            rows_l, segs_l = self._rows, self._segs
            found = [(ei, segs_l[ei], rows_l[ei]) for ei in cand.tolist()]
        else:
            found = list(
                zip(
                    cand.tolist(),
                    ix._edge_seg[cand].tolist(),
                    ix._edges[cand].tolist(),
                    strict=True,
                )
            )
        for ei, sg, row in found:
            ax, ay, dx, dy, len2 = row[0], row[1], row[2], row[3], row[4]
            raw = ((x - ax) * dx + (y - ay) * dy) / len2 if len2 > 0 else 0.0
            t = 0.0 if raw < 0.0 else (1.0 if raw > 1.0 else raw)  # min/max: slower calls
            ex = x - (ax + t * dx)
            ey = y - (ay + t * dy)
            d = math.sqrt(ex * ex + ey * ey)
            if d > radius:
                continue
            if d <= mix_m:  # as snap_many's heading mixture, term by term
                q = (d - _HEADING_MIX_OFFSET_M) / s if d > _HEADING_MIX_OFFSET_M else 0.0
                q = 3.0 + q * q
                a = 1.0 / (q * q)
                c = hx * row[_UX] + hy * row[_UY]
                lh = _HEADING_FLOOR + keep * math.exp(h2k * (c * c - 1.0))
                acc = mix.get(sg)
                if acc is None:
                    mix[sg] = [a, a * lh]
                else:
                    acc[0] += a
                    acc[1] += a * lh
            old = per_seg.get(sg)
            if old is None or (d, ei) < (old[0], old[1]):
                per_seg[sg] = (d, ei, t, raw, row)
        return per_seg

    # --- the two entry points ---------------------------------------------------

    def snap(
        self,
        lon: float,
        lat: float,
        *,
        accuracy_m: float | None = None,
        heading_deg: float | None = None,
        prior: Collection[int] | None = None,
        road_hint: str | Iterable[str] | None = None,
        kind: str = "unknown",
        look_deg: float | None = None,
        look_sigma_deg: float = LOOK_SIGMA_DEG,
    ) -> RobustSnap:
        """One report (the live path): the scalar twin of :meth:`snap_many`.

        numpy costs about a microsecond a call on tiny arrays, so the few candidates
        are scored in plain Python with the same formulas (tested to agree with the
        batch path to 1e-9).
        """
        ix = self.index
        acc = ix.default_accuracy_m
        if accuracy_m is not None and math.isfinite(accuracy_m) and accuracy_m > 0:
            acc = float(accuracy_m)
        acc = max(acc, _MIN_ACC_M)
        radius = min(max(3.0 * acc + 20.0, 40.0), self.max_distance_m)
        x, y = ix._to_xy.transform(lon, lat)
        if not (math.isfinite(x) and math.isfinite(y)):
            return _NONE
        point = shapely.points(np.array([[x, y]]))
        s = _T_SCALE * acc
        hknown = heading_deg is not None and math.isfinite(heading_deg)
        hx = hy = 0.0
        if hknown:
            assert heading_deg is not None
            rad = math.radians(heading_deg)
            hx, hy = math.sin(rad), math.cos(rad)
        lknown = look_deg is not None and math.isfinite(look_deg)
        lx = ly = lk = lneu = 0.0
        if lknown:
            assert look_deg is not None
            lrad = math.radians(look_deg)
            lx, ly = math.sin(lrad), math.cos(lrad)
            lsig = math.radians(look_sigma_deg)
            lk = 1.0 / (lsig * lsig)
            lneu = _look_neutral1(lk)
        hmix = (hx, hy, s) if hknown else None
        mix: dict[int, list[float]] = {}
        per_seg = self._near(x, y, point, radius, hmix, mix)
        if per_seg:
            dmin = min(v[0] for v in per_seg.values())
            if dmin > radius - _FAR_M:  # as snap_many: look farther when all is far
                per_seg = self._near(x, y, point, min(dmin + radius, _MAX_REACH_M), hmix, mix)
        if not per_seg:
            return _NONE
        pairs = self._pairs[CATEGORY_KINDS.get(kind, 0)]
        c3 = 6.0 * math.sqrt(3.0) / math.pi
        floor = _FLOOR * _T3_PEAK / s
        pset = set(prior) if prior else ()
        hint = ix.road_codes_of(road_hint) if road_hint else frozenset()
        road = ix._road_list
        segs = sorted(per_seg)
        # seg, d, w, wr, along, along fall-off
        rows: list[tuple[int, float, float, float, float, float]] = []
        for sg in segs:
            d, _, t, raw, row = per_seg[sg]
            cum, elen, plen, jn = row[_CUM], row[_ELEN], row[_PLEN], row[_JOIN]
            before = raw < 0.0 and cum == 0.0
            after = raw > 1.0 and cum + elen >= plen
            over = -raw * elen if before else ((raw - 1.0) * elen if after else 0.0)
            along = -over if before else cum + t * elen + over
            across = math.sqrt(max(d * d - over * over, 0.0))
            la = 0.0
            for wk, o in pairs:  # _t3_pdf inlined: the live path's inner loop
                u, v = (across - o) / s, (across + o) / s
                qu, qv = 3.0 + u * u, 3.0 + v * v
                la += wk * (c3 / (qu * qu) + c3 / (qv * qv))
            la = la / (2.0 * s) + floor
            f1 = _t3_cdf1(along / s)
            f2 = _t3_cdf1((plen - along) / s)
            j1, j2 = jn % 2.0 == 1.0, jn >= 2.0
            w = la * max(f1 + f2 - 1.0, 1e-12)
            wr = la * max((1.0 if j1 else f1) + (1.0 if j2 else f2) - 1.0, 1e-12)
            if hknown:
                m = mix.get(sg)
                if m is None:  # no edge near enough for the mixture: the nearest's bearing
                    c = hx * row[_UX] + hy * row[_UY]
                    lh = _HEADING_FLOOR + (1.0 - _HEADING_FLOOR) * math.exp(
                        self._h2k * (c * c - 1.0)
                    )
                else:
                    lh = m[1] / m[0]
                w *= lh
                wr *= lh
            if lknown:  # the camera faced this segment's nearest spot?
                fx = row[0] + t * row[2] - x
                fy = row[1] + t * row[3] - y
                c = (lx * fx + ly * fy) / (d if d > 1e-9 else 1e-9)  # no min/max: slower calls
                g = _LOOK_FLOOR + (1.0 - _LOOK_FLOOR) * math.exp(lk * (c - 1.0))
                lf = lneu + (d / _LOOK_NEAR_M if d < _LOOK_NEAR_M else 1.0) * (g - lneu)
                w *= lf
                wr *= lf
            if sg in pset:
                w *= _PRIOR_WEIGHT
                wr *= _PRIOR_WEIGHT
            if hint and road[sg] in hint:
                w *= _HINT_WEIGHT
                wr *= _HINT_WEIGHT
            rows.append((sg, d, w, wr, along, max(f1 + f2 - 1.0, 1e-12)))
        best = max(rows, key=lambda r: r[3])[0]  # first of equals: the lowest segment
        den = 0.0
        own: list[tuple[int, float, float, float, float, float]] = []
        alt: list[tuple[int, float, float, float, float, float]] = []
        cont = self._cont
        for r in rows:
            den += r[2]
            if r[0] == best or r[0] in cont[best]:
                own.append(r)
            else:
                alt.append(r)
        # within the road, the segment most likely right: its own weight and, of each
        # same-road neighbour, the share of spots within the tolerance of it
        tab, part, nseg = self._tol, self._edge_part_list, len(ix)
        scores = []
        for o in own:
            got = o[2]
            near = cont[o[0]]
            for r in rows:
                if r[0] in near:
                    span = tab.get(part[per_seg[r[0]][1]] * nseg + o[0])
                    if span is not None:
                        along = r[4]
                        tol = _t3_cdf1((span[1] - along) / s) - _t3_cdf1((span[0] - along) / s)
                        got += r[2] * min(max(tol, 0.0) / r[5], 1.0)
            scores.append(got)
        # of equal scores (to _TIE_REL) the nearer, then the lower segment, as snap_many
        num = max(scores)
        tie = num * (1.0 - _TIE_REL)
        chosen = min((o for o, g in zip(own, scores, strict=True) if g >= tie), key=lambda o: o[1])
        sg, d = chosen[0], chosen[1]
        rawp = num / den
        _, _, t, _, row = per_seg[sg]
        to_start = chosen[4] if row[_JOIN] % 2.0 == 1.0 else math.inf
        to_end = row[_PLEN] - chosen[4] if row[_JOIN] >= 2.0 else math.inf
        boundary = len(own) > 1 and min(to_start, to_end) <= BOUNDARY_TOL_M
        conf = _interp1(rawp, *self._cal_lists[hknown])
        lacc = math.log(acc)
        wide = acc > MAX_CERTAIN_ACCURACY_M
        certain = not wide and conf >= _interp1(lacc, self._bar_x, self._bar_y[(hknown, "certain")])
        asked = wide or conf < _interp1(lacc, self._bar_x, self._bar_y[(hknown, "ask")])
        alt.sort(key=lambda r: (-r[2] / den, r[1]))
        cands = ((sg, d, rawp),) + tuple(
            (r[0], r[1], r[2] / den) for r in alt[: _MAX_CANDIDATES - 1]
        )
        return RobustSnap(
            sg,
            d,
            row[_CUM] + t * row[_ELEN],
            conf,
            rawp,
            certain,
            boundary,
            alt[0][0] if alt else None,
            cands,
            asked,
        )

    def snap_many(
        self,
        lons: npt.ArrayLike,
        lats: npt.ArrayLike,
        *,
        accuracy_m: npt.ArrayLike | None = None,
        heading_deg: npt.ArrayLike | None = None,
        prior: Collection[int] | None = None,
        road_hint: str | Iterable[str] | None = None,
        kind: str | npt.ArrayLike = "unknown",
        priors: Sequence[Collection[int] | None] | None = None,
        road_hints: Sequence[Iterable[str] | None] | None = None,
        look_deg: npt.ArrayLike | None = None,
        look_sigma_deg: npt.ArrayLike = LOOK_SIGMA_DEG,
    ) -> RobustBatch:
        """Many reports at once. ``prior`` and ``road_hint`` apply to every point;
        ``priors`` and ``road_hints`` give each point its own (the reporter's own
        segments, the names in its note), so a batch decides exactly as :meth:`snap`.
        ``look_deg`` (NaN: none) and ``look_sigma_deg``: a scalar or one per point."""
        ix = self.index
        lon = np.atleast_1d(np.asarray(lons, dtype=np.float64))
        lat = np.atleast_1d(np.asarray(lats, dtype=np.float64))
        n = lon.size
        if n > _CHUNK:  # chunks bound the pair arrays' memory; each chunk is vectorised

            def cut(v: object, a: int) -> object:
                arr = np.asarray(v)
                return v if arr.ndim == 0 or isinstance(v, str) else arr[a : a + _CHUNK]

            parts = [
                self.snap_many(
                    lon[a : a + _CHUNK],
                    lat[a : a + _CHUNK],
                    accuracy_m=cut(accuracy_m, a),  # type: ignore[arg-type]
                    heading_deg=cut(heading_deg, a),  # type: ignore[arg-type]
                    prior=prior,
                    road_hint=road_hint,
                    kind=cut(kind, a),  # type: ignore[arg-type]
                    priors=None if priors is None else priors[a : a + _CHUNK],
                    road_hints=None if road_hints is None else road_hints[a : a + _CHUNK],
                    look_deg=None if look_deg is None else cut(look_deg, a),  # type: ignore[arg-type]
                    look_sigma_deg=cut(look_sigma_deg, a),  # type: ignore[arg-type]
                )
                for a in range(0, n, _CHUNK)
            ]
            return RobustBatch(
                *(
                    np.concatenate([getattr(p, f) for p in parts])
                    for f in RobustBatch.__dataclass_fields__
                )
            )
        out = _empty(n)
        acc = np.broadcast_to(
            np.asarray(np.nan if accuracy_m is None else accuracy_m, dtype=np.float64), (n,)
        )
        acc = np.where(np.isfinite(acc) & (acc > 0), acc, ix.default_accuracy_m)
        acc = np.maximum(acc, _MIN_ACC_M)
        head = np.broadcast_to(
            np.asarray(np.nan if heading_deg is None else heading_deg, dtype=np.float64), (n,)
        )
        if isinstance(kind, str):
            kinds = np.full(n, CATEGORY_KINDS.get(kind, 0), dtype=np.int64)
        else:
            kinds = np.broadcast_to(np.asarray(kind, dtype=np.int64), (n,))
        radius = np.clip(3.0 * acc + 20.0, 40.0, self.max_distance_m)
        x, y = ix._to_xy.transform(lon, lat)
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        pi, ei = ix._near_pairs(x, y, radius)
        pi, ei, d, t, raw = ix._nearest_on_edges(x, y, pi, ei, radius)
        if pi.size == 0:
            return out
        # Heavy tails: when even the nearest segment is far, the true one may lie just
        # beyond the radius and the posterior over what is inside would be overconfident.
        # Look again, as far beyond the nearest as the radius reaches beyond the fix.
        dmin = np.full(n, np.inf)
        np.minimum.at(dmin, pi, d)
        far = np.flatnonzero(np.isfinite(dmin) & (dmin > radius - _FAR_M))
        if far.size:
            radius[far] = np.minimum(dmin[far] + radius[far], _MAX_REACH_M)
            fp, fe = ix._near_pairs(x, y, radius, far)
            fp, fe, fd, ft, fr = ix._nearest_on_edges(x, y, fp, fe, radius)
            looked = np.zeros(n, dtype=bool)
            looked[far] = True
            stay = ~looked[pi]
            pi, ei, d, t, raw = (
                np.concatenate([a[stay], b])
                for a, b in ((pi, fp), (ei, fe), (d, fd), (t, ft), (raw, fr))
            )
        si = ix._edge_seg[ei]
        # one row per (point, segment): its nearest edge
        key = pi * np.int64(len(ix)) + si
        order = _lexsort_grouped((ei, d, key))
        key = key[order]
        first = np.r_[True, key[1:] != key[:-1]]
        keep = order[first]
        h = head[pi]
        hk_all = np.isfinite(h)
        hmix = np.ones(keep.size)
        if hk_all.any():
            # heading factor of a segment: over its edges within reach, weighted by how
            # likely the fix is to come from each (see _HEADING_MIX_OFFSET_M)
            ea = ix._edges[ei]
            rad = np.radians(np.where(hk_all, h, 0.0))
            c = np.sin(rad) * ea[:, _UX] + np.cos(rad) * ea[:, _UY]
            lh_e = _HEADING_FLOOR + (1.0 - _HEADING_FLOOR) * np.exp(self._h2k * (c * c - 1.0))
            q = np.maximum(d - _HEADING_MIX_OFFSET_M, 0.0) / (_T_SCALE * acc[pi])
            q = 3.0 + q * q
            a_e = np.where(d <= _HEADING_MIX_M, 1.0 / (q * q), 0.0)
            at = np.flatnonzero(first)
            sa = np.add.reduceat(a_e[order], at)
            sh = np.add.reduceat((a_e * lh_e)[order], at)
            mixed = sh / np.where(sa > 0.0, sa, 1.0)
            hmix = np.where(hk_all[keep], np.where(sa > 0.0, mixed, lh_e[keep]), 1.0)
        pi, ei, d, t, si, raw = pi[keep], ei[keep], d[keep], t[keep], si[keep], raw[keep]

        e = ix._edges[ei]
        cum, elen, plen, jn = e[:, _CUM], e[:, _ELEN], e[:, _PLEN], e[:, _JOIN]
        before = (raw < 0.0) & (cum == 0.0)
        after = (raw > 1.0) & (cum + elen >= plen)
        over = np.where(before, -raw * elen, np.where(after, (raw - 1.0) * elen, 0.0))
        along = np.where(before, -over, cum + t * elen + over)
        across = np.sqrt(np.maximum(d * d - over * over, 0.0))
        s = _T_SCALE * acc[pi]
        # across: t noise around a pavement offset on either side, weights by category
        wk = _KIND_WEIGHTS[kinds[pi]]  # (rows, offsets)
        a = across[:, None]
        o = _OFFSETS[None, :]
        ss = s[:, None]
        la = (wk * (_t3_pdf((a - o) / ss) + _t3_pdf((a + o) / ss))).sum(axis=1) / (2.0 * s)
        la = la + _FLOOR * _T3_PEAK / s
        # along: a point uniform on the part, moved by the noise, lands here
        f1 = _t3_cdf(along / s)
        f2 = _t3_cdf((plen - along) / s)
        j1 = np.remainder(jn, 2.0) == 1.0
        j2 = jn >= 2.0
        fall = np.maximum(f1 + f2 - 1.0, 1e-12)
        w = la * fall
        wr = la * np.maximum(np.where(j1, 1.0, f1) + np.where(j2, 1.0, f2) - 1.0, 1e-12)
        w *= hmix
        wr *= hmix
        if look_deg is not None:  # the camera faced the segment's nearest spot?
            look = np.broadcast_to(np.asarray(look_deg, dtype=np.float64), (n,))
            k = np.flatnonzero(np.isfinite(look[pi]))
            if k.size:
                lsig = np.radians(
                    np.broadcast_to(np.asarray(look_sigma_deg, dtype=np.float64), (n,))
                )
                lkap = 1.0 / (lsig * lsig)
                lneu = _look_neutral(lkap)
                pk, ek = pi[k], e[k]
                fx = ek[:, 0] + t[k] * ek[:, 2] - x[pk]
                fy = ek[:, 1] + t[k] * ek[:, 3] - y[pk]
                lrad = np.radians(look[pk])
                c = (np.sin(lrad) * fx + np.cos(lrad) * fy) / np.maximum(d[k], 1e-9)
                g = _LOOK_FLOOR + (1.0 - _LOOK_FLOOR) * np.exp(lkap[pk] * (c - 1.0))
                lf = lneu[pk] + np.minimum(d[k] / _LOOK_NEAR_M, 1.0) * (g - lneu[pk])
                w[k] *= lf
                wr[k] *= lf
        pm, hm = ix._boost_mask(prior, ix.road_codes_of(road_hint))
        for mask, weight in ((pm, _PRIOR_WEIGHT), (hm, _HINT_WEIGHT)):
            if mask is not None:
                hit = mask[si]
                w[hit] *= weight
                wr[hit] *= weight
        per_prior = (
            None if priors is None else [(i, c) for i, v in enumerate(priors) if v for c in v]
        )
        per_hint = (
            None
            if road_hints is None
            else [(i, c) for i, v in enumerate(road_hints) if v for c in ix.road_codes_of(v)]
        )
        for wanted, weight, codes in (
            (per_prior, _PRIOR_WEIGHT, si),
            (per_hint, _HINT_WEIGHT, ix._road[si]),
        ):
            if wanted:  # (point, segment) or (point, road) pairs; unnamed roads are < 0
                at, code = np.array(wanted, dtype=np.int64).T
                span = np.int64(max(int(codes.max()), int(code.max())) + 1)
                hit = np.isin(np.where(codes >= 0, pi * span + codes, -1), at * span + code)
                w[hit] *= weight
                wr[hit] *= weight

        # per point: best by ranking weight; its road = it and its same-road continuations
        start = np.flatnonzero(np.r_[True, pi[1:] != pi[:-1]])
        size = np.diff(np.append(start, pi.size))
        group = np.repeat(np.arange(start.size), size)
        top = wr == np.repeat(np.maximum.reduceat(wr, start), size)
        bidx = np.flatnonzero(top)
        bidx = bidx[np.r_[True, group[bidx][1:] != group[bidx][:-1]]]
        best = si[bidx]
        own = ix._continues(best[group], si)  # the best and its same-road continuations
        own[bidx] = True
        den = np.bincount(group, weights=w, minlength=start.size)
        # boundary rule: within the best road, the segment most likely right -- its own
        # weight and, of each same-road neighbour, the share of w whose spot lies within
        # the tolerance of it (the city's rule, on the geometry: _tolerance_table)
        oi = np.flatnonzero(own)
        og = group[oi]
        rows_in = size[og]  # every row of the group is a possible neighbour
        pa = np.repeat(np.arange(oi.size), rows_in)
        pb = np.repeat(start[og], rows_in) + (
            np.arange(pa.size) - np.repeat(np.cumsum(rows_in) - rows_in, rows_in)
        )
        ca, nb = oi[pa], pb
        score = w[oi].copy()
        pair = np.flatnonzero(ix._continues(si[ca], si[nb]))
        if pair.size and self._tol_key.size:
            ca, nb, pa = ca[pair], nb[pair], pa[pair]
            tkey = self._edge_part[ei[nb]] * np.int64(len(ix)) + si[ca]
            at = np.minimum(np.searchsorted(self._tol_key, tkey), self._tol_key.size - 1)
            near = np.flatnonzero(self._tol_key[at] == tkey)
            if near.size:
                at, nb, pa = at[near], nb[near], pa[near]
                sk, ak = s[nb], along[nb]
                tol = _t3_cdf((self._tol_hi[at] - ak) / sk) - _t3_cdf((self._tol_lo[at] - ak) / sk)
                share = w[nb] * np.minimum(np.maximum(tol, 0.0) / fall[nb], 1.0)
                score += np.bincount(pa, weights=share, minlength=oi.size)
        # highest score; of equals (to _TIE_REL) the nearer, then the lower segment (rows
        # are by segment): a tie is settled by the distance, not by the last bit of a sum
        ostart = np.flatnonzero(np.r_[True, og[1:] != og[:-1]])
        top = np.repeat(np.maximum.reduceat(score, ostart), np.diff(np.append(ostart, og.size)))
        score = np.where(score >= top * (1.0 - _TIE_REL), top, score)
        pick = _lexsort_grouped((d[oi], -score, og))
        cidx_o = pick[np.r_[True, og[pick][1:] != og[pick][:-1]]]
        cidx = oi[cidx_o]
        rawp = np.zeros(start.size)
        rawp[og[cidx_o]] = score[cidx_o]
        rawp = rawp / den
        # distance from the foot point to the nearest joined end of the chosen part
        ce = e[cidx]
        foot = along[cidx]
        to_start = np.where(np.remainder(ce[:, _JOIN], 2.0) == 1.0, foot, np.inf)
        to_end = np.where(ce[:, _JOIN] >= 2.0, ce[:, _PLEN] - foot, np.inf)
        several = np.bincount(group, weights=own.astype(np.float64), minlength=start.size) > 1
        boundary = several & (np.minimum(to_start, to_end) <= BOUNDARY_TOL_M)

        rows = pi[cidx]
        hrow = np.isfinite(head[rows])
        conf = np.where(
            hrow,
            calibrate(rawp, *self.calibration[True]),
            calibrate(rawp, *self.calibration[False]),
        )
        lacc = np.log(acc[rows])
        threshold = np.where(hrow, self.bar_at(lacc, True), self.bar_at(lacc, False))
        ask_bar = np.where(hrow, self.bar_at(lacc, True, "ask"), self.bar_at(lacc, False, "ask"))
        out.index[rows] = si[cidx]
        out.distance_m[rows] = d[cidx]
        out.chainage_m[rows] = ce[:, _CUM] + t[cidx] * ce[:, _ELEN]
        out.raw[rows] = rawp
        out.confidence[rows] = conf
        wide = acc[rows] > MAX_CERTAIN_ACCURACY_M
        out.certain[rows] = (conf >= threshold) & ~wide
        out.ask[rows] = (conf < ask_bar) | wide
        out.boundary[rows] = boundary

        # candidates for the phone: the chosen one, then the best segment of each other
        # road-answer by weight (continuations of the chosen one are not offered twice)
        share = w / den[group]
        alt = ~own
        key2 = np.where(alt, -share, np.inf)
        order2 = _lexsort_grouped((d, key2, group))
        g2, r2 = group[order2], order2
        rank = np.arange(g2.size) - np.repeat(start, size)
        ok = alt[r2] & (rank < _MAX_CANDIDATES - 1)
        sel = r2[ok]
        slot = rank[ok] + 1
        prow = pi[sel]
        out.cand[rows, 0] = si[cidx]
        out.cand_d[rows, 0] = d[cidx]
        out.cand_p[rows, 0] = rawp
        out.cand[prow, slot] = si[sel]
        out.cand_d[prow, slot] = d[sel]
        out.cand_p[prow, slot] = share[sel]
        out.runner_up[prow[slot == 1]] = si[sel[slot == 1]]
        return out
