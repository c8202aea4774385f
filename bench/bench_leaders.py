"""Benchmark issue 22's pieces on the demo city and generated histories (a script, not a test).

    .venv/bin/python bench/bench_leaders.py [--runs 5] [--stops 20]

* site-visit route: `route.plan_route` through --stops segments of one district on the
  demo network's connected part (graph built once, as the server does), median and worst
  of --runs runs, beside the exhaustive optimum's time and length on 9 stops;
* forecast and patrol plans on the tests' generated history (seed 11): fit time, held-out
  MAE / deviance against "same as last week", findings per patrol hour against a rotation.
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
    args = ap.parse_args()

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


if __name__ == "__main__":
    main()
