"""SleepPolicy and ScriptedPolicy."""

from __future__ import annotations

import time

import numpy as np
import pytest
from rtrun.models.policy import MetadataError, check_chunk, check_observation
from rtrun.models.testing_policies import (
    SO101_ACTION_NAMES,
    SO101_LIMITS_DEG,
    ScriptedPolicy,
    SleepPolicy,
)

# ------------------------------------------------------------------------------ SleepPolicy


def test_sleep_policy_sleeps_in_the_calling_thread() -> None:
    p = SleepPolicy(0.05, 4, ["a", "b"])
    t0 = time.perf_counter()
    chunk = p.predict_chunk({}, inference_delay=0, prefix=None)
    assert time.perf_counter() - t0 >= 0.05
    assert chunk.shape == (4, 2)
    assert chunk.dtype == np.float32
    check_chunk(p.metadata, chunk)


def test_sleep_policy_virtual_mode_uses_injected_sleep() -> None:
    slept: list[float] = []
    p = SleepPolicy(0.3, 4, ["a"], sleep=slept.append)
    p.predict_chunk({}, inference_delay=0, prefix=None)
    assert slept == [0.3]
    p.latency_s = 0.6  # mutable: a harness may change the latency mid-run
    p.predict_chunk({}, inference_delay=0, prefix=None)
    assert slept == [0.3, 0.6]
    assert SleepPolicy(0.3, 4, ["a"], sleep=None).latency_s == 0.3


def test_sleep_policy_ramp_continues_prefix_or_previous_chunk() -> None:
    p = SleepPolicy(0.0, 4, ["a", "b"], sleep=None)
    first = p.predict_chunk({}, inference_delay=0, prefix=None)
    np.testing.assert_array_equal(first[:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(first[:, 1], first[:, 0])
    second = p.predict_chunk({}, inference_delay=0, prefix=None)
    np.testing.assert_array_equal(second[:, 0], [4, 5, 6, 7])
    prefix = np.array([[6.0, 6.0], [7.0, 7.0]], dtype=np.float32)
    third = p.predict_chunk({}, inference_delay=2, prefix=prefix)
    np.testing.assert_array_equal(third[:, 0], [6, 7, 8, 9])
    assert p.calls == 3
    assert p.last_call is not None
    assert p.last_call[0] == 2
    p.reset()
    np.testing.assert_array_equal(p.predict_chunk({}, inference_delay=0, prefix=None)[:, 0], [0, 1, 2, 3])


def test_sleep_policy_without_rtc_ignores_prefix() -> None:
    p = SleepPolicy(0.0, 3, ["a"], supports_rtc_prefix=False, sleep=None)
    p.predict_chunk({}, inference_delay=0, prefix=None)
    out = p.predict_chunk({}, inference_delay=0, prefix=np.array([[50.0]]))
    np.testing.assert_array_equal(out[:, 0], [3, 4, 5])
    assert not p.metadata.supports_rtc_prefix


def test_sleep_policy_rejects_negative_latency() -> None:
    with pytest.raises(MetadataError, match="latency_s"):
        SleepPolicy(-1.0, 4, ["a"])


# --------------------------------------------------------------------------- ScriptedPolicy


def state(values: list[float] | None = None) -> dict[str, np.ndarray]:
    return {"observation.state": np.array(values or [0.0] * 6, dtype=np.float32)}


def test_scripted_metadata_and_limits() -> None:
    p = ScriptedPolicy()
    m = p.metadata
    assert m.action_names == SO101_ACTION_NAMES
    assert (m.chunk_size, m.supports_rtc_prefix, m.stateful) == (50, True, True)
    check_observation(m, state())
    traj = p.trajectory(np.arange(0, 30 * 60))  # one minute
    for j, name in enumerate(SO101_ACTION_NAMES):
        lo, hi = SO101_LIMITS_DEG[name]
        assert lo <= traj[:, j].min()
        assert traj[:, j].max() <= hi


def test_scripted_starts_at_observed_state_and_is_deterministic() -> None:
    start = [10.0, -5.0, 3.0, 0.0, 20.0, 50.0]
    a = ScriptedPolicy().predict_chunk(state(start), inference_delay=0, prefix=None)
    b = ScriptedPolicy().predict_chunk(state(start), inference_delay=0, prefix=None)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a[0], start, atol=1e-5)  # no jump at the episode start
    check_chunk(ScriptedPolicy().metadata, a)


def test_scripted_continues_the_prefix() -> None:
    p = ScriptedPolicy()
    first = p.predict_chunk(state(), inference_delay=0, prefix=None)
    prefix = first[17:27]  # the unexecuted tail after 17 steps
    nxt = p.predict_chunk(state(), inference_delay=3, prefix=prefix)
    np.testing.assert_allclose(nxt[:10], prefix, atol=1e-5)
    np.testing.assert_allclose(nxt, p.trajectory(np.arange(17, 67)), atol=1e-5)


def test_scripted_appends_without_prefix_and_resets() -> None:
    p = ScriptedPolicy(chunk_size=20)
    p.predict_chunk(state(), inference_delay=0, prefix=None)
    second = p.predict_chunk(state(), inference_delay=0, prefix=None)
    np.testing.assert_allclose(second, p.trajectory(np.arange(20, 40)), atol=1e-6)
    p.reset()
    again = p.predict_chunk(state([5.0] * 6), inference_delay=0, prefix=None)
    np.testing.assert_allclose(again[0], [5.0] * 6, atol=1e-5)


def test_scripted_radians() -> None:
    p = ScriptedPolicy.so101(units="rad")
    traj = p.trajectory(np.arange(300))
    assert np.abs(traj[:, :5]).max() < np.pi
    with pytest.raises(MetadataError, match="units"):
        ScriptedPolicy.so101(units="grad")


def test_scripted_validation() -> None:
    with pytest.raises(MetadataError, match="within its limits"):
        ScriptedPolicy(amplitudes=(400.0, 30.0, 30.0, 30.0, 45.0, 20.0))
    with pytest.raises(MetadataError, match="equal length"):
        ScriptedPolicy(action_names=("a",))
    with pytest.raises(MetadataError, match="periods_s"):
        ScriptedPolicy(periods_s=(0.0, 7.0, 5.0, 4.0, 8.0, 3.0))
