"""``rtrun run --isolate``: a 3-host graph as child processes, one host SIGKILLed and restarted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import rtrun
from rtrun._isolate import host_order, host_supervisor

from .zenoh_helpers import free_port

CONFIGS = Path(__file__).parents[2] / "configs"

pytestmark = pytest.mark.slow


def three_hosts(tmp_path: Path) -> Path:
    pa, pb, pc = free_port(), free_port(), free_port()
    text = f"""
    [graph]
    name = "iso"
    intensity = 3
    period_s = 60.0

    [zenoh]
    lease_ms = 500

    [hosts.a]
    zenoh = {{ listen = ["tcp/127.0.0.1:{pa}"] }}
    [hosts.b]
    zenoh = {{ listen = ["tcp/127.0.0.1:{pb}"], connect = ["tcp/127.0.0.1:{pa}"] }}
    [hosts.c]
    zenoh = {{ listen = ["tcp/127.0.0.1:{pc}"], connect = ["tcp/127.0.0.1:{pa}", "tcp/127.0.0.1:{pb}"] }}

    [[actor]]
    id = "src"
    kind = "rtrun.testing:CounterSource"
    host = "a"
    params = {{ rate_hz = 100.0 }}

    [[actor]]
    id = "relay"
    kind = "rtrun.testing:Relay"
    host = "b"
    inputs.in = {{ source = "src/out", capacity = 8, policy = "block", qos = {{ reliability = "reliable" }} }}

    [[actor]]
    id = "sink"
    kind = "rtrun.testing:Collector"
    host = "c"
    params = {{ log_every = 25 }}
    inputs.in = {{ source = "relay/out", capacity = 8, policy = "block", qos = {{ reliability = "reliable" }} }}
    """
    path = tmp_path / "iso.toml"
    path.write_text(textwrap.dedent(text))
    return path


class Lines:
    """Collects a process's stderr lines with arrival times, in a thread (bounded by the process)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.items: list[tuple[float, str]] = []
        self._proc = proc
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Wait for the reader to reach end-of-file, then close the pipe."""
        self._thread.join(timeout=10)
        if self._proc.stderr is not None:
            self._proc.stderr.close()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._cond:
                self.items.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()

    def wait(self, pattern: str, after: float = 0.0, timeout: float = 30.0) -> tuple[float, re.Match[str]]:
        regex, deadline = re.compile(pattern), time.monotonic() + timeout
        with self._cond:
            while True:
                for t, line in self.items:
                    if t >= after and (m := regex.search(line)):
                        return t, m
                left = deadline - time.monotonic()
                if left <= 0:
                    text = "\n".join(line for _, line in self.items[-40:])
                    raise AssertionError(
                        f"no line matching {pattern!r} within {timeout} s; last lines:\n{text}"
                    )
                self._cond.wait(left)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_launcher(proc: subprocess.Popen[str], pids: list[int], lines: Lines) -> int:
    """Ctrl-C the launcher and return its exit code; kill (by PID) whatever is left over."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        lines.close()


ORDER_GRAPH = """
[graph]
name = "order"
{hosts}
[[actor]]
id = "sink"
kind = "rtrun.testing:Collector"
host = "c"
inputs.in = "relay/out"
[[actor]]
id = "relay"
kind = "rtrun.testing:Relay"
host = "b"
inputs.in = "src/out"
[[actor]]
id = "src"
kind = "rtrun.testing:CounterSource"
host = "a"
"""


def _order(tmp_path: Path, hosts: str) -> list[str]:
    path = tmp_path / "order.toml"
    path.write_text(ORDER_GRAPH.format(hosts=textwrap.dedent(hosts)))
    compiled = rtrun.compile_graph(rtrun.load_graph(path))
    order = [c.id for c in host_supervisor(compiled, []).tree().children]
    assert order == host_order(compiled)
    return order


