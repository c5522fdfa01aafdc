"""Issue 16 across processes: the policy host stopping or dying is a fail-safe event for the
merger (no crash, no restart), and the first chunk after a restart follows the worker's
readiness at once instead of a request timeout later (``rtrun run --isolate``, loopback Zenoh).

The graph is ``configs/sim_policy.toml``'s policy path without torch (same endpoints layout): a ``sleep`` policy on host
``gpu``; arm, action queue and merger on host ``robot``. Every process is signalled by PID.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ..runtime.test_isolate import Lines, alive, stop_launcher
from ..runtime.zenoh_helpers import free_port

pytestmark = pytest.mark.slow


def _graph(tmp_path: Path) -> Path:
    port = free_port()
    text = f"""
    [graph]
    name = "poliso"
    intensity = 5
    period_s = 60.0

    [zenoh]
    lease_ms = 500

    [hosts.robot]
    zenoh = {{ listen = ["tcp/127.0.0.1:{port}"] }}
    [hosts.gpu]
    zenoh = {{ connect = ["tcp/127.0.0.1:{port}"] }}

    [[actor]]
    id = "policy"
    kind = "policy_worker"
    host = "gpu"
    params = {{ checkpoint = "sleep:0.05", demo_chunk_size = 30, fps = 30.0 }}
    inputs.requests = {{ source = "merger/requests", capacity = 1, policy = "latest", qos = {{ reliability = "reliable" }} }}

    [[actor]]
    id = "arm"
    host = "robot"
    kind = "motor_bus"
    params = {{ driver = "fake", rate_hz = 50.0, max_relative_target = 5.0, safe_state = "hold" }}
    inputs.command = "queue/action"

    [[actor]]
    id = "queue"
    host = "robot"
    kind = "action_queue"
    params = {{ fps = 30.0, fallback = "hold" }}
    inputs.merge = {{ source = "merger/merge", capacity = 4, policy = "block" }}

    [[actor]]
    id = "merger"
    host = "robot"
    kind = "rtc_merger"
    params = {{ fps = 30.0, buffer_time_s = 0.5 }}
    inputs.state = "arm/state"
    inputs.queue = "queue/status"
    inputs.replies = {{ source = "policy/replies", capacity = 4, policy = "drop_oldest", qos = {{ reliability = "reliable" }} }}
    """
    path = tmp_path / "poliso.toml"
    path.write_text(textwrap.dedent(text))
    return path


MERGED = r"\[robot\].*\[merger\] chunk merged: link streaming"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_policy_host_leaving_is_a_failsafe_event(tmp_path: Path, sig: signal.Signals) -> None:
    env = {**os.environ, "COLUMNS": "240", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "rtrun", "run", str(_graph(tmp_path)), "--isolate", "--loop", "asyncio"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines = Lines(proc)
    pids: list[int] = []
    try:
        t_gpu, m = lines.wait(r"host 'gpu' started \(pid (\d+)\)")
        gpu = int(m.group(1))
        t_robot, m = lines.wait(r"host 'robot' started \(pid (\d+)\)")
        pids += [gpu, int(m.group(1))]
        assert t_robot < t_gpu  # gpu connects to robot's listener: robot first
        lines.wait(MERGED)
        t_kill = time.monotonic()
        os.kill(gpu, sig)
        lines.wait(r"\[robot\].*\[merger\] input 'replies': producer vanished", after=t_kill, timeout=10)
        if sig == signal.SIGKILL:  # restarted by the launcher: the first chunk follows readiness
            t_ready, _ = lines.wait(r"\[gpu\].*\[policy\] policy .* ready in", after=t_kill, timeout=30)
            t_merged, _ = lines.wait(MERGED + " after", after=t_kill, timeout=30)
            print(
                f"worker ready {t_ready - t_kill:.2f} s after the kill, first chunk {t_merged - t_ready:.3f} s later"
            )
            assert t_merged - t_ready < 1.5  # not a request_timeout_s (5 s) later
        else:  # a clean stop is not restarted: the robot side keeps running without it
            lines.wait(r"\[gpu\] rtrun: graph 'poliso' stopped \(clean\)", after=t_kill, timeout=30)
            time.sleep(1.0)
    finally:
        code = stop_launcher(proc, pids, lines)
    log = "\n".join(line for _, line in lines.items)
    robot = [line for _, line in lines.items if line.startswith("[robot]")]
    assert len([line for line in robot if "root/merger started" in line]) == 1, log[-4000:]
    assert not [line for line in robot if re.search(r"root/\w+ (restarting|crashed)", line)], log[-4000:]
    assert code == 0, log[-4000:]
    assert not [pid for pid in pids if alive(pid)], "a host process outlived the launcher"
