"""Micro-benchmark: waking an event-loop task from a foreign thread (basis of rtrun._bridge).

Prints one JSON line per (backend, mechanism) with the median and p99 latency in microseconds
from a thread's deposit to the waiting task running. Mechanisms: rtrun's ``Handoff`` (eventfd,
registered once with the loop on asyncio, ``anyio.wait_readable`` on trio), a bare pipe + ``wait_readable``, and the loop's own thread-safe
scheduler (``call_soon_threadsafe`` / ``TrioToken.run_sync_soon``) setting an ``anyio.Event``.

Usage: ``python benchmarks/bridge_wake.py [--samples N]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable

import anyio
import anyio.lowlevel
from rtrun._bridge import Handoff

GAP_S = 0.0005  # sparse arrivals: every sample measures a full park -> wake cycle


def _feed(put: Callable[[int], object], stamps: list[int], samples: int) -> threading.Thread:
    def run() -> None:
        for i in range(samples):
            time.sleep(GAP_S)
            stamps.append(time.perf_counter_ns())
            put(i)

    thread = threading.Thread(target=run, name="bridge-wake-feeder")
    thread.start()
    return thread


async def via_handoff(samples: int) -> list[int]:
    """rtrun._bridge.Handoff (eventfd; a persistent reader on asyncio, wait_readable on trio)."""
    handoff: Handoff[int] = Handoff(samples, "drop_newest")
    stamps: list[int] = []
    lat: list[int] = []
    thread = _feed(handoff.put_threadsafe, stamps, samples)
    for i in range(samples):
        assert await handoff.get() == i
        lat.append(time.perf_counter_ns() - stamps[i])
    thread.join()
    handoff.close()
    return lat


async def via_pipe(samples: int) -> list[int]:
    """A bare pipe written once per item + anyio.wait_readable."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    lock, buf, stamps, lat = threading.Lock(), [], [], []  # type: ignore[var-annotated]

    def put(i: int) -> None:
        with lock:
            buf.append(i)
        os.write(write_fd, b"x")

    thread = _feed(put, stamps, samples)
    while len(lat) < samples:
        await anyio.wait_readable(read_fd)
        os.read(read_fd, 4096)
        with lock:
            items, buf[:] = buf[:], []
        now = time.perf_counter_ns()
        lat += [now - stamps[i] for i in items]
    thread.join()
    os.close(read_fd)
    os.close(write_fd)
    return lat


async def via_scheduler(samples: int) -> list[int]:
    """call_soon_threadsafe / run_sync_soon setting an anyio.Event."""
    native = anyio.lowlevel.current_token().native_token
    schedule = getattr(native, "call_soon_threadsafe", None) or native.run_sync_soon  # type: ignore[attr-defined]
    lock, buf, stamps, lat = threading.Lock(), [], [], []  # type: ignore[var-annotated]
    parked: list[anyio.Event] = []

    def put(i: int) -> None:
        with lock:
            buf.append(i)
            event = parked.pop() if parked else None
        if event is not None:
            schedule(event.set)

    thread = _feed(put, stamps, samples)
    while len(lat) < samples:
        with lock:
            items, buf[:] = buf[:], []
            event = None if items else anyio.Event()
            if event is not None:
                parked.append(event)
        if event is not None:
            await event.wait()
            continue
        now = time.perf_counter_ns()
        lat += [now - stamps[i] for i in items]
    thread.join()
    return lat


def main() -> None:
    """Run every mechanism on asyncio and trio and print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    for backend in ("asyncio", "trio"):
        for fn in (via_handoff, via_pipe, via_scheduler):
            lat = sorted(anyio.run(fn, args.samples, backend=backend))
            print(
                json.dumps(
                    {
                        "bench": "bridge_wake",
                        "backend": backend,
                        "mechanism": fn.__name__.removeprefix("via_"),
                        "p50_us": round(statistics.median(lat) / 1000, 1),
                        "p99_us": round(lat[int(len(lat) * 0.99)] / 1000, 1),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
