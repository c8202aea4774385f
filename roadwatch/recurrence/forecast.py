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

from .history import WINDOWS, FloatArray, History

FLOOR = 0.5  # forecasts below half a finding count as 0.5 in the deviance (see `deviance`)
SEGMENT_PENALTIES = (1.0, 4.0, 16.0, 64.0)
WINDOW_PENALTIES = (4.0, 16.0, 64.0, 256.0)
DEFAULT_PENALTIES = (4.0, 16.0)
WINDOW_RIDGE = 0.01  # all but free: keeps a window no one ever reported in finite


@dataclass(frozen=True)
class Model:
    rates: FloatArray  # [segment, window]: expected findings next week
    penalties: tuple[float, float]
    iterations: int

    def per_segment(self) -> FloatArray:
        out: FloatArray = self.rates.sum(axis=1)
        return out


def fit(
    history: History,
    weeks: slice,
    penalties: tuple[float, float] | None = None,
    *,
    max_iter: int = 30,
) -> Model:
    """Fit on `weeks` of the history; penalties (segment, district × window) or chosen.

    Parameters: a[s] (segment), g[w] (window), h[d, w] (district × window). The segment
    block of the Hessian is diagonal, so each Newton step solves the windows' block by its
    Schur complement (windows + districts × windows unknowns, whatever the segment count).
    """
    if penalties is None:
        penalties = choose_penalties(history, weeks)
    counts = history.counts[weeks]
    t = counts.shape[0]
    y = counts.sum(axis=0).astype(np.float64)  # [segment, window]
    n = y.shape[0]
    names = sorted(history.districts())
    d_of = np.array([names.index(s.district) for s in history.segments], dtype=np.int64)
    member = np.zeros((len(names), n))
    member[d_of, np.arange(n)] = 1.0  # [district, segment]
    q = WINDOWS * (1 + len(names))
    diag_q = np.concatenate([np.full(WINDOWS, WINDOW_RIDGE), np.full(q - WINDOWS, penalties[1])])
    a = np.zeros(n)
    g = np.full(WINDOWS, np.log(max(float(y.mean()), 1e-3) / t))
    h = np.zeros((len(names), WINDOWS))

    def objective(a: FloatArray, g: FloatArray, h: FloatArray) -> float:
        """The penalised log-likelihood (to be maximised)."""
        eta = np.clip(a[:, None] + g[None, :] + h[d_of], -50.0, 50.0)
        ll = float((y * eta - t * np.exp(eta)).sum())
        pen = penalties[0] * float(a @ a) + penalties[1] * float((h * h).sum())
        return ll - 0.5 * (pen + WINDOW_RIDGE * float(g @ g))

    iterations = 0
    current = objective(a, g, h)
    while iterations < max_iter:
        iterations += 1
        mu = t * np.exp(a[:, None] + g[None, :] + h[d_of])
        r = y - mu
        grad_a = r.sum(axis=1) - penalties[0] * a
        by_district = member @ r
        grad_q = np.concatenate(
            [r.sum(axis=0) - WINDOW_RIDGE * g, (by_district - penalties[1] * h).ravel()]
        )
        big_a = mu.sum(axis=1) + penalties[0]
        mu_d = member @ mu  # [district, window]
        cmat = np.diag(np.concatenate([mu.sum(axis=0), mu_d.ravel()]) + diag_q)
        idx = np.arange(WINDOWS * len(names))
        cmat[idx % WINDOWS, WINDOWS + idx] = mu_d.ravel()
        cmat[WINDOWS + idx, idx % WINDOWS] = mu_d.ravel()
        # The Schur complement C − Bᵀ A⁻¹ B block by block: B has one column per window and
        # one per (own district, window), so every block is a district's Σ μ μᵀ / A.
        scaled = mu / big_a[:, None]
        for d in range(len(names)):
            rows_d = d_of == d
            m_d = scaled[rows_d].T @ mu[rows_d]  # [window, window]
            lo = WINDOWS * (1 + d)
            cmat[:WINDOWS, :WINDOWS] -= m_d
            cmat[:WINDOWS, lo : lo + WINDOWS] -= m_d
            cmat[lo : lo + WINDOWS, :WINDOWS] -= m_d
            cmat[lo : lo + WINDOWS, lo : lo + WINDOWS] -= m_d
        bt_a = scaled * grad_a[:, None]  # rows of Bᵀ A⁻¹ grad_a before summing
        rhs = grad_q - np.concatenate([bt_a.sum(axis=0), (member @ bt_a).ravel()])
        dq = np.linalg.solve(cmat, rhs)
        per_cell = dq[:WINDOWS][None, :] + dq[WINDOWS:].reshape(h.shape)[d_of]
        da = (grad_a - (mu * per_cell).sum(axis=1)) / big_a
        # Step halving: a full Newton step from far away (a window or district with no
        # finding at all, whose effect heads for −∞) may overshoot; never accept a worse fit.
        step = 1.0
        while True:
            na, ng = a + step * da, g + step * dq[:WINDOWS]
            nh = h + step * dq[WINDOWS:].reshape(h.shape)
            new = objective(na, ng, nh)
            if new >= current - 1e-9 or step < 1e-4:
                break
            step /= 2
        a, g, h, current = na, ng, nh, new
        if step * max(float(np.abs(da).max()), float(np.abs(dq).max())) < 1e-6:
            break
    rates = np.exp(a[:, None] + g[None, :] + h[d_of])
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
