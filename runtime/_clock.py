"""Fixed-rate loops on absolute deadlines: :class:`Ticker`, :class:`Tick`, :class:`TickerStatistics`.

Theory of operation
-------------------
A ticker started at ``t0`` has the deadlines ``t0 + k / rate_hz`` for ``k = 0, 1, 2, ...``. Each
deadline is computed from ``t0`` and its index, never by adding periods to the previous deadline,
so rounding errors cannot accumulate and the loop never drifts. ``t0`` is the time of the first
:meth:`Ticker.wait_next` (tick 0 is due at once) unless :meth:`Ticker.rebase` sets it.

Overruns. ``wait_next`` asks for the next undelivered deadline ``k``. If that deadline already
lies in the past when the loop asks for it (the loop body took longer than the remaining period)
every deadline strictly before *now* is **missed**: the ticker counts them, skips them and sleeps
until the first deadline that is not in the past. The returned :class:`Tick` carries the number
of deadlines skipped (``missed``) and its ``index`` jumps accordingly. There is no catch-up burst:
a motor loop that fell behind must act on fresh state at the next slot of the grid, not replay
stale slots back to back. (Precedent: tokio ``MissedTickBehavior::Skip``; ROS ``Rate`` instead
bursts, which is what we avoid.) Waking exactly *at* a deadline is on time.

Every ``wait_next`` is a checkpoint (cancellation point + scheduling point), even when no sleep is
needed. If it is cancelled, no state changes: the next call re-plans from scratch.

Time bases ("modes")
--------------------
* ``portable``: ``anyio.sleep_until`` on ``anyio.current_time()``. Works on every backend and on
  virtual time (trio ``MockClock``). On real time its precision is the event loop's timer
  granularity: epoll timeouts are whole milliseconds, rounded up, so wake-ups are 0.5–1.2 ms late.
* ``precise``: a Linux ``timerfd`` armed at the absolute ``CLOCK_MONOTONIC`` deadline and awaited
  through the event loop (a persistent ``loop.add_reader`` on asyncio/uvloop,
  ``anyio.wait_readable`` on trio; see ``rtrun._timerfd``). About 0.1 ms late at p50 on this
  VM instead of ~0.7 ms, for two extra syscalls per tick (``benchmarks/ticker.py``).
* ``spin``: ``precise`` armed ``spin_s`` early, followed by a busy-wait on ``time.monotonic()``
  until the deadline. A few microseconds late, but it **blocks the event loop** for up to
  ``spin_s`` per tick and costs ``spin_s * rate_hz`` of a core. Opt-in only.
* ``auto`` (default): ``precise`` when the running loop's clock is real ``CLOCK_MONOTONIC`` time
  (stock asyncio, uvloop, trio ``SystemClock``) and ``timerfd`` exists; otherwise ``portable``.
  Virtual or unknown clocks (trio ``MockClock``, patched asyncio ``loop.time``) always get
  ``portable``, which is always correct. Requesting ``precise``/``spin`` explicitly on such a
  clock raises :class:`ClockError`. The mode is resolved on first use (``async with`` or the
  first ``wait_next``) because it depends on the running event loop.

In ``precise``/``spin`` the ticker reads ``time.monotonic()`` and maps it onto the anyio timeline
with an offset sampled once when the mode is resolved (``anyio.current_time() - monotonic``):
0 on stock asyncio, trio's constant clock offset on trio. ``Tick.deadline`` and ``Tick.woke_at``
are therefore anyio-timeline values with microsecond resolution. On uvloop ``loop.time()`` has
1 ms resolution, so there the mapping (not the schedule, which stays exact) can be up to 1 ms off
``anyio.current_time()``. ``lateness_s`` is always measured in the time base that did the
waiting: ``CLOCK_MONOTONIC`` at wake minus the deadline in ``precise``/``spin``, and
``anyio.current_time()`` at wake minus the deadline in ``portable``.

Resources. ``precise``/``spin`` own a timerfd: use ``async with Ticker(...) as ticker:`` (or call
``aclose()``/``close()``). A ticker garbage-collected with its fd open closes it and emits a
``ResourceWarning`` (on asyncio the loop's reader registration keeps an unclosed ticker alive
until the loop closes). After closing, ``wait_next`` raises ``anyio.ClosedResourceError``; one
task at a time may wait (``anyio.BusyResourceError`` otherwise). A ticker belongs to the event
loop that first used it.

Tail latency. No time base helps when the process is not scheduled: on a loaded machine p99 is
set by the OS scheduler (CFS slices of several ms). A control process that needs a hard p99 should
run with a real-time policy (``chrt -f 50 ...``) or on an isolated core; the Ticker does not
change scheduling policy itself.

Design decisions not fixed by the issue
---------------------------------------
* ``statistics()`` percentiles are nearest-rank over the last :data:`LATENESS_WINDOW` ticks and
  are ``None`` before the first tick; ``ticks``/``missed`` count since construction.
* :meth:`Ticker.rebase` starts a new schedule (index restarts at 0) without resetting the
  counters: use it after a deliberate pause so the pause is not reported as missed deadlines.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal, Protocol, Self, final, get_args

import anyio
import anyio.lowlevel

from ._errors import RtrunError
from ._timerfd import MonotonicWaiter, timerfd_available

__all__ = ["ClockError", "Tick", "Ticker", "TickerMode", "TickerStatistics"]

TickerMode = Literal["auto", "portable", "precise", "spin"]
"""How a :class:`Ticker` waits (see the module docstring)."""

LATENESS_WINDOW: Final = 1024
"""Latenesses kept for percentiles: ~2 s at 500 Hz, ~10 s at 100 Hz; sorting 1024 floats for a
dashboard snapshot costs ~50 µs."""

DEFAULT_SPIN_S: Final = 100e-6
"""Spin tail of ``mode="spin"``: longer than the measured p50 timerfd lateness (~40-60 µs), so the
busy-wait usually starts before the deadline; costs ~3 % of a core at 500 Hz (see
benchmarks/ticker.py)."""

MAX_SPIN_S: Final = 1e-3
"""Upper bound on ``spin_s``: the spin blocks the event loop, and past 1 ms a plain timerfd
wake-up is already far more precise than anything a longer spin buys."""

_REAL_CLOCK_TOLERANCE_S: Final = 5e-3
"""Sanity bound on ``|loop.time() - time.monotonic()|`` for an asyncio clock to count as real
(stock asyncio: 0; uvloop: < 1 ms because it floors to whole milliseconds)."""


class ClockError(RtrunError):
    """A :class:`Ticker` was configured, or asked to run, in a way the clock rules forbid."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """One deadline reached by a :class:`Ticker`."""

    index: int
    """k: the deadline is ``t0 + index / rate_hz`` (restarts at 0 after ``rebase``)."""
    deadline: float
    """The absolute deadline, anyio timeline seconds."""
    woke_at: float
    """When the waiting task woke, anyio timeline seconds (µs resolution in precise modes)."""
    lateness_s: float
    """``woke_at - deadline`` measured in the waiting time base, seconds."""
    missed: int
    """Deadlines skipped just before this one because the loop asked for them too late."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TickerStatistics:
    """A snapshot of a :class:`Ticker`'s counters, for dashboards and benchmarks."""

    ticks: int
    """Ticks delivered since construction."""
    missed: int
    """Deadlines skipped (overruns) since construction."""
    lateness_p50_s: float | None
    """Median lateness over the last ``samples`` ticks, seconds (``None`` before any tick)."""
    lateness_p99_s: float | None
    """99th-percentile (nearest-rank) lateness over the last ``samples`` ticks, seconds."""
    lateness_max_s: float | None
    """Largest lateness over the last ``samples`` ticks, seconds."""
    samples: int
    """How many recent ticks the lateness figures cover (at most ``LATENESS_WINDOW``)."""
    rate_hz: float
    """The configured rate."""
    mode: str
    """The mode in use (``portable``/``precise``/``spin``), or ``auto`` before first use."""


