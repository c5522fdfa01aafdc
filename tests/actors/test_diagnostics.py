"""Deployment diagnostics: pure, rate-limited checks (rtrun.actors._diagnostics)."""

from __future__ import annotations

import numpy as np
import pytest
from rtrun.actors._diagnostics import (
    ActionCoverage,
    GripperClamp,
    NearZeroWatch,
    RateLimiter,
    describe_observation_mismatch,
    joint_name,
)
from rtrun.models.policy import FeatureSpec, ObservationMismatchError, PolicyMetadata, check_observation

NAMES = ("shoulder_pan.pos", "elbow_flex.pos", "gripper.pos")


def test_rate_limiter_counts_suppressed_events() -> None:
    lim = RateLimiter(5.0)
    assert lim.allow("x", 0.0) == 0
    assert lim.allow("x", 1.0) is None
    assert lim.allow("x", 2.0) is None
    assert lim.allow("y", 2.0) == 0  # keys are independent
    assert lim.allow("x", 5.0) == 2


def test_mismatch_message_lists_keys_and_suggests_rename_map() -> None:
    meta = PolicyMetadata(
        input_features={
            "observation.state": FeatureSpec(shape=(3,)),
            "observation.images.top": FeatureSpec(shape=(4, 5, 3), dtype="uint8", kind="image"),
        },
        action_names=NAMES,
        chunk_size=5,
        fps=30.0,
    )
    obs = {
        "observation.state": np.zeros(3, np.float32),
        "observation.images.front": np.zeros((4, 5, 3), np.uint8),
    }
    with pytest.raises(ObservationMismatchError) as info:
        check_observation(meta, obs)
    text = describe_observation_mismatch(
        info.value, rename_map={}, where="policy_worker 'p' param rename_map"
    )
    assert "expected:" in text and "provided:" in text
    assert "observation.images.top" in text and "observation.images.front" in text
    assert 'rename_map = { "observation.images.front" = "observation.images.top" }' in text
    assert "policy_worker 'p' param rename_map" in text


def test_action_coverage_warns_once_per_episode() -> None:
    cov = ActionCoverage()
    robot = ("shoulder_pan", "elbow_flex", "wrist_roll", "gripper")
    first = cov.check(NAMES, robot)
    assert first is not None and "wrist_roll" in first and "3 action dimensions" in first
    assert cov.check(NAMES, robot) is None  # once
    cov.rearm()
    assert cov.check(NAMES, robot) is not None  # re-armed at reset
    assert cov.check(NAMES, ("shoulder_pan", "elbow_flex", "gripper")) is None
    assert cov.warnings == 2


def test_near_zero_watch_once_per_streak() -> None:
    watch = NearZeroWatch(steps=3, atol=1e-3)
    zero, moving = np.zeros(3), np.array([0.0, 5.0, 0.0])
    assert [watch.observe(zero) is not None for _ in range(5)] == [False, False, True, False, False]
    assert watch.observe(moving) is None  # streak broken
    assert [watch.observe(zero) is not None for _ in range(3)] == [False, False, True]
    watch.reset()
    assert watch.observe(zero) is None
    assert watch.warnings == 2
    with pytest.raises(ValueError, match="steps >= 1"):
        NearZeroWatch(steps=0)


def test_gripper_clamp_counts_and_rate_limits() -> None:
    clamp = GripperClamp(NAMES, value_range=(0.0, 100.0), interval_s=5.0)
    ok = np.array([1.0, 2.0, 50.0], np.float32)
    res = clamp.apply(ok, 0.0)
    assert res.action is ok and not res.clamped and res.message is None
    res = clamp.apply(np.array([1.0, 2.0, 130.0], np.float32), 0.0)
    assert res.clamped and res.action.tolist() == [1.0, 2.0, 100.0] and "clamped" in (res.message or "")
    res = clamp.apply(np.array([1.0, 2.0, -3.0], np.float32), 1.0)
    assert res.action[2] == 0.0 and res.message is None  # counted, not logged
    res = clamp.apply(np.array([1.0, 2.0, -3.0], np.float32), 6.0)
    assert res.message is not None and "3 clamped so far" in res.message and "1 since" in res.message
    assert clamp.clamped == 3
    no_gripper = GripperClamp(("a.pos",))
    assert not no_gripper.apply(np.array([500.0]), 0.0).clamped
    with pytest.raises(ValueError, match="lo < hi"):
        GripperClamp(NAMES, value_range=(1.0, 1.0))


def test_joint_name() -> None:
    assert joint_name("gripper.pos") == "gripper"
    assert joint_name("gripper") == "gripper"
