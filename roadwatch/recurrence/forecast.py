"""Next week's findings per segment and window: a Poisson regression fitted by IRLS.

log E[y(s, w)] = segment effect + window effect + district × window effect, fitted to the
counts summed over the training weeks (exposure: the number of weeks), with ridge penalties
on the segment and district × window effects (a normal prior on the log scale: a segment
with a short record is pulled towards its district instead of taking its raw count). The
penalties are chosen on the last training week, fitted on the weeks before it. Newton steps
on the penalised log-likelihood are IRLS for this canonical link; the Hessian is built from
the cell counts directly (a dense design matrix would hold cells × parameters numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .history import WINDOWS, FloatArray, History, IntArray

FLOOR = 0.5  # forecasts below half a finding count as 0.5 in the deviance (see `deviance`)
SEGMENT_PENALTIES = (1.0, 4.0, 16.0, 64.0)
WINDOW_PENALTIES = (4.0, 16.0, 64.0, 256.0)
DEFAULT_PENALTIES = (4.0, 16.0)


@dataclass(frozen=True)
class Model:
    rates: FloatArray  # [segment, window]: expected findings next week
    penalties: tuple[float, float]
    iterations: int

    def per_segment(self) -> FloatArray:
        out: FloatArray = self.rates.sum(axis=1)
        return out


def _design(history: History) -> tuple[list[IntArray], list[int]]:
    """Per effect group, the parameter each (segment, window) cell uses; group sizes."""
    s_count = len(history.segments)
    districts = sorted(history.districts())
    d_of = np.array([districts.index(s.district) for s in history.segments], dtype=np.int64)
    seg = np.repeat(np.arange(s_count, dtype=np.int64), WINDOWS)
    win = np.tile(np.arange(WINDOWS, dtype=np.int64), s_count)
    dwin = d_of[seg] * WINDOWS + win
    return [seg, win, dwin], [s_count, WINDOWS, len(districts) * WINDOWS]


def fit(
    history: History,
    weeks: slice,
    penalties: tuple[float, float] | None = None,
    *,
    max_iter: int = 30,
) -> Model:
    """Fit on `weeks` of the history; penalties (segment, district × window) or chosen."""
    if penalties is None:
        penalties = choose_penalties(history, weeks)
    counts = history.counts[weeks]
    t = counts.shape[0]
    y = counts.sum(axis=0).reshape(-1).astype(np.float64)
    groups, sizes = _design(history)
    offsets = np.cumsum([0, *sizes])
    cols = [g + o for g, o in zip(groups, offsets[:-1], strict=True)]
    p = int(offsets[-1])
    ridge = np.concatenate(
        [np.full(sizes[0], penalties[0]), np.full(sizes[1], 1e-4), np.full(sizes[2], penalties[1])]
    )
    beta = np.zeros(p)
    beta[offsets[1] : offsets[2]] = np.log(max(y.mean(), 1e-3) / t)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        eta = sum(beta[c] for c in cols)
        mu = t * np.exp(eta)
        grad = np.zeros(p)
        for c in cols:
            grad += np.bincount(c, weights=y - mu, minlength=p)
        grad -= ridge * beta
        hess = np.zeros(p * p)
        for a in cols:
            for b in cols:
                hess += np.bincount(a * p + b, weights=mu, minlength=p * p)
        h = hess.reshape(p, p) + np.diag(ridge)
        step = np.linalg.solve(h, grad)
        beta += step
        if float(np.abs(step).max()) < 1e-6:
            break
    eta = sum(beta[c] for c in cols)
    rates = np.exp(eta).reshape(len(history.segments), WINDOWS)
    return Model(rates, penalties, iterations)


def choose_penalties(history: History, weeks: slice) -> tuple[float, float]:
    """The penalties whose fit on all but the last week of `weeks` best predicts that week
    (the segment penalty first, then the district × window one); the defaults when there are
    fewer than three weeks to learn from."""
    start, stop, _ = weeks.indices(history.counts.shape[0])
    if stop - start < 3:
        return DEFAULT_PENALTIES
    held = history.counts[stop - 1].sum(axis=1).astype(np.float64)

    def score(pen: tuple[float, float]) -> float:
        return deviance(held, fit(history, slice(start, stop - 1), pen).per_segment())

    seg = min(SEGMENT_PENALTIES, key=lambda a: score((a, DEFAULT_PENALTIES[1])))
    win = min(WINDOW_PENALTIES, key=lambda b: score((seg, b)))
    return seg, win


def deviance(y: FloatArray, mu: FloatArray) -> float:
    """Mean Poisson deviance; forecasts are floored at FLOOR, because "same as last week"
    forecasts 0 for a segment that had none, and a single finding there would make its
    deviance infinite (the floor is applied to every forecast alike)."""
    m = np.maximum(mu, FLOOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / m), 0.0)
    return float(np.mean(2.0 * (term - (y - m))))


@dataclass(frozen=True)
class Evaluation:
    weeks: int  # held-out weeks
    segments: int
    model_mae: float
    naive_mae: float
    model_deviance: float
    naive_deviance: float
    penalties: tuple[float, float]


def evaluate(history: History, held_out: int) -> Evaluation:
    """Rolling origin over the last `held_out` weeks: fit on every week before week k,
    forecast week k; the naive forecast is week k − 1 as it was. Errors per segment-week."""
    total = history.counts.shape[0]
    first = total - held_out
    if first < 2:
        raise ValueError("need at least two weeks before the held-out ones")
    penalties = choose_penalties(history, slice(0, first))
    ys, model_f, naive_f = [], [], []
    for k in range(first, total):
        model = fit(history, slice(0, k), penalties)
        ys.append(history.counts[k].sum(axis=1))
        model_f.append(model.per_segment())
        naive_f.append(history.counts[k - 1].sum(axis=1))
    y = np.concatenate(ys).astype(np.float64)
    mf = np.concatenate(model_f)
    nf = np.concatenate(naive_f).astype(np.float64)
    return Evaluation(
        held_out,
        len(history.segments),
        float(np.mean(np.abs(y - mf))),
        float(np.mean(np.abs(y - nf))),
        deviance(y, mf),
        deviance(y, nf),
        penalties,
    )