class _TimeBase(Protocol):
    """How a ticker reads the time and sleeps until an instant of the anyio timeline."""

    mode: str

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


class _PortableTimeBase:
    """``anyio.current_time`` / ``anyio.sleep_until``: any backend, virtual time included."""

    mode = "portable"

    def now(self) -> float:
        return anyio.current_time()

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)  # sleep(0) when already due: still a checkpoint

    def interrupt(self) -> None:
        """Nothing to do: a closing ticker simply notices after its current sleep."""

    def close(self) -> None:
        """Nothing to release."""


class _PreciseTimeBase:
    """timerfd wake-ups on ``CLOCK_MONOTONIC``, with an optional busy-wait tail of ``spin_s``."""

    def __init__(self, backend: str, spin_s: float) -> None:
        self.mode = "spin" if spin_s > 0 else "precise"
        self._spin_s = spin_s
        self._offset = _sample_offset()
        self._waiter = MonotonicWaiter(backend)
        self._interrupted = False

    def now(self) -> float:
        return time.monotonic() + self._offset

    async def sleep_until(self, deadline: float) -> None:
        target = deadline - self._offset
        if target <= time.monotonic():
            await anyio.lowlevel.checkpoint()
            return
        await self._waiter.wait_until(target - self._spin_s)
        while time.monotonic() < target and not self._interrupted:
            pass  # spin tail (empty when spin_s == 0: the timerfd never fires early)

    def interrupt(self) -> None:
        """Make a parked waiter wake now (fires the timer) so it can observe the close."""
        self._interrupted = True
        self._waiter.wake()

    def close(self) -> None:
        self._waiter.close()


