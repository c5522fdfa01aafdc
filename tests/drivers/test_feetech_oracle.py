"""Feetech driver vs the vendor SDK (feetech-servo-sdk's ``scservo_sdk``) as a byte oracle.

The SDK talks to a CapturePort (test-oracles.md §6) that records its packets and replays canned
status bytes; rtrun's driver talks to a scripted link. Both must send identical bytes and agree
on the decoded values and on what counts as corrupt or as a servo error.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtrun.drivers.feetech import FeetechBus
from rtrun.drivers.motor_bus import ChecksumError, Register, ServoError

from ._links import ScriptedLink, capture_port_class

scs = pytest.importorskip("scservo_sdk")
CapturePort = capture_port_class(scs)
pytestmark = pytest.mark.oracle


@pytest.fixture
def sdk_protocol_0() -> Iterator[object]:
    """The SDK keeps the byte order in a module global: always restore protocol 0."""
    handler = scs.PacketHandler(0)
    try:
        yield handler
    finally:
        scs.PacketHandler(0)


def rtrun_bus(reply: bytes = b"", protocol: int = 0) -> tuple[FeetechBus, ScriptedLink]:
    link = ScriptedLink(reply)
    bus = FeetechBus(link, protocol=protocol, timeout_s=0.01)  # type: ignore[arg-type]
    bus.connect()
    return bus, link


def status(sid: int, params: bytes = b"", error: int = 0) -> bytes:
    body = bytes((sid, len(params) + 2, error)) + params
    return b"\xff\xff" + body + bytes((~sum(body) & 0xFF,))


def test_golden_sync_write_and_read_match_sdk(sdk_protocol_0) -> None:
    ph = sdk_protocol_0
    port = CapturePort()
    sw = scs.GroupSyncWrite(port, ph, 42, 2)
    for motor_id, ticks in {1: 100, 2: 2048, 3: 4095}.items():
        sw.addParam(motor_id, list(ticks.to_bytes(2, "little")))
    sw.txPacket()
    bus, link = rtrun_bus()
    bus.sync_write("Goal_Position", {1: 100, 2: 2048, 3: 4095})
    assert link.sent == port.sent

    reply = bytes.fromhex("ffff0104000008f2")
    port = CapturePort(reply)
    assert ph.read2ByteTxRx(port, 1, 56) == (2048, scs.COMM_SUCCESS, 0)
    bus, link = rtrun_bus(reply)
    assert bus.read("Present_Position", 1) == 2048
    assert link.sent == port.sent


def test_ping_matches_sdk(sdk_protocol_0) -> None:
    reply = status(7) + status(7, (777).to_bytes(2, "little"))
    port = CapturePort(reply)
    model, comm, _ = sdk_protocol_0.ping(port, 7)
    bus, link = rtrun_bus(reply)
    assert (bus.ping(7), comm) == (model, scs.COMM_SUCCESS)
    assert link.sent == port.sent


@settings(max_examples=60, deadline=None)
@given(
    motor_id=st.integers(0, 252),
    address=st.integers(0, 255),
    size=st.sampled_from([1, 2]),
    value=st.integers(0, 0xFFFF),
)
def test_read_write_packets_match_sdk(motor_id: int, address: int, size: int, value: int) -> None:
    ph = scs.PacketHandler(0)
    value &= (1 << (8 * size)) - 1
    reg = Register(name="X", address=address, size=size)
    data = value.to_bytes(size, "little")
    reply = status(motor_id, data)

    port = CapturePort(reply + status(motor_id))
    read = ph.read1ByteTxRx if size == 1 else ph.read2ByteTxRx
    write = ph.write1ByteTxRx if size == 1 else ph.write2ByteTxRx
    assert read(port, motor_id, address) == (value, scs.COMM_SUCCESS, 0)
    assert write(port, motor_id, address, value) == (scs.COMM_SUCCESS, 0)

    bus, link = rtrun_bus(reply + status(motor_id))
    bus.control_table = {"X": reg}
    assert bus.read("X", motor_id) == value
    bus.write("X", motor_id, value)
    assert link.sent == port.sent


@settings(max_examples=40, deadline=None)
@given(
    values=st.dictionaries(st.integers(0, 252), st.integers(0, 4095), min_size=1, max_size=8),
    address=st.integers(0, 200),
)
def test_sync_packets_match_sdk(values: dict[int, int], address: int) -> None:
    ph = scs.PacketHandler(0)
    reg = Register(name="X", address=address, size=2)
    replies = b"".join(status(i, v.to_bytes(2, "little")) for i, v in values.items())

    port = CapturePort()
    sw = scs.GroupSyncWrite(port, ph, address, 2)
    for i, v in values.items():
        sw.addParam(i, list(v.to_bytes(2, "little")))
    sw.txPacket()
    port.rx += replies
    sr = scs.GroupSyncRead(port, ph, address, 2)
    for i in values:
        sr.addParam(i)
    assert sr.txRxPacket() == scs.COMM_SUCCESS
    sdk_read = {i: sr.getData(i, address, 2) for i in values}

    bus, link = rtrun_bus(replies)
    bus.control_table = {"X": reg}
    bus.sync_write("X", values)
    assert bus.sync_read("X", list(values)) == sdk_read == values
    assert link.sent == port.sent


def test_scs_protocol_1_big_endian_matches_sdk() -> None:
    try:
        ph = scs.PacketHandler(1)
        reply = status(1, (0x0123).to_bytes(2, "big")) + status(1)
        port = CapturePort(reply)
        assert ph.read2ByteTxRx(port, 1, 56) == (0x0123, scs.COMM_SUCCESS, 0)
        ph.write2ByteTxRx(port, 1, 42, 0x0456)
    finally:
        scs.PacketHandler(0)
    bus, link = rtrun_bus(reply, protocol=1)
    assert bus.read("Present_Position", 1) == 0x0123
    bus.write("Goal_Position", 1, 0x0456)
    assert link.sent == port.sent


def test_corrupt_and_error_bits_agree_with_sdk(sdk_protocol_0) -> None:
    bad = bytearray(status(1, (2048).to_bytes(2, "little")))
    bad[-1] ^= 0xFF
    port = CapturePort(bytes(bad))
    assert sdk_protocol_0.read2ByteTxRx(port, 1, 56)[1] == scs.COMM_RX_CORRUPT
    with pytest.raises(ChecksumError):
        rtrun_bus(bytes(bad))[0].read("Present_Position", 1)

    for bit, name in ((0x20, "Overload"), (0x04, "Overheat"), (0x01, "voltage")):
        reply = status(1, (2048).to_bytes(2, "little"), error=bit)
        _, comm, err = sdk_protocol_0.read2ByteTxRx(CapturePort(reply), 1, 56)
        assert (comm, err) == (scs.COMM_SUCCESS, bit)
        assert name.lower() in sdk_protocol_0.getRxPacketError(err).lower()
        with pytest.raises(ServoError) as info:
            rtrun_bus(reply)[0].read("Present_Position", 1)
        assert name.lower() in info.value.flags
