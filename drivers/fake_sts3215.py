"""A fake bus of Feetech STS3215 servos, with fault injection, for tests and benchmarks.

Three ways to use it, all sharing one sans-io core, :class:`FakeSTS3215Bus` (bytes in → bytes
out, no clock, no I/O):

- **In process, no tty:** ``FeetechBus(FakeSTS3215Link(FakeSTS3215Bus([1, 2, 3])))`` — fast and
  deterministic; ``NO_REPLY`` faults cost one driver timeout.
- **Over a real tty in a thread:** ``FakeSTS3215Server(path_of_ttyB, bus)`` serves one end of a
  socat pty pair (see :func:`socat_pty_pair`) while the driver opens the other.
- **As a process:** ``python -m rtrun.drivers.fake_sts3215 --port PATH --ids 1,2,3`` prints
  ``ready`` once serving and reads control commands from stdin, one per line::

      fault <id> <kind> [count]   kinds: corrupt_checksum no_reply overload overheat voltage
                                   angle_sensor overcurrent (count omitted = until cleared)
      clear [<id>]                 remove faults (of one motor or all)
      set <id> <register> <value>  poke a register, e.g. "set 2 Present_Position 1000"
      vanish                       close the port and exit at once (an unplugged bus)
      quit                         stop cleanly

Servo behaviour modelled: PING, READ, WRITE, SYNC_READ, SYNC_WRITE over a 256-byte memory per
servo initialised like an STS3215 (model 777, position 2048, limits 0…4095); writing
``Goal_Position`` with torque enabled moves ``Present_Position`` there at once. Replies honour
the instruction/broadcast rules of hardware.md §2. Not modelled: REG_WRITE/ACTION, baud rates,
EEPROM lock persistence, motion dynamics.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .feetech import STS_CONTROL_TABLE, feetech_checksum
from .motor_bus import encode_value

__all__ = [
    "FakeSTS3215Bus",
    "FakeSTS3215Link",
    "FakeSTS3215Server",
    "Fault",
    "PtyPair",
    "socat_pty_pair",
]

RESPONDER_SETTLE_S = 0.3
"""Wait after the responder opens its pty end before the first transfer (hardware.md §4: the
first ping is otherwise lost)."""


class Fault(enum.Enum):
    """A fault a fake servo can be told to produce on its next replies."""

    CORRUPT_CHECKSUM = "corrupt_checksum"
    """The reply's checksum byte is wrong."""
    NO_REPLY = "no_reply"
    """The servo stays silent (the driver times out)."""
    OVERLOAD = "overload"
    """Error bit 0x20 in the status."""
    OVERHEAT = "overheat"
    """Error bit 0x04 in the status."""
    VOLTAGE = "voltage"
    """Error bit 0x01 in the status."""
    ANGLE_SENSOR = "angle_sensor"
    """Error bit 0x02 in the status."""
    OVERCURRENT = "overcurrent"
    """Error bit 0x08 in the status."""


_ERROR_BITS = {
    Fault.OVERLOAD: 0x20,
    Fault.OVERHEAT: 0x04,
    Fault.VOLTAGE: 0x01,
    Fault.ANGLE_SENSOR: 0x02,
    Fault.OVERCURRENT: 0x08,
}


@dataclass(slots=True)
class _ActiveFault:
    kind: Fault
    remaining: int | None  # None = until cleared


def _status(motor_id: int, params: bytes = b"", error: int = 0, corrupt: bool = False) -> bytes:
    body = bytes((motor_id, len(params) + 2, error)) + params
    checksum = feetech_checksum(body) ^ (0x5A if corrupt else 0)
    return b"\xff\xff" + body + bytes((checksum,))


