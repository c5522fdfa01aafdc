"""Dynamixel protocol 2.0 driver: golden frames (hardware.md §3), CRC, stuffing, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rtrun.drivers.calibration import MotorCalibration, MotorNormMode
from rtrun.drivers.dynamixel import (
    DynamixelBus,
    dxl_crc16,
    hardware_error_flags,
    koch_follower_motors,
    koch_leader_motors,
    stuff,
    unstuff,
)
from rtrun.drivers.motor_bus import (
    BusTimeoutError,
    ChecksumError,
    MotorBus,
    NamedMotorBus,
    ServoError,
)

from ._links import ScriptedLink


def status(motor_id: int, params: bytes = b"", error: int = 0, *, stuffed: bool = True) -> bytes:
    """A status packet built from the protocol rule (stuffing applied to the parameters)."""
    payload = bytes((0x55, error)) + (stuff(params) if stuffed else params)
    head = b"\xff\xff\xfd\x00" + bytes((motor_id,)) + (len(payload) + 2).to_bytes(2, "little")
    return head + payload + dxl_crc16(head + payload).to_bytes(2, "little")


def scripted(reply: bytes = b"") -> tuple[DynamixelBus, ScriptedLink]:
    link = ScriptedLink(reply)
    bus = DynamixelBus(link, timeout_s=0.01)  # type: ignore[arg-type]
    bus.connect()
    return bus, link


# --------------------------------------------------------------------------- CRC and stuffing


def test_crc16_check_values() -> None:
    assert dxl_crc16(b"123456789") == 0xFEE8  # CRC-16/BUYPASS check value
    ping = bytes.fromhex("fffffd0001030001")
    assert dxl_crc16(ping).to_bytes(2, "little") == bytes.fromhex("194e")


def test_stuffing_rule() -> None:
    assert stuff(bytes.fromhex("03 7400 ffff fd00")) == bytes.fromhex("03 7400 ffff fdfd 00")
    assert stuff(bytes.fromhex("ffff fdff fffd")) == bytes.fromhex("ffff fdfd ffff fdfd")
    assert stuff(bytes.fromhex("fffe fd")) == bytes.fromhex("fffe fd")


@given(st.binary(max_size=64).map(lambda b: b.replace(b"\xfe", b"\xfd")))
def test_unstuff_inverts_stuff(data: bytes) -> None:
    stuffed = stuff(data)
    assert unstuff(stuffed) == data
    assert b"\xff\xff\xfd" not in stuffed.replace(b"\xff\xff\xfd\xfd", b"")


# --------------------------------------------------------------------------- golden frames


def test_ping_golden_and_model_number() -> None:
    bus, link = scripted(status(1, (1200).to_bytes(2, "little") + b"\x2e"))
    assert bus.ping(1) == 1200
    assert link.sent[0].hex(" ") == "ff ff fd 00 01 03 00 01 19 4e"


def test_sync_read_golden() -> None:
    replies = status(1, (2048).to_bytes(4, "little")) + status(2, (-5 & 0xFFFFFFFF).to_bytes(4, "little"))
    bus, link = scripted(replies)
    assert bus.sync_read("Present_Position", [1, 2]) == {1: 2048, 2: -5}
    assert link.sent[0].hex(" ") == "ff ff fd 00 fe 09 00 82 84 00 04 00 01 02 ce fa"


def test_sync_write_golden() -> None:
    bus, link = scripted()
    bus.sync_write("Goal_Position", {1: 2048, 2: 1024})
    assert link.sent[0].hex(" ") == (
        "ff ff fd 00 fe 11 00 83 74 00 04 00 01 00 08 00 00 02 00 04 00 00 98 4c"
    )


def test_write_is_correctly_stuffed() -> None:
    bus, link = scripted(status(1))
    bus.write("Goal_Position", 1, 0x00FDFFFF)
    assert link.sent[0].hex(" ") == "ff ff fd 00 01 0a 00 03 74 00 ff ff fd fd 00 21 e7"


def test_stuffed_status_is_destuffed() -> None:
    reply = status(1, bytes.fromhex("fffffd00"))
    assert b"\xff\xff\xfd\xfd" in reply
    bus, link = scripted(reply)
    assert bus.read("Goal_Position", 1) == 0x00FDFFFF
    assert link.sent[0].hex(" ") == "ff ff fd 00 01 07 00 02 74 00 04 00 " + link.sent[0][-2:].hex(" ")


# --------------------------------------------------------------------------- errors


def test_crc_mismatch_is_checksum_error() -> None:
    bad = bytearray(status(3, (7).to_bytes(4, "little")))
    bad[-1] ^= 0x01
    bus, _ = scripted(bytes(bad))
    with pytest.raises(ChecksumError, match=r"motor 3: corrupt status packet: CRC"):
        bus.read("Present_Position", 3)


def test_no_reply_is_timeout_naming_motor() -> None:
    bus, _ = scripted()
    with pytest.raises(BusTimeoutError, match="motor 4: no status packet"):
        bus.ping(4)


def test_status_error_codes() -> None:
    bus, _ = scripted(status(1, error=0x04))
    with pytest.raises(ServoError, match="data_range_error") as info:
        bus.write("Goal_Position", 1, 1)
    assert info.value.flags == ("data_range_error",)


def test_hardware_alert_reads_hardware_error_status() -> None:
    reply = status(2, (100).to_bytes(4, "little"), error=0x80) + status(2, b"\x24", error=0x80)
    bus, link = scripted(reply)
    with pytest.raises(ServoError) as info:
        bus.read("Present_Position", 2)
    assert info.value.flags == ("hardware_alert", "overheat", "overload")
    assert link.sent[1][8:12] == bytes((70, 0, 1, 0))  # READ Hardware_Error_Status
    assert hardware_error_flags(0x01) == ("voltage",)


def test_hardware_alert_without_detail_still_raises() -> None:
    bus, _ = scripted(status(2, (100).to_bytes(4, "little"), error=0x80))
    with pytest.raises(ServoError, match=r"motor 2: servo error 0x80 \(hardware_alert\)"):
        bus.read("Present_Position", 2)


def test_garbage_and_stuffed_lookalike_are_skipped() -> None:
    reply = b"\x00\xff\xff\xfd\xfd" + status(1, (2048).to_bytes(4, "little"))
    bus, _ = scripted(reply)
    assert bus.read("Present_Position", 1) == 2048


# --------------------------------------------------------------------------- calibration, torque


def test_torque_and_calibration_registers() -> None:
    cal = MotorCalibration(id=1, drive_mode=1, homing_offset=-20, range_min=100, range_max=4000)
    replies = (
        status(1) * 2
        + status(1, (-20 & 0xFFFFFFFF).to_bytes(4, "little"))
        + status(1, (100).to_bytes(4, "little"))
        + status(1, (4000).to_bytes(4, "little"))
        + status(1, b"\x05")  # Drive_Mode: reverse + time-based profile bit
        + status(1) * 3
    )
    bus, link = scripted(replies)
    bus.enable_torque([1])
    bus.disable_torque([1])
    assert [p[8:11] for p in link.sent] == [bytes((64, 0, 1)), bytes((64, 0, 0))]
    assert bus.read_calibration([1]) == {1: cal}
    bus.write_calibration({1: cal})
    assert [p[8] for p in link.sent[-3:]] == [20, 52, 48]


def test_koch_presets_and_protocol() -> None:
    bus, _ = scripted()
    assert isinstance(bus, MotorBus)
    assert bus.apply_drive_mode is False
    follower = koch_follower_motors()
    assert [m.model for m in follower.values()] == ["xl430-w250"] * 2 + ["xl330-m288"] * 4
    assert follower["gripper"].norm_mode is MotorNormMode.RANGE_0_100
    assert {m.model for m in koch_leader_motors().values()} == {"xl330-m077"}
    named = NamedMotorBus(
        bus,
        follower,
        calibration={
            n: MotorCalibration(id=m.id, drive_mode=1, range_min=0, range_max=1000)
            for n, m in follower.items()
        },
    )
    # drive_mode is applied by the servo on Dynamixel, never a second time in software
    assert named.to_normalized({"gripper": 250}) == {"gripper": 25.0}
