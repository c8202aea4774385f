"""Who lives in the demo city: chiefs that differ, evaluators, covert checkers, hot spots.

Everything is drawn from one `random.Random(seed)` in a fixed order (sorted ids, never a
set's order), so the same seed makes the same city.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from geo.network import Network

# Demo reporters that answer for no segment (registered by the seed, marked as demo).
EVALUATORS = (
    ("demo-eval-01", "第三方测评一组"),
    ("demo-eval-02", "第三方测评二组"),
    ("demo-eval-03", "第三方测评三组"),
)
COVERT = (("demo-covert-01", "暗访一组"), ("demo-covert-02", "暗访二组"))
HOTLINE = ("demo-12345", "12345 市民热线")  # the public's complaints, filed by a city system


@dataclass(frozen=True, slots=True)
class Profile:
    """How a road chief works."""

    name: str
    on_time: float  # share of cases rectified within the limit
    late: float  # share rectified after the limit (the rest: left undone for days)
    self_report: float  # share of their segment's findings they report themselves
    logs_patrols: float  # chance their phone logs patrols at all
    patrol_days: tuple[int, int]  # days a week walked, when logged
    passes: float  # chance a rectification passes verification
    problems: float  # how many problems their segments gather (× the city's rate)


DILIGENT = Profile("diligent", 0.95, 0.04, 0.6, 0.2, (6, 7), 0.95, 0.35)
ORDINARY = Profile("ordinary", 0.8, 0.15, 0.35, 0.03, (2, 5), 0.85, 1.0)
NEGLIGENT = Profile("negligent", 0.45, 0.35, 0.1, 0.01, (0, 2), 0.65, 1.8)
PROFILES = {p.name: p for p in (DILIGENT, ORDINARY, NEGLIGENT)}

# District character: shares of diligent / ordinary / negligent chiefs.
DISTRICT_MIX: dict[str, tuple[float, float, float]] = {
    "EQ": (0.45, 0.35, 0.20),
    "JS": (0.30, 0.55, 0.15),
    "ZD": (0.35, 0.55, 0.10),
    "ZY": (0.25, 0.55, 0.20),
    "GC": (0.15, 0.45, 0.40),
    "JK": (0.25, 0.60, 0.15),
    "HJ": (0.20, 0.50, 0.30),
    "GX": (0.30, 0.55, 0.15),
}
DEFAULT_MIX = (0.25, 0.55, 0.20)
# How closely a district is watched (its evaluator contract): 二七区 is inspected most,
# so a quiet record there means something (the ranking's red needs expected evidence).
WATCH = {"EQ": 2.5}
HOT_SPOTS_PER_DISTRICT = 2
HOT_FACTOR = 7.0  # a hot spot's problems × its chief's usual


@dataclass(slots=True)
class Chief:
    id: str  # level-3 road chief (路段长)
    profile: Profile
    segments: list[int] = field(default_factory=list)  # positions in network.segments
    logs_patrols: bool = False


@dataclass(slots=True)
class City:
    network: Network
    chiefs: dict[str, Chief]  # level-3 chief id → chief
    chief_of: dict[int, str]  # segment position → its level-3 chief
    superior_of: dict[int, str]  # segment position → its level-2 chief (verifies)
    hot: frozenset[int]  # hot-spot segment positions
    rate: dict[int, float]  # findings a week expected on each active segment
    active: list[int]  # segment positions where the demo happens (sorted)


CLASS_FACTOR = {"arterial": 1.5, "secondary": 1.2, "local": 1.0}


def build_city(
    network: Network,
    rng: random.Random,
    districts: Sequence[str] | None = None,
    findings_per_week: float = 800.0,
) -> City:
    """The demo's people and rates over `districts` (all when None)."""
    segs = network.segments
    wanted = set(districts) if districts else None
    active = [i for i, s in enumerate(segs) if wanted is None or s.district in wanted]
    pos = {s.id: i for i, s in enumerate(segs)}
    chief_of: dict[int, str] = {}
    superior_of: dict[int, str] = {}
    for a in network.assignments:  # the network's current posts (valid_to None)
        i = pos.get(a.segment_id)
        if i is None or a.role != "road_chief" or a.valid_to is not None:
            continue
        if a.level == 3:
            chief_of[i] = a.person_id
        elif a.level == 2:
            superior_of[i] = a.person_id
    active = [i for i in active if i in chief_of and i in superior_of]
    by_chief: dict[str, list[int]] = {}
    for i in active:
        by_chief.setdefault(chief_of[i], []).append(i)
    chiefs: dict[str, Chief] = {}
    for cid in sorted(by_chief):
        district = segs[by_chief[cid][0]].district
        d, o, _n = DISTRICT_MIX.get(district, DEFAULT_MIX)
        roll = rng.random()
        profile = DILIGENT if roll < d else ORDINARY if roll < d + o else NEGLIGENT
        chief = Chief(cid, profile, sorted(by_chief[cid]))
        # a chief of a main road is watched more, and logs their walks more often
        main = any(segs[i].road_class == "arterial" for i in chief.segments)
        chief.logs_patrols = rng.random() < profile.logs_patrols * (3.0 if main else 1.0)
        chiefs[cid] = chief
    # hot spots: a couple of busy segments per district (markets, school gates, night food)
    hot: set[int] = set()
    by_district: dict[str, list[int]] = {}
    for i in active:
        by_district.setdefault(segs[i].district, []).append(i)
    for code in sorted(by_district):
        pool = [i for i in by_district[code] if chiefs[chief_of[i]].profile is not DILIGENT]
        for i in rng.sample(pool, min(HOT_SPOTS_PER_DISTRICT, len(pool))):
            hot.add(i)
    weight: dict[int, float] = {}
    for i in active:
        s = segs[i]
        w = max(s.length_m, 100.0) / 1000.0 * CLASS_FACTOR.get(s.road_class, 1.0)
        w *= chiefs[chief_of[i]].profile.problems * WATCH.get(s.district, 1.0)
        if i in hot:
            w *= HOT_FACTOR
        weight[i] = w
    total = sum(weight[i] for i in active) or 1.0
    scale = findings_per_week * len(active) / max(1, len(segs)) / total
    rate = {i: weight[i] * scale for i in active}
    return City(network, chiefs, chief_of, superior_of, frozenset(hot), rate, active)
