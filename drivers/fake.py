"""First-class fakes: a camera, a serial servo bus and CAN motors, deterministic and scriptable.

They implement the same contracts as the real drivers (``camera.py``, ``motor_bus.py``,
``damiao.py``) so actors can be tested — and graphs run in sim mode — without hardware.

- :class:`FakeCamera` delivers synthetic frames (the frame counter is readable with
  :func:`~rtrun.drivers.synthetic_camera.decode_frame_counter`) and injects scripted faults:
  a timeout or a device loss at read number N, a device that is unplugged until re-plugged.
- :class:`FakeMotorBus` is an in-memory STS3215-like bus implementing
  :class:`~rtrun.drivers.motor_bus.MotorBus` over the real STS control table
  (``feetech.STS_CONTROL_TABLE``): registers by name, ``Present_Position = actual −
  Homing_Offset``, and a **first-order response** of every torque-enabled joint toward its goal
  (time constant ``tau_s``). Time is never read from a clock: the owner calls
  :meth:`FakeMotorBus.advance` with the elapsed time, or passes ``clock=`` (any callable returning
  seconds, e.g. a virtual clock) and every bus operation advances to ``clock()`` first.
  Faults: :meth:`~FakeMotorBus.inject_fault` (timeout, checksum, overload, overheat, voltage) and
  :meth:`~FakeMotorBus.unplug` / :meth:`~FakeMotorBus.replug` (``PortError``).
- :class:`FakeCanMotor` answers Damiao (or RobStride MIT) frames like a motor — enable, disable,
  set zero, clear fault, refresh, parameter query, MIT commands — as a pure
  ``handle(frame) -> replies`` function; :func:`serve_can_motors` pumps a python-can bus for it
  (in a test-owned thread or another process).

Everything is deterministic: no randomness, no wall clock; histories are bounded deques.
"""

from __future__ import annotations

import math
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from .calibration import MotorCalibration
from .camera import CameraConfigError, CameraDisconnectedError, CameraError, CameraInfo, CameraTimeoutError
from .damiao import (
    CMD_CLEAR_FAULT,
    CMD_DISABLE,
    CMD_ENABLE,
    CMD_QUERY_PARAM,
    CMD_REFRESH,
    CMD_SET_ZERO,
    DAMIAO_LIMITS,
    PARAM_ID,
    REG_PMAX,
    REG_TMAX,
    REG_VMAX,
    CanFrame,
    MitLimits,
    pack_damiao_feedback,
    pack_robstride_feedback,
    uint_to_float,
)
from .feetech import FEETECH_MODELS, STS_CONTROL_TABLE
from .motor_bus import (
    BusStatistics,
    BusTimeoutError,
    ChecksumError,
    ModelSpec,
    MotorBusError,
    PortError,
    Register,
    ServoError,
    encode_value,
)
from .synthetic_camera import render_frame

__all__ = [
    "FAKE_MODELS",
    "FakeCamera",
    "FakeCanMotor",
    "FakeMotorBus",
    "serve_can_motors",
]

HISTORY = 1024
"""Bound of the fakes' write histories (enough for any test; older entries are dropped)."""


# ---------------------------------------------------------------------------------------------
# Camera


CameraFault = Literal["timeout", "disconnect"]