def test_hosts_start_in_dependency_order(tmp_path: Path) -> None:
    """Producers' hosts before consumers', whatever the declaration order; but a host connecting
    to another's listener starts after it (else Zenoh's connect backoff delays the link); a
    cycle (a robot's merger and its GPU worker feed each other) follows the actors' file order."""
    assert _order(tmp_path, "[hosts.c]\n[hosts.b]\n[hosts.a]\n") == ["a", "b", "c"]
    listen = """
    [hosts.c]
    zenoh = { listen = ["tcp/0.0.0.0:7001"] }
    [hosts.b]
    zenoh = { listen = ["tcp/127.0.0.1:7002"], connect = ["tcp/127.0.0.1:7001"] }
    [hosts.a]
    zenoh = { connect = ["tcp/127.0.0.1:7002"] }
    """
    assert _order(tmp_path, listen) == ["c", "b", "a"]  # the network decides first
    sim_policy = rtrun.compile_graph(rtrun.load_graph(CONFIGS / "sim_policy.toml"))
    assert host_order(sim_policy) == ["robot", "gpu"]  # gpu connects to robot's listener


def test_isolated_hosts_survive_a_sigkill(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "240", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "rtrun", "run", str(three_hosts(tmp_path)), "--isolate", "--loop", "asyncio"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines = Lines(proc)
    pids: list[int] = []
    try:
        for host in "abc":
            pids.append(int(lines.wait(rf"host '{host}' started \(pid (\d+)\)")[1].group(1)))
        lines.wait(r"\[c\].*received 50, last (\d+)")  # end-to-end delivery across 3 processes

        t_kill = time.monotonic()
        os.kill(pids[1], signal.SIGKILL)
        t_detect, _ = lines.wait(r"\[c\].*sender \(epoch \w+\) vanished", after=t_kill, timeout=10)
        detection_s = t_detect - t_kill
        print(f"SIGKILL of host b detected by host c in {detection_s * 1000:.1f} ms")
        assert detection_s < 1.0
        new_b = int(lines.wait(r"host 'b' started \(pid (\d+)\)", after=t_kill)[1].group(1))
        assert new_b != pids[1]
        pids.append(new_b)

        # Flow resumes with the new epoch; values keep increasing (nothing old replayed).
        t_resume, _ = lines.wait(r"\[c\].*received \d+, last", after=t_kill + 0.5, timeout=20)
        lasts = [
            int(m.group(1))
            for t, line in lines.items
            if (m := re.search(r"\[c\].*received \d+, last (\d+)", line))
        ]
        assert lasts == sorted(lasts) and len(set(lasts)) == len(lasts), lasts
        assert t_resume > t_kill
    finally:
        code = stop_launcher(proc, pids, lines)
    assert code == 0, "\n".join(line for _, line in lines.items[-30:])
    assert not [pid for pid in pids if alive(pid)], "a host process outlived the launcher"


def test_stopping_an_isolated_graph_stops_every_host_at_once(tmp_path: Path) -> None:
    """Stopped one by one, a host that outlived its producer's host saw it vanish and restarted
    its actor during the shutdown. All hosts get SIGTERM together, so nothing restarts and the
    run ends cleanly."""
    pa, pb = free_port(), free_port()
    text = f"""
    [graph]
    name = "isostop"

    [hosts.sinkhost]
    zenoh = {{ listen = ["tcp/127.0.0.1:{pa}"] }}
    [hosts.srchost]
    zenoh = {{ listen = ["tcp/127.0.0.1:{pb}"], connect = ["tcp/127.0.0.1:{pa}"] }}

    [[actor]]
    id = "src"
    kind = "rtrun.testing:CounterSource"
    host = "srchost"
    params = {{ rate_hz = 100.0 }}

    [[actor]]
    id = "sink"
    kind = "rtrun.testing:Collector"
    host = "sinkhost"
    params = {{ log_every = 25 }}
    inputs.in = {{ source = "src/out", capacity = 8, policy = "drop_oldest" }}
    """
    path = tmp_path / "isostop.toml"
    path.write_text(textwrap.dedent(text))
    env = {**os.environ, "COLUMNS": "240", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "rtrun", "run", str(path), "--isolate", "--loop", "asyncio"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines = Lines(proc)
    pids: list[int] = []
    try:
        for host in ("sinkhost", "srchost"):
            pids.append(int(lines.wait(rf"host '{host}' started \(pid (\d+)\)")[1].group(1)))
        lines.wait(r"\[sinkhost\].*received 50, last")
    finally:
        t_stop = time.monotonic()
        code = stop_launcher(proc, pids, lines)
    log = "\n".join(line for _, line in lines.items[-40:])
    assert code == 0, log
    assert not [line for t, line in lines.items if t >= t_stop and "restarting" in line], log
    assert not [pid for pid in pids if alive(pid)], "a host process outlived the launcher"
