"""Feetech driver: golden bytes (hardware.md §2.4), status parsing and typed errors.

Runs in process: a scripted link for canned replies, and the fake STS3215 bus for behaviour
(fault injection without a tty). The socat tty path is covered in test_fake_sts3215.py.
"""

from __future__ import annotations

import time

import pytest
from rtrun.drivers.calibration import MotorCalibration, MotorNormMode
from rtrun.drivers.fake_sts3215 import FakeSTS3215Bus, FakeSTS3215Link, Fault
from rtrun.drivers.feetech import FeetechBus, configure_so_follower, so_follower_motors
from rtrun.drivers.motor_bus import (
    BusTimeoutError,
    ChecksumError,
    HandshakeError,
    Motor,
    MotorBus,
    NamedMotorBus,
    PortError,
    ServoError,
)

from ._links import ScriptedLink

TIMEOUT_S = 0.02


def scripted(reply_hex: str = "", protocol: int = 0) -> tuple[FeetechBus, ScriptedLink]:
    link = ScriptedLink(bytes.fromhex(reply_hex))
    bus = FeetechBus(link, protocol=protocol, timeout_s=TIMEOUT_S)  # type: ignore[arg-type]
    bus.connect()
    return bus, link


def faked(ids: tuple[int, ...] = (1, 2, 3)) -> tuple[FeetechBus, FakeSTS3215Bus]:
    fake = FakeSTS3215Bus(ids)
    bus = FeetechBus(FakeSTS3215Link(fake), timeout_s=TIMEOUT_S)
    bus.connect()
    return bus, fake


# --------------------------------------------------------------------------- golden bytes


def test_ping_golden() -> None:
    bus, link = scripted("ffff01020 0fc".replace(" ", "") + "ffff0104000903ee")
    assert bus.ping(1) == 777
    assert link.sent[0].hex(" ") == "ff ff 01 02 01 fb"
    assert link.sent[1].hex(" ") == "ff ff 01 04 02 03 02 f3"  # READ Model_Number (3, len 2)


def test_read_present_position_golden() -> None:
    bus, link = scripted("ffff0104000008f2")
    assert bus.read("Present_Position", 1) == 2048
    assert link.sent == [bytes.fromhex("ffff010402380 2be".replace(" ", ""))]


def test_write_goal_position_golden() -> None:
    bus, link = scripted("ffff010200fc")
    bus.write("Goal_Position", 1, 2048)
    assert link.sent[0].hex(" ") == "ff ff 01 05 03 2a 00 08 c4"


def test_sync_read_golden() -> None:
    replies = "ffff0104000008f2" + "ffff0204000004f5" + "ffff030400ff0fea"
    bus, link = scripted(replies)
    assert bus.sync_read("Present_Position", [1, 2, 3]) == {1: 2048, 2: 1024, 3: 4095}
    assert link.sent[0].hex(" ") == "ff ff fe 07 82 38 02 01 02 03 38"


def test_sync_write_golden() -> None:
    bus, link = scripted()
    bus.sync_write("Goal_Position", {1: 100, 2: 2048, 3: 4095})
    assert link.sent[0].hex(" ") == "ff ff fe 0d 83 2a 02 01 64 00 02 00 08 03 ff 0f c5"


def test_scs_protocol_is_big_endian() -> None:
    bus, link = scripted("ffff010200fc", protocol=1)
    bus.write("Goal_Position", 1, 0x0102)
    assert link.sent[0][5:8] == bytes((42, 0x01, 0x02))
    assert "Homing_Offset" not in bus.control_table
    assert bus.control_table["Lock"].address == 48


def test_negative_goal_is_sign_magnitude() -> None:
    bus, link = scripted("ffff010200fc")
    bus.write("Goal_Position", 1, -5)
    assert link.sent[0][6:8] == (0x8005).to_bytes(2, "little")


def test_homing_offset_sign_bit_11() -> None:
    bus, fake = faked((1,))
    bus.write("Homing_Offset", 1, -100)
    assert fake.get_register(1, "Homing_Offset") == (1 << 11) | 100
    assert bus.read("Homing_Offset", 1) == -100


def test_stray_bytes_before_status_are_skipped() -> None:
    bus, _ = scripted("00ff12" + "ffff0104000008f2")
    assert bus.read("Present_Position", 1) == 2048
    assert bus.statistics().discarded_bytes == 3


def test_reply_from_other_id_is_skipped() -> None:
    bus, _ = scripted("ffff0204000008f1" + "ffff0104000008f2")
    assert bus.read("Present_Position", 1) == 2048


