"""The MotorBus protocol, typed motor-bus errors, control-table registers and named motors.

A motor bus driver is synchronous and blocking: the ``motor_bus`` actor is its single owner and
calls it from a worker thread (one ``CapacityLimiter(1)`` per bus), never on the event loop.
Drivers start no threads of their own and every call is bounded in time by the bus timeout.

Error tree (messages are built from the fields and always name the motor — id and joint name —
when one is involved)::

    MotorBusError                  base class of every motor-bus failure
    ├── BusTimeoutError            no (complete) reply within the timeout; the motor may be
    │                              unpowered, unplugged or on another baud rate (transient)
    ├── ChecksumError              a corrupt status packet (bad checksum/CRC, truncated,
    │                              malformed) — the SDKs' COMM_RX_CORRUPT (transient)
    ├── ServoError                 the servo answered with error bits set (overload, overheat,
    │                              voltage...); ``flags`` names them
    ├── PortError                  the serial port cannot be opened or vanished (unplugged)
    └── HandshakeError             a motor answered with another model than configured

Contract (what the actor relies on):

- ``connect()`` opens the port (``PortError`` on failure); ``disconnect()`` is idempotent and
  never raises for a port that is already gone.
- ``read``/``write``/``sync_read``/``sync_write`` take a register *name* from the bus's control
  table and plain ints (already sign-decoded: negative positions come back negative).
- Every failure is a :class:`MotorBusError`; a bus stays usable after a timeout, checksum or
  servo error (stale bytes are discarded before the next transaction), but not after a
  ``PortError`` (reconnect). The two errors worth retrying (timeout, checksum) also derive from
  :class:`rtrun.drivers.TransientError`, which is what the actor checks.

Design decisions (the brief is silent on them):

- Errors derive from :class:`Exception` only (drivers never import the kernel); the actor maps
  them to the runtime tree at its boundary. The low-level drivers address motors by id; the
  :class:`NamedMotorBus` layer fills in the joint name on errors passing through it, so every
  error seen by the actor names both.
- ``sync_read`` collects every reply before raising, so one faulty motor does not leave the
  others' replies in the line, and raises the error of the lowest faulty id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from ._errors import TransientError
from .calibration import MotorCalibration, MotorNormMode, normalize, unnormalize

__all__ = [
    "BusStatistics",
    "BusTimeoutError",
    "ChecksumError",
    "HandshakeError",
    "ModelSpec",
    "Motor",
    "MotorBus",
    "MotorBusError",
    "NamedMotorBus",
    "PortError",
    "Register",
    "ServoError",
    "decode_value",
    "encode_value",
]


# --------------------------------------------------------------------------- errors


class MotorBusError(Exception):
    """Base class of every motor-bus failure; the message names the motor (id and name)."""

    def __init__(
        self,
        detail: str,
        *,
        motor_id: int | None = None,
        motor_name: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        """What went wrong, without the motor/operation context."""
        self.motor_id = motor_id
        """Bus id of the motor involved, or ``None`` for bus-wide failures."""
        self.motor_name = motor_name
        """Joint name of that motor when known (filled in by :class:`NamedMotorBus`)."""
        self.operation = operation
        """The bus operation that failed, e.g. ``"sync_read Present_Position"``."""

    def __str__(self) -> str:
        if self.motor_id is None:
            who = "motor bus"
        elif self.motor_name:
            who = f"motor {self.motor_id} ({self.motor_name!r})"
        else:
            who = f"motor {self.motor_id}"
        where = f" during {self.operation}" if self.operation else ""
        return f"{who}: {self.detail}{where}"


class BusTimeoutError(MotorBusError, TransientError):
    """No complete reply arrived in time (unpowered, unplugged, wrong id or baud rate); transient."""


class ChecksumError(MotorBusError, TransientError):
    """A status packet was corrupt: checksum/CRC mismatch, truncated or malformed; transient."""


class ServoError(MotorBusError):
    """The servo reported error bits in its status packet (overload, overheat, voltage...)."""

    def __init__(
        self,
        detail: str,
        *,
        flags: tuple[str, ...],
        error_byte: int,
        motor_id: int | None = None,
        motor_name: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(detail, motor_id=motor_id, motor_name=motor_name, operation=operation)
        self.flags = flags
        """Names of the error bits set, e.g. ``("overload",)`` or ``("overheat", "voltage")``."""
        self.error_byte = error_byte
        """The raw error byte of the status packet."""


class PortError(MotorBusError):
    """The serial port cannot be opened, or it vanished (device unplugged); reconnect."""


class HandshakeError(MotorBusError):
    """A motor answered the handshake with another model number than configured."""


# --------------------------------------------------------------------------- registers and models


@dataclass(frozen=True, slots=True, kw_only=True)
class Register:
    """One control-table entry: where a named value lives and how it is encoded."""

    name: str
    """Register name as in LeRobot's tables, e.g. ``"Present_Position"``."""
    address: int
    """Byte address in the servo's control table."""
    size: int
    """Width in bytes (1, 2 or 4)."""
    encoding: Literal["unsigned", "sign_magnitude", "twos_complement"] = "unsigned"
    """How negative values are stored (Feetech: sign-magnitude; Dynamixel: two's complement)."""
    sign_bit: int = 15
    """Index of the sign bit for ``sign_magnitude`` registers (15 positions, 11 homing offset)."""


