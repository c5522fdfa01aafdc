"""The optional dora-rs comparison of ``zenoh_hop.py``: the same sparse one-way hop through a
two-node dora-rs Python dataflow.

Used only when a ``dora`` CLI is found (``--dora PATH`` or on ``PATH``); its nodes run with the
Python interpreter next to that CLI, which must have the ``dora-rs`` package (e.g.
``python -m venv /tmp/dora && /tmp/dora/bin/pip install dora-rs-cli dora-rs``, then
``--dora /tmp/dora/bin/dora``). ``dora run`` starts a local daemon without a coordinator; a
built-in ``dora/timer/millis/2`` input paces the sender like the zenoh benchmark's ``GAP_S``.
The sender stamps ``time.monotonic_ns()`` into the first 8 bytes of a ``uint8`` Arrow array of
the payload size; the receiver subtracts it from its own clock on arrival (same machine only).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

WARMUP = 50

SENDER = f"""
import os, struct, time
import numpy as np
import pyarrow as pa
from dora import Node

size, total = int(os.environ["HOP_SIZE"]), int(os.environ["HOP_COUNT"]) + 2 * {WARMUP}
pad = bytes(max(size - 8, 0))
node = Node()
sent = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        payload = struct.pack("<q", time.monotonic_ns()) + pad
        node.send_output("data", pa.array(np.frombuffer(payload, np.uint8)))
        sent += 1
        if sent >= total:
            break
"""

RECEIVER = f"""
import json, os, struct, time
from dora import Node

count, out = int(os.environ["HOP_COUNT"]), os.environ["HOP_OUT"]
node = Node()
lat, seen = [], 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "data":
        now = time.monotonic_ns()
        head = event["value"].slice(0, 8).to_numpy(zero_copy_only=False).tobytes()
        seen += 1
        if seen > {WARMUP}:
            lat.append(now - struct.unpack("<q", head)[0])
        if len(lat) >= count:
            break
    elif event["type"] == "STOP":
        break
with open(out, "w") as f:
    json.dump(lat, f)
"""

DATAFLOW = """
nodes:
  - id: sender
    path: {python}
    args: sender.py
    inputs:
      tick: dora/timer/millis/2
    outputs:
      - data
  - id: receiver
    path: {python}
    args: receiver.py
    inputs:
      data: sender/data
"""


def dora_hop(cli: str, size: int, count: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """Run the dataflow once; ``{"dora_p50_us": ..., "dora_p99_us": ..., "dora_received": n}``."""
    python = Path(cli).resolve().parent / "python"
    with tempfile.TemporaryDirectory(prefix="rtrun-dora-") as tmp:
        work = Path(tmp)
        (work / "sender.py").write_text(SENDER)
        (work / "receiver.py").write_text(RECEIVER)
        (work / "dataflow.yml").write_text(DATAFLOW.format(python=python))
        out = work / "latencies.json"
        env = os.environ | {"HOP_SIZE": str(size), "HOP_COUNT": str(count), "HOP_OUT": str(out)}
        subprocess.run(
            [cli, "run", "dataflow.yml"],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout_s,
            check=False,
        )
        lat = sorted(json.loads(out.read_text())) if out.exists() else []
    if not lat:
        return {"dora_error": "the dataflow produced no measurements"}
    return {
        "dora_p50_us": round(statistics.median(lat) / 1000, 1),
        "dora_p99_us": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000, 1),
        "dora_received": len(lat),
    }
