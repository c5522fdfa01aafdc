"""Benchmark: one cross-process Zenoh hop, rtrun channel vs the minimal bare zenoh-python path.

For each payload size (64 B, 4 KB, 300 KB, 1.2 MB = a 640x480 RGB frame) one receiver child
process is started; it hosts *both* receivers in one asyncio loop on one Zenoh session: the bare
baseline on one key and an rtrun cross-host channel on another. This process (the driver) sends
to both over explicit loopback endpoints (multicast scouting off, shared memory on, default --
not low-latency -- transport) and prints one JSON line per size::

    {"bench": "zenoh_hop", "payload_bytes": ..., "p50_us": ..., "p99_us": ...,
     "baseline_p50_us": ..., "baseline_p99_us": ..., "ratio_p50": ...,
     "throughput_msgs_s": ..., "baseline_throughput_msgs_s": ..., "throughput_ratio": ...,
     "load_avg": [...], ...}

Bare baseline (the minimal *correct* way to get a Zenoh sample into an asyncio task):
``publisher.put(bytes)`` -> subscriber callback on a Zenoh thread -> ``payload.to_bytes()`` ->
``loop.call_soon_threadsafe(queue.put_nowait, data)`` -> an asyncio task awaiting the queue.

rtrun path: ``open_zenoh_sender`` / ``open_zenoh_receiver`` (policy ``drop_oldest``, reliable
QoS, capacity ``--capacity``, by default the throughput burst's length: the bare baseline's
asyncio queue is unbounded, so a smaller rtrun buffer would measure the policy's drops rather
than the transport's rate; run with ``--capacity 64`` to see how a small lossy buffer fares) carrying an ``rtrun.Message`` whose payload is a ``uint8`` array,
encoded with the kernel codec, through the header + bridge machinery, received (decoded) by
``async for`` on asyncio. The message is the same number of bytes on the wire as the bare one.

Fairness: both paths run in the same two processes on the same Zenoh sessions and with the same
QoS (reliable, congestion drop, priority data, no express), and are *interleaved* so that machine
load (this is a shared 2-core box) hits both alike: latency messages alternate bare/rtrun, one
every ``GAP_S``; throughput bursts alternate bare/rtrun for ``--rounds`` rounds and the median
round is reported. A warm-up precedes the measurements (first samples set up routes and caches).

Latency: sparse messages carry the sender's ``time.monotonic_ns()`` taken just before the user
call (``put`` / ``await send``); the receiving task subtracts it from its own
``time.monotonic_ns()`` right after the user receive returned. Comparing monotonic instants
across processes is valid on one machine only -- this benchmark's business, never runtime code's.
Throughput: the driver sends a burst back to back (never blocking: a bare ``put`` loop, and
``send_nowait`` on the rtrun ``drop_oldest`` channel); the receiver counts what it got between
the burst's first send instant and its last arrival. Drops are reported (``dropped``).

dora-rs: when a ``dora`` CLI is found (``--dora PATH``, default: on ``PATH``), the same sizes also
go through a two-node dora-rs Python dataflow, sparse like the latency phase, adding
``dora_p50_us``/``dora_p99_us`` (see ``_dora_hop.py``).

Usage: ``python benchmarks/zenoh_hop.py [--sizes 64,4096] [--quick] [--rounds 5] [--capacity N]
[--dora PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

SIZES = (64, 4096, 300 * 1024, 1_228_800)
GAP_S = 0.002  # sparse latency messages: one every 2 ms, so each one sees an idle path
LATENCY_COUNT = {64: 400, 4096: 400, 300 * 1024: 300, 1_228_800: 200}
THROUGHPUT_COUNT = {64: 10000, 4096: 5000, 300 * 1024: 500, 1_228_800: 150}
WARMUP_COUNT = 50
PHASE_WARMUP, PHASE_LATENCY, PHASE_THROUGHPUT, PHASE_END = 0, 1, 2, 3
_STAMP = struct.Struct("<BIq")  # phase, seq/round, sender monotonic ns (bare payload prefix)
RUN_TIMEOUT_S = 300.0  # a receiver child never outlives this, whatever happens
GRAPH = "bench"
IMPLS = ("bare", "rtrun")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings(*, listen: str | None = None, connect: str | None = None) -> Any:
    """Peer settings on explicit loopback endpoints, multicast off, shared memory on."""
    from rtrun._zenoh_config import ZenohSettings

    return ZenohSettings(
        mode="peer",
        listen=(listen,) if listen else (),
        connect=(connect,) if connect else (),
    )


def keys(size: int) -> dict[str, str]:
    """One key per implementation."""
    return {impl: f"@rtrun/{GRAPH}/{impl}/s{size}" for impl in IMPLS}


class Tally:
    """What the receiver measures for one implementation."""

    def __init__(self) -> None:
        self.latencies: list[int] = []
        self.rounds: dict[int, list[int]] = {}  # round -> [count, first_sent_ns, last_recv_ns]

    def record(self, phase: int, seq: int, sent_ns: int) -> bool:
        """Account one message; return False on the end marker."""
        now = time.monotonic_ns()
        if phase == PHASE_LATENCY:
            self.latencies.append(now - sent_ns)
        elif phase == PHASE_THROUGHPUT:
            tally = self.rounds.setdefault(seq, [0, sent_ns, now])
            tally[0] += 1
            tally[2] = now
        return phase != PHASE_END

    def result(self) -> dict[str, Any]:
        """p50/p99 in microseconds and the per-round throughputs in messages per second."""
        lat = sorted(self.latencies)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
        rates = [
            round(count / ((last - first) / 1e9), 1) if last > first else 0.0
            for count, first, last in (self.rounds[r] for r in sorted(self.rounds))
        ]
        return {
            "p50_us": round(statistics.median(lat) / 1000, 1) if lat else float("nan"),
            "p99_us": round(p99 / 1000, 1),
            "received_latency": len(lat),
            "round_throughputs": rates,
            "throughput_msgs_s": statistics.median(rates) if rates else 0.0,
            "received_throughput": [self.rounds[r][0] for r in sorted(self.rounds)],
        }


# --- receiver child ---------------------------------------------------------------------------


def _bench_message() -> Any:
    import numpy as np
    import rtrun

    @rtrun.message(tag="rtrun.bench.Hop", version=1)
    class Hop(rtrun.Message):
        phase: int
        """0 warm-up, 1 latency, 2 throughput, 3 end."""
        seq: int
        """Counter within the latency phase; round number in the throughput phase."""
        sent_ns: int
        """Sender's time.monotonic_ns() (same machine only)."""
        data: np.ndarray
        """The payload, uint8."""

    return Hop


