"""Byte-level stand-ins shared by the servo protocol tests (no serial port involved)."""

from __future__ import annotations

from typing import Any


class ScriptedLink:
    """rtrun side of a bus: records written packets, serves canned reply bytes."""

    def __init__(self, reply: bytes = b"") -> None:
        self.sent: list[bytes] = []
        self.rx = bytearray(reply)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def read(self, n: int, deadline: float) -> bytes:
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def discard_input(self) -> int:
        return 0


def capture_port_class(sdk: Any) -> type[Any]:
    """A ``PortHandler`` of a vendor SDK (scservo_sdk, dynamixel_sdk) that records what the SDK
    writes and replays canned replies, so the SDK can serve as a byte oracle."""

    class CapturePort(sdk.PortHandler):  # type: ignore[misc,name-defined]
        def __init__(self, reply: bytes = b"") -> None:
            super().__init__("capture")
            self.sent: list[bytes] = []
            self.rx = bytearray(reply)
            self.is_open, self.tx_time_per_byte = True, 0.01

        def clearPort(self) -> None:
            pass

        def writePort(self, packet: list[int]) -> int:
            self.sent.append(bytes(packet))
            return len(packet)

        def readPort(self, n: int) -> bytes:
            out = bytes(self.rx[:n])
            del self.rx[:n]
            return out

        def getBytesAvailable(self) -> int:
            return len(self.rx)

    return CapturePort