class FakeCamera:
    """A deterministic :class:`~rtrun.drivers.camera.Camera` with scripted faults.

    ``faults`` maps a read number (0-based, counted over the camera's whole life, including
    failed reads) to the fault raised by that read: ``"timeout"`` raises
    :class:`CameraTimeoutError` once; ``"disconnect"`` raises :class:`CameraDisconnectedError`
    and leaves the camera disconnected until ``connect()`` is called again (the supervisor's
    restart). Frames carry a counter that keeps running across reconnects.
    """

    def __init__(
        self,
        *,
        width: int = 64,
        height: int = 48,
        fps: float = 30.0,
        faults: Mapping[int, CameraFault] | None = None,
        start_index: int = 0,
    ) -> None:
        """Configure the stream and the fault script."""
        render_frame(0, width, height)  # validates the size (CameraConfigError)
        if not fps > 0:
            raise CameraConfigError(f"fake camera fps must be > 0, got {fps}")
        bad = {k: v for k, v in (faults or {}).items() if v not in ("timeout", "disconnect")}
        if bad:
            raise CameraConfigError(f"fake camera faults must be 'timeout' or 'disconnect', got {bad}")
        self._info = CameraInfo(source="fake", width=width, height=height, fps=float(fps))
        self._faults = dict(faults or {})
        self._lock = threading.Lock()
        self._connected = self._unplugged = False
        self.next_index = start_index
        """Counter embedded in the next delivered frame."""
        self.reads = 0
        """``read()`` calls so far (the key space of ``faults``)."""
        self.connects = 0
        """Successful ``connect()`` calls so far."""

    @property
    def is_connected(self) -> bool:
        """True between ``connect()`` and ``disconnect()`` or a scripted device loss."""
        return self._connected

    @property
    def info(self) -> CameraInfo:
        """Size and nominal fps."""
        return self._info

    def unplug(self) -> None:
        """Simulate pulling the cable: reads and connects fail until :meth:`replug`."""
        with self._lock:
            self._unplugged, self._connected = True, False

    def replug(self) -> None:
        """Plug the device back in (a later ``connect()`` succeeds)."""
        with self._lock:
            self._unplugged = False

    def connect(self) -> None:
        """Open the fake device (fails while unplugged)."""
        with self._lock:
            if self._connected:
                raise CameraError("fake camera is already connected; disconnect() first")
            if self._unplugged:
                raise CameraDisconnectedError("fake camera is unplugged")
            self._connected = True
            self.connects += 1

    def read(self) -> np.ndarray:
        """Return the next frame, or raise the scripted fault for this read number."""
        with self._lock:
            number = self.reads
            self.reads += 1
            if not self._connected:
                raise CameraDisconnectedError("fake camera is not connected (or was unplugged)")
            fault = self._faults.get(number)
            if fault == "timeout":
                raise CameraTimeoutError(f"fake camera: scripted timeout at read {number}")
            if fault == "disconnect":
                self._connected = False
                raise CameraDisconnectedError(f"fake camera: scripted device loss at read {number}")
            index, self.next_index = self.next_index, self.next_index + 1
        return render_frame(index, self._info.width, self._info.height)

    def disconnect(self) -> None:
        """Close the fake device (idempotent)."""
        with self._lock:
            self._connected = False


# ---------------------------------------------------------------------------------------------
# Serial servo bus


FAKE_MODELS: Mapping[str, ModelSpec] = FEETECH_MODELS[0]
"""Models the fake bus claims to host: Feetech protocol-0 (STS/SMS) servos; every fake motor
answers the handshake as an STS3215 (model number 777)."""

BusFault = Literal["timeout", "checksum", "overload", "overheat", "voltage"]
_SERVO_BITS = {"voltage": 0x01, "overheat": 0x04, "overload": 0x20}