def encode_value(register: Register, value: int) -> int:
    """Signed int → the unsigned register word; ``ValueError`` names the register if out of range."""
    if register.encoding == "sign_magnitude":
        limit = (1 << register.sign_bit) - 1
        if abs(value) > limit:
            raise ValueError(f"{register.name}: |{value}| exceeds {limit} (sign bit {register.sign_bit})")
        return (1 << register.sign_bit) | -value if value < 0 else value
    bits = register.size * 8
    if register.encoding == "twos_complement":
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if not lo <= value <= hi:
            raise ValueError(f"{register.name}: {value} outside {lo}..{hi}")
        return value & ((1 << bits) - 1)
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{register.name}: {value} outside 0..{(1 << bits) - 1}")
    return value


def decode_value(register: Register, word: int) -> int:
    """The unsigned register word → signed int, per the register's encoding."""
    if register.encoding == "sign_magnitude":
        magnitude = word & ((1 << register.sign_bit) - 1)
        return -magnitude if (word >> register.sign_bit) & 1 else magnitude
    if register.encoding == "twos_complement":
        bits = register.size * 8
        return word - (1 << bits) if word & (1 << (bits - 1)) else word
    return word


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """A servo model a driver supports."""

    name: str
    """Model name as LeRobot spells it, e.g. ``"sts3215"``, ``"xl330-m288"``."""
    model_number: int
    """Value of the ``Model_Number`` register (the handshake checks it)."""
    resolution: int = 4096
    """Ticks per turn (``max_res = resolution − 1`` in the unit formulas)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BusStatistics:
    """Counters of one bus since it was created (for dashboards)."""

    transactions: int
    """Instruction packets sent."""
    timeouts: int
    """Replies that did not arrive in time."""
    corrupt: int
    """Corrupt status packets (checksum/CRC, truncated, malformed)."""
    servo_errors: int
    """Status packets carrying error bits."""
    discarded_bytes: int
    """Stale or unexpected bytes thrown away while resynchronizing."""


# --------------------------------------------------------------------------- the protocol


@runtime_checkable
class MotorBus(Protocol):
    """A serial servo bus addressed by motor id (Feetech, Dynamixel); see the module contract."""

    control_table: Mapping[str, Register]
    """Registers by name for the bus's servo series."""
    models: Mapping[str, ModelSpec]
    """Servo models this driver supports, by name."""
    apply_drive_mode: bool
    """Whether ``drive_mode`` is applied in software when normalizing (LeRobot: Feetech yes)."""

    @property
    def is_connected(self) -> bool:
        """True between a successful ``connect()`` and ``disconnect()``."""
        ...

    def connect(self) -> None:
        """Open the port (``PortError`` if it cannot be opened)."""
        ...

    def disconnect(self) -> None:
        """Close the port; idempotent, never raises for a vanished port."""
        ...

    def ping(self, motor_id: int) -> int:
        """Ping one motor and return its model number."""
        ...

    def read(self, register: str, motor_id: int) -> int:
        """Read one register of one motor."""
        ...

    def write(self, register: str, motor_id: int, value: int) -> None:
        """Write one register of one motor and wait for its acknowledgement."""
        ...

    def sync_read(self, register: str, motor_ids: Sequence[int]) -> dict[int, int]:
        """Read one register of several motors with a single instruction."""
        ...

    def sync_write(self, register: str, values: Mapping[int, int]) -> None:
        """Write one register of several motors with a single broadcast (no reply)."""
        ...

    def enable_torque(self, motor_ids: Iterable[int]) -> None:
        """Enable torque (and lock EEPROM where the series has a lock)."""
        ...

    def disable_torque(self, motor_ids: Iterable[int]) -> None:
        """Disable torque (and unlock EEPROM where the series has a lock)."""
        ...

    def read_calibration(self, motor_ids: Sequence[int]) -> dict[int, MotorCalibration]:
        """Read homing offset and position limits stored in the motors."""
        ...

    def write_calibration(self, calibration: Mapping[int, MotorCalibration]) -> None:
        """Write homing offset and position limits (torque must be off)."""
        ...

    def statistics(self) -> BusStatistics:
        """Counters since creation."""
        ...