class FakeSTS3215Bus:
    """Sans-io fake of STS3215 servos: :meth:`feed` instruction bytes, get status bytes back.

    Thread-safe: the server thread feeds it while a test injects faults.
    """

    def __init__(self, ids: Iterable[int] = (1, 2, 3, 4, 5, 6)) -> None:
        self.memory: dict[int, bytearray] = {i: self._fresh_memory() for i in ids}
        """256-byte control table per servo id (little-endian words)."""
        self.received: list[bytes] = []
        """Every complete instruction packet received, in order (for assertions)."""
        self._faults: dict[int, _ActiveFault] = {}
        self._buffer = bytearray()
        self._lock = threading.Lock()

    @staticmethod
    def _fresh_memory() -> bytearray:
        mem = bytearray(256)
        mem[0], mem[1] = 3, 10  # firmware 3.10
        mem[3:5] = (777).to_bytes(2, "little")  # Model_Number: STS3215
        mem[6] = 0  # Baud_Rate index 0 = 1 Mbit/s
        mem[7] = 0  # Return_Delay_Time
        mem[9:11] = (0).to_bytes(2, "little")  # Min_Position_Limit
        mem[11:13] = (4095).to_bytes(2, "little")  # Max_Position_Limit
        mem[42:44] = (2048).to_bytes(2, "little")  # Goal_Position
        mem[56:58] = (2048).to_bytes(2, "little")  # Present_Position
        mem[62], mem[63] = 120, 30  # 12.0 V, 30 °C
        return mem

    # -- control ------------------------------------------------------------------------------

    def inject(self, motor_id: int, kind: Fault | str, count: int | None = None) -> None:
        """Make ``motor_id`` produce ``kind`` on its next ``count`` replies (None = always)."""
        with self._lock:
            self._faults[motor_id] = _ActiveFault(Fault(kind), count)

    def clear(self, motor_id: int | None = None) -> None:
        """Remove the fault of one motor, or of all."""
        with self._lock:
            if motor_id is None:
                self._faults.clear()
            else:
                self._faults.pop(motor_id, None)

    def set_register(self, motor_id: int, name: str, value: int) -> None:
        """Poke a register by STS3215 name (sign-encoded like the real servo)."""
        reg = STS_CONTROL_TABLE[name]
        with self._lock:
            word = encode_value(reg, value).to_bytes(reg.size, "little")
            self.memory[motor_id][reg.address : reg.address + reg.size] = word

    def get_register(self, motor_id: int, name: str) -> int:
        """Read a register by name as the raw unsigned word."""
        reg = STS_CONTROL_TABLE[name]
        with self._lock:
            return int.from_bytes(self.memory[motor_id][reg.address : reg.address + reg.size], "little")

    # -- protocol -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Consume instruction bytes; return the status bytes the servos send back."""
        with self._lock:
            self._buffer += data
            out = bytearray()
            while (packet := self._next_packet()) is not None:
                self.received.append(packet)
                out += self._handle(packet)
            return bytes(out)

    def _next_packet(self) -> bytes | None:
        buf = self._buffer
        while len(buf) >= 2 and buf[:2] != b"\xff\xff":
            del buf[0]  # resync on garbage
        if len(buf) < 4 or len(buf) < buf[3] + 4:
            return None
        packet = bytes(buf[: buf[3] + 4])
        del buf[: buf[3] + 4]
        if packet[-1] != feetech_checksum(packet[2:-1]):
            return None  # a real servo ignores packets with a bad checksum
        return packet

    def _handle(self, packet: bytes) -> bytes:
        sid, instruction, p = packet[2], packet[4], packet[5:-1]
        if instruction == 0x82:  # SYNC_READ: each listed servo answers in turn
            return b"".join(
                self._reply(i, bytes(self.memory[i][p[0] : p[0] + p[1]])) for i in p[2:] if i in self.memory
            )
        if instruction == 0x83:  # SYNC_WRITE: no reply
            step = p[1] + 1
            for k in range(2, len(p), step):
                if p[k] in self.memory:
                    self._store(p[k], p[0], p[k + 1 : k + step])
            return b""
        if sid not in self.memory:
            return b""
        if instruction == 0x01:
            return self._reply(sid)
        if instruction == 0x02:
            return self._reply(sid, bytes(self.memory[sid][p[0] : p[0] + p[1]]))
        if instruction == 0x03:
            self._store(sid, p[0], p[1:])
            return self._reply(sid)
        return b""

    def _store(self, sid: int, address: int, data: bytes) -> None:
        mem = self.memory[sid]
        mem[address : address + len(data)] = data
        if address <= 42 < address + len(data) and mem[40]:  # Goal_Position with torque on
            mem[56:58] = mem[42:44]

    def _reply(self, sid: int, params: bytes = b"") -> bytes:
        fault = self._faults.get(sid)
        if fault is None:
            return _status(sid, params)
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self._faults[sid]
        if fault.kind is Fault.NO_REPLY:
            return b""
        if fault.kind is Fault.CORRUPT_CHECKSUM:
            return _status(sid, params, corrupt=True)
        return _status(sid, params, error=_ERROR_BITS[fault.kind])


class FakeSTS3215Link:
    """An in-process ``SerialLink`` wired straight to a :class:`FakeSTS3215Bus` (no tty)."""

    def __init__(self, bus: FakeSTS3215Bus) -> None:
        self.bus = bus
        """The fake servos behind this link."""
        self._rx = bytearray()
        self.is_open = False
        """True between open() and close()."""

    def open(self) -> None:
        """Open (always succeeds)."""
        self.is_open = True

    def close(self) -> None:
        """Close (idempotent)."""
        self.is_open = False

    def write(self, data: bytes) -> None:
        """Deliver ``data`` to the fake servos; their replies become readable."""
        self._rx += self.bus.feed(data)

    def read(self, n: int, deadline: float) -> bytes:
        """Return up to ``n`` pending bytes; when short, wait until ``deadline`` like a tty."""
        out = bytes(self._rx[:n])
        del self._rx[:n]
        if len(out) < n:
            time.sleep(max(0.0, deadline - time.monotonic()))
        return out

    def discard_input(self) -> int:
        """Drop pending reply bytes."""
        n = len(self._rx)
        self._rx.clear()
        return n


