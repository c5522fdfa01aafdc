"""Dynamixel driver vs ``dynamixel_sdk`` (protocol 2.0) as a byte oracle — except stuffing.

The Python SDK builds stuffed packets and then discards them (hardware.md §3), so it is the
oracle only for frames that need no stuffing, for its CRC table and for its receive path
(de-stuffing works there). The stuffing case pins the SDK's wrong frame so a fixed SDK release
is noticed, and checks rtrun against the protocol rule instead.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rtrun.drivers.dynamixel import CRC_TABLE, DynamixelBus, dxl_crc16, stuff
from rtrun.drivers.motor_bus import ChecksumError, ServoError

from ._links import ScriptedLink, capture_port_class

dxl = pytest.importorskip("dynamixel_sdk")
CapturePort = capture_port_class(dxl)
pytestmark = pytest.mark.oracle


def rtrun_bus(reply: bytes = b"") -> tuple[DynamixelBus, ScriptedLink]:
    link = ScriptedLink(reply)
    bus = DynamixelBus(link, timeout_s=0.01)  # type: ignore[arg-type]
    bus.connect()
    return bus, link


def status(motor_id: int, params: bytes = b"", error: int = 0) -> bytes:
    payload = bytes((0x55, error)) + stuff(params)
    head = b"\xff\xff\xfd\x00" + bytes((motor_id,)) + (len(payload) + 2).to_bytes(2, "little")
    return head + payload + dxl_crc16(head + payload).to_bytes(2, "little")


def needs_no_stuffing(*chunks: bytes) -> bool:
    return all(b"\xff\xff\xfd" not in c for c in chunks)


PH = dxl.PacketHandler(2.0)


def test_crc_table_equals_sdk() -> None:
    data = list(range(256)) * 2
    assert dxl_crc16(bytes(data)) == PH.updateCRC(0, data, len(data))
    probes = [bytes((i,)) for i in range(256)]
    assert all(dxl_crc16(p) == PH.updateCRC(0, list(p), 1) for p in probes)
    assert len(CRC_TABLE) == 256


def test_golden_sync_write_matches_sdk() -> None:
    port = CapturePort()
    sw = dxl.GroupSyncWrite(port, PH, 116, 4)
    for motor_id, ticks in {1: 2048, 2: 1024}.items():
        sw.addParam(motor_id, list(ticks.to_bytes(4, "little")))
    sw.txPacket()
    bus, link = rtrun_bus()
    bus.sync_write("Goal_Position", {1: 2048, 2: 1024})
    assert link.sent == port.sent
    assert port.sent[0].hex(" ") == "ff ff fd 00 fe 11 00 83 74 00 04 00 01 00 08 00 00 02 00 04 00 00 98 4c"


def test_ping_matches_sdk() -> None:
    reply = status(1, (1060).to_bytes(2, "little") + b"\x2d")
    port = CapturePort(reply)
    assert PH.ping(port, 1) == (1060, dxl.COMM_SUCCESS, 0)
    bus, link = rtrun_bus(reply)
    assert bus.ping(1) == 1060
    assert link.sent == port.sent


@settings(max_examples=60, deadline=None)
@given(motor_id=st.integers(0, 252), value=st.integers(-(2**31), 2**31 - 1))
def test_read_write_match_sdk(motor_id: int, value: int) -> None:
    word = (value & 0xFFFFFFFF).to_bytes(4, "little")
    assume(needs_no_stuffing(bytes((0x74, 0x00)) + word))
    reply = status(motor_id, word) + status(motor_id)
    port = CapturePort(reply)
    got, comm, err = PH.read4ByteTxRx(port, motor_id, 132)
    assert (comm, err) == (dxl.COMM_SUCCESS, 0)
    PH.write4ByteTxRx(port, motor_id, 116, value & 0xFFFFFFFF)
    bus, link = rtrun_bus(reply)
    assert bus.read("Present_Position", motor_id) & 0xFFFFFFFF == got
    bus.write("Goal_Position", motor_id, value)
    assert link.sent == port.sent


@settings(max_examples=40, deadline=None)
@given(values=st.dictionaries(st.integers(0, 252), st.integers(0, 4095), min_size=1, max_size=8))
def test_sync_read_matches_sdk(values: dict[int, int]) -> None:
    replies = b"".join(status(i, v.to_bytes(4, "little")) for i, v in values.items())
    port = CapturePort(replies)
    sr = dxl.GroupSyncRead(port, PH, 132, 4)
    for i in values:
        sr.addParam(i)
    assert sr.txRxPacket() == dxl.COMM_SUCCESS
    sdk = {i: sr.getData(i, 132, 4) for i in values}
    bus, link = rtrun_bus(replies)
    assert bus.sync_read("Present_Position", list(values)) == sdk == values
    assert link.sent == port.sent


def test_sdk_receive_path_destuffs_like_rtrun() -> None:
    reply = status(1, bytes.fromhex("fffffd00"))
    value, comm, _ = PH.read4ByteTxRx(CapturePort(reply), 1, 116)
    assert (value, comm) == (0x00FDFFFF, dxl.COMM_SUCCESS)
    assert rtrun_bus(reply)[0].read("Goal_Position", 1) == value


def test_sdk_stuffing_bug_is_not_followed() -> None:
    port = CapturePort()
    PH.write4ByteTxOnly(port, 1, 116, 0x00FDFFFF)
    assert port.sent[0].hex(" ") == "ff ff fd 00 01 09 00 03 74 00 ff ff fd 00 c9 07"  # SDK bug
    bus, link = rtrun_bus(status(1))
    bus.write("Goal_Position", 1, 0x00FDFFFF)
    assert link.sent[0].hex(" ") == "ff ff fd 00 01 0a 00 03 74 00 ff ff fd fd 00 21 e7"


def test_corrupt_and_error_agree_with_sdk() -> None:
    bad = bytearray(status(1, (5).to_bytes(4, "little")))
    bad[-2] ^= 0x10
    assert PH.read4ByteTxRx(CapturePort(bytes(bad)), 1, 132)[1] == dxl.COMM_RX_CORRUPT
    with pytest.raises(ChecksumError):
        rtrun_bus(bytes(bad))[0].read("Present_Position", 1)
    reply = status(1, (5).to_bytes(4, "little"), error=0x07)
    _, comm, err = PH.read4ByteTxRx(CapturePort(reply), 1, 132)
    assert (comm, err) == (dxl.COMM_SUCCESS, 0x07)
    assert "not available" in PH.getRxPacketError(err)
    with pytest.raises(ServoError, match="access_error"):
        rtrun_bus(reply)[0].read("Present_Position", 1)