# --------------------------------------------------------------------------- named motors


@dataclass(frozen=True, slots=True, kw_only=True)
class Motor:
    """One motor of an arm: bus id, model name and how its position is normalized."""

    id: int
    """Bus id (1–252)."""
    model: str
    """Model name known to the driver (``"sts3215"``, ``"xl430-w250"``...)."""
    norm_mode: MotorNormMode
    """Unit of the normalized position (degrees, 0–100, −100…100)."""


class NamedMotorBus:
    """A :class:`MotorBus` plus ``{joint name: Motor}``: reads and writes by joint name.

    Positions go through :func:`~rtrun.drivers.calibration.normalize` with the motors'
    calibration; errors raised underneath get the joint name filled in. Not thread-safe: one
    owner (the actor's worker thread) at a time.
    """

    def __init__(
        self,
        bus: MotorBus,
        motors: Mapping[str, Motor],
        *,
        calibration: Mapping[str, MotorCalibration] | None = None,
    ) -> None:
        ids = [m.id for m in motors.values()]
        if not motors or len(set(ids)) != len(ids):
            raise ValueError(f"motors must be non-empty with unique ids, got {dict(motors)}")
        unknown = sorted({m.model for m in motors.values()} - set(bus.models))
        if unknown:
            raise ValueError(f"unknown motor models {unknown}; this bus supports {sorted(bus.models)}")
        self.bus = bus
        """The underlying id-addressed bus."""
        self.motors: dict[str, Motor] = dict(motors)
        """Motors by joint name, in joint order."""
        self._names = {m.id: name for name, m in self.motors.items()}
        self._calibration: dict[str, MotorCalibration] = {}
        if calibration is not None:
            self.calibration = calibration

    # -- calibration ------------------------------------------------------------------------

    @property
    def calibration(self) -> dict[str, MotorCalibration]:
        """Calibration by joint name (empty until set or read from the motors)."""
        return dict(self._calibration)

    @calibration.setter
    def calibration(self, calibration: Mapping[str, MotorCalibration]) -> None:
        if set(calibration) != set(self.motors):
            raise ValueError(
                f"calibration must name exactly the motors {list(self.motors)}, got {sorted(calibration)}"
            )
        for name, cal in calibration.items():
            if cal.id != self.motors[name].id:
                raise ValueError(
                    f"calibration of {name!r} has id {cal.id}, motor has id {self.motors[name].id}"
                )
        self._calibration = dict(calibration)

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _naming(self) -> Iterator[None]:
        """Fill the joint name into bus errors passing through (traceback kept)."""
        try:
            yield
        except MotorBusError as exc:
            if exc.motor_id is not None and exc.motor_name is None:
                exc.motor_name = self._names.get(exc.motor_id)
            raise

    def _ids(self, names: Iterable[str] | None) -> list[int]:
        if names is None:
            return [m.id for m in self.motors.values()]
        try:
            return [self.motors[n].id for n in names]
        except KeyError as exc:
            raise ValueError(f"unknown motor {exc.args[0]!r}; motors are {list(self.motors)}") from None

    # -- lifecycle ----------------------------------------------------------------------------

    def connect(self, *, handshake: bool = True) -> None:
        """Open the bus and, with ``handshake``, ping every motor and check its model."""
        self.bus.connect()
        if handshake:
            try:
                self.handshake()
            except BaseException:
                self.bus.disconnect()
                raise

    def handshake(self) -> dict[str, int]:
        """Ping every motor; ``HandshakeError`` if one reports an unexpected model number."""
        found: dict[str, int] = {}
        with self._naming():
            for name, motor in self.motors.items():
                number = self.bus.ping(motor.id)
                expected = self.bus.models[motor.model].model_number
                if number != expected:
                    raise HandshakeError(
                        f"reports model number {number}, expected {motor.model} ({expected})",
                        motor_id=motor.id,
                        operation="handshake",
                    )
                found[name] = number
        return found

    def disconnect(self, *, disable_torque: bool = True) -> None:
        """Optionally disable torque (best effort is the caller's choice), then close the bus."""
        try:
            if disable_torque and self.bus.is_connected:
                self.disable_torque()
        finally:
            self.bus.disconnect()

    # -- raw access by name -------------------------------------------------------------------

    def read(self, register: str, name: str) -> int:
        """Read one register of one motor by joint name (raw value)."""
        with self._naming():
            return self.bus.read(register, self._ids([name])[0])

    def write(self, register: str, name: str, value: int) -> None:
        """Write one register of one motor by joint name (raw value)."""
        with self._naming():
            self.bus.write(register, self._ids([name])[0], value)

    def sync_read(self, register: str, names: Iterable[str] | None = None) -> dict[str, int]:
        """Read a register of several motors (all by default) → ``{name: raw}``."""
        with self._naming():
            values = self.bus.sync_read(register, self._ids(names))
        return {self._names[i]: v for i, v in values.items()}

    def sync_write(self, register: str, values: Mapping[str, int]) -> None:
        """Write a register of several motors by joint name (raw values, one broadcast)."""
        ids = self._ids(values)
        with self._naming():
            self.bus.sync_write(register, dict(zip(ids, values.values(), strict=True)))

    def enable_torque(self, names: Iterable[str] | None = None) -> None:
        """Enable torque on the named motors (all by default)."""
        with self._naming():
            self.bus.enable_torque(self._ids(names))

    def disable_torque(self, names: Iterable[str] | None = None) -> None:
        """Disable torque on the named motors (all by default)."""
        with self._naming():
            self.bus.disable_torque(self._ids(names))

    # -- normalized positions -----------------------------------------------------------------

    def _unit_args(self, name: str) -> tuple[MotorNormMode, MotorCalibration, int]:
        if name not in self._calibration:
            raise ValueError(f"motor {name!r} has no calibration; load or read one first")
        motor = self.motors[name]
        return motor.norm_mode, self._calibration[name], self.bus.models[motor.model].resolution

    def to_normalized(self, raw: Mapping[str, int]) -> dict[str, float]:
        """Raw ticks → normalized units, per motor norm mode and calibration."""
        out = {}
        for name, value in raw.items():
            mode, cal, res = self._unit_args(name)
            out[name] = normalize(
                value, mode, cal, resolution=res, apply_drive_mode=self.bus.apply_drive_mode
            )
        return out

    def to_raw(self, values: Mapping[str, float]) -> dict[str, int]:
        """Normalized units → raw ticks (``CalibrationError`` on NaN/inf)."""
        out = {}
        for name, value in values.items():
            mode, cal, res = self._unit_args(name)
            out[name] = unnormalize(
                value, mode, cal, resolution=res, apply_drive_mode=self.bus.apply_drive_mode
            )
        return out

    def read_positions(self, names: Iterable[str] | None = None) -> dict[str, float]:
        """``Present_Position`` of the named motors (all by default), normalized."""
        return self.to_normalized(self.sync_read("Present_Position", names))

    def write_goals(self, values: Mapping[str, float]) -> dict[str, int]:
        """Write normalized ``Goal_Position`` targets; returns the raw ticks sent."""
        raw = self.to_raw(values)
        self.sync_write("Goal_Position", raw)
        return raw

    # -- calibration stored in the motors -----------------------------------------------------

    def read_calibration(self) -> dict[str, MotorCalibration]:
        """Read homing offsets and limits from the motors → ``{name: MotorCalibration}``."""
        with self._naming():
            by_id = self.bus.read_calibration(self._ids(None))
        return {self._names[i]: cal for i, cal in by_id.items()}

    def write_calibration(self, calibration: Mapping[str, MotorCalibration]) -> None:
        """Disable torque, write the calibration into the motors, and keep it for normalizing."""
        self.calibration = calibration
        self.disable_torque()
        with self._naming():
            self.bus.write_calibration({self.motors[n].id: c for n, c in calibration.items()})
