"""Two separately started ``rtrun run --host`` processes meeting through ``rtrun router``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .test_isolate import Lines
from .zenoh_helpers import free_port

pytestmark = pytest.mark.slow


def routed_graph(tmp_path: Path, router_port: int) -> Path:
    endpoint = f"tcp/127.0.0.1:{router_port}"
    text = f"""
    [graph]
    name = "routed"

    [zenoh]
    mode = "client"
    connect = ["{endpoint}"]

    [hosts.robot]
    [hosts.gpu]

    [[actor]]
    id = "src"
    kind = "rtrun.testing:CounterSource"
    host = "robot"
    params = {{ rate_hz = 100.0 }}

    [[actor]]
    id = "sink"
    kind = "rtrun.testing:Collector"
    host = "gpu"
    params = {{ log_every = 20 }}
    inputs.in = {{ source = "src/out", capacity = 4, policy = "block", qos = {{ reliability = "reliable" }} }}
    """
    path = tmp_path / "routed.toml"
    path.write_text(textwrap.dedent(text))
    return path


def start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "240", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "rtrun", *args]
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)


def stop(proc: subprocess.Popen[str], lines: Lines) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        lines.close()


def test_two_host_commands_through_a_router(tmp_path: Path) -> None:
    port = free_port()
    graph = routed_graph(tmp_path, port)
    router = start("router", "--listen", f"tcp/127.0.0.1:{port}")
    router_lines = Lines(router)
    procs: list[tuple[subprocess.Popen[str], Lines]] = []
    try:
        router_lines.wait("rtrun router listening")
        for host in ("gpu", "robot"):
            proc = start("run", str(graph), "--host", host, "--loop", "asyncio")
            procs.append((proc, Lines(proc)))
        procs[0][1].wait(r"\[sink\] received 60, last \d+")
    finally:
        codes = [stop(p, lines) for p, lines in procs]  # consumer (gpu) first: reverse data flow
        router_code = stop(router, router_lines)
    logs = "\n".join(
        f"--- {p.args[-3] if len(p.args) > 3 else p.args}\n"
        + "\n".join(line for _, line in lines.items[-25:])
        for p, lines in procs
    )
    assert codes == [0, 0] and router_code == 0, logs
    router_log = [line for _, line in router_lines.items]
    joined = {m.group(1) for line in router_log if (m := re.search(r"client ([0-9a-f]+) joined", line))}
    left = {m.group(1) for line in router_log if (m := re.search(r"client ([0-9a-f]+) left", line))}
    assert len(joined) == 2 and left == joined, "\n".join(
        router_log
    )  # the router logs peers coming and going


def test_unknown_host_is_a_usage_error(tmp_path: Path) -> None:
    proc = start("run", str(routed_graph(tmp_path, free_port())), "--host", "mars")
    lines = Lines(proc)
    assert proc.wait(timeout=30) == 2
    lines.close()
    assert any("--host mars: not a host" in line for _, line in lines.items)
