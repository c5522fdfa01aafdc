"""Pure tests of the capture-time alignment rule (rtrun.actors._frame_align)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtrun.actors._frame_align import (
    CAPTURE_TIME_KEY,
    HOLD_PERIODS,
    MAX_GAP_HOLD_S,
    RATE_WINDOW,
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
    """Brute force: latest capture time <= t_k per stream, or None if stale/missing. Fresh means
    at most ``max(max_age, 2 x the stream's period, its longest gap capped at 1 s)`` old, over
    the last 16 samples up to it; the period is their mean interval without gaps longer than
    twice their median."""
    out = {}
    for name, ts in samples.items():
        past = sorted(t for t in ts if t <= t_k)
        gaps = np.diff(past[-RATE_WINDOW:])
        typical = gaps[gaps <= 2 * np.median(gaps)] if len(gaps) else gaps
        period = float(typical.mean()) if len(typical) else 0.0
        gap = min(float(gaps.max()), MAX_GAP_HOLD_S) if len(gaps) else 0.0
        if not past or t_k - past[-1] > max(max_age, HOLD_PERIODS * period, gap):
            return None
        out[name] = past[-1]
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


def test_slow_stream_is_held_not_squeezed() -> None:
    """Issue 16: a 5 fps camera on a 30 fps grid for 6 s gives 180 rows (6 s), not ~60 (2 s);
    its frames repeat (hold-last), counted, and the stream is reported slow with its rate."""
    history = {"cam": [-0.6, -0.4, -0.2, 0.0], "state": [-0.01, 0.0]}  # seen before the start
    al = FrameAligner(fps=30, streams=["cam", "state"], start_time=0.0, history=history)
    events = [(k / 5, "cam") for k in range(31)] + [(k / 100, "state") for k in range(601)]
    rows = []
    for t, name in sorted(events):
        rows += al.poll(now=t)
        al.push(name, t, t)
    rows += al.poll(now=6.0)
    rows = [r for r in rows if r.tick_time < 6.0 - 1e-9]
    assert len(rows) == 180  # the episode keeps its duration
    assert all(r.tick_time - r.capture_times["cam"] < 0.2 + 1e-9 for r in rows)  # the latest frame
    stats = al.statistics()
    assert stats.skipped_ticks == 0
    assert stats.repeated["cam"] == 180 - 30 and stats.repeated["state"] == 0
    assert stats.slow == {"cam": pytest.approx(5.0)}


def test_stream_that_stops_still_goes_stale() -> None:
    """Hold-last is bounded: two of the stream's own periods, then ticks are skipped."""
    al = FrameAligner(fps=30, streams=["cam"], start_time=0.0)
    for k in range(6):  # 5 fps for 1 s, then nothing
        al.push("cam", k / 5, k)
    rows = al.poll(now=3.0)
    assert max(r.tick_time for r in rows) <= 1.0 + 2 / 5 + 1e-9
    assert al.statistics().skipped["cam"] > 0


def test_full_rate_streams_are_not_slow() -> None:
    al = FrameAligner(fps=30, streams=["cam"], start_time=0.0)
    for k in range(60):
        al.push("cam", k / 29.5 + (0.004 if k % 2 else 0.0), k)  # jittery camera a bit under 30 fps
    al.poll(now=2.0)
    assert al.statistics().slow == {}


def test_irregular_stream_is_held_through_its_usual_pauses() -> None:
    """A joint stream pausing 150 ms every 5 samples (a render holding the plant's lock) is held
    through its pauses once it has shown them, instead of skipping ticks at each one."""
    times, t = [], 0.0
    for k in range(120):
        t += 0.15 if k % 5 == 4 else 0.01
        times.append(t)
    al = FrameAligner(
        fps=30, streams=["state"], start_time=1.0, history={"state": [x for x in times if x <= 1.0]}
    )
    rows = []
    for x in times:
        rows += al.poll(now=x)
        al.push("state", x, x)
    assert al.statistics().skipped_ticks == 0 and len(rows) == al.next_tick > 30