class FakeMotorBus:
    """An in-memory STS3215-like :class:`~rtrun.drivers.motor_bus.MotorBus` (see module doc)."""

    control_table: Mapping[str, Register] = STS_CONTROL_TABLE
    models: Mapping[str, ModelSpec] = FAKE_MODELS
    apply_drive_mode: bool = True

    def __init__(
        self,
        motor_ids: Iterable[int] = (1, 2, 3, 4, 5, 6),
        *,
        positions: Mapping[int, int] | None = None,
        tau_s: float = 0.05,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Create motors at ``positions`` (raw ticks, default 2048) with response time ``tau_s``."""
        if not tau_s > 0:
            raise ValueError(f"tau_s must be > 0, got {tau_s}")
        self._ids = list(motor_ids)
        self._mem: dict[int, dict[str, int]] = {i: self._initial_memory(i) for i in self._ids}
        self._actual = {i: float((positions or {}).get(i, 2048)) for i in self._ids}
        for i in self._ids:
            self._mem[i]["Goal_Position"] = round(self._actual[i])
        self._tau, self._clock = tau_s, clock
        self._last_t = clock() if clock is not None else 0.0
        self._connected = self._unplugged = False
        self._faults: deque[tuple[BusFault, int | None]] = deque(maxlen=HISTORY)
        self._n = dict.fromkeys(("transactions", "timeouts", "corrupt", "servo_errors"), 0)
        self._lock = threading.Lock()
        self.writes: deque[tuple[str, dict[int, int]]] = deque(maxlen=HISTORY)
        """``(register, {id: value})`` of every write and sync_write, oldest first (bounded)."""

    @staticmethod
    def _initial_memory(motor_id: int) -> dict[str, int]:
        mem = dict.fromkeys(STS_CONTROL_TABLE, 0)
        mem |= {"Model_Number": 777, "ID": motor_id, "Max_Position_Limit": 4095, "Acceleration": 254}
        return mem | {"Present_Voltage": 120, "Present_Temperature": 30}

    # -- test controls --------------------------------------------------------------------------

    def advance(self, dt: float) -> None:
        """Let ``dt`` seconds pass: torque-enabled joints approach their goals (first order)."""
        if not (math.isfinite(dt) and dt >= 0):
            raise ValueError(f"advance dt must be finite and >= 0, got {dt}")
        with self._lock:
            self._advance(dt)

    def _advance(self, dt: float) -> None:
        alpha = 1.0 - math.exp(-dt / self._tau)
        for i in self._ids:
            mem, before = self._mem[i], self._actual[i]
            if mem["Torque_Enable"]:
                goal_actual = mem["Goal_Position"] + mem["Homing_Offset"]
                self._actual[i] = before + (goal_actual - before) * alpha
            speed = (self._actual[i] - before) / dt if dt > 0 else 0.0
            mem["Present_Velocity"] = round(speed)
            mem["Moving"] = int(abs(speed) > 1.0)

    def move_by_hand(self, motor_id: int, ticks: int) -> None:
        """Set a joint's raw present position, as a human moving a limp arm (leader arms)."""
        with self._lock:
            self._actual[motor_id] = float(ticks + self._mem[motor_id]["Homing_Offset"])

    def inject_fault(self, kind: BusFault, motor_id: int | None = None, count: int = 1) -> None:
        """Make the next ``count`` operations touching ``motor_id`` (any when None) fail."""
        if kind not in ("timeout", "checksum", *_SERVO_BITS):
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.extend([(kind, motor_id)] * count)

    def unplug(self) -> None:
        """Simulate a vanished port: every operation raises ``PortError`` until :meth:`replug`."""
        with self._lock:
            self._unplugged, self._connected = True, False

    def replug(self) -> None:
        """Bring the port back (``connect()`` works again)."""
        with self._lock:
            self._unplugged = False

    def torque_enabled(self, motor_id: int) -> bool:
        """Whether a motor's torque is on (for assertions)."""
        return bool(self._mem[motor_id]["Torque_Enable"])

    # -- MotorBus -------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True between ``connect()`` and ``disconnect()`` (or an unplug)."""
        return self._connected

    def connect(self) -> None:
        """Open the fake port (``PortError`` while unplugged)."""
        with self._lock:
            if self._unplugged:
                raise PortError("fake port vanished (unplugged)", operation="connect")
            self._connected = True

    def disconnect(self) -> None:
        """Close the fake port (idempotent, never raises)."""
        with self._lock:
            self._connected = False

    def ping(self, motor_id: int) -> int:
        """Return the model number (777) of a present motor."""
        return self._transact("ping", [motor_id], lambda: self._mem[motor_id]["Model_Number"])

    def read(self, register: str, motor_id: int) -> int:
        """Read one register."""
        return self._transact(f"read {register}", [motor_id], lambda: self._get(register, motor_id))

    def write(self, register: str, motor_id: int, value: int) -> None:
        """Write one register."""
        self._transact(f"write {register}", [motor_id], lambda: self._set(register, {motor_id: value}))

    def sync_read(self, register: str, motor_ids: Sequence[int]) -> dict[int, int]:
        """Read one register of several motors."""
        op = f"sync_read {register}"
        return self._transact(op, motor_ids, lambda: {i: self._get(register, i) for i in motor_ids})

    def sync_write(self, register: str, values: Mapping[int, int]) -> None:
        """Write one register of several motors."""
        self._transact(f"sync_write {register}", list(values), lambda: self._set(register, values))

    def enable_torque(self, motor_ids: Iterable[int]) -> None:
        """``Torque_Enable ← 1`` then ``Lock ← 1`` (LeRobot's choreography)."""
        ids = list(motor_ids)
        self.sync_write("Torque_Enable", dict.fromkeys(ids, 1))
        self.sync_write("Lock", dict.fromkeys(ids, 1))

    def disable_torque(self, motor_ids: Iterable[int]) -> None:
        """``Torque_Enable ← 0`` then ``Lock ← 0``."""
        ids = list(motor_ids)
        self.sync_write("Torque_Enable", dict.fromkeys(ids, 0))
        self.sync_write("Lock", dict.fromkeys(ids, 0))

    def read_calibration(self, motor_ids: Sequence[int]) -> dict[int, MotorCalibration]:
        """Homing offset and position limits stored in the fake motors."""
        regs = ("Homing_Offset", "Min_Position_Limit", "Max_Position_Limit")
        values = {r: self.sync_read(r, motor_ids) for r in regs}
        return {
            i: MotorCalibration(
                id=i,
                homing_offset=values["Homing_Offset"][i],
                range_min=values["Min_Position_Limit"][i],
                range_max=values["Max_Position_Limit"][i],
            )
            for i in motor_ids
        }

    def write_calibration(self, calibration: Mapping[int, MotorCalibration]) -> None:
        """Store homing offsets and limits."""
        self.sync_write("Homing_Offset", {i: c.homing_offset for i, c in calibration.items()})
        self.sync_write("Min_Position_Limit", {i: c.range_min for i, c in calibration.items()})
        self.sync_write("Max_Position_Limit", {i: c.range_max for i, c in calibration.items()})

    def statistics(self) -> BusStatistics:
        """Counters since creation."""
        return BusStatistics(discarded_bytes=0, **self._n)

    # -- internals ------------------------------------------------------------------------------

    def _transact(self, operation: str, motor_ids: Sequence[int], body: Callable[[], Any]) -> Any:
        with self._lock:
            if self._unplugged or not self._connected:
                why = "vanished (unplugged)" if self._unplugged else "is not open; call connect()"
                raise PortError(f"fake port {why}", operation=operation)
            self._n["transactions"] += 1
            if self._clock is not None:
                now = self._clock()
                self._advance(max(0.0, now - self._last_t))
                self._last_t = now
            for motor_id in motor_ids:
                if motor_id not in self._mem:
                    self._n["timeouts"] += 1
                    raise BusTimeoutError("no reply (no such motor)", motor_id=motor_id, operation=operation)
                self._raise_fault(operation, motor_id)
            return body()

    def _raise_fault(self, operation: str, motor_id: int) -> None:
        if not self._faults or self._faults[0][1] not in (None, motor_id):
            return
        kind, _ = self._faults.popleft()
        if kind == "timeout":
            self._n["timeouts"] += 1
            raise BusTimeoutError("no reply within the timeout", motor_id=motor_id, operation=operation)
        if kind == "checksum":
            self._n["corrupt"] += 1
            raise ChecksumError(
                "corrupt status packet (bad checksum)", motor_id=motor_id, operation=operation
            )
        self._n["servo_errors"] += 1
        raise ServoError(
            f"servo reports {kind}",
            flags=(kind,),
            error_byte=_SERVO_BITS[kind],
            motor_id=motor_id,
            operation=operation,
        )

    def _get(self, register: str, motor_id: int) -> int:
        self._register(register)
        mem = self._mem[motor_id]
        if register == "Present_Position":
            return round(self._actual[motor_id]) - mem["Homing_Offset"]
        return mem[register]

    def _set(self, register: str, values: Mapping[int, int]) -> None:
        reg = self._register(register)
        for motor_id, value in values.items():
            encode_value(reg, int(value))  # the real driver's range check (ValueError)
            self._mem[motor_id][register] = int(value)
        self.writes.append((register, {i: int(v) for i, v in values.items()}))

    def _register(self, register: str) -> Register:
        try:
            return self.control_table[register]
        except KeyError:
            raise MotorBusError(f"unknown register {register!r} in the STS control table") from None


# ---------------------------------------------------------------------------------------------
# CAN motors


class FakeCanMotor:
    """A Damiao (or RobStride MIT) motor as a pure frame handler (see module doc).

    MIT commands move the motor a fraction ``tracking`` of the way to the commanded position
    (1.0 = ideal tracking); a disabled motor ignores commands but still answers. Set ``fault``
    to a Damiao fault status (e.g. ``0xB``) to report it, ``silent`` to stop answering.
    """

    def __init__(
        self,
        *,
        motor_id: int,
        recv_id: int,
        limits: MitLimits = DAMIAO_LIMITS["DM4310"],
        dialect: Literal["damiao", "robstride"] = "damiao",
        position: float = 0.0,
        tracking: float = 1.0,
    ) -> None:
        """Create a disabled motor at ``position`` (rad)."""
        self.motor_id, self.recv_id, self.limits, self.dialect = motor_id, recv_id, limits, dialect
        self.position, self.velocity, self.torque = position, 0.0, 0.0
        self.tracking = tracking
        self.enabled = False
        self.fault: int | None = None
        self.silent = False
        self.commands: deque[tuple[float, float, float, float, float]] = deque(maxlen=HISTORY)
        """Decoded MIT commands received ``(p, v, kp, kd, t)``, oldest first (bounded)."""

    def handle(self, arbitration_id: int, data: bytes) -> list[CanFrame]:
        """React to one received frame; return the replies to send."""
        if arbitration_id == PARAM_ID and len(data) == 8 and data[:2] == self._id_bytes():
            return self._param(data) if self.dialect == "damiao" else []
        if arbitration_id != self.motor_id or len(data) != 8:
            return []
        if data[:7] == b"\xff" * 7 and data[7] in (CMD_ENABLE, CMD_DISABLE, CMD_SET_ZERO, CMD_CLEAR_FAULT):
            self._special(data[7])
        else:
            self._mit(data)
        return self._reply()

    def _id_bytes(self) -> bytes:
        return self.motor_id.to_bytes(2, "little")

    def _special(self, command: int) -> None:
        if command == CMD_ENABLE:
            self.enabled = True
        elif command == CMD_DISABLE:
            self.enabled = False
        elif command == CMD_SET_ZERO:
            self.position = 0.0
        else:
            self.fault = None

    def _mit(self, data: bytes) -> None:
        lim = self.limits
        p = uint_to_float(data[0] << 8 | data[1], -lim.pmax, lim.pmax, 16)
        v = uint_to_float(data[2] << 4 | data[3] >> 4, -lim.vmax, lim.vmax, 12)
        kp = uint_to_float((data[3] & 0xF) << 8 | data[4], 0.0, lim.kp_max, 12)
        kd = uint_to_float(data[5] << 4 | data[6] >> 4, 0.0, lim.kd_max, 12)
        t = uint_to_float((data[6] & 0xF) << 8 | data[7], -lim.tmax, lim.tmax, 12)
        self.commands.append((p, v, kp, kd, t))
        if self.enabled and self.fault is None:
            self.position += (p - self.position) * self.tracking
            self.velocity, self.torque = v, t

    def _param(self, data: bytes) -> list[CanFrame]:
        if data[2] == CMD_REFRESH:
            return self._reply()
        values = {REG_PMAX: self.limits.pmax, REG_VMAX: self.limits.vmax, REG_TMAX: self.limits.tmax}
        if data[2] != CMD_QUERY_PARAM or data[3] not in values or self.silent:
            return []
        payload = self._id_bytes() + bytes([CMD_QUERY_PARAM, data[3]]) + struct.pack("<f", values[data[3]])
        return [CanFrame(self.recv_id, payload)]

    def _reply(self) -> list[CanFrame]:
        if self.silent:
            return []
        state = {"position": self.position, "velocity": self.velocity, "torque": self.torque}
        if self.dialect == "robstride":
            return [
                CanFrame(self.recv_id, pack_robstride_feedback(self.limits, recv_id=self.recv_id, **state))
            ]
        status = self.fault if self.fault is not None else int(self.enabled)
        data = pack_damiao_feedback(self.limits, motor_id=self.motor_id, status=status, **state)
        return [CanFrame(self.recv_id, data)]


def serve_can_motors(
    bus: Any, motors: Sequence[FakeCanMotor], *, stop: threading.Event, poll_s: float = 0.005
) -> int:
    """Answer frames on a python-can ``bus`` with ``motors`` until ``stop`` is set.

    Blocking: run it in a thread (or process) the test owns and joins. Returns the number of
    frames handled. ``poll_s`` bounds how long a ``stop`` takes to be noticed.
    """
    import can

    handled = 0
    while not stop.is_set():
        msg = bus.recv(timeout=poll_s)
        if msg is None or msg.is_error_frame or msg.is_remote_frame:
            continue
        handled += 1
        for motor in motors:
            for reply in motor.handle(msg.arbitration_id, bytes(msg.data)):
                bus.send(
                    can.Message(arbitration_id=reply.arbitration_id, data=reply.data, is_extended_id=False)
                )
    return handled
