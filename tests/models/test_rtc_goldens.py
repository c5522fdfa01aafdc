"""Hand-encoded RTC goldens (lerobot-rtc.md §2-§6) that run without lerobot installed."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from rtrun.models.rtc import (
    ActionInterpolator,
    ActionQueue,
    LatencyTracker,
    RTCError,
    get_prefix_weights,
    guidance_weight,
    guide_velocity,
    inference_delay_steps,
    pad_prefix,
    trim_steps,
)


def ramp(t: int, a: int = 2, base: float = 0.0) -> np.ndarray:
    """``arange(T·A).reshape(T, A) + base`` in float32, as in the reference goldens."""
    return np.arange(t * a, dtype=np.float32).reshape(t, a) + base


def chunk(t: int = 50, a: int = 6) -> np.ndarray:
    return ramp(t, a)


def drain(q: ActionQueue, n: int) -> list[np.ndarray]:
    out = [q.get() for _ in range(n)]
    assert all(x is not None for x in out)
    return [x for x in out if x is not None]


# ------------------------------------------------------------------ §2.4 table (50 × 6 chunks)


def test_replace_delay_10() -> None:
    q = ActionQueue(rtc_enabled=True)
    c = chunk()
    q.merge(c, 2 * c, real_delay=10)
    assert q.qsize() == 40
    np.testing.assert_array_equal(q.get(), (2 * c)[10])


def test_replace_after_consuming() -> None:
    q = ActionQueue(rtc_enabled=True)
    q.merge(chunk(), chunk(), real_delay=0)
    drain(q, 10)
    q.merge(chunk(), chunk(), real_delay=5)
    assert q.qsize() == 45
    assert q.get_action_index() == 0


def test_replace_delay_0_keeps_everything() -> None:
    q = ActionQueue(rtc_enabled=True)
    q.merge(chunk(), chunk(), real_delay=0)
    assert q.qsize() == 50


def test_replace_delay_beyond_chunk() -> None:
    q = ActionQueue(rtc_enabled=True)
    q.merge(chunk(10), chunk(10), real_delay=100)
    assert q.qsize() == 0
    assert q.empty()
    assert q.get() is None
    left = q.get_left_over()
    assert left is not None
    assert left.shape == (0, 6)


def test_append_10_then_10() -> None:
    q = ActionQueue(rtc_enabled=False)
    q.merge(chunk(10), chunk(10), real_delay=0)
    q.merge(chunk(10), chunk(10), real_delay=0)
    assert q.qsize() == 20


def test_append_consume_3() -> None:
    q = ActionQueue(rtc_enabled=False)
    q.merge(chunk(10), chunk(10), real_delay=0)
    drain(q, 3)
    q.merge(chunk(10), chunk(10), real_delay=99)
    assert q.qsize() == 17


def test_append_50_consume_40() -> None:
    q = ActionQueue(rtc_enabled=False)
    q.merge(chunk(), chunk(), real_delay=0)
    drain(q, 40)
    q.merge(chunk(), chunk(), real_delay=0)
    assert q.qsize() == 60


@pytest.mark.parametrize("delay", [-5, 0, 3, 1000])
def test_append_ignores_delay(delay: int) -> None:
    q = ActionQueue(rtc_enabled=False)
    q.merge(chunk(10), chunk(10), real_delay=delay)
    assert q.qsize() == 10
    np.testing.assert_array_equal(q.get(), chunk(10)[0])


# --------------------------------------------------------------------- exact golden sequence


def test_golden_sequence(caplog: pytest.LogCaptureFixture) -> None:
    q = ActionQueue(rtc_enabled=True)
    q.merge(ramp(8), 10 * ramp(8), real_delay=0)
    got = drain(q, 3)
    np.testing.assert_array_equal(np.stack(got), [[0, 10], [20, 30], [40, 50]])
    idx_before = q.get_action_index()
    assert idx_before == 3
    np.testing.assert_array_equal(q.get_left_over(), [[6, 7], [8, 9], [10, 11], [12, 13], [14, 15]])
    drain(q, 2)
    with caplog.at_level(logging.DEBUG, logger="rtrun.models.rtc"):
        q.merge(ramp(8, base=100), 10 * ramp(8, base=100), real_delay=2, action_index_before_inference=3)
    assert q.qsize() == 6
    assert q.delay_mismatches == 0
    assert not caplog.records
    np.testing.assert_array_equal(q.get(), [1040, 1050])
    np.testing.assert_array_equal(
        q.get_left_over(), [[106, 107], [108, 109], [110, 111], [112, 113], [114, 115]]
    )


def test_delay_mismatch_is_diagnostic_only(caplog: pytest.LogCaptureFixture) -> None:
    q = ActionQueue(rtc_enabled=True)
    q.merge(ramp(8), ramp(8), real_delay=0)
    drain(q, 1)
    with caplog.at_level(logging.DEBUG, logger="rtrun.models.rtc"):
        q.merge(ramp(8, base=100), ramp(8, base=100), real_delay=3, action_index_before_inference=0)
    assert q.delay_mismatches == 1
    assert "disagree" in caplog.text
    assert q.qsize() == 5  # the latency-derived delay wins; nothing is reconciled


def test_no_check_without_index() -> None:
    q = ActionQueue(rtc_enabled=True)
    q.merge(ramp(8), ramp(8), real_delay=4, action_index_before_inference=None)
    assert q.delay_mismatches == 0


def test_edge_delay_20_on_4_steps() -> None:
    q = ActionQueue(rtc_enabled=True)
    q.merge(ramp(4), ramp(4), real_delay=20)
    assert q.qsize() == 0
    left = q.get_left_over()
    assert left is not None
    assert left.shape == (0, 2)


def test_negative_delay_clamps_to_zero_like_0_6_1() -> None:
    q = ActionQueue(rtc_enabled=True)
    q.merge(ramp(4), ramp(4), real_delay=-2)
    assert q.qsize() == 4  # 0.4.4 would keep only rows [4,5] [6,7]
    np.testing.assert_array_equal(q.get(), [0, 1])


def test_append_golden() -> None:
    q = ActionQueue(rtc_enabled=False)
    q.merge(ramp(4), ramp(4), real_delay=0)
    drain(q, 2)
    q.merge(ramp(4, base=50), ramp(4, base=50), real_delay=0)
    assert q.qsize() == 6
    rows = np.stack(drain(q, 6))
    np.testing.assert_array_equal(rows, [[4, 5], [6, 7], [50, 51], [52, 53], [54, 55], [56, 57]])


def test_state_before_first_merge() -> None:
    q = ActionQueue(rtc_enabled=True)
    assert q.qsize() == 0
    assert q.empty()
    assert q.get() is None
    assert q.get_left_over() is None
    assert q.get_processed_left_over() is None
    assert q.get_action_index() == 0


def test_exhausted_queue_keeps_index() -> None:
    q = ActionQueue(rtc_enabled=True)
    q.merge(ramp(3), ramp(3), real_delay=0)
    drain(q, 3)
    assert q.get() is None
    assert q.get() is None
    assert q.get_action_index() == 3


def test_copies_in_and_out() -> None:
    q = ActionQueue(rtc_enabled=True)
    src = ramp(4)
    q.merge(src, src, real_delay=0)
    src[:] = -1
    a = q.get()
    assert a is not None
    a[:] = -2
    left = q.get_left_over()
    assert left is not None
    left[:] = -3
    np.testing.assert_array_equal(q.get(), [2, 3])
    np.testing.assert_array_equal(q.get_processed_left_over(), [[4, 5], [6, 7]])


def test_clear() -> None:
    q = ActionQueue(rtc_enabled=False)
    q.merge(ramp(4), ramp(4), real_delay=0)
    drain(q, 2)
    q.clear()
    assert (q.queue, q.original_queue, q.get_action_index()) == (None, None, 0)
    q.merge(ramp(2), ramp(2), real_delay=0)
    assert q.qsize() == 2


def test_processed_left_over_is_robot_space() -> None:
    q = ActionQueue(rtc_enabled=True)
    q.merge(ramp(4), 10 * ramp(4), real_delay=1)
    np.testing.assert_array_equal(q.get_processed_left_over(), 10 * ramp(4)[1:])
    np.testing.assert_array_equal(q.get_left_over(), ramp(4)[1:])


def test_append_rejects_other_width() -> None:
    q = ActionQueue(rtc_enabled=False)
    q.merge(ramp(4), ramp(4), real_delay=0)
    with pytest.raises(Exception, match="action dimension"):
        q.merge(ramp(4, 3), ramp(4, 3), real_delay=0)


def test_merge_rejects_1d() -> None:
    q = ActionQueue(rtc_enabled=True)
    with pytest.raises(RTCError, match="2-D"):
        q.merge(np.zeros(3), np.zeros(3), real_delay=0)


# --------------------------------------------------------------------------- LatencyTracker §3


def test_latency_window_example() -> None:
    lt = LatencyTracker(maxlen=5)
    for x in (0.05, 0.12, -1.0, 0.08, 0.30, 0.07, 0.09):
        lt.add(x)
    assert len(lt) == 5
    assert lt.max() == 0.3
    assert lt.p95() == pytest.approx(0.2639999986, abs=1e-9)
    assert lt.percentile(0.5) == pytest.approx(0.09, abs=1e-7)
    assert lt.percentile(0.0) == 0.07
    assert lt.percentile(1.0) == 0.3
    assert inference_delay_steps(lt, 1 / 30) == 9


def test_latency_p95_of_hundred() -> None:
    lt = LatencyTracker()
    for i in range(100):
        lt.add(i / 100)
    assert 0.93 <= lt.p95() <= 0.96


def test_latency_all_time_max_survives_window() -> None:
    lt = LatencyTracker(maxlen=100)
    lt.add(0.5)
    for _ in range(200):
        lt.add(0.1)
    assert lt.max() == 0.5
    assert len(lt) == 100
    lt.reset()
    assert (lt.max(), len(lt), lt.p95()) == (0.0, 0, 0.0)


def test_latency_accepts_numeric_strings_and_ints() -> None:
    lt = LatencyTracker()
    lt.add("0.25")
    lt.add(1)
    assert lt.max() == 1.0
    assert len(lt) == 2


# ------------------------------------------------------------------------------ delay math §4


def test_delay_arithmetic() -> None:
    lt = LatencyTracker()
    dt = 1 / 30
    assert inference_delay_steps(lt, dt) == 0
    lt.add(0.6)
    assert inference_delay_steps(lt, dt) == 18
    assert trim_steps(0.3, dt) == 9
    assert trim_steps(0.301, dt) == 10
    assert trim_steps(0.0, dt) == 0
    assert trim_steps(-0.1, dt) == 0


def test_delay_tolerates_float_noise() -> None:
    dt = 1 / 30
    t1, t2 = 1234.5, 1234.5 + 0.3
    assert (t2 - t1) / dt != 9.0  # the noise this guards against
    assert trim_steps(t2 - t1, dt) == 9


# -------------------------------------------------------------------------- prefix weights §5.1

WEIGHT_GOLDENS = {
    "LINEAR": [1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0, 0, 0],
    "EXP": [1, 1, 0.5706, 0.2871, 0.1145, 0.0258, 0, 0, 0, 0],
    "ZEROS": [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    "ONES": [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
}


@pytest.mark.parametrize("schedule", list(WEIGHT_GOLDENS))
def test_prefix_weights_golden(schedule: str) -> None:
    w = get_prefix_weights(2, 6, 10, schedule)
    assert w.dtype == np.float32
    np.testing.assert_allclose(w, WEIGHT_GOLDENS[schedule], atol=1e-4)


def test_prefix_weights_edge_cases() -> None:
    np.testing.assert_allclose(get_prefix_weights(5, 5, 8), [1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_allclose(get_prefix_weights(7, 3, 6), [1, 1, 1, 0, 0, 0])  # start capped
    np.testing.assert_allclose(get_prefix_weights(0, 20, 4), [0.8, 0.6, 0.4, 0.2], atol=1e-6)
    with pytest.raises(RTCError, match="schedule"):
        get_prefix_weights(1, 2, 3, "COSINE")


def test_pad_prefix() -> None:
    p = ramp(3)
    np.testing.assert_array_equal(pad_prefix(p, 5), np.vstack([p, np.zeros((2, 2))]))
    np.testing.assert_array_equal(pad_prefix(p, 2), p[:2])


# ----------------------------------------------------------------------- guided denoise §5.2

DENOISE_GOLDEN = [
    [-2.8583, -2.5894],
    [-2.3206, -2.0517],
    [-1.1454, -0.9271],
    [-0.1725, -0.0047],
    [0.5982, 0.7154],
    [1.1667, 1.2333],
    [1.3000, 1.3667],
    [1.4333, 1.5000],
]


def test_guided_velocity_golden() -> None:
    x_t = np.linspace(-1, 1, 16, dtype=np.float32).reshape(8, 2)
    prev = pad_prefix(0.25 * np.ones((6, 2), dtype=np.float32), 8)
    weights = get_prefix_weights(2, 5, 8)
    np.testing.assert_allclose(weights, [1, 1, 0.75, 0.5, 0.25, 0, 0, 0])
    assert guidance_weight(0.6, 10.0) == pytest.approx(2.1667, abs=1e-4)
    out = guide_velocity(x_t, 0.5 * x_t + 1, prev, weights, 0.6, 10.0)
    np.testing.assert_allclose(out, DENOISE_GOLDEN, atol=1e-4)


def test_guidance_weight_limits() -> None:
    assert guidance_weight(1.0, 10.0) == 10.0  # tau = 0: +inf -> max
    assert guidance_weight(0.0, 10.0) == 0.0  # tau = 1: 0·inf = NaN -> 0 (torch nan_to_num)
    assert guidance_weight(0.999, 5.0) == 5.0


# --------------------------------------------------------------------------- interpolator §6.1


def test_interpolator_counts_and_last_point() -> None:
    it = ActionInterpolator(multiplier=3)
    out = []
    for a in ([0.0, 0.0], [3.0, 6.0], [6.0, 0.0]):
        it.add(np.array(a))
        while (x := it.get()) is not None:
            out.append(x)
    assert len(out) == 1 + (3 - 1) * 3
    np.testing.assert_allclose(out[1], [1.0, 2.0])
    np.testing.assert_allclose(out[3], [3.0, 6.0])
    np.testing.assert_allclose(out[-1], [6.0, 0.0])
    assert it.needs_new_action()
    assert it.get_control_interval(30.0) == pytest.approx(1 / 90)


def test_interpolator_reset_and_identity() -> None:
    it = ActionInterpolator(multiplier=2)
    it.add(np.array([1.0]))
    it.add(np.array([3.0]))
    it.reset()
    assert it.needs_new_action()
    it.add(np.array([5.0]))
    np.testing.assert_array_equal(it.get(), [5.0])  # first after reset: no ramp
    one = ActionInterpolator(multiplier=1)
    one.add(np.array([1.0]))
    one.add(np.array([9.0]))
    np.testing.assert_array_equal(one.get(), [9.0])
    assert one.get() is None


@pytest.mark.parametrize("m", [0, -1, 1.5])
def test_interpolator_rejects_bad_multiplier(m: float) -> None:
    with pytest.raises(RTCError, match="multiplier"):
        ActionInterpolator(multiplier=m)  # type: ignore[arg-type]


def test_latency_window_must_be_positive() -> None:
    with pytest.raises(RTCError, match="window"):
        LatencyTracker(maxlen=0)


def test_ceil_is_lerobot_formula_away_from_noise() -> None:
    dt = 1 / 30
    for ms in range(1, 2000, 7):
        lat = ms / 1000 + 1e-4
        assert trim_steps(lat, dt) == math.ceil(lat / dt)
