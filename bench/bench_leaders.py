"""Benchmark issue 22's pieces on the demo city and generated histories (a script, not a test).

    .venv/bin/python bench/bench_leaders.py [--runs 5] [--stops 20]

* site-visit route: `route.plan_route` through --stops segments of one district on the
  demo network's connected part (graph built once, as the server does), median and worst
  of --runs runs, beside the exhaustive optimum's time and length on 9 stops;
* forecast and patrol plans on the tests' generated history (seed 11): fit time, held-out
  MAE / deviance against "same as last week", findings per patrol hour against a rotation;
* with --db URL (a seeded demo database, `roadwatch demo seed --weeks 12`): the week's
  analysis computed (what a first request paid before it was stored), stored, and read
  back (what the API pays now), and the plans made from it, median of --runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from geo.match import matcher_for
from roadwatch.network.context import load_network_context
from roadwatch.recurrence import forecast, plans, route, synth
from roadwatch.settings import load_settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--stops", type=int, default=20)
    ap.add_argument("--db", help="a seeded demo database: time the stored analysis only")
    args = ap.parse_args()
    if args.db:
        stored_analysis(args.db, args.runs)
        return

    ctx = load_network_context(load_settings(env={}))
    t0 = time.perf_counter()
    graph = route.Graph(matcher_for(ctx.index))
    print(f"graph: {len(graph.adj)} nodes, built in {time.perf_counter() - t0:.3f} s")
    main_part = route.largest_component(graph)
    segs = ctx.network.segments
    times, lengths = [], []
    for run in range(args.runs):
        rng = random.Random(run)
        district = rng.choice(sorted({s.district for s in segs}))
        pool = [
            i for i, s in enumerate(segs) if s.district == district and graph.start[i] in main_part
        ]
        stops = rng.sample(pool, min(args.stops, len(pool)))
        t0 = time.perf_counter()
        r = route.plan_route(graph, stops)
        times.append(time.perf_counter() - t0)
        lengths.append(r.metres)
    print(
        f"route, {args.stops} stops: median {statistics.median(times):.3f} s, "
        f"worst {max(times):.3f} s (target < 2 s); lengths {min(lengths):.0f}–{max(lengths):.0f} m"
    )
    rng = random.Random(99)
    pool = [
        i
        for i, s in enumerate(segs)
        if graph.start[i] in main_part and s.district == segs[0].district
    ]
    stops = rng.sample(pool, 9)
    t0 = time.perf_counter()
    r = route.plan_route(graph, stops)
    heuristic_s = time.perf_counter() - t0
    matrix, _ = route.distances(graph, list(r.stops))
    t0 = time.perf_counter()
    best = route.path_length(matrix, route.best_order(matrix))
    exact_s = time.perf_counter() - t0
    print(
        f"9 stops: heuristic {r.metres:.0f} m in {heuristic_s:.3f} s; "
        f"optimum {best:.0f} m (Held–Karp {exact_s:.3f} s); ratio {r.metres / best:.4f}"
    )

    g = synth.generate(synth.Params(seed=11))
    t0 = time.perf_counter()
    model = forecast.fit(g.history, slice(0, 8))
    print(
        f"forecast fit (600 segments, 8 weeks, penalties chosen): {time.perf_counter() - t0:.2f} s"
    )
    ev = forecast.evaluate(g.history, 4)
    print(
        f"held-out MAE {ev.model_mae:.3f} vs naive {ev.naive_mae:.3f}; "
        f"deviance {ev.model_deviance:.3f} vs {ev.naive_deviance:.3f}"
    )
    planned = plans.plan_all(g.history, model.rates)
    rot = [
        plans.uniform_rotation(c, [g.history.segments[i].id for i in idx])
        for c, idx in g.history.chiefs().items()
    ]
    a, ha = plans.findings_caught(planned.values(), g.history, slice(8, 12))
    b, hb = plans.findings_caught(rot, g.history, slice(8, 12))
    gain = (a / ha) / (b / hb)
    print(f"findings per patrol hour: plan {a / ha:.4f}, rotation {b / hb:.4f}, ×{gain:.2f}")


def stored_analysis(url: str, runs: int) -> None:
    import datetime as dt

    from sqlalchemy import func, select

    from roadwatch.recurrence import stored
    from roadwatch.recurrence.load import current_chiefs
    from roadwatch.store import db, models

    ctx = load_network_context(load_settings(env={}))
    engine = db.make_engine(url)
    with engine.connect() as conn:
        last = conn.execute(select(func.max(models.Report.observed_at))).scalar()
    now = (last or dt.datetime.now(dt.UTC)).replace(tzinfo=dt.UTC) + dt.timedelta(days=7)
    t0 = time.perf_counter()
    a = stored.compute(engine, ctx.network, now)
    compute_s = time.perf_counter() - t0
    stored.save(engine, a, now)
    reads: list[float] = []
    planning: list[float] = []
    single: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        b = stored.load(engine, now)
        reads.append(time.perf_counter() - t0)
        assert b is not None
        t0 = time.perf_counter()
        index = b.index
        chiefs: dict[str, list[int]] = {}
        for seg, who in current_chiefs(engine).items():
            if seg in index:
                chiefs.setdefault(who, []).append(index[seg])
        planned = plans.plan_chiefs(chiefs, [i for i, _ in b.segments], b.rates, b.seen)
        planning.append(time.perf_counter() - t0)
        one = sorted(chiefs)[0]
        t0 = time.perf_counter()
        plans.plan_chiefs({one: chiefs[one]}, [i for i, _ in b.segments], b.rates, b.seen)
        single.append(time.perf_counter() - t0)
    findings = int(a.seen.sum())
    print(
        f"analysis of {len(a.segments)} segments, {findings} findings in {a.weeks} weeks: "
        f"computed in {compute_s:.2f} s; stored, read back in {statistics.median(reads):.3f} s "
        f"median (worst {max(reads):.3f} s); {len(planned)} chiefs' plans in "
        f"{statistics.median(planning):.3f} s median, one chief's in "
        f"{statistics.median(single) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
