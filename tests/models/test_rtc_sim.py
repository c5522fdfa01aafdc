"""RTC targets on the sans-io cores, in virtual time (``rtrun.models._rtc_sim``)."""

from __future__ import annotations

import numpy as np
import pytest
from rtrun.models._rtc_sim import simulate
from rtrun.models.rtc import PlannerConfig
from rtrun.models.testing_policies import ScriptedPolicy, SleepPolicy


def sleep_policy(latency_s: float, chunk_size: int = 50) -> SleepPolicy:
    return SleepPolicy(latency_s, chunk_size, ["a", "b"], fps=30.0, sleep=None)


def test_300ms_at_30hz_for_10_minutes_never_starves() -> None:
    res = simulate(sleep_policy(0.3), duration_s=600.0)
    assert res.ticks == 18_000
    assert res.starved_ticks == 0
    assert res.source.empty_ticks <= 10  # only before the first chunk: ceil(0.3·30) + 1 ticks
    assert res.max_jump == 1.0  # the ramp advances one step per tick: seamless merges
    assert res.planner.merges > 400
    assert res.planner.max_latency_s == pytest.approx(0.3)
    assert res.source.delay_mismatches == 1  # only the first chunk is over-trimmed (§2.6)


@pytest.mark.parametrize("latency_s", [0.05, 0.15, 0.3])
@pytest.mark.parametrize("rtc", [True, False])
def test_no_empty_ticks_up_to_300ms(latency_s: float, rtc: bool) -> None:
    res = simulate(sleep_policy(latency_s), duration_s=60.0, planner=PlannerConfig(rtc_enabled=rtc))
    assert res.starved_ticks == 0
    assert res.max_jump == 1.0


def test_rtc_off_ignores_prefix() -> None:
    policy = sleep_policy(0.1)
    simulate(policy, duration_s=5.0, planner=PlannerConfig(rtc_enabled=False))
    assert policy.last_call is not None
    assert policy.last_call == (0, None)


@pytest.mark.parametrize("fallback", ["hold", "repeat_last", "zero"])
def test_latency_of_one_and_a_half_chunks_engages_the_fallback(fallback: str) -> None:
    chunk_s = 50 / 30
    res = simulate(
        sleep_policy(1.5 * chunk_s),
        duration_s=30.0,
        fallback=fallback,
        planner=PlannerConfig(rtc_enabled=False),
        max_action_age_s=None,
        record=True,
    )
    assert res.starved_ticks > 0
    assert res.actions is not None
    empty = np.isnan(res.actions).all(axis=1)
    if fallback == "hold":
        assert res.source.fallback_ticks == 0
        assert empty.sum() == res.source.empty_ticks
    elif fallback == "zero":
        assert res.source.fallback_ticks == res.source.empty_ticks
        assert not empty.any()  # a zero fallback always commands something
        assert (res.actions == 0).all(axis=1).sum() >= res.source.fallback_ticks
    else:
        assert res.source.fallback_ticks == res.starved_ticks  # nothing to repeat before
        assert res.max_jump == 1.0  # the ramp resumes where it stopped; repeating never jumps


def test_rtc_trims_whole_chunk_when_latency_exceeds_it() -> None:
    res = simulate(sleep_policy(2.5), duration_s=20.0, fallback="zero")
    assert res.source.queue_ticks == 0  # ceil(L/dt) = 75 >= 50: every chunk fully trimmed
    assert res.source.fallback_ticks == res.ticks
    fixed = simulate(
        sleep_policy(2.5),
        duration_s=20.0,
        fallback="zero",
        planner=PlannerConfig(clamp_trim_to_consumed=True),
    )
    assert fixed.source.queue_ticks > 0  # the opt-in clamp keeps what was not consumed


def test_staleness_bound_clears_old_chunks() -> None:
    res = simulate(
        sleep_policy(0.3, chunk_size=200),
        duration_s=30.0,
        planner=PlannerConfig(buffer_time_s=0.5, rtc_enabled=False),
        max_action_age_s=1.0,
    )
    assert res.source.stale_drops > 0


def max_speed(policy: ScriptedPolicy, steps: int) -> float:
    """Largest per-step change of the policy's own planned trajectory."""
    return float(np.abs(np.diff(policy.trajectory(np.arange(steps)), axis=0)).max())


def test_scripted_policy_is_smooth_under_rtc() -> None:
    policy = ScriptedPolicy()
    res = simulate(policy, duration_s=60.0, latency_fn=lambda _i: 0.3, interpolation_multiplier=2)
    assert res.starved_ticks == 0
    # Interpolation halves each step; the first chunk's over-trim (9 steps) happens during the
    # slow start of the initial blend.
    assert res.max_jump < 2.0


def test_clamp_makes_scripted_run_exactly_as_smooth_as_planned() -> None:
    policy = ScriptedPolicy()
    res = simulate(
        policy,
        duration_s=20.0,
        latency_fn=lambda _i: 0.3,
        planner=PlannerConfig(clamp_trim_to_consumed=True),
    )
    assert res.starved_ticks == 0
    assert res.max_jump <= max_speed(policy, 600) + 1e-4


def test_episode_resets_in_simulation() -> None:
    res = simulate(sleep_policy(0.2), duration_s=30.0, reset_every_s=5.0)
    assert res.source.episode == 5
    assert res.planner.episode == 5
    assert res.starved_ticks == 0
    assert res.max_jump == 1.0  # the ramp restarts at 0 each episode; resets break the series
