"""Damiao (and RobStride) motors in MIT mode over python-can.

Two layers, as h11 separates protocol from I/O:

- a **sans-io core** (:mod:`rtrun.drivers._mit_protocol`, re-exported here) — limit tables,
  :func:`pack_mit_command`, feedback packing/decoding, the special frames (enable, disable, set
  zero, clear fault, refresh, parameter query) as :class:`CanFrame` values, the dialects — pure
  functions, tested byte-exact against ``damiao-motor``;
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
- The sans-io core lives in the private :mod:`rtrun.drivers._mit_protocol` (this module stayed
  over the ~600-line budget otherwise); every name it had here is still importable from here.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import TransientError
from ._mit_protocol import CMD_CLEAR_FAULT as CMD_CLEAR_FAULT
from ._mit_protocol import CMD_DISABLE as CMD_DISABLE
from ._mit_protocol import CMD_ENABLE as CMD_ENABLE
from ._mit_protocol import CMD_QUERY_PARAM as CMD_QUERY_PARAM
from ._mit_protocol import CMD_REFRESH as CMD_REFRESH
from ._mit_protocol import CMD_SET_ZERO as CMD_SET_ZERO
from ._mit_protocol import DAMIAO as DAMIAO
from ._mit_protocol import DAMIAO_LIMITS as DAMIAO_LIMITS
from ._mit_protocol import DAMIAO_STATUS as DAMIAO_STATUS
from ._mit_protocol import PARAM_ID as PARAM_ID
from ._mit_protocol import REG_PMAX as REG_PMAX
from ._mit_protocol import REG_TMAX as REG_TMAX
from ._mit_protocol import REG_VMAX as REG_VMAX
from ._mit_protocol import ROBSTRIDE_LIMITS as ROBSTRIDE_LIMITS
from ._mit_protocol import ROBSTRIDE_MIT as ROBSTRIDE_MIT
from ._mit_protocol import CanFrame as CanFrame
from ._mit_protocol import MitDialect as MitDialect
from ._mit_protocol import MitFeedback as MitFeedback
from ._mit_protocol import MitLimits as MitLimits
from ._mit_protocol import clear_fault_frame as clear_fault_frame
from ._mit_protocol import decode_damiao_feedback as decode_damiao_feedback
from ._mit_protocol import decode_robstride_feedback as decode_robstride_feedback
from ._mit_protocol import disable_frame as disable_frame
from ._mit_protocol import enable_frame as enable_frame
from ._mit_protocol import float_to_uint as float_to_uint
from ._mit_protocol import pack_damiao_feedback as pack_damiao_feedback
from ._mit_protocol import pack_mit_command as pack_mit_command
from ._mit_protocol import pack_robstride_feedback as pack_robstride_feedback
from ._mit_protocol import param_query_frame as param_query_frame
from ._mit_protocol import refresh_frame as refresh_frame
from ._mit_protocol import set_zero_frame as set_zero_frame
from ._mit_protocol import uint_to_float as uint_to_float

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

MAX_FRAMES = 4096
"""Bound on frames handled per flush or collect (LeRobot's stale-RX bound)."""

FLUSH_POLL_S = 0.0005
"""Receive poll while flushing: a queued frame is returned at once, so 0.5 ms only bounds the
wait on an empty bus (``hardware.md`` §5.3)."""

REPLY_TIMEOUT_S = 0.01
"""Default quiet gap ending a collect: LeRobot's Damiao bus waits 10 ms (MEDIUM_TIMEOUT_SEC)
for batch replies; enough for slcan through a pty, which adds milliseconds."""

# ---------------------------------------------------------------------------------------------
# Errors


class CanMotorError(Exception):
    """Base class of CAN motor driver errors."""


class CanBusError(CanMotorError):
    """The CAN interface failed (cannot open, send failed, bus gone)."""


class CanMotorNotRespondingError(CanMotorError, TransientError):
    """One or more motors never answered (handshake, parameter query or a cycle); transient."""

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
