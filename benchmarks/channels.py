"""Channel benchmarks: rtrun channels vs a bare anyio memory object stream, in the same run.

Prints one JSON object per line:

* ``channel_hop``: one-hop latency to a waiting receiver (p50/p99, µs) per policy, with the
  bare anyio stream of the same capacity as baseline and ``ratio_p50`` = rtrun / baseline;
* ``channel_throughput``: messages per second through one channel (sender and receiver tasks);
* ``pipeline``: end-to-end latency through 6 relay stages, rtrun vs bare streams;
* ``codec``: encode+decode of a 640×480×3 frame message and a 50×14 action chunk.

Usage: ``python benchmarks/channels.py [--hops 20000] [--backend asyncio|trio]``.
The machine is shared and noisy: compare ratios, report medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import rtrun
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

sys.path.insert(0, str(Path(__file__).parent))

PAYLOADS: dict[str, Any] = {"int": 1, "frame_ref": bytearray(640 * 480 * 3)}


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _hop(make: Callable[[], tuple[Any, Any]], payload: Any, hops: int) -> list[float]:
    """Latency of send -> waiting receiver, one message at a time (µs)."""
    send, receive = make()
    samples: list[float] = []
    ready = anyio.Event()

    async def consumer() -> None:
        ready.set()
        for _ in range(hops):
            t_sent, _item = await receive.receive()
            samples.append((time.perf_counter_ns() - t_sent) / 1000)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await ready.wait()
        for _ in range(hops):
            await anyio.lowlevel.checkpoint()  # let the consumer park in receive()
            await anyio.lowlevel.checkpoint()
            await send.send((time.perf_counter_ns(), payload))
    send.close()
    receive.close()
    return samples[hops // 10 :]  # drop warm-up


async def _throughput(make: Callable[[], tuple[Any, Any]], count: int) -> float:
    send, receive = make()

    async def consumer() -> None:
        for _ in range(count):
            await receive.receive()

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        for i in range(count):
            await send.send(i)
    elapsed = time.perf_counter() - t0
    send.close()
    receive.close()
    return count / elapsed


async def _pipeline(make: Callable[[], tuple[Any, Any]], stages: int, hops: int) -> list[float]:
    pairs = [make() for _ in range(stages + 1)]
    samples: list[float] = []

    async def relay(receive: Any, send: Any) -> None:
        async for item in receive:
            await send.send(item)

    async def sink(receive: Any) -> None:
        for _ in range(hops):
            t_sent = await receive.receive()
            samples.append((time.perf_counter_ns() - t_sent) / 1000)

    async with anyio.create_task_group() as tg:
        for i in range(stages):
            tg.start_soon(relay, pairs[i][1], pairs[i + 1][0])
        tg.start_soon(sink, pairs[stages][1])
        for _ in range(hops):
            for _ in range(stages + 2):
                await anyio.lowlevel.checkpoint()
            await pairs[0][0].send(time.perf_counter_ns())
        tg.cancel_scope.cancel()
    for send, receive in pairs:
        send.close()
        receive.close()
    return samples[hops // 10 :]


def _bare(capacity: int) -> Callable[[], tuple[MemoryObjectSendStream[Any], MemoryObjectReceiveStream[Any]]]:
    return lambda: anyio.create_memory_object_stream[Any](capacity)


def _ours(capacity: int, policy: str) -> Callable[[], tuple[Any, Any]]:
    return lambda: rtrun.open_channel(capacity, policy)  # type: ignore[arg-type]


def _median_of_runs(samples_per_run: list[list[float]], q: float) -> float:
    return statistics.median(_pct(s, q) for s in samples_per_run)


async def _main(hops: int, runs: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cases = [("block", 0), ("block", 1), ("drop_oldest", 4), ("latest", 1)]
    for policy, capacity in cases:
        for payload_name, payload in PAYLOADS.items():
            ours, bare = [], []
            for _ in range(runs):  # interleave to share the machine's noise fairly
                bare.append(await _hop(_bare(max(capacity, 0)), payload, hops))
                ours.append(await _hop(_ours(capacity, policy), payload, hops))
            p50, base = _median_of_runs(ours, 0.5), _median_of_runs(bare, 0.5)
            out.append({
                "bench": "channel_hop", "policy": policy, "capacity": capacity, "payload": payload_name,
                "p50_us": round(p50, 2), "p99_us": round(_median_of_runs(ours, 0.99), 2),
                "baseline_p50_us": round(base, 2), "baseline_p99_us": round(_median_of_runs(bare, 0.99), 2),
                "ratio_p50": round(p50 / base, 3),
            })  # fmt: skip
    for capacity in (1, 64):
        ours_t, bare_t = [], []
        for _ in range(runs):  # interleaved, like the hop cases
            bare_t.append(await _throughput(_bare(capacity), hops * 5))
            ours_t.append(await _throughput(_ours(capacity, "block"), hops * 5))
        out.append({
            "bench": "channel_throughput", "policy": "block", "capacity": capacity,
            "msgs_per_s": round(statistics.median(ours_t)), "baseline_msgs_per_s": round(statistics.median(bare_t)),
            "ratio": round(statistics.median(ours_t) / statistics.median(bare_t), 3),
        })  # fmt: skip
    ours_p, bare_p = [], []
    for _ in range(runs):
        bare_p.append(await _pipeline(_bare(1), 6, hops // 2))
        ours_p.append(await _pipeline(_ours(1, "block"), 6, hops // 2))
    p50, base = _median_of_runs(ours_p, 0.5), _median_of_runs(bare_p, 0.5)
    out.append({
        "bench": "pipeline", "stages": 6, "policy": "block", "p50_us": round(p50, 2),
        "p99_us": round(_median_of_runs(ours_p, 0.99), 2), "baseline_p50_us": round(base, 2), "ratio_p50": round(p50 / base, 3),
    })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    args = parser.parse_args()
    for line in anyio.run(_main, args.hops, args.runs, backend=args.backend):
        print(json.dumps(line), flush=True)
    try:
        from _codec_bench import run_codec_bench
    except ImportError as exc:  # pragma: no cover - reported, not hidden
        print(json.dumps({"bench": "codec", "error": repr(exc)}))
    else:
        for line in run_codec_bench():
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