def rtrun_data_len(size: int) -> int:
    """Array length that makes the encoded Hop exactly ``size`` bytes (or close, for tiny sizes)."""
    import numpy as np
    import rtrun

    hop = _bench_message()
    n = max(size - 100, 1)
    for _ in range(4):
        encoded = len(
            rtrun.encode(hop(phase=2, seq=1, sent_ns=time.monotonic_ns(), data=np.zeros(n, np.uint8)))
        )
        n = max(n + size - encoded, 1)
    return n


async def receiver_main(endpoint: str, size: int, capacity: int) -> dict[str, Any]:
    """Both receivers in one asyncio loop on one session; returns both tallies."""
    import anyio
    from rtrun._zenoh import open_session
    from rtrun._zenoh_channel import open_zenoh_receiver

    hop = _bench_message()
    key = keys(size)
    tallies = {impl: Tally() for impl in IMPLS}
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def on_sample(sample: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, sample.payload.to_bytes())

    async def bare() -> None:
        tally = tallies["bare"]
        while True:
            data = await queue.get()
            if not tally.record(*_STAMP.unpack_from(data)):
                return

    async def rtrun_rx(receiver: Any) -> None:
        tally = tallies["rtrun"]
        async for msg in receiver:  # ends with EndOfStream when the sender closes
            if not tally.record(msg.phase, msg.seq, msg.sent_ns):
                return

    with open_session(settings(listen=endpoint)) as session:
        session._session.declare_subscriber(key["bare"], on_sample)  # the bare zenoh session
        receiver = open_zenoh_receiver(session, key["rtrun"], capacity, "drop_oldest", message_type=hop)
        with receiver:
            print("READY", flush=True)
            with anyio.move_on_after(RUN_TIMEOUT_S):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(bare)
                    tg.start_soon(rtrun_rx, receiver)
            stats = receiver.statistics()
    drops = {"dropped": stats.dropped_total, "drop_reasons": dict(stats.dropped)}
    return {"bare": tallies["bare"].result(), "rtrun": tallies["rtrun"].result() | drops}


# --- driver (sender) --------------------------------------------------------------------------


