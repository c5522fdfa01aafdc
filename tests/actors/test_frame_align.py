"""Pure tests of the capture-time alignment rule (rtrun.actors._frame_align)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtrun.actors._frame_align import (
    CAPTURE_TIME_KEY,
    FrameAligner,
    capture_time_feature,
)

FPS = 10


def test_causal_sample_and_hold() -> None:
    al = FrameAligner(fps=FPS, streams=["cam", "joints"], start_time=100.0, settle_s=0.05)
    al.push("cam", 99.99, "c0")
    al.push("joints", 100.0, "j0")
    al.push("joints", 100.04, "j1")
    al.push("cam", 100.09, "c1")
    al.push("joints", 100.11, "j2")  # after tick 1 (100.1): settles joints for tick 1
    rows = al.poll(now=100.11)
    assert [r.tick for r in rows] == [0]  # cam not settled for tick 1 yet (newest 100.09)
    assert rows[0].values == {"cam": "c0", "joints": "j0"}
    rows = al.poll(now=100.15)  # settle_s passed for tick 1
    assert [(r.tick, dict(r.values)) for r in rows] == [(1, {"cam": "c1", "joints": "j1"})]
    assert rows[0].tick_time == pytest.approx(100.1)
    assert rows[0].capture_offsets(["cam", "joints"], 100.0) == pytest.approx([0.09, 0.04])


def test_stale_stream_skips_tick_and_counts() -> None:
    al = FrameAligner(fps=FPS, streams=["cam", "joints"], start_time=0.0, max_age_s=0.15)
    for k in range(6):
        al.push("joints", k * 0.1, k)
    al.push("cam", 0.0, "c0")  # then the camera stalls
    rows = al.poll(now=0.45)  # ticks 0..3 settle (joints newer; cam by settle_s)
    assert [r.tick for r in rows] == [0, 1]  # 0.1 s old: fresh; 0.2 s: stale
    stats = al.statistics()
    assert stats.skipped == {"cam": 2, "joints": 0}
    assert stats.rows == 2 and stats.skipped_ticks == 2 and al.next_tick == 4


def test_out_of_order_and_overflow_are_counted() -> None:
    al = FrameAligner(fps=FPS, streams=["a"], start_time=0.0, buffer_size=2)
    al.push("a", 1.0, 1)
    al.push("a", 0.5, 0)  # older than newest
    al.push("a", math.nan, 0)
    al.push("a", 1.1, 2)
    al.push("a", 1.2, 3)  # buffer of 2 was full
    stats = al.statistics()
    assert (stats.out_of_order, stats.overflow) == (2, 1)


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        FrameAligner(fps=0, streams=["a"], start_time=0.0)
    with pytest.raises(ValueError):
        FrameAligner(fps=FPS, streams=["a", "a"], start_time=0.0)


def test_capture_time_feature_is_not_a_policy_observation() -> None:
    spec = capture_time_feature(["cam", "joints"])
    assert spec == {"dtype": "float64", "shape": [2], "names": ["cam", "joints"]}
    assert not CAPTURE_TIME_KEY.startswith(("observation", "action"))


_times = st.lists(st.floats(0.0, 3.0, allow_nan=False), min_size=1, max_size=40, unique=True)


def _reference(samples: dict[str, list[float]], t_k: float, max_age: float) -> dict[str, float] | None:
    """Brute force: latest capture time <= t_k per stream, or None if stale/missing."""
    out = {}
    for name, ts in samples.items():
        past = [t for t in ts if t <= t_k]
        if not past or t_k - max(past) > max_age:
            return None
        out[name] = max(past)
    return out


@settings(max_examples=150, deadline=None)
@given(cam=_times, joints=_times, max_age=st.floats(0.05, 0.5))
def test_rows_match_brute_force(cam: list[float], joints: list[float], max_age: float) -> None:
    samples = {"cam": sorted(cam), "joints": sorted(joints)}
    al = FrameAligner(fps=FPS, streams=["cam", "joints"], start_time=0.0, max_age_s=max_age, buffer_size=64)
    for name, ts in samples.items():
        for t in ts:
            al.push(name, t, t)
    rows = al.poll(now=5.0)
    expected = {}
    for k in range(al.next_tick):
        ref = _reference(samples, k / FPS, max_age)
        if ref is not None:
            expected[k] = ref
    assert {r.tick: dict(r.capture_times) for r in rows} == expected
    assert all(dict(r.values) == dict(r.capture_times) for r in rows)
    stats = al.statistics()
    assert stats.rows + stats.skipped_ticks == al.next_tick


@settings(max_examples=100, deadline=None)
@given(
    cam=_times,
    joints=_times,
    latency=st.floats(0.0, 0.09),
    poll_every=st.floats(0.01, 0.3),
)
def test_incremental_polling_equals_batch(
    cam: list[float], joints: list[float], latency: float, poll_every: float
) -> None:
    """Delivering samples late (< settle_s) and polling often gives the batch result."""
    events = sorted([(t + latency, "cam", t) for t in cam] + [(t + latency, "joints", t) for t in joints])
    batch = FrameAligner(fps=FPS, streams=["cam", "joints"], start_time=0.0, settle_s=0.1)
    live = FrameAligner(fps=FPS, streams=["cam", "joints"], start_time=0.0, settle_s=0.1)
    for _, name, t in events:
        batch.push(name, t, t)
    live_rows = []
    now = 0.0
    for arrival, name, t in events:
        while now + poll_every <= arrival:
            now += poll_every
            live_rows += live.poll(now)
        live.push(name, t, t)
    live_rows += live.poll(5.0)
    batch_rows = batch.poll(5.0)
    assert [(r.tick, dict(r.values)) for r in live_rows] == [(r.tick, dict(r.values)) for r in batch_rows]


def test_tick_times_do_not_drift() -> None:
    al = FrameAligner(fps=30, streams=["a"], start_time=1e5)
    assert al.tick_time(30 * 3600) == pytest.approx(1e5 + 3600, abs=1e-9)
    assert np.isclose(al.tick_time(1), 1e5 + 1 / 30)
