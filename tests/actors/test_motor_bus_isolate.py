"""Issue 16 across processes: the motor bus never restarts because its command source's host
was SIGKILLed or SIGSTOPped (``rtrun run --isolate``, loopback Zenoh, multicast off).

Two hosts: ``ctl`` runs a ``trajectory`` source, ``robot`` runs the ``motor_bus`` (safe_state
``torque_off``, as real arms use) and a collector of its state. The source host is killed (the
launcher restarts it) or stopped and continued; the arm must hold, keep publishing state, accept
commands again from the returning source, and never restart. Every process is signalled by PID.
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
    p_ctl, p_robot = free_port(), free_port()
    text = f"""
    [graph]
    name = "mbiso"
    intensity = 5
    period_s = 60.0

    [zenoh]
    lease_ms = 500

    [hosts.ctl]
    zenoh = {{ listen = ["tcp/127.0.0.1:{p_ctl}"] }}
    [hosts.robot]
    zenoh = {{ listen = ["tcp/127.0.0.1:{p_robot}"], connect = ["tcp/127.0.0.1:{p_ctl}"] }}

    [[actor]]
    id = "arm"
    kind = "motor_bus"
    host = "robot"
    params = {{ driver = "fake", rate_hz = 50.0, safe_state = "torque_off", max_relative_target = 2.0, progress_interval_s = 0.5 }}
    inputs.command = "src/command"

    [[actor]]
    id = "sink"
    kind = "rtrun.testing:Collector"
    host = "robot"
    params = {{ log_every = 10 }}
    inputs.in = "arm/state"

    [[actor]]
    id = "src"
    kind = "trajectory"
    host = "ctl"
    params = {{ rate_hz = 30.0, state_timeout_s = 0.1, progress_interval_s = 0 }}
    """
    path = tmp_path / "mbiso.toml"
    path.write_text(textwrap.dedent(text))
    return path


def _commands(lines: Lines, after: float) -> int:
    _, m = lines.wait(r"\[robot\].*\[arm\] tick \d+ .*commands (\d+)", after=after, timeout=20)
    return int(m.group(1))


def _commands_in(line: str) -> int | None:
    m = re.search(r"\[robot\].*\[arm\] tick \d+ .*commands (\d+)", line)
    return None if m is None else int(m.group(1))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["sigkill", "sigstop"])
def test_motor_bus_survives_its_source_host_dying(tmp_path: Path, sig: signal.Signals) -> None:
    env = {**os.environ, "COLUMNS": "240", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "rtrun", "run", str(_graph(tmp_path)), "--isolate", "--loop", "asyncio"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines = Lines(proc)
    pids: list[int] = []
    try:
        ctl = int(lines.wait(r"host 'ctl' started \(pid (\d+)\)")[1].group(1))
        pids += [ctl, int(lines.wait(r"host 'robot' started \(pid (\d+)\)")[1].group(1))]
        lines.wait(r"\[robot\].*\[arm\] tick \d+ .*commands [1-9]")  # the source drives the arm

        t_kill = time.monotonic()
        os.kill(ctl, sig)
        try:
            t_lost, m = lines.wait(
                r"\[robot\].*\[arm\] command source (\w+): (\w+)", after=t_kill, timeout=10
            )
            assert m.groups() == ("vanished", "hold")
            lines.wait(r"\[robot\].*received \d+, last", after=t_lost + 1.0)  # state keeps flowing
        finally:
            if sig == signal.SIGSTOP:
                os.kill(ctl, signal.SIGCONT)
        if sig == signal.SIGKILL:  # the launcher restarts the host
            pids.append(int(lines.wait(r"host 'ctl' started \(pid (\d+)\)", after=t_kill)[1].group(1)))
        t_back, _ = lines.wait(r"\[robot\].*\[arm\] command source back", after=t_lost, timeout=30)
        away = [_commands_in(line) for t, line in lines.items if t_lost < t < t_back]
        away = [n for n in away if n is not None]
        assert len(set(away)) <= 1, away  # nothing applied while the source was away
        before = away[0] if away else _commands(lines, after=t_lost - 0.6)
        assert _commands(lines, after=t_back + 0.6) > before  # commands accepted again
        print(f"{sig.name}: hold after {t_lost - t_kill:.3f} s, commands again after {t_back - t_kill:.2f} s")
    finally:
        code = stop_launcher(proc, pids, lines)
    log = "\n".join(line for _, line in lines.items)
    assert code == 0, log[-4000:]
    robot = [line for _, line in lines.items if line.startswith("[robot]")]
    assert len([line for line in robot if "root/arm started" in line]) == 1, log[-4000:]
    assert not [line for line in robot if re.search(r"root/arm (restarting|crashed|exited)", line)]
    assert not [pid for pid in pids if alive(pid)], "a host process outlived the launcher"
