"""Differential parity with lerobot 0.4.4's RTC components (test-oracles.md §3-§4).

Skipped when lerobot is not installed. Negative delays are excluded: 0.4.4 slices from the end,
rtrun follows 0.6.1 and clamps to 0 (covered by ``test_rtc_goldens.py``).
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rtrun.models.rtc import (
    ActionQueue,
    LatencyTracker,
    get_prefix_weights,
    guide_velocity,
    pad_prefix,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hub
sys.modules.setdefault(
    "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
)  # torchvision shim: the CUDA build's compiled ops cannot load on this machine
torch = pytest.importorskip("torch")
pytest.importorskip("lerobot")
with warnings.catch_warnings():  # third-party import-time deprecations are not ours to fix
    warnings.simplefilter("ignore")
    from lerobot.configs.types import RTCAttentionSchedule
    from lerobot.policies.rtc.action_queue import ActionQueue as LeActionQueue
    from lerobot.policies.rtc.configuration_rtc import RTCConfig
    from lerobot.policies.rtc.latency_tracker import LatencyTracker as LeLatencyTracker
    from lerobot.policies.rtc.modeling_rtc import RTCProcessor

pytestmark = pytest.mark.oracle

SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def t(x: np.ndarray) -> Any:
    return torch.from_numpy(np.ascontiguousarray(x))


def as_np(x: Any) -> np.ndarray | None:
    return None if x is None else x.detach().cpu().numpy()


def assert_same_state(ours: ActionQueue, theirs: Any) -> None:
    assert ours.qsize() == theirs.qsize()
    assert ours.empty() == theirs.empty()
    assert ours.get_action_index() == theirs.get_action_index()
    mine, other = ours.get_left_over(), as_np(theirs.get_left_over())
    assert (mine is None) == (other is None)
    if mine is not None:
        np.testing.assert_array_equal(mine, other)


# ------------------------------------------------------------------------------ worked example


def test_worked_example_parity() -> None:
    def ramp(n: int, base: float) -> np.ndarray:
        return np.arange(n * 2, dtype=np.float32).reshape(n, 2) + base

    ours = ActionQueue(rtc_enabled=True)
    theirs = LeActionQueue(RTCConfig(enabled=True, execution_horizon=4))
    for q, conv in ((ours, np.asarray), (theirs, t)):
        q.merge(conv(ramp(8, 0)), conv(10 * ramp(8, 0)), 0, None)
    for _ in range(3):
        np.testing.assert_array_equal(ours.get(), as_np(theirs.get()))
    assert_same_state(ours, theirs)
    for _ in range(2):
        np.testing.assert_array_equal(ours.get(), as_np(theirs.get()))
    ours.merge(ramp(8, 100), 10 * ramp(8, 100), 2, 3)
    theirs.merge(t(ramp(8, 100)), t(10 * ramp(8, 100)), 2, 3)
    assert_same_state(ours, theirs)
    np.testing.assert_array_equal(ours.get(), as_np(theirs.get()))


@pytest.mark.parametrize(
    ("rtc", "steps", "plan"),
    [
        (True, 50, [("merge", 10)]),
        (True, 50, [("merge", 0), ("get", 10), ("merge", 5)]),
        (True, 10, [("merge", 100)]),
        (False, 10, [("merge", 0), ("merge", 0)]),
        (False, 10, [("merge", 0), ("get", 3), ("merge", 7)]),
        (False, 50, [("merge", 0), ("get", 40), ("merge", 0)]),
    ],
)
def test_table_parity(rtc: bool, steps: int, plan: list[tuple[str, int]]) -> None:
    chunk = np.arange(steps * 6, dtype=np.float32).reshape(steps, 6)
    ours = ActionQueue(rtc_enabled=rtc)
    theirs = LeActionQueue(RTCConfig(enabled=rtc))
    for op, n in plan:
        if op == "merge":
            ours.merge(chunk, 2 * chunk, n, None)
            theirs.merge(t(chunk), t(2 * chunk), n, None)
        else:
            for _ in range(n):
                np.testing.assert_array_equal(ours.get(), as_np(theirs.get()))
        assert_same_state(ours, theirs)


# ---------------------------------------------------------------------- randomized sequences

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("get"), st.integers(1, 6)),
        st.tuples(st.just("merge"), st.integers(1, 12), st.integers(0, 15), st.booleans()),
    ),
    min_size=1,
    max_size=25,
)


@SETTINGS
@given(rtc=st.booleans(), width=st.integers(1, 4), ops=OPS)
def test_random_merge_get_parity(rtc: bool, width: int, ops: list[tuple[Any, ...]]) -> None:
    ours = ActionQueue(rtc_enabled=rtc)
    theirs = LeActionQueue(RTCConfig(enabled=rtc))
    counter = 0
    for op in ops:
        if op[0] == "get":
            for _ in range(op[1]):
                a, b = ours.get(), as_np(theirs.get())
                assert (a is None) == (b is None)
                if a is not None:
                    np.testing.assert_array_equal(a, b)
        else:
            _, steps, delay, with_idx = op
            original = counter + np.arange(steps * width, dtype=np.float32).reshape(steps, width)
            counter += 1000
            idx = ours.get_action_index() if with_idx else None
            ours.merge(original, original * 3, delay, idx)
            theirs.merge(t(original), t(original * 3), delay, idx)
        assert_same_state(ours, theirs)
        if theirs.queue is not None:
            np.testing.assert_array_equal(
                ours.get_processed_left_over(), as_np(theirs.queue[theirs.last_index :])
            )


@SETTINGS
@given(
    maxlen=st.integers(1, 12),
    samples=st.lists(st.floats(-1.0, 5.0, allow_nan=False), max_size=40),
    qs=st.lists(st.floats(-0.2, 1.2, allow_nan=False), min_size=1, max_size=5),
)
def test_latency_tracker_parity(maxlen: int, samples: list[float], qs: list[float]) -> None:
    ours, theirs = LatencyTracker(maxlen), LeLatencyTracker(maxlen)
    for x in samples:
        ours.add(x)
        theirs.add(x)
        assert len(ours) == len(theirs)
        assert ours.max() == theirs.max()
    for q in [*qs, 0.95]:
        assert ours.percentile(q) == theirs.percentile(q)
    assert ours.p95() == theirs.p95()


@SETTINGS
@given(
    start=st.integers(0, 16),
    end=st.integers(0, 16),
    total=st.integers(1, 16),
    schedule=st.sampled_from(["LINEAR", "EXP", "ZEROS", "ONES"]),
)
def test_prefix_weights_parity(start: int, end: int, total: int, schedule: str) -> None:
    proc = RTCProcessor(RTCConfig(prefix_attention_schedule=RTCAttentionSchedule(schedule)))
    expected = as_np(proc.get_prefix_weights(start, end, total))
    got = get_prefix_weights(start, end, total, schedule)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)


@SETTINGS
@given(
    steps=st.integers(2, 12),
    width=st.integers(1, 3),
    prefix_rows=st.integers(1, 12),
    delay=st.integers(0, 6),
    horizon=st.integers(1, 12),
    time=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**16),
)
def test_guided_velocity_parity(
    steps: int, width: int, prefix_rows: int, delay: int, horizon: int, time: float, seed: int
) -> None:
    prefix_rows = min(prefix_rows, steps)  # LeRobot asserts the prefix is not longer than the chunk
    rng = np.random.default_rng(seed)
    x_t = rng.standard_normal((steps, width)).astype(np.float32)
    prev = rng.standard_normal((prefix_rows, width)).astype(np.float32)
    proc = RTCProcessor(RTCConfig(execution_horizon=horizon, max_guidance_weight=10.0))
    expected = as_np(proc.denoise_step(t(x_t), t(prev), delay, time, lambda x: 0.5 * x + 1, horizon))
    h = min(horizon, prefix_rows)
    padded = pad_prefix(prev, steps)
    got = guide_velocity(x_t, 0.5 * x_t + 1, padded, get_prefix_weights(delay, h, steps), time, 10.0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