def _sample_offset() -> float:
    """``anyio.current_time() - time.monotonic()``, sampled between two monotonic readings."""
    before = time.monotonic()
    anyio_now = anyio.current_time()
    after = time.monotonic()
    return anyio_now - (before + after) / 2


def _real_time_backend() -> str | None:
    """``"asyncio"``/``"trio"`` if the running loop's clock is real ``CLOCK_MONOTONIC`` time."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            clock = trio.lowlevel.current_clock()
        except RuntimeError:
            pass  # not inside trio.run: try asyncio
        else:
            cls = type(clock)
            real = cls.__name__ == "SystemClock" and cls.__module__.startswith("trio.")
            return "trio" if real else None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return "asyncio" if _is_real_asyncio_clock(loop) else None


def _is_real_asyncio_clock(loop: asyncio.AbstractEventLoop) -> bool:
    """Stock asyncio or uvloop time, not patched on the instance, tracking CLOCK_MONOTONIC."""
    known = {asyncio.BaseEventLoop.time}
    uvloop = sys.modules.get("uvloop")
    if uvloop is not None:
        known.add(uvloop.Loop.time)
    if "time" in getattr(loop, "__dict__", {}) or type(loop).time not in known:
        return False
    return abs(loop.time() - time.monotonic()) < _REAL_CLOCK_TOLERANCE_S


def _open_time_base(requested: str, spin_s: float | None) -> _TimeBase:
    """Resolve the requested mode against the running event loop (see module docstring)."""
    if requested == "portable":
        return _PortableTimeBase()
    backend = _real_time_backend() if timerfd_available() else None
    if requested == "auto":
        if backend is None:
            return _PortableTimeBase()
        return _PreciseTimeBase(backend, spin_s or 0.0)
    if backend is None:
        raise ClockError(
            f"Ticker mode {requested!r} needs a Linux timerfd and a real CLOCK_MONOTONIC event "
            "loop clock (not a virtual clock such as trio's MockClock); use mode='auto' or "
            "'portable'"
        )
    default_spin = DEFAULT_SPIN_S if requested == "spin" else 0.0
    return _PreciseTimeBase(backend, default_spin if spin_s is None else spin_s)


def _validate(rate_hz: float, mode: str, spin_s: float | None) -> None:
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise ClockError(f"Ticker rate_hz must be a finite number > 0, got {rate_hz!r}")
    if mode not in get_args(TickerMode):
        raise ClockError(f"Ticker mode must be one of {get_args(TickerMode)}, got {mode!r}")
    if spin_s is None:
        return
    if mode == "portable" and spin_s != 0:
        raise ClockError("Ticker spin_s needs a timerfd time base: not allowed with 'portable'")
    limit = min(MAX_SPIN_S, 1.0 / rate_hz)
    if not (0 <= spin_s < limit):
        raise ClockError(
            f"Ticker spin_s must be in [0, {limit!r}) s (below MAX_SPIN_S and the period), got {spin_s!r}"
        )


def _nearest_rank(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[max(math.ceil(fraction * len(sorted_values)) - 1, 0)]


@final
class Ticker:
    """A fixed-rate loop on absolute deadlines ``t0 + k / rate_hz`` that never drifts.

    ``async with Ticker(100.0) as ticker: async for tick in ticker: ...`` runs the body at
    100 Hz. Overruns are skipped, not replayed, and counted (``Tick.missed``,
    :meth:`statistics`). ``mode`` picks the time base (module docstring); ``spin_s`` sets the
    busy-wait tail of the timerfd modes (default 0 for ``precise``/``auto``,
    :data:`DEFAULT_SPIN_S` for ``spin``).
    """

    def __init__(self, rate_hz: float, *, mode: TickerMode = "auto", spin_s: float | None = None) -> None:
        _validate(rate_hz, mode, spin_s)
        self._rate_hz = float(rate_hz)
        self._requested_mode: str = mode
        self._spin_s = spin_s
        self._time_base: _TimeBase | None = None
        self._t0: float | None = None
        self._next_index = 0
        self._ticks = 0
        self._missed = 0
        self._lateness: deque[float] = deque(maxlen=LATENESS_WINDOW)
        self._waiting = False
        self._closed = False

    @property
    def rate_hz(self) -> float:
        """Deadlines per second."""
        return self._rate_hz

    @property
    def mode(self) -> str:
        """The mode in use, or ``"auto"`` until it is resolved on first use."""
        return self._requested_mode if self._time_base is None else self._time_base.mode

    @property
    def start_time(self) -> float | None:
        """``t0`` (anyio timeline) of the current schedule, ``None`` until the first tick."""
        return self._t0

    def deadline(self, index: int) -> float:
        """The absolute deadline of tick ``index`` of the current schedule."""
        if self._t0 is None:
            raise ClockError("Ticker deadlines are defined only once the schedule has started")
        return self._t0 + index / self._rate_hz

    async def wait_next(self) -> Tick:
        """Sleep until the next deadline not yet in the past and describe it (a checkpoint)."""
        time_base = self._acquire()
        self._waiting = True
        try:
            now = time_base.now()
            t0 = now if self._t0 is None else self._t0
            index, missed = self._plan(t0, now)
            deadline = t0 + index / self._rate_hz
            await time_base.sleep_until(deadline)
            woke_at = time_base.now()
        finally:
            self._waiting = False
            if self._closed:  # close() ran while we waited and left the release to us
                time_base.close()
        if self._closed:
            raise anyio.ClosedResourceError
        self._t0, self._next_index = t0, index + 1
        return self._record(index, deadline, woke_at, missed)

    def _acquire(self) -> _TimeBase:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._waiting:
            raise anyio.BusyResourceError("waiting on")
        if self._time_base is None:
            self._time_base = _open_time_base(self._requested_mode, self._spin_s)
        return self._time_base

    def _plan(self, t0: float, now: float) -> tuple[int, int]:
        """(index to wait for, deadlines missed): skip every deadline strictly before ``now``."""
        first = self._next_index
        if t0 + first / self._rate_hz >= now:
            return first, 0
        last_missed = max(math.ceil((now - t0) * self._rate_hz) - 1, first)
        while t0 + (last_missed + 1) / self._rate_hz < now:  # float rounding guards
            last_missed += 1
        while last_missed > first and t0 + last_missed / self._rate_hz >= now:
            last_missed -= 1
        return last_missed + 1, last_missed + 1 - first

    def _record(self, index: int, deadline: float, woke_at: float, missed: int) -> Tick:
        lateness = woke_at - deadline
        self._ticks += 1
        self._missed += missed
        self._lateness.append(lateness)
        return Tick(index=index, deadline=deadline, woke_at=woke_at, lateness_s=lateness, missed=missed)

    def rebase(self, start: float | None = None) -> None:
        """Start a new schedule: tick 0 is due at ``start`` (anyio timeline; default: the next
        ``wait_next``). Counters are kept; use after a deliberate pause."""
        if self._waiting:
            raise anyio.BusyResourceError("rebasing while another task is waiting on")
        self._t0 = start
        self._next_index = 0

    def statistics(self) -> TickerStatistics:
        """Counters and lateness percentiles over the last :data:`LATENESS_WINDOW` ticks."""
        window = sorted(self._lateness)
        return TickerStatistics(
            ticks=self._ticks,
            missed=self._missed,
            lateness_p50_s=_nearest_rank(window, 0.50) if window else None,
            lateness_p99_s=_nearest_rank(window, 0.99) if window else None,
            lateness_max_s=window[-1] if window else None,
            samples=len(window),
            rate_hz=self._rate_hz,
            mode=self.mode,
        )

    def close(self) -> None:
        """Release the timerfd (idempotent). A task parked in ``wait_next`` wakes promptly
        (at its deadline in portable mode) with ``anyio.ClosedResourceError``."""
        if self._closed:
            return
        self._closed = True
        if self._time_base is None:
            return
        if self._waiting:
            self._time_base.interrupt()  # the waiter closes the time base when it wakes
        else:
            self._time_base.close()

    async def aclose(self) -> None:
        """:meth:`close`, then a checkpoint (anyio's ``aclose`` convention)."""
        self.close()
        await anyio.lowlevel.checkpoint()

    async def __aenter__(self) -> Self:
        """Resolve the mode now (so a misconfiguration fails at entry) and return the ticker."""
        self._acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Tick:
        """Same as :meth:`wait_next`: the iteration never ends by itself (cancel or break)."""
        return await self.wait_next()
