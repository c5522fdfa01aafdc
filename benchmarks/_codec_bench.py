"""Codec micro-benchmark: encode / decode / round-trip time of a camera frame, an action chunk and
a small joint state (the per-message Python cost that dominates a Zenoh hop).

``run_codec_bench()`` returns one dict per case::

    {"bench": "codec", "case": "frame_640x480x3" | "chunk_50x14" | "joint_state_6", "roundtrip_us": median,
     "p99_us": p99 of the round trip, "encode_us": median, "decode_us": median,
     "bytes": encoded size, "iterations": n}

Each timing is a median over ``iterations`` runs (>= 200) after a warm-up, measured with
``time.perf_counter_ns``; the garbage collector is paused while measuring. The issue's target:
frame round trip <= 200 µs on the project machine. Run ``python benchmarks/_codec_bench.py`` to
print JSON lines; ``benchmarks/channels.py`` calls :func:`run_codec_bench` too.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rtrun._codec import decode, encode
from rtrun._message import Message, message

WARMUP = 50
"""Untimed iterations first (allocator, caches, compiled codec)."""


@message(tag="rtrun.bench.Frame", version=1)
class BenchFrame(Message):
    """Same shape as a camera frame message."""

    camera: str
    """Camera id."""
    seq: int
    """Frame counter."""
    t_capture: float
    """Capture time, seconds."""
    image: NDArray[np.uint8]
    """H×W×3 RGB."""


@message(tag="rtrun.bench.Chunk", version=1)
class BenchChunk(Message):
    """Same shape as an action-chunk reply."""

    request_id: int
    """Request being answered."""
    episode: int
    """Episode id."""
    t_request: float
    """Echoed request time."""
    queue_wait_s: float
    """Time spent queued."""
    inference_s: float
    """Inference duration."""
    actions: NDArray[np.float32]
    """horizon × action_dim."""
    joint_names: tuple[str, ...]
    """Action dimension names."""


@message(tag="rtrun.bench.JointState", version=1)
class BenchJointState(Message):
    """Same shape as a 6-joint state message: a few scalars and one small array (~100 B)."""

    seq: int
    """Sample counter."""
    t_sample: float
    """Sample time, seconds."""
    ok: bool
    """Bus healthy."""
    positions: NDArray[np.float32]
    """Joint positions, radians."""


def _joint_state() -> BenchJointState:
    positions = np.linspace(-1.0, 1.0, 6, dtype=np.float32)
    positions.flags.writeable = False
    return BenchJointState(seq=7, t_sample=3.25, ok=True, positions=positions)


def _frame() -> BenchFrame:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    image.flags.writeable = False
    return BenchFrame(camera="wrist", seq=1234, t_capture=12.345, image=image)


def _chunk() -> BenchChunk:
    actions = np.random.default_rng(0).standard_normal((50, 14)).astype(np.float32)
    actions.flags.writeable = False
    names = tuple(f"joint_{i}" for i in range(14))
    return BenchChunk(
        request_id=42,
        episode=3,
        t_request=1.5,
        queue_wait_s=0.001,
        inference_s=0.05,
        actions=actions,
        joint_names=names,
    )


def _timings_us(fn: Callable[[], Any], iterations: int) -> list[float]:
    for _ in range(WARMUP):
        fn()
    samples = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(iterations):
            t0 = time.perf_counter_ns()
            fn()
            samples.append((time.perf_counter_ns() - t0) / 1000)
    finally:
        gc.enable()
    return samples


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _case(name: str, msg: Message, iterations: int) -> dict[str, Any]:
    wire = encode(msg)
    assert decode(wire, expected=type(msg)) is not None
    roundtrip = _timings_us(lambda: decode(encode(msg)), iterations)
    return {
        "bench": "codec",
        "case": name,
        "roundtrip_us": round(statistics.median(roundtrip), 1),
        "p99_us": round(_percentile(roundtrip, 0.99), 1),
        "encode_us": round(statistics.median(_timings_us(lambda: encode(msg), iterations)), 1),
        "decode_us": round(statistics.median(_timings_us(lambda: decode(wire), iterations)), 1),
        "bytes": len(wire),
        "iterations": iterations,
    }


def run_codec_bench(iterations: int = 1000) -> list[dict[str, Any]]:
    """Benchmark every case; ``iterations`` (>= 200) timed runs per measurement."""
    iterations = max(200, iterations)
    return [
        _case("joint_state_6", _joint_state(), iterations),
        _case("frame_640x480x3", _frame(), iterations),
        _case("chunk_50x14", _chunk(), iterations),
    ]


if __name__ == "__main__":
    for row in run_codec_bench():
        print(json.dumps(row))
