"""Issue 22 acceptance d: the site-visit route against the exhaustive optimum."""

from __future__ import annotations

import itertools
import random

import pytest

from geo.match import matcher_for
from roadwatch.network.context import NetworkContext
from roadwatch.recurrence import route


@pytest.fixture(scope="module")
def graph(network_ctx: NetworkContext) -> route.Graph:
    return route.Graph(matcher_for(network_ctx.index))


def district_stops(
    ctx: NetworkContext, graph: route.Graph, rng: random.Random, n: int
) -> list[int]:
    """n segments of one district, all on the network's largest connected part."""
    main = route.largest_component(graph)
    district = rng.choice(sorted({s.district for s in ctx.network.segments}))
    pool = [
        i
        for i, s in enumerate(ctx.network.segments)
        if s.district == district and graph.start[i] in main
    ]
    return rng.sample(pool, n)


@pytest.mark.parametrize("n", [4, 6, 8, 9])
def test_route_within_125_percent_of_the_exhaustive_optimum(
    network_ctx: NetworkContext, graph: route.Graph, n: int
) -> None:
    worst = 0.0
    for seed in range(6):
        stops = district_stops(network_ctx, graph, random.Random(seed * 100 + n), n)
        r = route.plan_route(graph, stops)
        assert sorted(r.stops) == sorted(stops)  # every chosen segment, once
        matrix, _ = route.distances(graph, r.stops)
        best = route.path_length(matrix, route.best_order(matrix))
        assert r.metres == pytest.approx(route.path_length(matrix, list(range(n))), abs=0.1)
        worst = max(worst, r.metres / best)
        assert all(leg.on_network for leg in r.legs)
    print(f"{n} stops: worst route / optimum = {worst:.4f}")
    assert worst <= 1.25


def test_held_karp_is_the_exhaustive_optimum(
    network_ctx: NetworkContext, graph: route.Graph
) -> None:
    stops = district_stops(network_ctx, graph, random.Random(7), 7)
    matrix, _ = route.distances(graph, stops)
    brute = min(route.path_length(matrix, p) for p in itertools.permutations(range(len(stops))))
    assert route.path_length(matrix, route.best_order(matrix)) == pytest.approx(brute)
    first = route.best_order(matrix, first=3)
    assert first[0] == 3
    assert route.path_length(matrix, first) == pytest.approx(
        min(
            route.path_length(matrix, (3, *p))
            for p in itertools.permutations([i for i in range(7) if i != 3])
        )
    )


def test_legs_are_walks_on_the_graph(network_ctx: NetworkContext, graph: route.Graph) -> None:
    stops = district_stops(network_ctx, graph, random.Random(3), 8)
    r = route.plan_route(graph, stops, first=stops[5])
    assert r.stops[0] == stops[5]
    for leg in r.legs:
        # Consecutive segments of a leg share an end node.
        chain = [leg.src, *leg.via, leg.dst]
        for a, b in itertools.pairwise(chain):
            assert {graph.start[a], graph.end[a]} & {graph.start[b], graph.end[b]}
        walked = sum(graph.length[s] for s in leg.via)
        half = (graph.length[leg.src] + graph.length[leg.dst]) / 2
        assert leg.metres == pytest.approx(walked + half)
    assert r.minutes == pytest.approx(
        r.metres / route.WALK_MPS / 60 + route.DWELL_MIN * len(stops), abs=0.1
    )


def test_off_network_stops_still_get_a_route(
    network_ctx: NetworkContext, graph: route.Graph
) -> None:
    main = route.largest_component(graph)
    inside = next(i for i in range(len(graph.start)) if graph.start[i] in main)
    outside = next(i for i in range(len(graph.start)) if graph.start[i] not in main)
    r = route.plan_route(graph, [inside, outside])
    assert len(r.legs) == 1 and not r.legs[0].on_network and r.legs[0].metres > 0
