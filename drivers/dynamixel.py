"""Dynamixel protocol 2.0 servos (X series; Koch arms): the ``MotorBus`` driver.

Wire format (hardware.md §3): instruction ``FF FF FD 00 ID LEN_L LEN_H INSTR P… CRC_L CRC_H``;
status ``FF FF FD 00 ID LEN_L LEN_H 55 ERR P… CRC``. ``LEN`` counts everything after itself
(instruction, parameters, CRC) **after** byte stuffing, and the CRC-16 (polynomial 0x8005,
initial 0, not reflected: CRC-16/BUYPASS) covers every byte from the first ``FF`` to the last
parameter, also after stuffing. Multi-byte values are little-endian, signed ones two's
complement.

Theory of operation — byte stuffing
-----------------------------------
The header ``FF FF FD`` must never appear inside a packet, so wherever the instruction and
parameter bytes contain ``FF FF FD`` the sender inserts an extra ``FD`` (→ ``FF FF FD FD``) and
the receiver removes it. A receiver therefore recognises a header as ``FF FF FD`` followed by
anything but ``FD``. The Python ``dynamixel_sdk`` (3.8.4, 4.1.0) computes the stuffed packet
and then discards it, sending the unstuffed bytes with the unstuffed length: a value like
``0x00FDFFFF`` goes out corrupt. This driver stuffs correctly (golden frame in the tests) and
de-stuffs replies.

Design decisions:

- ``apply_drive_mode`` is False (as in LeRobot): direction reversal lives in the servo's
  ``Drive_Mode`` register, so normalization must not invert a second time. ``read_calibration``
  reports bit 0 of ``Drive_Mode`` as ``drive_mode`` (other bits configure motion profiles).
- A status with the hardware-alert bit (0x80) raises :class:`ServoError`; the driver then reads
  ``Hardware_Error_Status`` once (bounded like any call) to name the cause: voltage, overheat,
  encoder, electrical_shock, overload.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ._serial_bus import DEFAULT_TIMEOUT_S, PacketBus, RxCorrupt, RxTimeout, SerialLink, Status
from .calibration import MotorCalibration, MotorNormMode
from .motor_bus import ModelSpec, Motor, MotorBusError, Register, ServoError

__all__ = [
    "DYNAMIXEL_MODELS",
    "X_SERIES_CONTROL_TABLE",
    "DynamixelBus",
    "dxl_crc16",
    "hardware_error_flags",
    "koch_follower_motors",
    "koch_leader_motors",
    "stuff",
    "unstuff",
]


def _crc_table() -> tuple[int, ...]:
    """CRC-16 table for polynomial 0x8005, MSB first (equals the SDK's literal table)."""
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


CRC_TABLE: tuple[int, ...] = _crc_table()
"""The 256-entry CRC-16/BUYPASS table."""


def dxl_crc16(data: bytes, crc: int = 0) -> int:
    """CRC-16/BUYPASS of ``data`` (check value of ``b"123456789"`` is 0xFEE8)."""
    for byte in data:
        crc = ((crc << 8) ^ CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


def stuff(data: bytes) -> bytes:
    """Insert ``FD`` after every ``FF FF FD`` in ``data`` (instruction + parameters)."""
    out = bytearray()
    for byte in data:
        out.append(byte)
        # An inserted FD can never start a new pattern (FD is not FF), so checking the output
        # is the same as checking the input.
        if byte == 0xFD and out[-3:-1] == b"\xff\xff":
            out.append(0xFD)
    return bytes(out)


def unstuff(data: bytes) -> bytes:
    """Remove the ``FD`` inserted after each ``FF FF FD`` (inverse of :func:`stuff`)."""
    out = bytearray()
    i = 0
    while i < len(data):
        out.append(data[i])
        if data[i] == 0xFD and out[-3:-1] == b"\xff\xff" and i + 1 < len(data) and data[i + 1] == 0xFD:
            i += 1  # skip the stuffing byte
        i += 1
    return bytes(out)


def _reg(name: str, address: int, size: int, signed: bool = False) -> Register:
    encoding = "twos_complement" if signed else "unsigned"
    return Register(name=name, address=address, size=size, encoding=encoding)


X_SERIES_CONTROL_TABLE: dict[str, Register] = {
    r.name: r
    for r in (
        _reg("Model_Number", 0, 2),
        _reg("Model_Information", 2, 4),
        _reg("Firmware_Version", 6, 1),
        _reg("ID", 7, 1),
        _reg("Baud_Rate", 8, 1),
        _reg("Return_Delay_Time", 9, 1),
        _reg("Drive_Mode", 10, 1),
        _reg("Operating_Mode", 11, 1),
        _reg("Secondary_ID", 12, 1),
        _reg("Protocol_Type", 13, 1),
        _reg("Homing_Offset", 20, 4, signed=True),
        _reg("Moving_Threshold", 24, 4),
        _reg("Temperature_Limit", 31, 1),
        _reg("Max_Voltage_Limit", 32, 2),
        _reg("Min_Voltage_Limit", 34, 2),
        _reg("PWM_Limit", 36, 2),
        _reg("Current_Limit", 38, 2),
        _reg("Acceleration_Limit", 40, 4),
        _reg("Velocity_Limit", 44, 4),
        _reg("Max_Position_Limit", 48, 4),
        _reg("Min_Position_Limit", 52, 4),
        _reg("Shutdown", 63, 1),
        _reg("Torque_Enable", 64, 1),
        _reg("LED", 65, 1),
        _reg("Status_Return_Level", 68, 1),
        _reg("Registered_Instruction", 69, 1),
        _reg("Hardware_Error_Status", 70, 1),
        _reg("Velocity_I_Gain", 76, 2),
        _reg("Velocity_P_Gain", 78, 2),
        _reg("Position_D_Gain", 80, 2),
        _reg("Position_I_Gain", 82, 2),
        _reg("Position_P_Gain", 84, 2),
        _reg("Feedforward_2nd_Gain", 88, 2),
        _reg("Feedforward_1st_Gain", 90, 2),
        _reg("Bus_Watchdog", 98, 1),
        _reg("Goal_PWM", 100, 2, signed=True),
        _reg("Goal_Current", 102, 2, signed=True),
        _reg("Goal_Velocity", 104, 4, signed=True),
        _reg("Profile_Acceleration", 108, 4),
        _reg("Profile_Velocity", 112, 4),
        _reg("Goal_Position", 116, 4, signed=True),
        _reg("Realtime_Tick", 120, 2),
        _reg("Moving", 122, 1),
        _reg("Moving_Status", 123, 1),
        _reg("Present_PWM", 124, 2, signed=True),
        _reg("Present_Current", 126, 2, signed=True),
        _reg("Present_Velocity", 128, 4, signed=True),
        _reg("Present_Position", 132, 4, signed=True),
        _reg("Velocity_Trajectory", 136, 4),
        _reg("Position_Trajectory", 140, 4),
        _reg("Present_Input_Voltage", 144, 2),
        _reg("Present_Temperature", 146, 1),
    )
}
"""X-series control table (LeRobot 0.4.4 names; signed registers two's complement)."""

DYNAMIXEL_MODELS: dict[str, ModelSpec] = {
    name: ModelSpec(name=name, model_number=number)
    for name, number in (
        ("xl330-m077", 1190),
        ("xl330-m288", 1200),
        ("xl430-w250", 1060),
        ("xm430-w350", 1020),
        ("xm540-w270", 1120),
        ("xc430-w150", 1070),
    )
}
"""Supported X-series models (model numbers from LeRobot's tables), 4096 ticks per turn."""

_ERROR_CODES = {
    1: "result_fail",
    2: "instruction_error",
    3: "crc_error",
    4: "data_range_error",
    5: "data_length_error",
    6: "data_limit_error",
    7: "access_error",
}
_HARDWARE_BITS = (
    (0x01, "voltage"),
    (0x04, "overheat"),
    (0x08, "encoder"),
    (0x10, "electrical_shock"),
    (0x20, "overload"),
)
_HEADER = b"\xff\xff\xfd\x00"
_MAX_LEN = 1024
"""Largest LEN accepted in a status packet (the SDK's RXPACKET_MAX_LEN)."""


def hardware_error_flags(value: int) -> tuple[str, ...]:
    """Names of the bits set in ``Hardware_Error_Status`` (address 70)."""
    return tuple(name for bit, name in _HARDWARE_BITS if value & bit)


class DynamixelBus(PacketBus):
    """Dynamixel protocol 2.0 servos on one serial port."""

    status_overhead = 11  # FF FF FD 00 ID LEN_L LEN_H 55 ERR CRC_L CRC_H
    byteorder = "little"

    def __init__(
        self,
        port: str | os.PathLike[str] | SerialLink,
        *,
        baudrate: int = 1_000_000,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(port, baudrate=baudrate, timeout_s=timeout_s)
        self.control_table = X_SERIES_CONTROL_TABLE
        self.models = DYNAMIXEL_MODELS
        self.apply_drive_mode = False

    # -- framing ------------------------------------------------------------------------------

    def _frame(self, motor_id: int, instruction: int, params: bytes) -> bytes:
        payload = stuff(bytes((instruction,)) + params)
        head = _HEADER + bytes((motor_id,)) + (len(payload) + 2).to_bytes(2, "little")
        crc = dxl_crc16(head + payload)
        return head + payload + crc.to_bytes(2, "little")

    def _address_params(self, register: Register) -> bytes:
        return register.address.to_bytes(2, "little") + register.size.to_bytes(2, "little")

    def _address(self, address: int) -> bytes:
        return address.to_bytes(2, "little")

    def _error_flags(self, error: int) -> tuple[str, ...]:
        flags = ("hardware_alert",) if error & 0x80 else ()
        code = error & 0x7F
        if code:
            flags += (_ERROR_CODES.get(code, f"error_{code}"),)
        return flags

    def _receive(self, deadline: float) -> Status:
        """Hunt for ``FF FF FD 00``, read LEN bytes, check the CRC, then de-stuff."""
        window = bytearray(self._link.read(7, deadline))
        while True:
            if len(window) < 7:
                raise RxTimeout(len(window))
            length = int.from_bytes(window[5:7], "little")
            if window[:4] == _HEADER and window[4] <= 0xFC and 4 <= length <= _MAX_LEN:
                break
            del window[0]  # not a plausible header: slide by one byte (resync)
            self._stats["discarded_bytes"] += 1
            window += self._link.read(1, deadline)
        motor_id = window[4]
        rest = self._link.read(length, deadline)
        if len(rest) < length:
            raise RxTimeout(7 + len(rest))
        crc = dxl_crc16(bytes(window) + rest[:-2])
        if int.from_bytes(rest[-2:], "little") != crc:
            got = int.from_bytes(rest[-2:], "little")
            raise RxCorrupt(f"CRC 0x{got:04x}, expected 0x{crc:04x}", motor_id)
        if rest[0] != 0x55:
            raise RxCorrupt(f"instruction 0x{rest[0]:02x} is not STATUS (0x55)", motor_id)
        return Status(motor_id=motor_id, error=rest[1], params=unstuff(rest[2:-2]))

    def _enrich(self, error: ServoError) -> ServoError:
        """On a hardware alert, read ``Hardware_Error_Status`` to name the cause."""
        if not error.error_byte & 0x80 or error.motor_id is None:
            return error
        reg = self.register("Hardware_Error_Status")
        try:
            status = self._transact(
                error.motor_id,
                self.INSTR_READ,
                self._address_params(reg),
                "read Hardware_Error_Status",
                reg.size,
                check_error=False,
            )
        except MotorBusError:
            return error  # the alert itself is the error to report; the detail is a bonus
        extra = hardware_error_flags(status.params[0])
        if not extra:
            return error
        flags = error.flags + extra
        return ServoError(
            f"servo error 0x{error.error_byte:02x} ({', '.join(flags)})",
            flags=flags,
            error_byte=error.error_byte,
            motor_id=error.motor_id,
            motor_name=error.motor_name,
            operation=error.operation,
        )

    # -- operations ---------------------------------------------------------------------------

    def ping(self, motor_id: int) -> int:
        """PING ``motor_id``; the status carries the model number and firmware version."""
        status = self._transact(motor_id, self.INSTR_PING, b"", "ping", 3)
        return int.from_bytes(status.params[:2], "little")

    def read_calibration(self, motor_ids: Sequence[int]) -> dict[int, MotorCalibration]:
        """Homing offset, limits and bit 0 of ``Drive_Mode`` from the motors."""
        base = super().read_calibration(motor_ids)
        modes = self.sync_read("Drive_Mode", motor_ids)
        return {
            i: MotorCalibration(
                id=i,
                drive_mode=modes[i] & 1,
                homing_offset=c.homing_offset,
                range_min=c.range_min,
                range_max=c.range_max,
            )
            for i, c in base.items()
        }


# --------------------------------------------------------------------------- Koch arms


def koch_follower_motors(*, use_degrees: bool = True) -> dict[str, Motor]:
    """Koch v1.1 follower: XL430-W250 (ids 1–2) and XL330-M288 (ids 3–6), LeRobot's names."""
    body = MotorNormMode.DEGREES if use_degrees else MotorNormMode.RANGE_M100_100
    models = ("xl430-w250", "xl430-w250", "xl330-m288", "xl330-m288", "xl330-m288")
    names = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
    motors = {
        n: Motor(id=i, model=m, norm_mode=body) for i, (n, m) in enumerate(zip(names, models, strict=True), 1)
    }
    motors["gripper"] = Motor(id=6, model="xl330-m288", norm_mode=MotorNormMode.RANGE_0_100)
    return motors


def koch_leader_motors() -> dict[str, Motor]:
    """Koch v1.1 leader: six XL330-M077, arm joints ``RANGE_M100_100``, gripper 0–100."""
    names = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
    motors = {
        n: Motor(id=i, model="xl330-m077", norm_mode=MotorNormMode.RANGE_M100_100)
        for i, n in enumerate(names, 1)
    }
    motors["gripper"] = Motor(id=6, model="xl330-m077", norm_mode=MotorNormMode.RANGE_0_100)
    return motors
