"""Ticker wake-up precision and CPU cost on real time (not a test).

Prints one JSON object per line::

    {"bench": "ticker", "rate_hz": 500.0, "mode": "precise", "backend": "asyncio",
     "lateness_p50_us": ..., "lateness_p99_us": ..., "lateness_max_us": ..., "cpu_percent": ...,
     "ticks": ..., "missed": ..., "spin_us": 0.0, "default": true, "loadavg_1m": ...}

Each case runs an idle loop (``await ticker.wait_next()`` and nothing else) for ``--seconds``
after a short warm-up. Lateness is ``Tick.lateness_s``: ``time.monotonic()`` at wake minus the
deadline in the timerfd modes, and ``anyio.current_time()`` at wake minus the deadline in
``portable`` mode, which on stock asyncio *is* ``time.monotonic()`` (on uvloop it has 1 ms
resolution). Percentiles are nearest-rank over every tick of the case. CPU is the
``time.process_time()`` delta over the wall-clock duration, in percent of one core.
``default`` marks the mode ``Ticker(rate_hz)`` resolves to on this backend on real time.
``loadavg_1m`` shows how busy the machine was (the numbers are only meaningful when idle).

Target (issue 2): at 100 Hz and 500 Hz idle, the default mode has p99 lateness <= 250 us using
<= 5 % of a core.

Usage: ``python benchmarks/ticker.py [--seconds 5] [--rates 100,500] [--backend asyncio]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from rtrun._clock import DEFAULT_SPIN_S, Ticker, TickerMode

WARMUP_S = 0.3
"""Discarded start of each case: the first wake-ups pay for imports and cold caches."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One benchmark configuration."""

    rate_hz: float
    """Ticker rate."""
    mode: TickerMode
    """Ticker mode to request."""
    spin_s: float | None
    """Spin tail for ``spin`` mode (``None`` for the other modes)."""


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    return sorted_values[max(math.ceil(fraction * len(sorted_values)) - 1, 0)]


async def _measure(case: Case, seconds: float) -> dict[str, object]:
    async with Ticker(case.rate_hz) as auto_ticker:
        default_mode = auto_ticker.mode
    latenesses: list[float] = []
    missed = 0
    async with Ticker(case.rate_hz, mode=case.mode, spin_s=case.spin_s) as ticker:
        warm_until = anyio.current_time() + WARMUP_S
        while (await ticker.wait_next()).woke_at < warm_until:
            pass
        cpu0, wall0 = time.process_time(), time.monotonic()
        while time.monotonic() - wall0 < seconds:
            tick = await ticker.wait_next()
            latenesses.append(tick.lateness_s)
            missed += tick.missed
        cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        mode = ticker.mode
    latenesses.sort()
    return {
        "rate_hz": case.rate_hz,
        "mode": mode,
        "lateness_p50_us": round(_percentile(latenesses, 0.50) * 1e6, 1),
        "lateness_p99_us": round(_percentile(latenesses, 0.99) * 1e6, 1),
        "lateness_max_us": round(latenesses[-1] * 1e6, 1),
        "cpu_percent": round(cpu * 100, 2),
        "ticks": len(latenesses),
        "missed": missed,
        "spin_us": round((case.spin_s or 0.0) * 1e6, 1),
        "default": mode == default_mode,
    }


def _cases(rates: Sequence[float], modes: Sequence[str], spins_us: Sequence[float]) -> list[Case]:
    cases = []
    for rate in rates:
        for mode in modes:
            if mode == "spin":
                cases += [Case(rate_hz=rate, mode="spin", spin_s=us * 1e-6) for us in spins_us]
            else:
                cases.append(Case(rate_hz=rate, mode=mode, spin_s=None))  # type: ignore[arg-type]
    return cases


def _backend_args(backend: str) -> tuple[str, dict[str, object]]:
    if backend == "uvloop":
        return "asyncio", {"use_uvloop": True}
    return backend, {}


def main(argv: Sequence[str] | None = None) -> None:
    """Run every case and print one JSON line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per case")
    parser.add_argument("--rates", default="100,500", help="comma-separated rates in Hz")
    parser.add_argument("--modes", default="portable,precise,spin", help="comma-separated")
    parser.add_argument(
        "--spin-us", default=f"{DEFAULT_SPIN_S * 1e6:g}", help="spin tails to try (spin mode)"
    )
    parser.add_argument("--backend", choices=["asyncio", "uvloop", "trio"], default="asyncio")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    spins_us = [float(s) for s in args.spin_us.split(",")]
    backend, options = _backend_args(args.backend)
    for case in _cases(rates, args.modes.split(","), spins_us):
        result = anyio.run(_measure, case, args.seconds, backend=backend, backend_options=options)
        line = {"bench": "ticker", **result, "backend": args.backend}
        line["loadavg_1m"] = round(os.getloadavg()[0], 2)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
