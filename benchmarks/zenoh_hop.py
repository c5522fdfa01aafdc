"""Benchmark: one cross-process Zenoh hop, rtrun channel vs the minimal bare zenoh-python path.

For each payload size (64 B, 4 KB, 300 KB, 1.2 MB = a 640x480 RGB frame) a receiver child
process is started twice -- once with the bare baseline, once with an rtrun cross-host channel --
and this process sends to it over explicit loopback endpoints (multicast scouting off, shared
memory on, default -- not low-latency -- transport). Prints one JSON line per size::

    {"bench": "zenoh_hop", "payload_bytes": ..., "p50_us": ..., "p99_us": ...,
     "baseline_p50_us": ..., "baseline_p99_us": ..., "ratio_p50": ...,
     "throughput_msgs_s": ..., "baseline_throughput_msgs_s": ..., "throughput_ratio": ...}

Bare baseline (the minimal *correct* way to get a Zenoh sample into an asyncio task):
``publisher.put(bytes)`` -> subscriber callback on a Zenoh thread -> ``payload.to_bytes()`` ->
``loop.call_soon_threadsafe(queue.put_nowait, data)`` -> an asyncio task awaiting the queue.

rtrun path: ``open_zenoh_sender`` / ``open_zenoh_receiver`` (policy ``drop_oldest``, reliable
QoS) carrying an ``rtrun.Message`` whose payload is a ``uint8`` array, encoded with the kernel
codec, through the header + bridge machinery, received by ``await port.receive()`` on asyncio.

Latency: sparse messages (one every ``GAP_S``) carry the sender's ``time.monotonic_ns()``; the
receiving task subtracts it from its own ``time.monotonic_ns()``. Comparing monotonic instants
across processes is valid on one machine only -- this benchmark's business, never runtime code's.
Throughput: the sender sends ``count`` messages back to back (never blocking: a bare ``put`` loop,
and ``send_nowait`` on the rtrun ``drop_oldest`` channel); the receiver counts what it got between
the first send instant and the last arrival. Both sides use the same QoS (reliable, congestion
drop, priority data, no express), shared memory on, the default (not low-latency) transport.

Usage: ``python benchmarks/zenoh_hop.py [--sizes 64,4096] [--impl both|bare|rtrun] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
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
THROUGHPUT_COUNT = {64: 20000, 4096: 10000, 300 * 1024: 1000, 1_228_800: 300}
PHASE_LATENCY, PHASE_THROUGHPUT, PHASE_END = 1, 2, 3
_STAMP = struct.Struct("<BIq")  # phase, seq, sender monotonic ns (bare baseline payload prefix)
RUN_TIMEOUT_S = 120.0  # a receiver child never outlives this, whatever happens
GRAPH = "bench"


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


def summarize(latencies_ns: list[int], tp_count: int, tp_span_ns: int) -> dict[str, float]:
    """p50/p99 in microseconds and throughput in messages per second."""
    lat = sorted(latencies_ns)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    return {
        "p50_us": round(statistics.median(lat) / 1000, 1) if lat else float("nan"),
        "p99_us": round(p99 / 1000, 1),
        "received_latency": len(lat),
        "throughput_msgs_s": round(tp_count / (tp_span_ns / 1e9), 1) if tp_span_ns > 0 else 0.0,
        "received_throughput": tp_count,
    }


class Tally:
    """What the receiver measures."""

    def __init__(self) -> None:
        self.latencies: list[int] = []
        self.tp_count = 0
        self.tp_first_sent = 0
        self.tp_last_recv = 0

    def record(self, phase: int, sent_ns: int) -> bool:
        """Account one message; return False on the end marker."""
        now = time.monotonic_ns()
        if phase == PHASE_LATENCY:
            self.latencies.append(now - sent_ns)
        elif phase == PHASE_THROUGHPUT:
            if self.tp_count == 0:
                self.tp_first_sent = sent_ns
            self.tp_count += 1
            self.tp_last_recv = now
        return phase != PHASE_END

    def result(self) -> dict[str, float]:
        return summarize(self.latencies, self.tp_count, self.tp_last_recv - self.tp_first_sent)


# --- bare baseline --------------------------------------------------------------------------


async def bare_receiver(endpoint: str, key: str) -> dict[str, float]:
    """put -> callback -> loop.call_soon_threadsafe -> asyncio task."""
    import zenoh
    from rtrun._zenoh_config import to_zenoh_config

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def on_sample(sample: zenoh.Sample) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, sample.payload.to_bytes())

    tally = Tally()
    with zenoh.open(to_zenoh_config(settings(listen=endpoint))) as session:
        session.declare_subscriber(key, on_sample)
        print("READY", flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RUN_TIMEOUT_S):
                while True:
                    data = await queue.get()
                    phase, _, sent_ns = _STAMP.unpack_from(data)
                    if not tally.record(phase, sent_ns):
                        break
    return tally.result()


def bare_sender(endpoint: str, key: str, size: int, lat_count: int, tp_count: int) -> None:
    """Send the latency then the throughput phase with a plain reliable DROP publisher."""
    import zenoh
    from rtrun._zenoh_config import to_zenoh_config

    with zenoh.open(to_zenoh_config(settings(connect=endpoint))) as session:
        pub = session.declare_publisher(
            key, congestion_control=zenoh.CongestionControl.DROP, reliability=zenoh.Reliability.RELIABLE
        )
        _wait_matching(pub)
        pad = bytes(size - _STAMP.size)
        for i in range(lat_count):
            pub.put(_STAMP.pack(PHASE_LATENCY, i, time.monotonic_ns()) + pad)
            time.sleep(GAP_S)
        for i in range(tp_count):
            pub.put(_STAMP.pack(PHASE_THROUGHPUT, i, time.monotonic_ns()) + pad)
        time.sleep(0.2)
        for _ in range(3):  # DROP publisher: repeat the end marker
            pub.put(_STAMP.pack(PHASE_END, 0, 0) + pad)
            time.sleep(0.05)


def _wait_matching(pub: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pub.matching_status.matching:
        if time.monotonic() > deadline:
            raise TimeoutError("no matching subscriber")
        time.sleep(0.01)
    time.sleep(0.1)  # let the route settle on both sides


# --- rtrun channel ----------------------------------------------------------------------------


def _bench_message() -> Any:
    import numpy as np
    import rtrun

    @rtrun.message(tag="rtrun.bench.Hop", version=1)
    class Hop(rtrun.Message):
        phase: int
        """1 latency, 2 throughput, 3 end."""
        seq: int
        """Counter within the phase."""
        sent_ns: int
        """Sender's time.monotonic_ns() (same machine only)."""
        data: np.ndarray
        """The payload, uint8."""

    return Hop


