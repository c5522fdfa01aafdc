"""End to end: the motor_bus actor drives a fake STS3215 bus over a real tty (a socat pty pair).

The real Feetech driver opens one end; ``FakeSTS3215Server`` serves the other from a thread.
Real time (asyncio): pyserial, socat and the fake all run on the wall clock.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import rtrun
from rtrun.actors.messages import JointCommand
from rtrun.actors.motor_bus import MotorBusActor

pytestmark = [pytest.mark.slow, pytest.mark.oracle]

serial = pytest.importorskip("serial", reason="pyserial (the 'hardware' extra) drives the tty")
if shutil.which("socat") is None:
    pytest.skip("socat is not installed (apt-get install socat)", allow_module_level=True)

from rtrun.drivers.fake_sts3215 import FakeSTS3215Bus, FakeSTS3215Server  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    """Real time: the tty, socat and the fake servos live on the wall clock."""
    return "asyncio"


@dataclass
class Wire:
    """A socat pty pair at fixed paths (so it can be re-created after a 'vanished port')."""

    a: Path
    b: Path
    bus: FakeSTS3215Bus
    proc: subprocess.Popen[bytes] | None = None
    server: FakeSTS3215Server | None = None

    def plug(self) -> None:
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5.0
        while not (self.a.exists() and self.b.exists()):
            assert time.monotonic() < deadline, "socat did not create the pty pair"
            time.sleep(0.01)
        self.server = FakeSTS3215Server(str(self.b), self.bus)
        self.server.start()  # waits the responder settle time (hardware.md §4)

    def unplug(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=5)
            self.proc = None
        for p in (self.a, self.b):
            if p.is_symlink():
                p.unlink()


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[Wire]:
    w = Wire(a=tmp_path / "ttyA", b=tmp_path / "ttyB", bus=FakeSTS3215Bus())
    w.plug()
    try:
        yield w
    finally:
        w.unplug()


def spec(port: Path, **params: Any) -> rtrun.GraphSpec:
    backoff = rtrun.Backoff(initial=0.2, maximum=0.5, multiplier=1.5, jitter=0.0)
    arm = {"driver": "feetech", "port": str(port), "rate_hz": 50.0, "max_consecutive_errors": 0, **params}
    return rtrun.GraphSpec(
        name="pty",
        actors=(rtrun.ActorSpec(id="arm", kind=MotorBusActor, params=arm, shutdown_timeout_s=3.0),),
        root=rtrun.SupervisorSpec(id="root", parent=None, intensity=20, period_s=10.0, backoff=backoff),
    )


def instructions(bus: FakeSTS3215Bus) -> set[int]:
    return {p[4] for p in bus.received}


async def wait_running_after_restart(graph: rtrun.Graph, restarts: int) -> None:
    with anyio.fail_after(15):
        while graph.context("arm").restarts < restarts:
            await anyio.sleep(0.05)
        while graph.context("arm").status.get("state") != "running":
            await anyio.sleep(0.05)
        tap = graph.receiver("arm/state", capacity=1, policy="latest")
        await tap.receive()  # a reconnected actor publishes again


async def test_whole_session_handshake_sync_read_sync_write_torque_off(wire: Wire) -> None:
    async with rtrun.open_graph(spec(wire.a)) as graph:
        assert all(wire.bus.get_register(i, "Torque_Enable") == 1 for i in range(1, 7))
        async with graph.sender("arm/command") as tx:
            goal = np.array([10.0], dtype=np.float32)
            await tx.send(JointCommand(names=("elbow_flex",), position=goal, seq=0, t_issued=0.0))
        tap = graph.receiver("arm/state", capacity=1, policy="latest")
        with anyio.fail_after(5):
            while abs(float((await tap.receive()).position[2]) - 10.0) > 0.1:
                pass
    assert {0x01, 0x02, 0x03, 0x82, 0x83} <= instructions(wire.bus)  # ping, read, write, sync r/w
    assert all(wire.bus.get_register(i, "Torque_Enable") == 0 for i in range(1, 7))  # torque off on stop
    assert wire.bus.get_register(3, "Goal_Position") == int(10.0 * 4095 / 360 + 2047.5)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("corrupt_checksum", "ChecksumError"),
        ("no_reply", "BusTimeoutError"),
        ("overload", "ServoError"),
        ("overheat", "ServoError"),
    ],
)
async def test_faults_name_the_motor_and_the_supervisor_reconnects(
    wire: Wire, fault: str, error: str
) -> None:
    async with rtrun.open_graph(spec(wire.a)) as graph:
        wire.bus.inject(3, fault, count=1)
        await wait_running_after_restart(graph, 1)
        status = graph.status()
    exits = [e.reason for e in status.events if e.kind == "exited"]
    assert exits, status.events
    assert "elbow_flex" in exits[0] and "motor 3" in exits[0]
    if error == "ServoError":
        assert fault in exits[0]  # the error bit is named
    causes = [e.traceback or "" for e in status.events if e.kind == "exited"]
    assert error in causes[0]


async def test_vanished_port_then_replug_reconnects(wire: Wire) -> None:
    async with rtrun.open_graph(spec(wire.a)) as graph:
        await anyio.to_thread.run_sync(wire.unplug)
        with anyio.fail_after(10):
            while graph.context("arm").restarts < 1:
                await anyio.sleep(0.05)
        await anyio.sleep(0.5)  # a few reconnect attempts fail while the port is gone
        await anyio.to_thread.run_sync(wire.plug)
        await wait_running_after_restart(graph, 1)
        status = graph.status()
    tracebacks = " ".join(e.traceback or "" for e in status.events if e.kind in ("exited", "start_failed"))
    assert "PortError" in tracebacks
