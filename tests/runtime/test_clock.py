"""Ticker: absolute deadlines, overrun skipping, statistics, checkpoints, modes, resources.

The schedule logic runs on trio virtual time (``MockClock(autojump_threshold=0)``), where every
wake-up is exact, so equalities are asserted exactly. The precise (timerfd) time base is smoke-
tested on real time on asyncio, uvloop and trio with generous bounds only.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import sys

import anyio
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from rtrun._clock import (
    LATENESS_WINDOW,
    MAX_SPIN_S,
    ClockError,
    Tick,
    Ticker,
)
from rtrun._timerfd import timerfd_available


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    """A fresh virtual clock per test (MockClock is stateful)."""
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
def anyio_backend(mock_clock: trio.testing.MockClock) -> tuple[str, dict[str, object]]:
    """Default for this module: trio on virtual time (real-time tests parametrize over it)."""
    return "trio", {"clock": mock_clock}


_NO_UVLOOP = importlib.util.find_spec("uvloop") is None
REAL_TIME = pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param(("asyncio", {}), id="asyncio", marks=pytest.mark.slow),
        pytest.param(
            ("asyncio", {"use_uvloop": True}),
            id="uvloop",
            marks=[pytest.mark.slow, pytest.mark.skipif(_NO_UVLOOP, reason="needs uvloop")],
        ),
        pytest.param(("trio", {}), id="trio-real", marks=pytest.mark.slow),
    ],
)
"""Real-time backends (``slow``: they sleep for real, ~0.1 s per test)."""
NEEDS_TIMERFD = pytest.mark.skipif(not timerfd_available(), reason="timerfd is Linux-only")


# --- schedule (virtual time) -----------------------------------------------------------------


@pytest.mark.anyio
async def test_deadlines_never_drift_over_10000_virtual_ticks() -> None:
    rate = 300.0  # 1/300 s has no exact binary representation: accumulation would drift
    async with Ticker(rate) as ticker:
        first = await ticker.wait_next()
        t0 = first.deadline
        assert first.index == 0
        assert ticker.start_time == t0
        accumulated = t0
        for k in range(1, 10_000):
            tick = await ticker.wait_next()
            accumulated += 1 / rate
            assert tick.index == k
            assert tick.deadline == t0 + k / rate
            assert tick.woke_at == tick.deadline
            assert tick.lateness_s == 0.0
            assert tick.missed == 0
        assert anyio.current_time() == t0 + 9_999 / rate
        assert accumulated != t0 + 9_999 / rate  # what the absolute schedule protects against
        stats = ticker.statistics()
    assert (stats.ticks, stats.missed, stats.mode) == (10_000, 0, "portable")


@pytest.mark.anyio
async def test_first_tick_is_immediate_and_starts_the_schedule() -> None:
    start = anyio.current_time()
    async with Ticker(50.0) as ticker:
        assert ticker.start_time is None
        tick = await ticker.wait_next()
        assert tick == Tick(index=0, deadline=start, woke_at=start, lateness_s=0.0, missed=0)
        assert ticker.deadline(7) == start + 7 / 50.0


@pytest.mark.anyio
async def test_overrun_skips_to_next_future_deadline_and_counts_missed() -> None:
    async with Ticker(100.0) as ticker:  # deadlines every 10 ms
        t0 = (await ticker.wait_next()).deadline
        await anyio.sleep(0.025)  # the body overruns: deadlines 1 (10 ms) and 2 (20 ms) pass
        late = await ticker.wait_next()
        assert (late.index, late.missed) == (3, 2)
        assert late.deadline == t0 + 3 / 100.0
        assert anyio.current_time() == late.deadline  # no burst: waited for the future slot
        await anyio.sleep(0.010)  # reaching a deadline exactly is on time, not missed
        on_time = await ticker.wait_next()
        assert (on_time.index, on_time.missed) == (4, 0)
        await anyio.sleep(0.0101)  # just past deadline 5
        assert (await ticker.wait_next()).missed == 1
        stats = ticker.statistics()
    assert (stats.ticks, stats.missed) == (4, 3)


@pytest.mark.anyio
async def test_huge_overrun_is_one_skip_not_a_burst() -> None:
    async with Ticker(1000.0) as ticker:
        t0 = (await ticker.wait_next()).deadline
        await anyio.sleep(10.0005)  # e.g. the process was suspended
        tick = await ticker.wait_next()
        assert tick.missed == 10_000  # deadlines 1..10_000 all passed
        assert tick.index == 10_001
        assert tick.deadline == t0 + 10_001 / 1000.0
        follow = await ticker.wait_next()
        assert (follow.index, follow.missed) == (10_002, 0)


@pytest.mark.anyio
async def test_async_iteration_yields_consecutive_ticks() -> None:
    indices = []
    async with Ticker(1000.0) as ticker:
        async for tick in ticker:
            indices.append(tick.index)
            if tick.index == 9:
                break
    assert indices == list(range(10))


@pytest.mark.anyio
async def test_rebase_starts_a_new_schedule_and_keeps_counters() -> None:
    async with Ticker(100.0) as ticker:
        await ticker.wait_next()
        await ticker.wait_next()
        await anyio.sleep(5.0)  # a deliberate pause
        ticker.rebase()
        resumed = await ticker.wait_next()
        assert (resumed.index, resumed.missed) == (0, 0)
        assert resumed.deadline == anyio.current_time()
        start = anyio.current_time() - 0.025
        ticker.rebase(start)  # a start in the past: deadlines 0, 1, 2 already passed
        tick = await ticker.wait_next()
        assert (tick.index, tick.missed, tick.deadline) == (3, 3, start + 3 / 100.0)
        assert ticker.statistics().ticks == 4


@given(
    t0=st.floats(-1e6, 1e6),
    rate=st.floats(0.01, 1e5),
    first=st.integers(0, 10**6),
    elapsed=st.floats(0, 1e4),
)
def test_plan_picks_the_first_deadline_not_in_the_past(
    t0: float, rate: float, first: int, elapsed: float
) -> None:
    ticker = Ticker(rate)
    ticker._next_index = first
    now = t0 + elapsed
    index, missed = ticker._plan(t0, now)
    assert index >= first
    assert missed == index - first
    assert t0 + index / rate >= now  # never wait for a deadline already in the past...
    if index > first:
        assert t0 + (index - 1) / rate < now  # ...and never skip one that is not


# --- statistics --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_lateness_statistics(mock_clock: trio.testing.MockClock) -> None:
    latenesses = [0.001 * (k % 5) for k in range(1, 101)]  # 0..4 ms, each 20 times

    async def make_late(t0: float) -> None:
        for k, lateness in enumerate(latenesses, start=1):
            await anyio.sleep_until(t0 + k / 100.0 - 0.004)
            mock_clock.jump(0.004 + lateness)  # the ticker oversleeps its deadline by `lateness`

    seen = []
    async with Ticker(100.0) as ticker, anyio.create_task_group() as tg:
        assert ticker.statistics().lateness_p50_s is None
        t0 = (await ticker.wait_next()).deadline
        tg.start_soon(make_late, t0)
        for _ in latenesses:
            seen.append((await ticker.wait_next()).lateness_s)
        stats = ticker.statistics()
    assert seen == pytest.approx(latenesses, abs=1e-9)
    assert stats.ticks == 101
    assert stats.missed == 0
    assert stats.samples == 101
    assert stats.lateness_p50_s == pytest.approx(0.002, abs=1e-9)
    assert stats.lateness_p99_s == pytest.approx(0.004, abs=1e-9)
    assert stats.lateness_max_s == pytest.approx(0.004, abs=1e-9)
    assert stats.rate_hz == 100.0


@pytest.mark.anyio
async def test_lateness_window_is_bounded() -> None:
    async with Ticker(10_000.0) as ticker:
        for _ in range(LATENESS_WINDOW + 10):
            await ticker.wait_next()
        stats = ticker.statistics()
    assert stats.samples == LATENESS_WINDOW
    assert stats.ticks == LATENESS_WINDOW + 10


# --- checkpoints, cancellation, ownership ------------------------------------------------------


@pytest.mark.anyio
async def test_every_wait_next_is_a_checkpoint() -> None:
    async with Ticker(100.0) as ticker:
        with trio.testing.assert_checkpoints():
            await ticker.wait_next()  # tick 0: due immediately
        with trio.testing.assert_checkpoints():
            await ticker.wait_next()  # an ordinary sleep
        await anyio.sleep(0.05)
        with trio.testing.assert_checkpoints():
            await ticker.wait_next()  # already late: still a checkpoint


@pytest.mark.anyio
async def test_cancelled_wait_leaves_the_schedule_unchanged() -> None:
    async with Ticker(100.0) as ticker:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ticker.wait_next()  # tick 0 would be due now, but cancellation wins
        assert scope.cancelled_caught
        assert ticker.start_time is None
        t0 = (await ticker.wait_next()).deadline
        with anyio.move_on_after(0.005):
            await ticker.wait_next()
        tick = await ticker.wait_next()
        assert (tick.index, tick.missed, tick.deadline) == (1, 0, t0 + 1 / 100.0)
        assert ticker.statistics().ticks == 2


@pytest.mark.anyio
async def test_one_waiter_at_a_time() -> None:
    async with Ticker(10.0) as ticker, anyio.create_task_group() as tg:
        await ticker.wait_next()
        tg.start_soon(ticker.wait_next)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(anyio.BusyResourceError):
            await ticker.wait_next()
        with pytest.raises(anyio.BusyResourceError):
            ticker.rebase()


@pytest.mark.anyio
async def test_closed_ticker_refuses_to_wait() -> None:
    ticker = Ticker(10.0)
    await ticker.wait_next()
    await ticker.aclose()
    ticker.close()  # idempotent
    with pytest.raises(anyio.ClosedResourceError):
        await ticker.wait_next()


@pytest.mark.anyio
async def test_close_while_waiting_raises_in_the_waiter() -> None:
    ticker = Ticker(10.0)
    await ticker.wait_next()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_expect_closed, ticker)
        await trio.testing.wait_all_tasks_blocked()
        ticker.close()


async def _expect_closed(ticker: Ticker) -> None:
    with pytest.raises(anyio.ClosedResourceError):
        await ticker.wait_next()


# --- configuration and mode selection ----------------------------------------------------------


@pytest.mark.anyio
async def test_auto_mode_is_portable_on_virtual_time() -> None:
    ticker = Ticker(100.0)
    assert ticker.mode == "auto"
    assert ticker.statistics().mode == "auto"
    async with ticker:
        assert ticker.mode == "portable"
        assert ticker.statistics().mode == "portable"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["precise", "spin"])
async def test_timerfd_modes_refuse_virtual_time(mode: str) -> None:
    with pytest.raises(ClockError, match="virtual clock"):
        async with Ticker(100.0, mode=mode):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize(
    ("rate", "kwargs", "match"),
    [
        (0.0, {}, "rate_hz"),
        (-5.0, {}, "rate_hz"),
        (math.nan, {}, "rate_hz"),
        (math.inf, {}, "rate_hz"),
        (100.0, {"mode": "turbo"}, "mode"),
        (100.0, {"mode": "spin", "spin_s": -1e-6}, "spin_s"),
        (100.0, {"mode": "spin", "spin_s": MAX_SPIN_S}, "spin_s"),
        (2000.0, {"mode": "spin", "spin_s": 0.6e-3}, "spin_s"),  # longer than the period
        (100.0, {"mode": "portable", "spin_s": 1e-4}, "portable"),
    ],
)
def test_invalid_configuration_is_rejected(rate: float, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ClockError, match=match):
        Ticker(rate, **kwargs)  # type: ignore[arg-type]


# --- real time (precise / spin), generous bounds only -------------------------------------------


def _check_real_time_ticks(ticker: Ticker, ticks: list[Tick]) -> None:
    t0 = ticks[0].deadline
    assert ticks[0].index == 0
    for previous, tick in itertools.pairwise(ticks):
        assert tick.index == previous.index + 1 + tick.missed
        assert tick.deadline == t0 + tick.index / ticker.rate_hz
        assert tick.woke_at >= previous.woke_at
    # The timerfd never fires early; the 1 ns allows for float rounding of the offset mapping.
    assert min(t.lateness_s for t in ticks) >= -1e-9
    assert max(t.lateness_s for t in ticks) < 1.0  # sanity only: the machine may be loaded


@NEEDS_TIMERFD
@REAL_TIME
@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "spin"])
async def test_precise_modes_on_real_time(mode: str) -> None:
    ticks = []
    async with Ticker(400.0, mode=mode) as ticker:  # type: ignore[arg-type]
        assert ticker.mode == ("precise" if mode == "auto" else "spin")
        with anyio.fail_after(10):
            async for tick in ticker:
                ticks.append(tick)
                if len(ticks) == 40:  # ~0.1 s
                    break
        stats = ticker.statistics()
    _check_real_time_ticks(ticker, ticks)
    assert stats.ticks == 40
    assert stats.missed == sum(t.missed for t in ticks)


@REAL_TIME
@pytest.mark.anyio
async def test_overrun_on_real_time_skips_without_burst() -> None:
    async with Ticker(20.0) as ticker:  # 50 ms period
        first = await ticker.wait_next()
        await anyio.sleep(0.12)  # at least deadlines 1 (50 ms) and 2 (100 ms) pass
        late = await ticker.wait_next()
        assert late.missed >= 2
        assert late.index == 1 + late.missed
        assert late.deadline == first.deadline + late.index / 20.0
        assert late.woke_at >= late.deadline - 1e-3  # waited for the slot (uvloop: 1 ms clock)


@NEEDS_TIMERFD
@REAL_TIME
@pytest.mark.anyio
async def test_portable_mode_on_real_time() -> None:
    async with Ticker(200.0, mode="portable") as ticker:
        ticks = [await ticker.wait_next() for _ in range(10)]
    assert ticks[-1].deadline == ticks[0].deadline + ticks[-1].index / 200.0
    assert all(t.lateness_s >= -1e-3 for t in ticks)  # uvloop time has 1 ms resolution


@NEEDS_TIMERFD
@REAL_TIME
@pytest.mark.anyio
async def test_precise_wait_is_cancellable_and_recovers() -> None:
    async with Ticker(100.0, mode="precise") as ticker:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ticker.wait_next()
        assert scope.cancelled_caught
        await ticker.wait_next()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ticker.wait_next()  # cancelled while the timerfd is armed
        assert scope.cancelled_caught
        with anyio.fail_after(5):
            tick = await ticker.wait_next()
        assert tick.index >= 1


@NEEDS_TIMERFD
@REAL_TIME
@pytest.mark.anyio
async def test_close_wakes_a_precise_waiter_promptly() -> None:
    ticker = Ticker(0.1, mode="precise")  # next deadline 10 s away
    await ticker.wait_next()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_expect_closed, ticker)
            await anyio.sleep(0.01)
            ticker.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd")
@NEEDS_TIMERFD
@REAL_TIME
@pytest.mark.anyio
async def test_timerfd_is_closed_on_exit() -> None:
    before = len(os.listdir("/proc/self/fd"))
    async with Ticker(1000.0, mode="precise") as ticker:
        await ticker.wait_next()
        assert len(os.listdir("/proc/self/fd")) == before + 1
    assert len(os.listdir("/proc/self/fd")) == before


@NEEDS_TIMERFD
@pytest.mark.parametrize(
    "anyio_backend", [pytest.param(("trio", {}), id="trio-real", marks=pytest.mark.slow)]
)
@pytest.mark.anyio
async def test_unclosed_ticker_warns_when_collected() -> None:
    tickers = [Ticker(1000.0, mode="precise")]
    await tickers[0].wait_next()
    with pytest.warns(ResourceWarning, match="unclosed TimerFd"):
        tickers.clear()  # the last reference: CPython finalizes the TimerFd right here
