"""Damiao bus across processes: python-can ``slcan`` over a socat pty pair (hardware.md §5.4).

The driver opens one end of the pty pair in this process; a fake-motor subprocess serves the
other end. Both helper processes are started and stopped by PID; the whole test is bounded
(< 10 s; it normally takes about 1 s).
"""

from __future__ import annotations

import math
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rtrun.drivers.damiao import CanMotor, MitCommand, MitMotorBus

pytest.importorskip("can", reason="python-can (the 'hardware' extra) is not installed")
pytest.importorskip("serial", reason="pyserial is needed by python-can's slcan interface")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.oracle,
    pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed"),
]

MOTORS = [CanMotor(name="j1", id=0x01, recv_id=0x11), CanMotor(name="j2", id=0x02, recv_id=0x12)]

FAKE_MOTOR_PROCESS = """
import sys, threading, can
from rtrun.drivers.fake import FakeCanMotor, serve_can_motors
bus = can.Bus(interface="slcan", channel=sys.argv[1], bitrate=1_000_000, sleep_after_open=0)
motors = [FakeCanMotor(motor_id=1, recv_id=0x11), FakeCanMotor(motor_id=2, recv_id=0x12)]
stop = threading.Event()
threading.Timer(20.0, stop.set).start()   # safety net: never outlive the test for long
print("ready", flush=True)
try:
    serve_can_motors(bus, motors, stop=stop)
finally:
    bus.shutdown()
"""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate one helper process by PID, escalating to kill after a bounded wait."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    a, b = tmp_path / "canA", tmp_path / "canB"
    socat = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: a.exists() and b.exists(), 5.0, "socat to create the pty pair")
        yield a, b
    finally:
        _stop(socat)


@pytest.fixture
def fake_motors(pty_pair: tuple[Path, Path]) -> Iterator[Path]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_MOTOR_PROCESS, str(pty_pair[1])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 8.0)
        if not ready or proc.stdout.readline().strip() != b"ready":
            _stop(proc)
            pytest.fail("the fake motor process did not start (no 'ready' line within 8 s)")
        time.sleep(0.3)  # hardware.md §4: let the responder's end settle before the first frame
        yield pty_pair[0]
    finally:
        _stop(proc)


def test_session_across_processes_over_slcan(fake_motors: Path) -> None:
    started = time.monotonic()
    bus = MitMotorBus(
        str(fake_motors),
        MOTORS,
        interface="slcan",
        bus_options={"sleep_after_open": 0},
        reply_timeout_s=0.1,
    )
    bus.connect()
    try:
        assert {n: fb.status for n, fb in bus.enable_torque().items()} == {"j1": 1, "j2": 1}
        target = {"j1": math.radians(30.0), "j2": -0.5}
        for _ in range(5):
            got = bus.command({n: MitCommand(position=p) for n, p in target.items()})
        assert {n: fb.position for n, fb in got.items()} == pytest.approx(target, abs=1e-3)
        state = bus.refresh()
        assert state["j2"].position == pytest.approx(-0.5, abs=1e-3)
        assert bus.statistics().dropped_replies == 0
    finally:
        bus.disconnect()  # torque off, then the port is closed
    assert bus.statistics().sent == bus.statistics().received
    assert time.monotonic() - started < 10.0