class Senders:
    """The two sending paths, on one session."""

    def __init__(self, session: Any, size: int) -> None:
        import numpy as np
        import zenoh
        from rtrun import QoS
        from rtrun._zenoh_channel import open_zenoh_sender

        key = keys(size)
        self.pub = session._session.declare_publisher(
            key["bare"],
            congestion_control=zenoh.CongestionControl.DROP,
            reliability=zenoh.Reliability.RELIABLE,
        )
        bare = QoS(reliability="reliable")  # = the bare publisher's QoS
        self.port = open_zenoh_sender(session, key["rtrun"], policy="drop_oldest", qos=bare)
        self.hop = _bench_message()
        self.data = np.zeros(rtrun_data_len(size), np.uint8)
        self.data.flags.writeable = False
        self.pad = bytes(size - _STAMP.size)

    async def ready(self) -> None:
        import anyio

        with anyio.fail_after(10):
            await self.port.wait_for_receiver()
            while not self.pub.matching_status.matching:  # noqa: ASYNC110 - zenoh has no event for it
                await anyio.sleep(0.01)
        await anyio.sleep(0.1)  # let the routes settle on both sides

    def bare(self, phase: int, seq: int) -> None:
        self.pub.put(_STAMP.pack(phase, seq, time.monotonic_ns()) + self.pad)

    async def rtrun(self, phase: int, seq: int) -> None:
        await self.port.send(self.hop(phase=phase, seq=seq, sent_ns=time.monotonic_ns(), data=self.data))

    def rtrun_nowait(self, phase: int, seq: int) -> None:
        self.port.send_nowait(self.hop(phase=phase, seq=seq, sent_ns=time.monotonic_ns(), data=self.data))


async def driver_main(endpoint: str, size: int, lat_count: int, tp_count: int, rounds: int) -> None:
    """Warm up, then interleave latency messages and throughput bursts of both paths."""
    import anyio
    from rtrun._zenoh import open_session

    with open_session(settings(connect=endpoint)) as session:
        tx = Senders(session, size)
        with tx.port:
            await tx.ready()
            for phase, count in ((PHASE_WARMUP, WARMUP_COUNT), (PHASE_LATENCY, lat_count)):
                for i in range(count):
                    tx.bare(phase, i)
                    await anyio.sleep(GAP_S)
                    await tx.rtrun(phase, i)
                    await anyio.sleep(GAP_S)
            for r in range(rounds):
                for impl in IMPLS if r % 2 == 0 else reversed(IMPLS):
                    send = tx.bare if impl == "bare" else tx.rtrun_nowait
                    start = time.monotonic()
                    for _ in range(tp_count):
                        send(PHASE_THROUGHPUT, r)
                    await anyio.sleep(0.3 + 2 * (time.monotonic() - start))  # let it drain
            for _ in range(3):  # DROP publishers: repeat the end markers
                tx.bare(PHASE_END, 0)
                with contextlib.suppress(anyio.BrokenResourceError):  # the receiver is done
                    tx.rtrun_nowait(PHASE_END, 0)
                await anyio.sleep(0.05)
        tx.pub.undeclare()


@contextlib.contextmanager
def receiver_process(endpoint: str, size: int, capacity: int) -> Iterator[subprocess.Popen[str]]:
    """Start the receiving child and wait until its subscribers are declared."""
    cmd = [sys.executable, __file__, "--role", "receiver", "--endpoint", endpoint]
    cmd += ["--sizes", str(size), "--capacity", str(capacity)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"receiver did not start: {line!r}")
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """One receiver child + this process as the sender; returns one JSON line's fields."""
    import anyio

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    div = 4 if args.quick else 1
    lat_count, tp_count = LATENCY_COUNT[size] // div, THROUGHPUT_COUNT[size] // div
    load_before = os.getloadavg()[0]
    capacity = args.capacity if args.capacity is not None else tp_count
    with receiver_process(endpoint, size, capacity) as proc:
        anyio.run(driver_main, endpoint, size, lat_count, tp_count, args.rounds)
        assert proc.stdout is not None
        out, _ = proc.communicate(timeout=60)
    result = json.loads(out.strip().splitlines()[-1])
    line: dict[str, Any] = {"bench": "zenoh_hop", "payload_bytes": size}
    line |= {f"baseline_{k}": v for k, v in result["bare"].items()}
    line |= result["rtrun"]
    line["ratio_p50"] = round(line["p50_us"] / line["baseline_p50_us"], 3)
    tp = line["throughput_msgs_s"] / max(line["baseline_throughput_msgs_s"], 1e-9)
    line["throughput_ratio"] = round(tp, 3)
    line["capacity"] = capacity
    if args.dora:
        from _dora_hop import dora_hop

        line |= dora_hop(args.dora, size, lat_count)
    line["load_avg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return line


def main() -> None:
    """Parse arguments; run as the driver (default) or as the receiver child."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--quick", action="store_true", help="a quarter of the messages")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds per path")
    parser.add_argument("--capacity", type=int, help="rtrun receiving capacity (default: burst length)")
    parser.add_argument(
        "--dora", default=shutil.which("dora"), help="dora CLI for the dora-rs comparison (default: on PATH)"
    )
    parser.add_argument("--role", choices=("driver", "receiver"), default="driver")
    parser.add_argument("--endpoint")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.role == "receiver":
        import anyio

        result = anyio.run(receiver_main, args.endpoint, sizes[0], args.capacity)
        print(json.dumps(result), flush=True)
        return
    for size in sizes:
        print(json.dumps(run_size(size, args)), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("RUST_LOG", "error")
    main()
