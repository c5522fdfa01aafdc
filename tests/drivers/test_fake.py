"""The fakes: scripted camera faults, the in-memory servo bus and the CAN motor handler."""

from __future__ import annotations

import math

import pytest
from rtrun.drivers.calibration import MotorCalibration, MotorNormMode
from rtrun.drivers.camera import CameraConfigError, CameraDisconnectedError, CameraTimeoutError
from rtrun.drivers.damiao import (
    DAMIAO_LIMITS,
    decode_damiao_feedback,
    enable_frame,
    pack_mit_command,
    param_query_frame,
    refresh_frame,
)
from rtrun.drivers.fake import FakeCamera, FakeCanMotor, FakeMotorBus
from rtrun.drivers.motor_bus import (
    BusTimeoutError,
    ChecksumError,
    Motor,
    MotorBus,
    NamedMotorBus,
    PortError,
    ServoError,
)
from rtrun.drivers.synthetic_camera import decode_frame_counter

# ---------------------------------------------------------------------------------------------
# FakeCamera


def test_camera_scripted_timeout_then_disconnect_then_reconnect() -> None:
    cam = FakeCamera(faults={1: "timeout", 3: "disconnect"})
    cam.connect()
    assert decode_frame_counter(cam.read()) == 0
    with pytest.raises(CameraTimeoutError, match="read 1"):
        cam.read()
    assert decode_frame_counter(cam.read()) == 1  # a timeout consumes no frame
    with pytest.raises(CameraDisconnectedError, match="read 3"):
        cam.read()
    assert not cam.is_connected
    with pytest.raises(CameraDisconnectedError):
        cam.read()
    cam.connect()  # what the supervisor's restart does
    assert decode_frame_counter(cam.read()) == 2
    assert (cam.reads, cam.connects) == (6, 2)


def test_camera_unplug_and_replug() -> None:
    cam = FakeCamera()
    cam.connect()
    cam.unplug()
    with pytest.raises(CameraDisconnectedError):
        cam.read()
    with pytest.raises(CameraDisconnectedError, match="unplugged"):
        cam.connect()
    cam.replug()
    cam.connect()
    assert cam.read().shape == (48, 64, 3)


def test_camera_rejects_unknown_faults() -> None:
    with pytest.raises(CameraConfigError, match="faults"):
        FakeCamera(faults={0: "explode"})  # type: ignore[dict-item]


# ---------------------------------------------------------------------------------------------
# FakeMotorBus


def test_bus_implements_the_motor_bus_protocol() -> None:
    assert isinstance(FakeMotorBus(), MotorBus)


def test_first_order_response_with_time_passed_in() -> None:
    bus = FakeMotorBus([1], tau_s=0.1)
    bus.connect()
    bus.write("Goal_Position", 1, 3048)
    bus.advance(1.0)
    assert bus.read("Present_Position", 1) == 2048  # torque off: the goal is stored, nothing moves
    bus.enable_torque([1])
    bus.advance(0.1)  # one time constant: 1 − e⁻¹ of the way
    assert bus.read("Present_Position", 1) == round(2048 + 1000 * (1 - math.exp(-1)))
    assert bus.read("Present_Velocity", 1) > 0 and bus.read("Moving", 1) == 1
    bus.advance(2.0)
    assert bus.read("Present_Position", 1) == 3048
    assert bus.torque_enabled(1)
    with pytest.raises(ValueError, match="finite"):
        bus.advance(-1.0)


def test_clock_injection_advances_every_operation() -> None:
    now = [0.0]
    bus = FakeMotorBus([1, 2], tau_s=0.05, clock=lambda: now[0])
    bus.connect()
    bus.enable_torque([1, 2])
    bus.sync_write("Goal_Position", {1: 1000, 2: 3000})
    now[0] = 1.0  # a virtual clock jumping one second
    assert bus.sync_read("Present_Position", [1, 2]) == {1: 1000, 2: 3000}


def test_homing_offset_shifts_present_and_goal() -> None:
    bus = FakeMotorBus([1], positions={1: 2500})
    bus.connect()
    bus.write_calibration({1: MotorCalibration(id=1, homing_offset=452, range_min=100, range_max=3900)})
    assert bus.read("Present_Position", 1) == 2048  # Present = Actual − Homing_Offset
    cal = bus.read_calibration([1])[1]
    assert (cal.homing_offset, cal.range_min, cal.range_max) == (452, 100, 3900)
    bus.enable_torque([1])
    bus.write("Goal_Position", 1, 2048)
    bus.advance(1.0)
    assert bus.read("Present_Position", 1) == 2048  # holding: goal and present share the frame


