"""Damiao (and RobStride) motors in MIT mode over python-can.

Two layers, as h11 separates protocol from I/O:

- a **sans-io core** — limit tables, :func:`pack_mit_command`, feedback packing/decoding, the
  special frames (enable, disable, set zero, clear fault, refresh, parameter query) as
  :class:`CanFrame` values — pure functions, tested byte-exact against ``damiao-motor``;
- :class:`MitMotorBus`, a blocking bus owner that opens python-can lazily, flushes stale frames,
  sends commands and collects replies.

Theory of operation (one exchange)
----------------------------------
Every bus operation (:meth:`MitMotorBus.refresh`, :meth:`~MitMotorBus.command`,
:meth:`~MitMotorBus.enable_torque`, ...) is one *exchange*:

1. **Flush** whatever is already queued (poll ``FLUSH_POLL_S``, at most ``MAX_FRAMES``): those
   frames answer an earlier cycle (late replies, spontaneous feedback) and would otherwise be
   mistaken for answers to this one. The count is in :meth:`~MitMotorBus.statistics`.
2. **Send** one frame per motor (every Damiao/RobStride command is answered by a feedback frame).
3. **Collect until quiet**: receive until every addressed motor answered or the bus stays silent
   for ``reply_timeout_s``, at most ``MAX_FRAMES`` frames. *Every* frame is decoded and the
   newest state per motor is kept, since replies from different motors interleave.
4. A motor that did not answer keeps its last known state; the drop is logged ("packet drop …
   using last known state", as LeRobot does) and counted. A Damiao fault status in a reply
   raises :class:`CanMotorFaultError` naming the motor (not for ``disable_torque``, which must
   always be able to reach the safe state).

Dialects
--------
RobStride's MIT mode (as driven by LeRobot's ``RobstrideMotorsBus``) fits the same abstraction,
so it is supported through a :class:`MitDialect`: identical command packing and special frames,
but the state request is the clear-fault frame (``FF×7 FB``) instead of the ``0x7FF`` refresh,
replies are routed by payload byte 0 (the receive id) instead of the arbitration id, byte 6–7 is a
16-bit MOS temperature in 0.1 °C, and there is no status nibble (so no fault detection: LeRobot's
fault heuristic for it is undocumented guesswork, which rtrun does not copy). RobStride's
*private* 29-bit protocol (PyPI ``robstride``) is a different wire protocol and is out of scope.

Design decisions (the brief is silent on them):

- Units are SI at this boundary: rad, rad/s, N·m. The one exception is the small
  ``NamedMotorBus``-shaped surface the motor-bus actor uses (:meth:`MitMotorBus.read_positions`,
  :meth:`MitMotorBus.write_goals`, ``enable_torque``/``disable_torque``, ``connect``/
  ``disconnect(disable_torque=)``), which speaks degrees like LeRobot's CAN buses; rad ⇄ deg
  happens there and nowhere else.
- Commands are all packed before the first frame is sent: NaN/inf anywhere raises
  ``ValueError`` and moves no motor.
- Limits per model follow LeRobot's tables (the behavioural reference). Where ``damiao-motor``
  disagrees (DM3507, DM4340) the real values are motor registers 21–23 (PMAX/VMAX/TMAX):
  read them with :meth:`MitMotorBus.read_limits` and pass ``limits=`` to :class:`CanMotor`.
- ``connect()`` does not enable torque (unlike LeRobot's handshake, which also decodes the
  *sent* enable frame as state); its handshake is a refresh that every motor must answer.
- Errors derive from :class:`Exception` only (drivers never import the kernel); python-can
  errors are translated once, in ``_send``/``_recv``, and chained.
- Known debt: at ~800 lines this module is over the ~600-line budget; the sans-io core above the
  bus can move to a private module without API change.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DAMIAO",
    "DAMIAO_LIMITS",
    "ROBSTRIDE_LIMITS",
    "ROBSTRIDE_MIT",
    "CanBusError",
    "CanFrame",
    "CanMotor",
    "CanMotorError",
    "CanMotorFaultError",
    "CanMotorNotRespondingError",
    "MitBusStatistics",
    "MitCommand",
    "MitDialect",
    "MitFeedback",
    "MitLimits",
    "MitMotorBus",
    "clear_fault_frame",
    "decode_damiao_feedback",
    "decode_robstride_feedback",
    "disable_frame",
    "enable_frame",
    "pack_damiao_feedback",
    "pack_mit_command",
    "pack_robstride_feedback",
    "param_query_frame",
    "refresh_frame",
    "set_zero_frame",
]

log = logging.getLogger(__name__)

PARAM_ID = 0x7FF
"""Arbitration id of Damiao refresh and parameter frames (``hardware.md`` §5.1)."""

CMD_ENABLE, CMD_DISABLE, CMD_SET_ZERO, CMD_CLEAR_FAULT = 0xFC, 0xFD, 0xFE, 0xFB
"""Last byte of the ``FF×7 xx`` special frames."""

CMD_REFRESH, CMD_QUERY_PARAM = 0xCC, 0x33
"""Command byte (data[2]) of refresh and parameter-query frames sent on ``PARAM_ID``."""

REG_PMAX, REG_VMAX, REG_TMAX = 21, 22, 23
"""Damiao registers holding the MIT mapping ranges (float32, little-endian)."""

MAX_FRAMES = 4096
"""Bound on frames handled per flush or collect (LeRobot's stale-RX bound)."""

FLUSH_POLL_S = 0.0005
"""Receive poll while flushing: a queued frame is returned at once, so 0.5 ms only bounds the
wait on an empty bus (``hardware.md`` §5.3)."""

REPLY_TIMEOUT_S = 0.01
"""Default quiet gap ending a collect: LeRobot's Damiao bus waits 10 ms (MEDIUM_TIMEOUT_SEC)
for batch replies; enough for slcan through a pty, which adds milliseconds."""

DAMIAO_STATUS = {
    0x0: "disabled",
    0x1: "enabled",
    0x8: "over-voltage",
    0x9: "under-voltage",
    0xA: "over-current",
    0xB: "MOS over-temperature",
    0xC: "rotor over-temperature",
    0xD: "lost communication",
    0xE: "overload",
}
"""Damiao feedback status nibble (byte 0, high nibble); codes >= 8 are faults."""


# ---------------------------------------------------------------------------------------------
# Errors


class CanMotorError(Exception):
    """Base class of CAN motor driver errors."""


class CanBusError(CanMotorError):
    """The CAN interface failed (cannot open, send failed, bus gone)."""


class CanMotorNotRespondingError(CanMotorError):
    """One or more motors never answered (handshake or parameter query)."""

    def __init__(self, motors: Sequence[str], what: str) -> None:
        """Name the silent motors and the operation they did not answer."""
        self.motors = tuple(motors)
        names = list(self.motors)
        super().__init__(f"motors {names} did not answer {what}; check power and CAN wiring")


class CanMotorFaultError(CanMotorError):
    """A motor reported a fault status in its feedback."""

    def __init__(self, motor: str, status: int) -> None:
        """Name the motor and its fault."""
        self.motor, self.status = motor, status
        name = DAMIAO_STATUS.get(status, f"unknown status 0x{status:X}")
        super().__init__(f"motor {motor!r} reports a fault: {name} (status 0x{status:X})")


# ---------------------------------------------------------------------------------------------
# Sans-io core


@dataclass(frozen=True, slots=True, kw_only=True)
class MitLimits:
    """MIT-mode mapping ranges: each field is linearly mapped onto its bit width."""

    pmax: float
    """Position range ±pmax, rad (16 bits)."""
    vmax: float
    """Velocity range ±vmax, rad/s (12 bits)."""
    tmax: float
    """Torque range ±tmax, N·m (12 bits)."""
    kp_max: float = 500.0
    """Stiffness range 0…kp_max (12 bits); 500 for every Damiao and RobStride model."""
    kd_max: float = 5.0
    """Damping range 0…kd_max (12 bits); 5 for every Damiao and RobStride model."""


def _limits(table: Mapping[str, tuple[float, float, float]]) -> dict[str, MitLimits]:
    return {k: MitLimits(pmax=p, vmax=v, tmax=t) for k, (p, v, t) in table.items()}


DAMIAO_LIMITS: Mapping[str, MitLimits] = _limits(
    {
        "DM3507": (12.5, 30, 10),
        "DM4310": (12.5, 30, 10),
        "DM4310_48V": (12.5, 50, 10),
        "DM4340": (12.5, 8, 28),
        "DM4340_48V": (12.5, 10, 28),
        "DM6006": (12.5, 45, 20),
        "DM8006": (12.5, 45, 40),
        "DM8009": (12.5, 45, 54),
        "DM10010L": (12.5, 25, 200),
        "DM10010": (12.5, 20, 200),
        "DMH3510": (12.5, 280, 1),
        "DMH6215": (12.5, 45, 10),
        "DMG6220": (12.5, 45, 10),
    }
)
"""Damiao limits per model, from LeRobot 0.4.4 ``damiao/tables.py`` (see module docstring)."""

ROBSTRIDE_LIMITS: Mapping[str, MitLimits] = _limits(
    {
        "O0": (12.57, 33, 14),
        "O1": (12.57, 44, 17),
        "O2": (12.57, 33, 20),
        "O3": (12.57, 33, 60),
        "O4": (12.57, 33, 120),
        "O5": (12.57, 50, 5.5),
        "ELO5": (12.57, 50, 6),
        "O6": (112.5, 50, 36),
    }
)
"""RobStride limits per model, from LeRobot 0.4.4 ``robstride/tables.py``."""


@dataclass(frozen=True, slots=True)
class CanFrame:
    """A classical CAN frame with an 11-bit identifier."""

    arbitration_id: int
    """11-bit identifier."""
    data: bytes
    """Payload, 0–8 bytes."""

    def __post_init__(self) -> None:
        if not 0 <= self.arbitration_id <= 0x7FF or len(self.data) > 8:
            raise ValueError(
                f"a classical CAN frame has an 11-bit id and <= 8 data bytes, got "
                f"id 0x{self.arbitration_id:X} with {len(self.data)} bytes"
            )


def float_to_uint(x: float, lo: float, hi: float, bits: int) -> int:
    """Clamp ``x`` to ``[lo, hi]`` and map it onto ``0 … 2**bits - 1``, truncating (as the SDKs)."""
    x = min(max(x, lo), hi)
    return int((x - lo) * ((1 << bits) - 1) / (hi - lo))


def uint_to_float(x: int, lo: float, hi: float, bits: int) -> float:
    """Inverse of :func:`float_to_uint` (up to quantisation)."""
    return x * (hi - lo) / ((1 << bits) - 1) + lo


def pack_mit_command(
    limits: MitLimits,
    *,
    position: float,
    velocity: float = 0.0,
    kp: float,
    kd: float,
    torque: float = 0.0,
) -> bytes:
    """Pack an MIT command (rad, rad/s, gains, N·m) into 8 bytes.

    Out-of-range values clamp to the limits (as both SDKs do); NaN or infinite values raise
    ``ValueError`` — a motor must never move on them.
    """
    fields = {"position": position, "velocity": velocity, "kp": kp, "kd": kd, "torque": torque}
    bad = {k: x for k, x in fields.items() if not math.isfinite(x)}
    if bad:
        raise ValueError(f"MIT command fields must be finite, got {bad}")
    p = float_to_uint(position, -limits.pmax, limits.pmax, 16)
    v = float_to_uint(velocity, -limits.vmax, limits.vmax, 12)
    kp_u = float_to_uint(kp, 0.0, limits.kp_max, 12)
    kd_u = float_to_uint(kd, 0.0, limits.kd_max, 12)
    t = float_to_uint(torque, -limits.tmax, limits.tmax, 12)
    head = [p >> 8, p & 0xFF, v >> 4, (v & 0xF) << 4 | kp_u >> 8, kp_u & 0xFF]
    return bytes([*head, kd_u >> 4, (kd_u & 0xF) << 4 | t >> 8, t & 0xFF])


@dataclass(frozen=True, slots=True, kw_only=True)
class MitFeedback:
    """One decoded feedback frame."""

    position: float
    """Rotor position, rad."""
    velocity: float
    """Velocity, rad/s."""
    torque: float
    """Torque, N·m."""
    temp_mos: float
    """Driver (MOS) temperature, °C."""
    temp_rotor: float | None
    """Rotor temperature, °C (None for RobStride, which does not report it)."""
    status: int | None
    """Damiao status nibble (see ``DAMIAO_STATUS``); None for RobStride."""

    @property
    def fault(self) -> int | None:
        """The fault status code, or None when the motor reports no fault."""
        return self.status if self.status is not None and self.status >= 8 else None


def _pack_pvt(limits: MitLimits, position: float, velocity: float, torque: float) -> bytes:
    p = float_to_uint(position, -limits.pmax, limits.pmax, 16)
    v = float_to_uint(velocity, -limits.vmax, limits.vmax, 12)
    t = float_to_uint(torque, -limits.tmax, limits.tmax, 12)
    return bytes([p >> 8, p & 0xFF, v >> 4, (v & 0xF) << 4 | t >> 8, t & 0xFF])


def _unpack_pvt(limits: MitLimits, data: bytes) -> tuple[float, float, float]:
    p = data[1] << 8 | data[2]
    v = data[3] << 4 | data[4] >> 4
    t = (data[4] & 0xF) << 8 | data[5]
    return (
        uint_to_float(p, -limits.pmax, limits.pmax, 16),
        uint_to_float(v, -limits.vmax, limits.vmax, 12),
        uint_to_float(t, -limits.tmax, limits.tmax, 12),
    )


def _check_len(data: bytes) -> None:
    if len(data) != 8:
        raise ValueError(f"MIT feedback frames carry 8 bytes, got {len(data)}")


def decode_damiao_feedback(limits: MitLimits, data: bytes) -> MitFeedback:
    """Decode a Damiao feedback payload (``hardware.md`` §5.1)."""
    _check_len(data)
    p, v, t = _unpack_pvt(limits, data)
    temps = {"temp_mos": float(data[6]), "temp_rotor": float(data[7])}
    return MitFeedback(position=p, velocity=v, torque=t, status=data[0] >> 4, **temps)


def pack_damiao_feedback(
    limits: MitLimits,
    *,
    motor_id: int,
    status: int,
    position: float,
    velocity: float = 0.0,
    torque: float = 0.0,
    temp_mos: int = 30,
    temp_rotor: int = 31,
) -> bytes:
    """Build a Damiao feedback payload (for fakes and tests)."""
    head = bytes([(status & 0xF) << 4 | (motor_id & 0xF)])
    return head + _pack_pvt(limits, position, velocity, torque) + bytes([temp_mos, temp_rotor])


def decode_robstride_feedback(limits: MitLimits, data: bytes) -> MitFeedback:
    """Decode a RobStride MIT feedback payload (byte 0 = receive id, bytes 6–7 = 0.1 °C)."""
    _check_len(data)
    p, v, t = _unpack_pvt(limits, data)
    temp = (data[6] << 8 | data[7]) / 10.0
    return MitFeedback(position=p, velocity=v, torque=t, temp_mos=temp, temp_rotor=None, status=None)


def pack_robstride_feedback(
    limits: MitLimits,
    *,
    recv_id: int,
    position: float,
    velocity: float = 0.0,
    torque: float = 0.0,
    temp_mos: float = 30.0,
) -> bytes:
    """Build a RobStride MIT feedback payload (for fakes and tests)."""
    pvt = _pack_pvt(limits, position, velocity, torque)
    return bytes([recv_id & 0xFF]) + pvt + round(temp_mos * 10).to_bytes(2, "big")


def _special(motor_id: int, command: int) -> CanFrame:
    return CanFrame(motor_id, bytes([0xFF] * 7 + [command]))


def enable_frame(motor_id: int) -> CanFrame:
    """Enable (torque on): ``FF×7 FC`` to the motor id."""
    return _special(motor_id, CMD_ENABLE)


def disable_frame(motor_id: int) -> CanFrame:
    """Disable (torque off): ``FF×7 FD`` to the motor id."""
    return _special(motor_id, CMD_DISABLE)


def set_zero_frame(motor_id: int) -> CanFrame:
    """Make the current position the zero: ``FF×7 FE`` to the motor id."""
    return _special(motor_id, CMD_SET_ZERO)


def clear_fault_frame(motor_id: int) -> CanFrame:
    """Clear a latched fault (RobStride: also the status query): ``FF×7 FB``."""
    return _special(motor_id, CMD_CLEAR_FAULT)


def refresh_frame(motor_id: int) -> CanFrame:
    """Damiao state request: ``id_lo id_hi CC 00 00 00 00 00`` on ``0x7FF``."""
    return CanFrame(PARAM_ID, motor_id.to_bytes(2, "little") + bytes([CMD_REFRESH, 0, 0, 0, 0, 0]))


def param_query_frame(motor_id: int, register: int) -> CanFrame:
    """Damiao parameter read: ``id_lo id_hi 33 rid 00 00 00 00`` on ``0x7FF``."""
    tail = bytes([CMD_QUERY_PARAM, register, 0, 0, 0, 0])
    return CanFrame(PARAM_ID, motor_id.to_bytes(2, "little") + tail)


@dataclass(frozen=True, slots=True, kw_only=True)
class MitDialect:
    """What differs between MIT-mode vendors on the wire (see module docstring)."""

    name: str
    """Dialect name used in errors and logs."""
    limits: Mapping[str, MitLimits]
    """Limits per model name."""
    state_request: Callable[[int], CanFrame]
    """Builds the frame asking motor ``id`` for its state."""
    route_by_payload: bool
    """Replies are routed by payload byte 0 (RobStride) instead of the arbitration id (Damiao)."""
    decode: Callable[[MitLimits, bytes], MitFeedback]
    """Decodes a feedback payload."""

    def reply_key(self, arbitration_id: int, data: bytes) -> int:
        """The receive id a reply comes from (matched against :attr:`CanMotor.recv_id`)."""
        if self.route_by_payload:
            return data[0] if data else -1
        return arbitration_id


DAMIAO = MitDialect(
    name="damiao",
    limits=DAMIAO_LIMITS,
    state_request=refresh_frame,
    route_by_payload=False,
    decode=decode_damiao_feedback,
)
"""Damiao MIT mode: refresh on ``0x7FF``, replies routed by arbitration id."""

ROBSTRIDE_MIT = MitDialect(
    name="robstride-mit",
    limits=ROBSTRIDE_LIMITS,
    state_request=clear_fault_frame,
    route_by_payload=True,
    decode=decode_robstride_feedback,
)
"""RobStride MIT mode as LeRobot drives it: replies routed by payload byte 0."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CanMotor:
    """One motor on the bus."""

    name: str
    """Joint name (unique on the bus)."""
    id: int
    """Command (slave) id, e.g. ``0x01``."""
    recv_id: int
    """Feedback (master) id, e.g. ``0x11``."""
    model: str = "DM4310"
    """Model name, a key of the dialect's limit table (e.g. ``DM4310``, ``O2``)."""
    limits: MitLimits | None = None
    """Override of the model's limits (e.g. values read from the motor's registers)."""
    kp: float = 10.0
    """Default stiffness for position commands (LeRobot's default)."""
    kd: float = 0.5
    """Default damping for position commands (LeRobot's default)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MitCommand:
    """An MIT-mode set-point for one motor."""

    position: float
    """Target position, rad."""
    velocity: float = 0.0
    """Target velocity, rad/s."""
    torque: float = 0.0
    """Feed-forward torque, N·m."""
    kp: float | None = None
    """Stiffness; None uses the motor's default."""
    kd: float | None = None
    """Damping; None uses the motor's default."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MitBusStatistics:
    """Counters of one :class:`MitMotorBus` since construction."""

    sent: int
    """Frames sent."""
    received: int
    """Frames received (including flushed and unknown ones)."""
    stale_flushed: int
    """Frames discarded by the pre-exchange flush."""
    dropped_replies: int
    """Expected replies that never came (the motor kept its last known state)."""
    unknown_frames: int
    """Frames from no configured motor, or not decodable as feedback."""


# ---------------------------------------------------------------------------------------------
# The bus


def _resolve_interface(interface: str, channel: str) -> str:
    """LeRobot's ``auto`` rule: slcan for ``/dev/…`` serial adapters, socketcan otherwise."""
    if interface != "auto":
        return interface
    return "slcan" if channel.startswith("/dev/") else "socketcan"


def _import_can() -> Any:
    """Import python-can on first use, with an install hint instead of a bare ImportError."""
    try:
        import can
    except ImportError as exc:
        raise CanBusError("python-can is required: pip install 'rtrun[hardware]'") from exc
    return can


class MitMotorBus:
    """Blocking owner of a CAN bus of MIT-mode motors (Damiao by default; see module doc).

    ``bus`` injects an already open python-can bus (the caller keeps ownership: ``disconnect``
    does not shut it down); otherwise ``connect()`` opens ``can.Bus(interface, channel,
    bitrate)``, with ``interface="auto"`` choosing slcan for ``/dev/…`` and socketcan otherwise.
    """

    def __init__(
        self,
        channel: str,
        motors: Sequence[CanMotor],
        *,
        dialect: MitDialect = DAMIAO,
        interface: str = "auto",
        bitrate: int = 1_000_000,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
        bus: Any = None,
        bus_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Validate the motor table; nothing is opened before ``connect()``.

        ``bus_options`` are extra keyword arguments for ``can.Bus`` (interface specific, e.g.
        ``{"fd": True, "data_bitrate": 5_000_000}`` on socketcan, ``{"sleep_after_open": 0}``
        on slcan).
        """
        self._check_unique(motors)
        self.channel, self.dialect = channel, dialect
        self.motors: dict[str, CanMotor] = {m.name: m for m in motors}
        self._limits = {m.name: self._limits_of(m) for m in motors}
        self._by_key = {m.recv_id: m.name for m in motors}
        self._interface, self._bitrate = interface, bitrate
        self._bus_options = dict(bus_options or {})
        self._reply_timeout_s = reply_timeout_s
        self._bus, self._owns_bus = bus, bus is None
        self._can: Any = None
        self._connected = False
        self._state: dict[str, MitFeedback | None] = dict.fromkeys(self.motors)
        self._n = dict.fromkeys(("sent", "received", "stale", "dropped", "unknown"), 0)

    @staticmethod
    def _check_unique(motors: Sequence[CanMotor]) -> None:
        for what in ("name", "id", "recv_id"):
            values = [getattr(m, what) for m in motors]
            if len(set(values)) != len(values):
                raise ValueError(f"motor {what}s must be unique on a bus, got {values}")

    def _limits_of(self, motor: CanMotor) -> MitLimits:
        if motor.limits is not None:
            return motor.limits
        if motor.model not in self.dialect.limits:
            raise ValueError(
                f"unknown {self.dialect.name} model {motor.model!r} for motor {motor.name!r}; "
                f"known: {sorted(self.dialect.limits)} (or pass limits=)"
            )
        return self.dialect.limits[motor.model]

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True between ``connect()`` and ``disconnect()``."""
        return self._connected

    def connect(self, *, handshake: bool = True) -> None:
        """Open the bus, flush stale frames and (``handshake``) require every motor to answer."""
        if self._connected:
            raise CanMotorError(f"CAN bus {self.channel!r} is already connected")
        self._can = _import_can()
        if self._bus is None:
            self._bus = self._open_bus()
        self._connected = True
        try:
            self.flush()
            if handshake:
                got = self._exchange(self._names(None), self.dialect.state_request, faults=False)
                missing = [n for n in self.motors if n not in got]
                if missing:
                    raise CanMotorNotRespondingError(missing, f"the {self.dialect.name} handshake")
        except BaseException:
            self._close_bus()
            raise

    def _open_bus(self) -> Any:
        can = self._can
        interface = _resolve_interface(self._interface, self.channel)
        try:
            return can.Bus(
                interface=interface, channel=self.channel, bitrate=self._bitrate, **self._bus_options
            )
        except (can.CanError, OSError, ValueError) as exc:
            raise CanBusError(f"cannot open CAN bus {self.channel!r} ({interface}): {exc}") from exc

    def disconnect(self, *, disable_torque: bool = True) -> None:
        """Disable torque (optionally), then close the bus. Idempotent."""
        if not self._connected:
            return
        try:
            if disable_torque:
                self.disable_torque()
        finally:
            self._close_bus()

    def _close_bus(self) -> None:
        self._connected = False
        bus = self._bus
        if self._owns_bus:
            self._bus = None
            if bus is not None:
                bus.shutdown()

    # -- operations -----------------------------------------------------------------------------

    def enable_torque(self, motors: Iterable[str] | None = None) -> dict[str, MitFeedback]:
        """Enable the motors (``FF×7 FC``); returns the feedback received."""
        return self._exchange(self._names(motors), enable_frame)

    def disable_torque(self, motors: Iterable[str] | None = None) -> dict[str, MitFeedback]:
        """Disable the motors (``FF×7 FD``). Never raises on a fault status (safe-state path)."""
        return self._exchange(self._names(motors), disable_frame, faults=False)

    def set_zero_position(self, motors: Iterable[str] | None = None) -> dict[str, MitFeedback]:
        """Make each motor's current position its zero (``FF×7 FE``)."""
        return self._exchange(self._names(motors), set_zero_frame)

    def clear_fault(self, motors: Iterable[str] | None = None) -> dict[str, MitFeedback]:
        """Clear latched faults (``FF×7 FB``); never raises on a fault status."""
        return self._exchange(self._names(motors), clear_fault_frame, faults=False)

    def refresh(self, motors: Iterable[str] | None = None) -> dict[str, MitFeedback]:
        """Request and return fresh state; silent motors keep their last state (see ``state``)."""
        return self._exchange(self._names(motors), self.dialect.state_request)

    def command(self, commands: Mapping[str, MitCommand]) -> dict[str, MitFeedback]:
        """Send MIT set-points and return the feedback they produced."""
        names = self._names(commands)

        def frame(name: str) -> CanFrame:
            motor, cmd = self.motors[name], commands[name]
            data = pack_mit_command(
                self._limits[name],
                position=cmd.position,
                velocity=cmd.velocity,
                kp=motor.kp if cmd.kp is None else cmd.kp,
                kd=motor.kd if cmd.kd is None else cmd.kd,
                torque=cmd.torque,
            )
            return CanFrame(motor.id, data)

        return self._exchange(names, frame, by_name=True)

    # -- the NamedMotorBus-shaped surface (degrees) the motor_bus actor uses ---------------------

    def read_positions(self, motors: Iterable[str] | None = None) -> dict[str, float]:
        """Refresh and return positions in **degrees** (the unit change rad → deg happens here).

        A motor that dropped this reply reports its last known position; one that never
        answered raises :class:`CanMotorNotRespondingError`.
        """
        names = self._names(motors)
        self.refresh(names)
        never = [n for n in names if self._state[n] is None]
        if never:
            raise CanMotorNotRespondingError(never, "any state request")
        return {n: math.degrees(self._state[n].position) for n in names}  # type: ignore[union-attr]

    def write_goals(self, values: Mapping[str, float]) -> dict[str, float]:
        """Command positions given in **degrees** with each motor's default gains.

        Returns the radians sent. Every value is checked before any frame is sent, so a NaN
        in one joint moves none.
        """
        radians = {n: math.radians(v) for n, v in values.items()}
        self.command({n: MitCommand(position=r) for n, r in radians.items()})
        return radians

    def read_limits(self, motor: str, *, timeout_s: float = 0.1) -> MitLimits:
        """Read PMAX/VMAX/TMAX from a Damiao motor's registers 21–23."""
        if self.dialect.name != DAMIAO.name:
            raise CanMotorError(f"parameter queries are a Damiao feature, not {self.dialect.name}")
        values = [self._read_register(motor, rid, timeout_s) for rid in (REG_PMAX, REG_VMAX, REG_TMAX)]
        return MitLimits(pmax=values[0], vmax=values[1], tmax=values[2])

    def _read_register(self, name: str, rid: int, timeout_s: float) -> float:
        motor = self.motors[name]
        self.flush()
        self._send(param_query_frame(motor.id, rid), name)
        for _ in range(MAX_FRAMES):
            msg = self._recv(timeout_s)
            if msg is None:
                break
            data = bytes(msg.data)
            if (
                msg.arbitration_id == motor.recv_id
                and len(data) == 8
                and data[2:4] == bytes([CMD_QUERY_PARAM, rid])
            ):
                return float(struct.unpack("<f", data[4:8])[0])
        raise CanMotorNotRespondingError([name], f"the query of register {rid}")

    @property
    def state(self) -> dict[str, MitFeedback | None]:
        """Last known feedback per motor (None before the first reply)."""
        return dict(self._state)

    def statistics(self) -> MitBusStatistics:
        """Frame counters since construction."""
        n = self._n
        return MitBusStatistics(
            sent=n["sent"],
            received=n["received"],
            stale_flushed=n["stale"],
            dropped_replies=n["dropped"],
            unknown_frames=n["unknown"],
        )

    def flush(self) -> int:
        """Discard queued frames (poll ``FLUSH_POLL_S``, at most ``MAX_FRAMES``); return the count."""
        flushed = 0
        while flushed < MAX_FRAMES and self._recv(FLUSH_POLL_S) is not None:
            flushed += 1
        self._n["stale"] += flushed
        return flushed

    # -- exchange machinery (see "Theory of operation") -----------------------------------------

    def _names(self, motors: Iterable[str] | None) -> list[str]:
        names = list(self.motors) if motors is None else list(motors)
        unknown = [n for n in names if n not in self.motors]
        if unknown:
            raise ValueError(f"unknown motors {unknown} on CAN bus {self.channel!r}: {list(self.motors)}")
        return names

    def _exchange(
        self, names: list[str], make: Any, *, faults: bool = True, by_name: bool = False
    ) -> dict[str, MitFeedback]:
        if not self._connected:
            raise CanBusError(f"CAN bus {self.channel!r} is not connected; call connect()")
        # Build every frame before sending any: a bad value (NaN) in one command moves no motor.
        frames = [(n, make(n) if by_name else make(self.motors[n].id)) for n in names]
        self.flush()
        for name, frame in frames:
            self._send(frame, name)
        got = self._collect({self.motors[n].recv_id for n in names})
        for name in names:
            if name not in got:
                self._n["dropped"] += 1
                log.warning(
                    "packet drop: %s (recv id 0x%02X), using last known state",
                    name,
                    self.motors[name].recv_id,
                )
        if faults:
            for name, fb in got.items():
                if fb.fault is not None:
                    raise CanMotorFaultError(name, fb.fault)
        return got

    def _collect(self, expected: set[int]) -> dict[str, MitFeedback]:
        got: dict[str, MitFeedback] = {}
        keys: set[int] = set()
        for _ in range(MAX_FRAMES):
            if expected <= keys:
                break
            msg = self._recv(self._reply_timeout_s)
            if msg is None:
                break
            data = bytes(msg.data)
            key = self.dialect.reply_key(msg.arbitration_id, data)
            name = self._by_key.get(key)
            if name is None or len(data) != 8 or msg.is_error_frame or msg.is_remote_frame:
                self._n["unknown"] += 1
                continue
            fb = self.dialect.decode(self._limits[name], data)
            self._state[name] = got[name] = fb
            keys.add(key)
        return got

    def _send(self, frame: CanFrame, motor: str) -> None:
        can = self._can
        msg = can.Message(arbitration_id=frame.arbitration_id, data=frame.data, is_extended_id=False)
        try:
            self._bus.send(msg, timeout=self._reply_timeout_s)
        except (can.CanError, OSError) as exc:
            where = f"motor {motor!r} (id 0x{frame.arbitration_id:03X}) on {self.channel!r}"
            raise CanBusError(f"sending to {where} failed: {exc}") from exc
        self._n["sent"] += 1

    def _recv(self, timeout_s: float) -> Any:
        can = self._can
        try:
            msg = self._bus.recv(timeout=timeout_s)
        except (can.CanError, OSError) as exc:
            raise CanBusError(f"receiving on CAN bus {self.channel!r} failed: {exc}") from exc
        if msg is not None:
            self._n["received"] += 1
        return msg