async def rtrun_receiver(endpoint: str, key: str, size: int) -> dict[str, float]:
    """rtrun cross-host channel, receiving side (asyncio)."""
    import anyio
    from rtrun._zenoh import open_session
    from rtrun._zenoh_channel import open_zenoh_receiver

    hop = _bench_message()
    tally = Tally()
    with open_session(settings(listen=endpoint)) as session:
        receiver = open_zenoh_receiver(session, key, 64, "drop_oldest", message_type=hop)
        with receiver:
            print("READY", flush=True)
            with anyio.move_on_after(RUN_TIMEOUT_S):
                async for msg in receiver:  # ends with EndOfStream when the sender closes
                    tally.record(msg.phase, msg.sent_ns)
    return tally.result()


async def rtrun_sender(endpoint: str, key: str, size: int, lat_count: int, tp_count: int) -> None:
    """rtrun cross-host channel, sending side (asyncio)."""
    import anyio
    import numpy as np
    from rtrun._zenoh import Qos, open_session
    from rtrun._zenoh_channel import open_zenoh_sender

    hop = _bench_message()
    data = np.zeros(size - 64 if size > 128 else size, np.uint8)
    data.flags.writeable = False
    with open_session(settings(connect=endpoint)) as session:
        sender = open_zenoh_sender(session, key, policy="drop_oldest", qos=Qos())  # = baseline QoS
        async with sender:
            with anyio.fail_after(10):
                await sender.wait_for_receiver()
            await anyio.sleep(0.1)
            for i in range(lat_count):
                await sender.send(hop(phase=PHASE_LATENCY, seq=i, sent_ns=time.monotonic_ns(), data=data))
                await anyio.sleep(GAP_S)
            for i in range(tp_count):  # drop_oldest never waits: send_nowait, like a bare put
                sender.send_nowait(hop(phase=PHASE_THROUGHPUT, seq=i, sent_ns=time.monotonic_ns(), data=data))
            await anyio.sleep(0.2)
        await anyio.sleep(0.2)  # END_OF_STREAM was queued by aclose(); let it leave first


# --- driver -----------------------------------------------------------------------------------


@contextlib.contextmanager
def receiver_process(impl: str, endpoint: str, key: str, size: int) -> Iterator[subprocess.Popen[str]]:
    """Start the receiving child and wait until its subscriber is declared."""
    cmd = [sys.executable, __file__, "--role", "receiver", "--impl", impl]
    cmd += ["--endpoint", endpoint, "--key", key, "--sizes", str(size)]
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


def run_one(impl: str, size: int, quick: bool) -> dict[str, float]:
    """One receiver child + this process as the sender; returns the child's measurements."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    key = f"@rtrun/{GRAPH}/{impl}/s{size}"
    lat_count = LATENCY_COUNT[size] // (4 if quick else 1)
    tp_count = THROUGHPUT_COUNT[size] // (4 if quick else 1)
    with receiver_process(impl, endpoint, key, size) as proc:
        if impl == "bare":
            bare_sender(endpoint, key, size, lat_count, tp_count)
        else:
            import anyio

            anyio.run(rtrun_sender, endpoint, key, size, lat_count, tp_count)
        assert proc.stdout is not None
        out, _ = proc.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments; run as the driver (default) or as a receiver child."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--impl", choices=("both", "bare", "rtrun"), default="both")
    parser.add_argument("--quick", action="store_true", help="a quarter of the messages")
    parser.add_argument("--role", choices=("driver", "receiver"), default="driver")
    parser.add_argument("--endpoint")
    parser.add_argument("--key")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.role == "receiver":
        if args.impl == "bare":
            result = asyncio.run(bare_receiver(args.endpoint, args.key))
        else:
            import anyio

            result = anyio.run(rtrun_receiver, args.endpoint, args.key, sizes[0])
        print(json.dumps(result), flush=True)
        return
    for size in sizes:
        line: dict[str, Any] = {"bench": "zenoh_hop", "payload_bytes": size}
        if args.impl in ("both", "bare"):
            base = run_one("bare", size, args.quick)
            line |= {f"baseline_{k}": v for k, v in base.items()}
        if args.impl in ("both", "rtrun"):
            line |= run_one("rtrun", size, args.quick)
        if args.impl == "both":
            line["ratio_p50"] = round(line["p50_us"] / line["baseline_p50_us"], 3)
            tp = line["throughput_msgs_s"] / max(line["baseline_throughput_msgs_s"], 1e-9)
            line["throughput_ratio"] = round(tp, 3)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("RUST_LOG", "error")
    main()
