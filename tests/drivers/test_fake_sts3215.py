"""The fake STS3215 bus: sans-io core, and full driver sessions over a real socat pty pair.

The pty tests run rtrun's Feetech driver against the fake through real ttys (pyserial on both
ends), including fault injection and a vanished port, in a thread and as a subprocess.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from rtrun.drivers.calibration import MotorCalibration
from rtrun.drivers.fake_sts3215 import (
    FakeSTS3215Bus,
    FakeSTS3215Server,
    Fault,
    PtyPair,
    socat_pty_pair,
)
from rtrun.drivers.feetech import FeetechBus, so_follower_motors
from rtrun.drivers.motor_bus import (
    BusTimeoutError,
    ChecksumError,
    NamedMotorBus,
    PortError,
    ServoError,
)

TIMEOUT_S = 0.05


def packet(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str)


# --------------------------------------------------------------------------- sans-io core


def test_core_answers_golden_requests() -> None:
    fake = FakeSTS3215Bus([1, 2, 3])
    assert fake.feed(packet("ffff010201fb")) == packet("ffff010200fc")
    assert fake.feed(packet("ffff0104023802be")) == packet("ffff0104000008f2")
    assert fake.feed(packet("fffffe0d832a0201640002000803ff0fc5")) == b""  # SYNC_WRITE: silent
    assert [fake.get_register(i, "Goal_Position") for i in (1, 2, 3)] == [100, 2048, 4095]
    replies = fake.feed(packet("fffffe07823802010203 38".replace(" ", "")))
    assert replies == packet("ffff0104000008f2" + "ffff0204000008f1" + "ffff0304000008f0")


def test_core_handles_split_packets_garbage_and_bad_checksums() -> None:
    fake = FakeSTS3215Bus([1])
    assert fake.feed(packet("00ffff0102")) == b""
    assert fake.feed(packet("01fb")) == packet("ffff010200fc")
    assert fake.feed(packet("ffff010201fa")) == b""  # bad checksum: a servo stays silent
    assert fake.feed(packet("ffff050201f7")) == b""  # unknown id
    assert len(fake.received) == 2


def test_core_faults_count_down() -> None:
    fake = FakeSTS3215Bus([1])
    fake.inject(1, Fault.OVERHEAT, 2)
    ping = packet("ffff010201fb")
    assert fake.feed(ping)[4] == 0x04
    assert fake.feed(ping)[4] == 0x04
    assert fake.feed(ping) == packet("ffff010200fc")
    fake.inject(1, "no_reply")
    assert fake.feed(ping) == b"" and fake.feed(ping) == b""
    fake.clear(1)
    corrupt = FakeSTS3215Bus([1])
    corrupt.inject(1, Fault.CORRUPT_CHECKSUM, 1)
    assert corrupt.feed(ping)[-1] != 0xFC


def test_goal_moves_present_position_only_with_torque() -> None:
    fake = FakeSTS3215Bus([1])
    fake.set_register(1, "Goal_Position", 100)
    fake.feed(packet("ffff0105032a6400" + "%02x" % (~(1 + 5 + 3 + 42 + 100) & 0xFF)))
    assert fake.get_register(1, "Present_Position") == 2048
    fake.set_register(1, "Torque_Enable", 1)
    fake.feed(packet("ffff0105032a6400" + "%02x" % (~(1 + 5 + 3 + 42 + 100) & 0xFF)))
    assert fake.get_register(1, "Present_Position") == 100


# --------------------------------------------------------------------------- over a real pty

needs_socat = pytest.mark.skipif(
    shutil.which("socat") is None, reason="socat is not installed (apt-get install socat)"
)


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    pytest.importorskip("serial")
    with socat_pty_pair() as pair:
        yield pair


@pytest.fixture
def served(pty_pair: PtyPair) -> Iterator[tuple[FeetechBus, FakeSTS3215Bus, PtyPair]]:
    fake = FakeSTS3215Bus([1, 2, 3, 4, 5, 6])
    server = FakeSTS3215Server(pty_pair.b, fake)
    server.start()
    bus = FeetechBus(pty_pair.a, timeout_s=TIMEOUT_S)
    try:
        bus.connect()
        yield bus, fake, pty_pair
    finally:
        bus.disconnect()
        server.stop()


@needs_socat
def test_pty_session_handshake_sync_read_write_torque_off(served) -> None:
    bus, fake, _ = served
    cal = {
        n: MotorCalibration(id=m.id, range_min=1000, range_max=3000) for n, m in so_follower_motors().items()
    }
    arm = NamedMotorBus(bus, so_follower_motors(), calibration=cal)
    assert arm.handshake() == dict.fromkeys(so_follower_motors(), 777)
    arm.enable_torque()
    assert arm.sync_read("Present_Position") == dict.fromkeys(so_follower_motors(), 2048)
    arm.write_goals({"shoulder_pan": -10.0, "gripper": 25.0})
    pos = arm.read_positions(["shoulder_pan", "gripper"])
    assert pos["shoulder_pan"] == pytest.approx(-10.0, abs=0.1)
    assert pos["gripper"] == pytest.approx(25.0)
    arm.disconnect()
    assert all(fake.get_register(i, "Torque_Enable") == 0 for i in range(1, 7))
    assert all(fake.get_register(i, "Lock") == 0 for i in range(1, 7))


@needs_socat
@pytest.mark.parametrize(
    ("fault", "error", "text"),
    [
        (Fault.CORRUPT_CHECKSUM, ChecksumError, "corrupt status packet: checksum"),
        (Fault.NO_REPLY, BusTimeoutError, "no status packet within 50 ms"),
        (Fault.OVERLOAD, ServoError, r"servo error 0x20 \(overload\)"),
        (Fault.OVERHEAT, ServoError, r"servo error 0x04 \(overheat\)"),
    ],
)
def test_pty_faults_give_typed_errors_naming_the_motor(served, fault, error, text) -> None:
    bus, fake, _ = served
    arm = NamedMotorBus(bus, so_follower_motors())
    fake.inject(4, fault, 1)
    with pytest.raises(error, match=rf"^motor 4 \('wrist_flex'\): {text}") as info:
        arm.sync_read("Present_Position")
    assert info.value.motor_name == "wrist_flex"
    assert arm.sync_read("Present_Position")["wrist_flex"] == 2048  # recovered next cycle


@needs_socat
def test_pty_vanished_port_is_port_error(served) -> None:
    bus, _, pair = served
    arm = NamedMotorBus(bus, so_follower_motors())
    assert arm.read("Present_Position", "elbow_flex") == 2048
    pair.process.kill()  # the USB adapter is unplugged: the pty pair disappears
    pair.process.wait(timeout=2)
    with pytest.raises(PortError, match=r"motor 3 \('elbow_flex'\): serial port .* failed") as info:
        arm.read("Present_Position", "elbow_flex")
    assert "during read Present_Position" in str(info.value)
    with pytest.raises(PortError, match="sync_read Present_Position of motors"):
        arm.sync_read("Present_Position")


@needs_socat
def test_pty_stopped_fake_is_timeout_then_reconnect(pty_pair: PtyPair) -> None:
    server = FakeSTS3215Server(pty_pair.b, FakeSTS3215Bus([1]))
    server.start()
    bus = FeetechBus(pty_pair.a, timeout_s=TIMEOUT_S)
    try:
        bus.connect()
        assert bus.ping(1) == 777
        server.stop()  # the servos lose power: the tty stays, nobody answers
        with pytest.raises(BusTimeoutError, match="motor 1: no status packet"):
            bus.ping(1)
        server = FakeSTS3215Server(pty_pair.b, FakeSTS3215Bus([1]))
        server.start()
        bus.disconnect()
        bus.connect()  # what a supervisor restart does
        assert bus.ping(1) == 777
    finally:
        bus.disconnect()
        server.stop()


@needs_socat
def test_pty_missing_servo_times_out_naming_it(pty_pair: PtyPair) -> None:
    with FakeSTS3215Server(pty_pair.b, FakeSTS3215Bus([1, 2])):
        bus = FeetechBus(pty_pair.a, timeout_s=TIMEOUT_S)
        bus.connect()
        try:
            start = time.monotonic()
            with pytest.raises(BusTimeoutError, match="motor 3: no status packet"):
                bus.sync_read("Present_Position", [1, 2, 3])
            # One 50 ms timeout (then the drain), not one per remaining motor or a default
            # second: a wide margin so a loaded CI machine cannot fail it.
            assert time.monotonic() - start < 0.9
        finally:
            bus.disconnect()


@needs_socat
def test_pty_exclusive_open(served) -> None:
    _, _, pair = served
    second = FeetechBus(pair.a)
    with pytest.raises(PortError, match="cannot open serial port"):
        second.connect()


# --------------------------------------------------------------------------- as a subprocess


@needs_socat
def test_subprocess_fake_with_stdin_control(pty_pair: PtyPair) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtrun.drivers.fake_sts3215", "--port", pty_pair.b, "--ids", "1,2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    bus = FeetechBus(pty_pair.a, timeout_s=TIMEOUT_S)
    try:
        assert proc.stdout.readline().strip() == "ready"
        bus.connect()
        assert bus.sync_read("Present_Position", [1, 2]) == {1: 2048, 2: 2048}

        def command(line: str) -> str:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            return proc.stdout.readline().strip()

        assert command("fault 2 overload 1") == "ok"
        with pytest.raises(ServoError, match=r"motor 2: .*overload"):
            bus.read("Present_Position", 2)
        assert command("set 1 Present_Position -300") == "ok"
        assert bus.read("Present_Position", 1) == -300
        assert command("bogus").startswith("error: unknown command")
        proc.stdin.write("vanish\n")
        proc.stdin.flush()
        assert proc.wait(timeout=3) == 3
        with pytest.raises(BusTimeoutError, match="motor 1: no status packet"):
            bus.ping(1)
    finally:
        bus.disconnect()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=3)
        proc.stdin.close()
        proc.stdout.close()