# --------------------------------------------------------------------------- typed errors


def test_corrupt_checksum_raises_checksum_error() -> None:
    bus, _ = scripted("ffff0104000008f3")
    with pytest.raises(ChecksumError, match=r"motor 1: corrupt status packet: checksum 0xf3"):
        bus.read("Present_Position", 1)
    assert bus.statistics().corrupt == 1


def test_truncated_reply_is_a_timeout_with_byte_count() -> None:
    bus, _ = scripted("ffff010400")
    with pytest.raises(BusTimeoutError, match=r"incomplete status packet \(5 bytes\)"):
        bus.read("Present_Position", 1)


def test_overload_bit_raises_servo_error() -> None:
    bus, _ = scripted("ffff0104200008d2")
    with pytest.raises(ServoError, match="overload") as info:
        bus.read("Present_Position", 1)
    assert info.value.flags == ("overload",)
    assert info.value.motor_id == 1
    assert info.value.error_byte == 0x20


def test_no_reply_times_out_within_bound() -> None:
    bus, fake = faked()
    fake.inject(2, Fault.NO_REPLY, 1)
    start = time.monotonic()
    with pytest.raises(BusTimeoutError, match=r"motor 2: no status packet within 20 ms"):
        bus.read("Present_Position", 2)
    # Bounded by the 20 ms timeout, not by a default second: 25x margin for a loaded machine.
    assert time.monotonic() - start < 0.5
    assert bus.read("Present_Position", 2) == 2048  # the bus recovers after a timeout


def test_sync_read_reports_first_faulty_motor_after_draining() -> None:
    bus, fake = faked()
    fake.inject(2, Fault.OVERHEAT, 1)
    fake.inject(3, Fault.CORRUPT_CHECKSUM, 1)
    with pytest.raises(ServoError, match="overheat") as info:
        bus.sync_read("Present_Position", [1, 2, 3])
    assert info.value.motor_id == 2
    assert bus.statistics().corrupt == 1  # motor 3's reply was read, not left in the line
    assert bus.sync_read("Present_Position", [1, 2, 3]) == {1: 2048, 2: 2048, 3: 2048}


def test_sync_read_missing_motor_names_all_missing() -> None:
    bus, _ = faked((1, 2))
    with pytest.raises(BusTimeoutError, match=r"motor 3: .*motors \[4\] did not answer either"):
        bus.sync_read("Present_Position", [1, 2, 3, 4])


def test_not_connected_is_port_error() -> None:
    bus = FeetechBus(FakeSTS3215Link(FakeSTS3215Bus()))
    with pytest.raises(PortError, match="not connected"):
        bus.ping(1)


def test_open_missing_port_is_port_error(tmp_path) -> None:
    pytest.importorskip("serial")
    bus = FeetechBus(str(tmp_path / "nope"))
    with pytest.raises(PortError, match="cannot open serial port"):
        bus.connect()
    assert not bus.is_connected


def test_unknown_register_and_bad_values_are_value_errors() -> None:
    bus, _ = faked()
    with pytest.raises(ValueError, match="unknown register 'Nope'"):
        bus.read("Nope", 1)
    with pytest.raises(ValueError, match=r"Goal_Position: \|40000\| exceeds 32767"):
        bus.write("Goal_Position", 1, 40000)
    with pytest.raises(ValueError, match="motor id"):
        bus.read("Present_Position", 300)


# --------------------------------------------------------------------------- torque, lock, calibration


def test_torque_choreography_writes_torque_then_lock() -> None:
    bus, fake = faked((1, 2))
    bus.enable_torque([1, 2])
    assert [(p[2], p[5], p[6]) for p in fake.received] == [(1, 40, 1), (1, 55, 1), (2, 40, 1), (2, 55, 1)]
    bus.disable_torque([1])
    assert [(p[5], p[6]) for p in fake.received[-2:]] == [(40, 0), (55, 0)]
    bus.lock([2])
    bus.unlock([2])
    assert fake.get_register(2, "Lock") == 0


def test_calibration_registers_round_trip() -> None:
    bus, _ = faked((1, 2))
    cal = {
        1: MotorCalibration(id=1, homing_offset=-300, range_min=700, range_max=3300),
        2: MotorCalibration(id=2, homing_offset=25, range_min=0, range_max=4095),
    }
    bus.write_calibration(cal)
    assert bus.read_calibration([1, 2]) == cal


def test_feetech_bus_satisfies_protocol() -> None:
    bus, _ = faked()
    assert isinstance(bus, MotorBus)
    assert bus.statistics().transactions == 0


# --------------------------------------------------------------------------- named motors