class FakeSTS3215Server:
    """Serves a :class:`FakeSTS3215Bus` on a tty (one end of a pty pair) from a thread."""

    def __init__(self, port: str, bus: FakeSTS3215Bus | None = None) -> None:
        self.port = port
        """The tty served (the driver opens the *other* end of the pair)."""
        self.bus = bus if bus is not None else FakeSTS3215Bus()
        """The fake servos (inject faults here)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial: Any = None

    def start(self, *, settle_s: float = RESPONDER_SETTLE_S) -> None:
        """Open the tty, start serving, then wait ``settle_s`` (see :data:`RESPONDER_SETTLE_S`)."""
        import serial

        self._serial = serial.Serial(self.port, 1_000_000, timeout=0.01)
        self._thread = threading.Thread(target=self._serve, name="fake-sts3215", daemon=True)
        self._thread.start()
        time.sleep(settle_s)

    def _serve(self) -> None:
        import serial

        ser = self._serial
        try:
            while not self._stop.is_set():
                data = ser.read(max(1, ser.in_waiting))
                if data and (reply := self.bus.feed(data)):
                    ser.write(reply)
        except (serial.SerialException, OSError):
            return  # the pty pair was torn down (socat killed): the thread's job is over

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop serving (bounded join) and close the tty; idempotent.

        With a socat pair, closing this end makes socat exit, so the driver's end vanishes too.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        ser, self._serial = self._serial, None
        if ser is not None:
            ser.close()

    def __enter__(self) -> FakeSTS3215Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- socat pty pairs


@dataclass(frozen=True, slots=True, kw_only=True)
class PtyPair:
    """Two linked ptys made by socat: bytes written to one are read from the other."""

    a: str
    """Path the driver opens."""
    b: str
    """Path the fake servos serve."""
    process: subprocess.Popen[bytes]
    """The socat process (kill it to make both ends vanish)."""


@contextlib.contextmanager
def socat_pty_pair(*, timeout_s: float = 3.0) -> Iterator[PtyPair]:
    """Start ``socat`` linking two raw ptys; always kill it (by PID) on exit.

    Raises ``FileNotFoundError`` if socat is not installed and ``TimeoutError`` if the links do
    not appear within ``timeout_s``.
    """
    exe = shutil.which("socat")
    if exe is None:
        raise FileNotFoundError("socat is not installed (apt-get install socat)")
    with tempfile.TemporaryDirectory(prefix="rtrun-pty-") as d:
        a, b = os.path.join(d, "ttyA"), os.path.join(d, "ttyB")
        proc = subprocess.Popen(
            [exe, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout_s
            while not (os.path.exists(a) and os.path.exists(b)):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise TimeoutError(f"socat did not create {a} and {b} in {timeout_s} s")
                time.sleep(0.01)
            yield PtyPair(a=a, b=b, process=proc)
        finally:
            proc.kill()
            proc.wait(timeout=timeout_s)


# --------------------------------------------------------------------------- CLI


def _command(bus: FakeSTS3215Bus, words: list[str]) -> bool:
    """Apply one stdin command; return False to stop serving."""
    match words:
        case ["fault", motor_id, kind]:
            bus.inject(int(motor_id), kind)
        case ["fault", motor_id, kind, count]:
            bus.inject(int(motor_id), kind, int(count))
        case ["clear"]:
            bus.clear()
        case ["clear", motor_id]:
            bus.clear(int(motor_id))
        case ["set", motor_id, name, value]:
            bus.set_register(int(motor_id), name, int(value))
        case ["vanish"]:
            os._exit(3)  # like an unplugged cable: no cleanup, no goodbye
        case ["quit"]:
            return False
        case _:
            print(f"error: unknown command {' '.join(words)!r}", flush=True)
            return True
    print("ok", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    """Serve fake STS3215 servos on ``--port`` until stdin says ``quit`` (or closes)."""
    parser = argparse.ArgumentParser(
        prog="python -m rtrun.drivers.fake_sts3215", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", required=True, help="tty to serve (one end of a pty pair)")
    parser.add_argument("--ids", default="1,2,3,4,5,6", help="comma-separated servo ids")
    args = parser.parse_args(argv)
    bus = FakeSTS3215Bus(int(i) for i in args.ids.split(","))
    server = FakeSTS3215Server(args.port, bus)
    server.start()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            if line.split() and not _command(bus, line.split()):
                break
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
