"""``rtrun run`` as a subprocess: ordering, signals, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHAIN = """
[graph]
name = "cli"
[[actor]]
id = "src"
kind = "rtrun.testing:CounterSource"
params = { rate_hz = 50.0 }
[[actor]]
id = "relay"
kind = "rtrun.testing:Relay"
inputs.in = "src/out"
[[actor]]
id = "sink"
kind = "rtrun.testing:Collector"
inputs.in = "relay/out"
"""


def start(tmp_path: Path, text: str, *args: str) -> subprocess.Popen[str]:
    path = tmp_path / "g.toml"
    path.write_text(text)
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "rtrun", "run", str(path), "--log-level", "info", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_line(proc: subprocess.Popen[str], needle: str, timeout: float = 20.0) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    proc.kill()
    raise AssertionError(f"{needle!r} not seen; got:\n{''.join(lines)}")


def finish(proc: subprocess.Popen[str], timeout: float = 20.0) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def stop_order(text: str) -> list[str]:
    return [
        word
        for line in text.splitlines()
        for word in ("src", "relay", "sink")
        if f"root/{word} stopped" in line
    ]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_in_reverse_order(tmp_path: Path, signum: int) -> None:
    proc = start(tmp_path, CHAIN)
    seen = "".join(wait_line(proc, "running (3 actors)"))
    assert seen.index("root/src started") < seen.index("root/relay started") < seen.index("root/sink started")
    time.sleep(0.3)
    proc.send_signal(signum)
    code, err = finish(proc)
    assert code == 0, err
    assert stop_order(err) == ["sink", "relay", "src"]
    assert "stopped (clean)" in err and "0 restarts" in err and "3 actors" in err


def test_duration_and_overrides(tmp_path: Path) -> None:
    proc = start(tmp_path, CHAIN, "--duration", "0.5", "--set", "src.rate_hz=100")
    code, err = finish(proc)
    assert code == 0, err
    assert "stopped (clean) after 0." in err


def test_escalation_exits_with_failure_code(tmp_path: Path) -> None:
    text = '[graph]\nname = "f"\nintensity = 1\n[[actor]]\nid = "c"\nkind = "rtrun.testing:Crasher"\nparams = { crash_after_s = 0.05 }\n'
    code, err = finish(start(tmp_path, text))
    assert code == 3, err
    assert "gave up" in err


def test_start_failure_exits_with_failure_code(tmp_path: Path) -> None:
    text = '[graph]\nname = "f"\n[[actor]]\nid = "c"\nkind = "rtrun.testing:Crasher"\nparams = { fail_start = true }\n'
    code, err = finish(start(tmp_path, text))
    assert code == 3 and "failing before ready" in err


def test_invalid_graph_exits_1_without_starting(tmp_path: Path) -> None:
    code, err = finish(start(tmp_path, '[graph]\nname = "x"\n[[actor]]\nid = "a"\nkind = "nope"\n'))
    assert code == 1 and "unknown kind 'nope'" in err


def test_second_signal_forces_a_fast_stop(tmp_path: Path) -> None:
    text = (
        '[graph]\nname = "slow"\n[[actor]]\nid = "stubborn"\nkind = "rtrun.testing:Crasher"\n'
        "shutdown_timeout_s = 60.0\nparams = { ignore_cancel_s = 60.0 }\n"
    )
    proc = start(tmp_path, text)
    wait_line(proc, "running (1 actors)")
    proc.send_signal(signal.SIGINT)
    wait_line(proc, "stopping gracefully")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code == 130, err
    assert time.monotonic() - t0 < 10 and "stopped (forced)" in err