@pytest.mark.parametrize(
    ("kind", "error", "match"),
    [
        ("timeout", BusTimeoutError, "no reply"),
        ("checksum", ChecksumError, "checksum"),
        ("overload", ServoError, "overload"),
        ("overheat", ServoError, "overheat"),
    ],
)
def test_injected_faults_name_the_motor(kind: str, error: type[Exception], match: str) -> None:
    bus = FakeMotorBus([1, 2, 3])
    bus.connect()
    bus.inject_fault(kind, motor_id=2)  # type: ignore[arg-type]
    with pytest.raises(error, match=rf"motor 2.*{match}.*sync_read Present_Position"):
        bus.sync_read("Present_Position", [1, 2, 3])
    assert bus.sync_read("Present_Position", [1, 2, 3]) == {1: 2048, 2: 2048, 3: 2048}  # one-shot
    stats = bus.statistics()
    assert stats.transactions == 2 and stats.timeouts + stats.corrupt + stats.servo_errors == 1


def test_servo_error_carries_flags() -> None:
    bus = FakeMotorBus([1])
    bus.connect()
    bus.inject_fault("overload")
    with pytest.raises(ServoError) as info:
        bus.ping(1)
    assert info.value.flags == ("overload",) and info.value.error_byte == 0x20


def test_unplug_raises_port_error_until_replug() -> None:
    bus = FakeMotorBus([1])
    bus.connect()
    bus.unplug()
    with pytest.raises(PortError, match="vanished"):
        bus.read("Present_Position", 1)
    with pytest.raises(PortError):
        bus.connect()
    bus.disconnect()  # never raises
    bus.replug()
    bus.connect()
    assert bus.ping(1) == 777


def test_missing_motor_times_out_and_range_is_checked() -> None:
    bus = FakeMotorBus([1])
    bus.connect()
    with pytest.raises(BusTimeoutError, match="motor 9"):
        bus.ping(9)
    with pytest.raises(ValueError, match="Goal_Position"):
        bus.write("Goal_Position", 1, 1 << 16)


def test_named_bus_session_on_the_fake() -> None:
    """The serial helper's NamedMotorBus drives the fake like a real arm (degrees, torque off)."""
    fake = FakeMotorBus([1, 2])
    motors = {
        "shoulder_pan": Motor(id=1, model="sts3215", norm_mode=MotorNormMode.DEGREES),
        "gripper": Motor(id=2, model="sts3215", norm_mode=MotorNormMode.RANGE_0_100),
    }
    calibration = {
        "shoulder_pan": MotorCalibration(id=1, range_min=1000, range_max=3096),
        "gripper": MotorCalibration(id=2, range_min=1048, range_max=3048),
    }
    arm = NamedMotorBus(fake, motors, calibration=calibration)
    arm.connect()
    assert arm.read_positions() == pytest.approx({"shoulder_pan": 0.0, "gripper": 50.0})
    arm.enable_torque()
    arm.write_goals({"shoulder_pan": 45.0, "gripper": 100.0})
    fake.advance(1.0)
    got = arm.read_positions()
    assert got["shoulder_pan"] == pytest.approx(45.0, abs=0.1) and got["gripper"] == pytest.approx(100.0)
    arm.disconnect()
    assert not fake.torque_enabled(1) and not fake.is_connected
    assert fake.writes[-1] == ("Lock", {1: 0, 2: 0})


def test_move_by_hand_for_leader_arms() -> None:
    bus = FakeMotorBus([1])
    bus.connect()
    bus.move_by_hand(1, 1234)
    assert bus.read("Present_Position", 1) == 1234


# ---------------------------------------------------------------------------------------------
# FakeCanMotor (the pure handler; the bus exchange is covered in test_damiao.py)


def test_can_motor_handler() -> None:
    motor = FakeCanMotor(motor_id=1, recv_id=0x11, tracking=0.5)
    (reply,) = motor.handle(*_frame(enable_frame(1)))
    assert (
        reply.arbitration_id == 0x11
        and decode_damiao_feedback(DAMIAO_LIMITS["DM4310"], reply.data).status == 1
    )
    motor.handle(1, pack_mit_command(DAMIAO_LIMITS["DM4310"], position=1.0, kp=10, kd=0.5))
    assert motor.position == pytest.approx(0.5, abs=1e-3)  # half-way with tracking 0.5
    assert motor.handle(*_frame(refresh_frame(2))) == []  # addressed to another motor
    (param,) = motor.handle(*_frame(param_query_frame(1, 22)))
    assert param.data[:4] == bytes([1, 0, 0x33, 22])
    motor.silent = True
    assert motor.handle(*_frame(refresh_frame(1))) == []


def _frame(frame: object) -> tuple[int, bytes]:
    return frame.arbitration_id, frame.data  # type: ignore[attr-defined]


def test_so_follower_configuration_runs_on_the_fake() -> None:
    """The fake hosts the real STS control table, so the Feetech SO-follower setup runs on it."""
    from rtrun.drivers.feetech import SO_GRIPPER_SETTINGS, configure_so_follower, so_follower_motors

    fake = FakeMotorBus()
    arm = NamedMotorBus(fake, so_follower_motors())
    arm.connect()  # handshake: every fake motor answers as an STS3215
    configure_so_follower(arm)
    for register, value in SO_GRIPPER_SETTINGS:
        assert fake.read(register, 6) == value
    assert fake.read("P_Coefficient", 1) == 16