def named(ids: tuple[int, ...] = (1, 2, 3, 4, 5, 6)) -> tuple[NamedMotorBus, FakeSTS3215Bus]:
    fake = FakeSTS3215Bus(ids)
    cal = {
        n: MotorCalibration(id=m.id, range_min=1000, range_max=3000) for n, m in so_follower_motors().items()
    }
    bus = NamedMotorBus(
        FeetechBus(FakeSTS3215Link(fake), timeout_s=TIMEOUT_S), so_follower_motors(), calibration=cal
    )
    return bus, fake


def test_named_session_reads_and_writes_by_joint() -> None:
    bus, fake = named()
    bus.connect()
    bus.enable_torque()
    pos = bus.read_positions()
    assert list(pos) == list(so_follower_motors())
    assert pos["shoulder_pan"] == pytest.approx((2048 - 2000) * 360 / 4095)
    assert pos["gripper"] == pytest.approx(52.4)
    sent = bus.write_goals({"elbow_flex": 44.0, "gripper": 100.0})
    assert sent == {"elbow_flex": 2500, "gripper": 3000}  # int(44·4095/360 + 2000)
    assert fake.get_register(3, "Present_Position") == 2500  # torque on: the fake moved there
    bus.disconnect()
    assert all(fake.get_register(i, "Torque_Enable") == 0 for i in range(1, 7))
    assert not bus.bus.is_connected


def test_named_errors_carry_the_joint_name() -> None:
    bus, fake = named()
    bus.connect()
    fake.inject(3, Fault.OVERLOAD)
    with pytest.raises(ServoError) as info:
        bus.read_positions()
    assert str(info.value) == (
        "motor 3 ('elbow_flex'): servo error 0x20 (overload) during sync_read Present_Position"
    )
    assert info.value.motor_name == "elbow_flex"


def test_handshake_rejects_wrong_model_and_missing_motor() -> None:
    bus, fake = named()
    fake.set_register(4, "Model_Number", 1284)
    with pytest.raises(HandshakeError, match=r"motor 4 \('wrist_flex'\): reports model number 1284"):
        bus.connect()
    assert not bus.bus.is_connected
    bus, _ = named((1, 2, 3, 4, 5))
    with pytest.raises(BusTimeoutError, match=r"motor 6 \('gripper'\): no status packet"):
        bus.connect()


def test_named_bus_rejects_nan_goal_before_sending() -> None:
    bus, fake = named()
    bus.connect(handshake=False)
    n_before = len(fake.received)
    with pytest.raises(ValueError, match="non-finite"):
        bus.write_goals({"elbow_flex": float("nan")})
    assert len(fake.received) == n_before


def test_named_bus_validates_configuration() -> None:
    feetech = FeetechBus(FakeSTS3215Link(FakeSTS3215Bus()))
    with pytest.raises(ValueError, match="unknown motor models"):
        NamedMotorBus(feetech, {"a": Motor(id=1, model="xl330-m288", norm_mode=MotorNormMode.DEGREES)})
    with pytest.raises(ValueError, match="unique ids"):
        NamedMotorBus(
            feetech,
            {
                "a": Motor(id=1, model="sts3215", norm_mode=MotorNormMode.DEGREES),
                "b": Motor(id=1, model="sts3215", norm_mode=MotorNormMode.DEGREES),
            },
        )
    bus, _ = named()
    with pytest.raises(ValueError, match="no calibration"):
        NamedMotorBus(bus.bus, so_follower_motors()).to_normalized({"gripper": 5})
    with pytest.raises(ValueError, match="has id 9"):
        bus.calibration = {**bus.calibration, "gripper": MotorCalibration(id=9)}


def test_named_calibration_read_write() -> None:
    bus, fake = named()
    bus.connect()
    bus.enable_torque()
    cal = {
        n: MotorCalibration(id=m.id, homing_offset=m.id * 10, range_min=500 + m.id, range_max=3500)
        for n, m in so_follower_motors().items()
    }
    bus.write_calibration(cal)
    assert fake.get_register(1, "Torque_Enable") == 0  # torque was disabled first
    assert bus.read_calibration() == cal
    assert bus.calibration == cal


def test_configure_so_follower_writes_lerobot_settings() -> None:
    bus, fake = named()
    bus.connect()
    configure_so_follower(bus)
    assert fake.get_register(1, "P_Coefficient") == 16
    assert fake.get_register(1, "Return_Delay_Time") == 0
    assert fake.get_register(6, "Max_Torque_Limit") == 500
    assert fake.get_register(5, "Max_Torque_Limit") == 0
