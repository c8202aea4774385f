"""Issue 22 acceptance b: patrol plans against a uniform rotation on held-out weeks."""

from __future__ import annotations

import numpy as np
import pytest

from roadwatch.recurrence import forecast, hotspots, plans, synth
from roadwatch.recurrence.history import WINDOW_HOURS
from tests.test_recurrence import HELD_OUT, SEEDS, WEEKS, params

WEEKEND_DUTY = plans.duty_windows(days=(2, 3, 4, 5, 6), start_hour=10, end_hour=22)


@pytest.mark.parametrize("seed", SEEDS)
def test_plans_find_20_percent_more_per_patrol_hour_than_a_rotation(seed: int) -> None:
    g = synth.generate(params(seed))
    h = g.history
    train, held = slice(0, WEEKS - HELD_OUT), slice(WEEKS - HELD_OUT, WEEKS)
    model = forecast.fit(h, train)
    chiefs = h.chiefs()
    # Every third chief works Wednesday to Sunday, 10:00–22:00.
    duty = {c: WEEKEND_DUTY for k, c in enumerate(sorted(chiefs)) if k % 3 == 0}
    planned = plans.plan_all(h, model.rates, duty=duty)
    rotation = [
        plans.uniform_rotation(
            c, [h.segments[i].id for i in idx], duty=duty.get(c, plans.DEFAULT_DUTY)
        )
        for c, idx in chiefs.items()
    ]
    found, hours = plans.findings_caught(planned.values(), h, held)
    base, base_hours = plans.findings_caught(rotation, h, held)
    assert hours == base_hours > 0
    gain = (found / hours) / (base / base_hours)
    print(
        f"seed {seed}: plan {found / hours:.4f} findings/patrol hour ({found} in {hours:.0f} h), "
        f"rotation {base / base_hours:.4f} ({base}); ×{gain:.2f}"
    )
    assert gain >= 1.2
    for chief, plan in planned.items():
        hours_of = duty.get(chief, plans.DEFAULT_DUTY)
        assert plans.fits_duty(plan, hours_of, plans.DEFAULT_PATROLS)
        assert len(plan.visits) == plans.DEFAULT_PATROLS
        # No segment of the chief goes a week without a visit.
        assert {v.segment for v in plan.visits} == {h.segments[i].id for i in chiefs[chief]}


def test_duty_windows() -> None:
    assert plans.duty_windows(days=[0], start_hour=8, end_hour=18) == (4, 5, 6, 7, 8)
    assert plans.duty_windows(days=[6], start_hour=9, end_hour=13) == (6 * 12 + 5,)
    assert len(plans.DEFAULT_DUTY) == 5 * 10 // WINDOW_HOURS


def test_a_chief_with_no_history_gets_the_busiest_duty_windows() -> None:
    g = synth.generate(params(SEEDS[0]))
    profile = hotspots.window_profile(g.history)
    plan = plans.plan_chief("new-chief", ["A", "B", "C"], None, profile=profile)
    assert plan.basis == "default"
    assert plans.fits_duty(plan, plans.DEFAULT_DUTY, plans.DEFAULT_PATROLS)
    assert len(plan.visits) == plans.DEFAULT_PATROLS
    assert {v.segment for v in plan.visits} == {"A", "B", "C"}
    busiest = sorted(plans.DEFAULT_DUTY, key=lambda w: -profile[w])[: plans.DEFAULT_PATROLS]
    assert sorted(v.window for v in plan.visits) == sorted(busiest)
    # With no profile either: still a full plan within duty hours.
    bare = plans.plan_chief("new-chief", ["A"], None, duty=plans.duty_windows(days=[0, 1]))
    assert len(bare.visits) == plans.DEFAULT_PATROLS
    assert plans.fits_duty(bare, plans.duty_windows(days=[0, 1]), plans.DEFAULT_PATROLS)


def test_a_plan_never_exceeds_the_duty_windows() -> None:
    rates = np.ones((2, 84))
    short = plans.duty_windows(days=[0], start_hour=8, end_hour=12)  # two windows
    plan = plans.plan_chief("c", ["A", "B", "C"], np.ones((3, 84)), duty=short, patrols=10)
    assert len(plan.visits) == 2 and plans.fits_duty(plan, short, 10)
    assert plans.uniform_rotation("c", ["A", "B"], duty=short).visits[0].window in short
    assert plans.plan_chief("c", [], rates).visits == ()
