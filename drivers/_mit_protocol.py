"""Sans-io core of the Damiao / RobStride MIT-mode driver: pure functions and frozen dataclasses.

Limit tables, MIT command packing, feedback packing/decoding, the special frames as
:class:`CanFrame` values and the vendor dialects. Nothing here does I/O or imports python-can;
:class:`~rtrun.drivers.damiao.MitMotorBus` (in :mod:`rtrun.drivers.damiao`, which re-exports
every public name of this module) is the blocking bus owner built on it. Units, the choice of
limit tables and the dialects are explained in :mod:`rtrun.drivers.damiao`'s docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

PARAM_ID = 0x7FF
"""Arbitration id of Damiao refresh and parameter frames (``hardware.md`` §5.1)."""

CMD_ENABLE, CMD_DISABLE, CMD_SET_ZERO, CMD_CLEAR_FAULT = 0xFC, 0xFD, 0xFE, 0xFB
"""Last byte of the ``FF×7 xx`` special frames."""

CMD_REFRESH, CMD_QUERY_PARAM = 0xCC, 0x33
"""Command byte (data[2]) of refresh and parameter-query frames sent on ``PARAM_ID``."""

REG_PMAX, REG_VMAX, REG_TMAX = 21, 22, 23
"""Damiao registers holding the MIT mapping ranges (float32, little-endian)."""

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
"""Damiao limits per model, from LeRobot 0.4.4 ``damiao/tables.py`` (see :mod:`rtrun.drivers.damiao`)."""

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
    """What differs between MIT-mode vendors on the wire (see :mod:`rtrun.drivers.damiao`, "Dialects")."""

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
