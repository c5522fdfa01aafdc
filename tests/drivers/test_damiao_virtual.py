"""The MIT bus against fake motors on python-can's in-process ``virtual`` bus (hardware.md §5.4).

A test-owned thread runs :func:`~rtrun.drivers.fake.serve_can_motors` on the motor side; it is
stopped and joined in every teardown.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from rtrun.drivers.damiao import (
    DAMIAO_LIMITS,
    ROBSTRIDE_LIMITS,
    ROBSTRIDE_MIT,
    CanBusError,
    CanMotor,
    CanMotorError,
    CanMotorFaultError,
    CanMotorNotRespondingError,
    MitCommand,
    MitMotorBus,
    pack_damiao_feedback,
)
from rtrun.drivers.fake import FakeCanMotor, serve_can_motors

can = pytest.importorskip("can", reason="python-can (the 'hardware' extra) is not installed")
pytestmark = pytest.mark.oracle

DM4310 = DAMIAO_LIMITS["DM4310"]


MOTORS = [
    CanMotor(name="shoulder", id=0x01, recv_id=0x11),
    CanMotor(name="elbow", id=0x02, recv_id=0x12, model="DM4340"),
]


@dataclass
class Rig:
    """A bus under test, the motor side of the virtual bus and the fake motors serving it."""

    bus: MitMotorBus
    motor_side: object
    fakes: dict[str, FakeCanMotor]


def _fake(motor: CanMotor, dialect: str = "damiao") -> FakeCanMotor:
    limits = (DAMIAO_LIMITS if dialect == "damiao" else ROBSTRIDE_LIMITS)[motor.model]
    return FakeCanMotor(motor_id=motor.id, recv_id=motor.recv_id, limits=limits, dialect=dialect)  # type: ignore[arg-type]


@pytest.fixture
def rig() -> Iterator[Rig]:
    channel = f"rtrun-test-{uuid.uuid4().hex}"
    host = can.Bus(interface="virtual", channel=channel)
    motor_side = can.Bus(interface="virtual", channel=channel)
    fakes = {m.name: _fake(m) for m in MOTORS}
    stop = threading.Event()
    server = threading.Thread(
        target=serve_can_motors, args=(motor_side, list(fakes.values())), kwargs={"stop": stop}, daemon=True
    )
    server.start()
    bus = MitMotorBus(channel, MOTORS, bus=host, reply_timeout_s=0.05)
    try:
        yield Rig(bus, motor_side, fakes)
    finally:
        stop.set()
        server.join(timeout=5)
        assert not server.is_alive()
        bus.disconnect(disable_torque=False)
        host.shutdown()
        motor_side.shutdown()


def test_session_enable_command_refresh_disable(rig: Rig) -> None:
    bus, fakes = rig.bus, rig.fakes
    bus.connect()
    assert set(bus.state) == {"shoulder", "elbow"} and all(s is not None for s in bus.state.values())
    assert not any(f.enabled for f in fakes.values())  # connect never enables torque

    enabled = bus.enable_torque()
    assert {n: fb.status for n, fb in enabled.items()} == {"shoulder": 1, "elbow": 1}

    got = bus.command({"shoulder": MitCommand(position=0.5), "elbow": MitCommand(position=-1.0, kp=20.0)})
    assert got["shoulder"].position == pytest.approx(0.5, abs=1e-3)
    assert got["elbow"].position == pytest.approx(-1.0, abs=1e-3)
    p, _v, kp, kd, _t = fakes["elbow"].commands[-1]
    assert (p, kp, kd) == (
        pytest.approx(-1.0, abs=1e-3),
        pytest.approx(20.0, abs=0.2),
        pytest.approx(0.5, abs=0.01),
    )

    state = bus.refresh(["shoulder"])
    assert list(state) == ["shoulder"] and state["shoulder"].position == pytest.approx(0.5, abs=1e-3)

    bus.disconnect()  # disables torque by default
    assert not any(f.enabled for f in fakes.values())
    assert not bus.is_connected
    stats = bus.statistics()
    assert stats.dropped_replies == 0 and stats.unknown_frames == 0 and stats.sent == stats.received


def test_degree_surface_for_the_motor_bus_actor(rig: Rig) -> None:
    """read_positions/write_goals speak degrees, like NamedMotorBus; NaN moves no motor."""
    rig.bus.connect()
    rig.bus.enable_torque()
    sent = rig.bus.write_goals({"shoulder": 45.0, "elbow": -30.0})
    assert sent == pytest.approx({"shoulder": math.pi / 4, "elbow": -math.pi / 6})
    assert rig.bus.read_positions() == pytest.approx({"shoulder": 45.0, "elbow": -30.0}, abs=0.05)
    before = {n: len(f.commands) for n, f in rig.fakes.items()}
    with pytest.raises(ValueError, match="finite"):
        rig.bus.write_goals({"shoulder": 10.0, "elbow": math.nan})
    assert {n: len(f.commands) for n, f in rig.fakes.items()} == before
    rig.fakes["elbow"].silent = True
    assert rig.bus.read_positions(["elbow"]) == pytest.approx({"elbow": -30.0}, abs=0.05)  # last known


def test_disabled_motor_ignores_commands(rig: Rig) -> None:
    rig.bus.connect()
    got = rig.bus.command({"shoulder": MitCommand(position=1.0)})
    assert got["shoulder"].position == pytest.approx(0.0, abs=1e-3) and got["shoulder"].status == 0


def test_handshake_names_the_silent_motor(rig: Rig) -> None:
    rig.fakes["elbow"].silent = True
    with pytest.raises(CanMotorNotRespondingError, match=r"\['elbow'\]") as info:
        rig.bus.connect()
    assert info.value.motors == ("elbow",)
    assert not rig.bus.is_connected


def test_dropped_reply_keeps_last_state(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.bus.connect()
    rig.bus.enable_torque()
    rig.bus.command({"shoulder": MitCommand(position=0.25), "elbow": MitCommand(position=0.25)})
    rig.fakes["elbow"].silent = True
    with caplog.at_level(logging.WARNING, logger="rtrun.drivers.damiao"):
        got = rig.bus.command({"shoulder": MitCommand(position=0.75), "elbow": MitCommand(position=0.75)})
    assert set(got) == {"shoulder"}
    elbow = rig.bus.state["elbow"]
    assert elbow is not None and elbow.position == pytest.approx(0.25, abs=1e-3)
    assert rig.bus.statistics().dropped_replies == 1
    assert "packet drop: elbow" in caplog.text


def test_stale_frames_are_flushed_before_an_exchange(rig: Rig) -> None:
    rig.bus.connect()
    stale = pack_damiao_feedback(DM4310, motor_id=1, status=1, position=-2.0)
    for _ in range(5):  # old replies sitting in the receive queue
        rig.motor_side.send(can.Message(arbitration_id=0x11, data=stale, is_extended_id=False))  # type: ignore[attr-defined]
    before = rig.bus.statistics().stale_flushed
    state = rig.bus.refresh(["shoulder"])
    assert state["shoulder"].position == pytest.approx(0.0, abs=1e-3)  # fresh, not the stale -2.0
    assert rig.bus.statistics().stale_flushed - before == 5


def test_unknown_frames_are_counted_not_decoded(rig: Rig) -> None:
    rig.bus.connect()
    rig.motor_side.send(can.Message(arbitration_id=0x55, data=bytes(8), is_extended_id=False))  # type: ignore[attr-defined]
    rig.bus.refresh()
    # the stray frame arrived before the refresh and was flushed, or during it and was counted
    stats = rig.bus.statistics()
    assert stats.unknown_frames + stats.stale_flushed >= 1
    assert stats.dropped_replies == 0


def test_fault_status_raises_naming_the_motor_but_disable_does_not(rig: Rig) -> None:
    rig.bus.connect()
    rig.fakes["elbow"].fault = 0xB
    with pytest.raises(CanMotorFaultError, match=r"'elbow'.*MOS over-temperature") as info:
        rig.bus.refresh()
    assert (info.value.motor, info.value.status) == ("elbow", 0xB)
    assert set(rig.bus.disable_torque()) == {"shoulder", "elbow"}
    rig.bus.clear_fault(["elbow"])
    assert rig.fakes["elbow"].fault is None
    assert rig.bus.refresh()["elbow"].fault is None


def test_set_zero_and_read_limits(rig: Rig) -> None:
    rig.bus.connect()
    rig.fakes["shoulder"].position = 1.0
    assert rig.bus.refresh()["shoulder"].position == pytest.approx(1.0, abs=1e-3)
    assert rig.bus.set_zero_position(["shoulder"])["shoulder"].position == pytest.approx(0.0, abs=1e-3)
    limits = rig.bus.read_limits("elbow")
    assert (limits.pmax, limits.vmax, limits.tmax) == (12.5, 8.0, 28.0)


def test_usage_errors(rig: Rig) -> None:
    with pytest.raises(CanBusError, match="not connected"):
        rig.bus.refresh()
    rig.bus.connect()
    with pytest.raises(CanMotorError, match="already connected"):
        rig.bus.connect()
    with pytest.raises(ValueError, match="unknown motors"):
        rig.bus.refresh(["wrist"])


def test_motor_table_validation() -> None:
    with pytest.raises(ValueError, match="recv_ids must be unique"):
        MitMotorBus("x", [CanMotor(name="a", id=1, recv_id=0x11), CanMotor(name="b", id=2, recv_id=0x11)])
    with pytest.raises(ValueError, match="unknown damiao model 'DM9999'"):
        MitMotorBus("x", [CanMotor(name="a", id=1, recv_id=0x11, model="DM9999")])


def test_robstride_mit_dialect_on_the_same_bus_class() -> None:
    channel = f"rtrun-test-{uuid.uuid4().hex}"
    motors = [CanMotor(name="hip", id=0x01, recv_id=0x21, model="O2")]
    host, motor_side = (can.Bus(interface="virtual", channel=channel) for _ in range(2))
    fake = _fake(motors[0], "robstride")
    stop = threading.Event()
    server = threading.Thread(target=serve_can_motors, args=(motor_side, [fake]), kwargs={"stop": stop})
    server.start()
    try:
        bus = MitMotorBus(channel, motors, dialect=ROBSTRIDE_MIT, bus=host, reply_timeout_s=0.05)
        bus.connect()
        bus.enable_torque()
        got = bus.command({"hip": MitCommand(position=math.radians(45.0))})
        assert got["hip"].position == pytest.approx(math.radians(45.0), abs=1e-3)
        assert got["hip"].status is None and got["hip"].temp_rotor is None
        with pytest.raises(CanMotorError, match="Damiao feature"):
            bus.read_limits("hip")
        bus.disconnect()
        assert not fake.enabled
    finally:
        stop.set()
        server.join(timeout=5)
        host.shutdown()
        motor_side.shutdown()
