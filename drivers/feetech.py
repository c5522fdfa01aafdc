"""Feetech STS/SMS/SCS serial servos (SO-100, SO-101 arms): the ``MotorBus`` driver.

Wire format (hardware.md §2): instruction ``FF FF ID LEN INSTR P… CHK`` with
``LEN = len(P) + 2`` and ``CHK = ~(ID + LEN + INSTR + ΣP) & 0xFF``; status
``FF FF ID LEN ERR P… CHK``. No byte stuffing. Protocol 0 (STS/SMS series, e.g. STS3215) stores
multi-byte registers little-endian; protocol 1 (SCS series, e.g. SCS0009) big-endian, and one
bus never mixes the two (as in LeRobot). Positions, velocities, loads and the homing offset are
sign-magnitude on protocol 0 (sign bit 15, 10 for the load, 11 for the offset).

Usage (blocking; the ``motor_bus`` actor calls it from a worker thread)::

    bus = NamedMotorBus(FeetechBus("/dev/ttyACM0"), so_follower_motors(),
                        calibration=load_calibration(path))
    bus.connect()                        # opens the port, pings every motor, checks models
    bus.enable_torque()                  # Torque_Enable ← 1 then Lock ← 1, per motor
    q = bus.read_positions()             # {"shoulder_pan": 12.3, ..., "gripper": 40.0}
    bus.write_goals({"elbow_flex": 10.0})
    bus.disconnect()                     # Torque_Enable ← 0, Lock ← 0, close

Design decisions (beyond those in ``_serial_bus``):

- Blocking pyserial, not pyserial-asyncio (which the issue mentions): the ``motor_bus`` actor
  runs this driver in a worker thread, where blocking I/O with explicit deadlines is the simple
  and loop-agnostic choice (rtrun runs on asyncio *and* trio); see ``_serial_bus`` for details.
- ``ping()`` sends PING and then READs ``Model_Number`` (address 3), like the vendor SDK, so a
  handshake proves the id answers *and* is the configured model.
- Torque choreography follows LeRobot: enable = ``Torque_Enable ← 1`` then ``Lock ← 1``;
  disable = ``Torque_Enable ← 0`` then ``Lock ← 0`` (acknowledged writes, so a missing motor is
  reported by name instead of silently staying limp or stiff).
- Error bits (status byte): 0x01 voltage, 0x02 angle sensor, 0x04 overheat, 0x08 over-current,
  0x20 overload; bits 0x10/0x40 have no documented meaning and are reported as ``bit4``/``bit6``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from ._serial_bus import DEFAULT_TIMEOUT_S, PacketBus, RxCorrupt, RxTimeout, SerialLink, Status
from .calibration import MotorCalibration, MotorNormMode
from .motor_bus import ModelSpec, Motor, NamedMotorBus, Register

__all__ = [
    "FEETECH_MODELS",
    "SCS_CONTROL_TABLE",
    "STS_CONTROL_TABLE",
    "FeetechBus",
    "configure_so_follower",
    "feetech_checksum",
    "so_follower_motors",
]


def _table(*rows: tuple[str, int, int] | tuple[str, int, int, int]) -> dict[str, Register]:
    out = {}
    for row in rows:
        name, address, size = row[:3]
        if len(row) == 4:
            out[name] = Register(
                name=name, address=address, size=size, encoding="sign_magnitude", sign_bit=row[3]
            )
        else:
            out[name] = Register(name=name, address=address, size=size)
    return out


_COMMON_EEPROM = (
    ("Firmware_Major_Version", 0, 1),
    ("Firmware_Minor_Version", 1, 1),
    ("Model_Number", 3, 2),
    ("ID", 5, 1),
    ("Baud_Rate", 6, 1),
    ("Return_Delay_Time", 7, 1),
    ("Response_Status_Level", 8, 1),
    ("Min_Position_Limit", 9, 2),
    ("Max_Position_Limit", 11, 2),
    ("Max_Temperature_Limit", 13, 1),
    ("Max_Voltage_Limit", 14, 1),
    ("Min_Voltage_Limit", 15, 1),
    ("Max_Torque_Limit", 16, 2),
    ("Phase", 18, 1),
    ("Unloading_Condition", 19, 1),
    ("LED_Alarm_Condition", 20, 1),
    ("P_Coefficient", 21, 1),
    ("D_Coefficient", 22, 1),
    ("I_Coefficient", 23, 1),
    ("Minimum_Startup_Force", 24, 2),
    ("CW_Dead_Zone", 26, 1),
    ("CCW_Dead_Zone", 27, 1),
)

STS_CONTROL_TABLE: dict[str, Register] = _table(
    *_COMMON_EEPROM,
    ("Protection_Current", 28, 2),
    ("Angular_Resolution", 30, 1),
    ("Homing_Offset", 31, 2, 11),
    ("Operating_Mode", 33, 1),
    ("Protective_Torque", 34, 1),
    ("Protection_Time", 35, 1),
    ("Overload_Torque", 36, 1),
    ("Over_Current_Protection_Time", 38, 1),
    ("Torque_Enable", 40, 1),
    ("Acceleration", 41, 1),
    ("Goal_Position", 42, 2, 15),
    ("Goal_Time", 44, 2),
    ("Goal_Velocity", 46, 2, 15),
    ("Torque_Limit", 48, 2),
    ("Lock", 55, 1),
    ("Present_Position", 56, 2, 15),
    ("Present_Velocity", 58, 2, 15),
    ("Present_Load", 60, 2, 10),
    ("Present_Voltage", 62, 1),
    ("Present_Temperature", 63, 1),
    ("Status", 65, 1),
    ("Moving", 66, 1),
    ("Present_Current", 69, 2),
    ("Maximum_Acceleration", 85, 1),
)
"""STS/SMS series (protocol 0) control table: LeRobot 0.4.4 names and addresses."""

SCS_CONTROL_TABLE: dict[str, Register] = _table(
    *_COMMON_EEPROM,
    ("Protective_Torque", 37, 1),
    ("Protection_Time", 38, 1),
    ("Torque_Enable", 40, 1),
    ("Acceleration", 41, 1),
    ("Goal_Position", 42, 2),
    ("Running_Time", 44, 2),
    ("Goal_Velocity", 46, 2),
    ("Lock", 48, 1),
    ("Present_Position", 56, 2),
    ("Present_Velocity", 58, 2),
    ("Present_Load", 60, 2),
    ("Present_Voltage", 62, 1),
    ("Present_Temperature", 63, 1),
    ("Status", 65, 1),
    ("Moving", 66, 1),
)
"""SCS series (protocol 1) control table: no homing offset, no sign encodings (as LeRobot)."""

FEETECH_MODELS: dict[int, dict[str, ModelSpec]] = {
    0: {
        "sts3215": ModelSpec(name="sts3215", model_number=777),
        "sts3250": ModelSpec(name="sts3250", model_number=2825),
        "sm8512bl": ModelSpec(name="sm8512bl", model_number=11272),
    },
    1: {"scs0009": ModelSpec(name="scs0009", model_number=1284, resolution=1024)},
}
"""Supported models by protocol (model numbers and resolutions from LeRobot's tables)."""

_ERROR_BITS = (
    (0x01, "voltage"),
    (0x02, "angle_sensor"),
    (0x04, "overheat"),
    (0x08, "overcurrent"),
    (0x10, "bit4"),
    (0x20, "overload"),
    (0x40, "bit6"),
)

_MAX_LEN = 250
"""Largest LEN accepted in a status packet (the SDK's RXPACKET_MAX_LEN)."""


def feetech_checksum(body: bytes) -> int:
    """``~(sum of ID, LEN, INSTR/ERR and parameters) & 0xFF``."""
    return ~sum(body) & 0xFF


class FeetechBus(PacketBus):
    """Feetech SCS/STS servos on one serial port (``protocol`` 0 = STS/SMS, 1 = SCS)."""

    status_overhead = 6  # FF FF ID LEN ERR CHK

    def __init__(
        self,
        port: str | os.PathLike[str] | SerialLink,
        *,
        protocol: Literal[0, 1] = 0,
        baudrate: int = 1_000_000,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if protocol not in (0, 1):
            raise ValueError(f"Feetech protocol must be 0 (STS/SMS) or 1 (SCS), got {protocol!r}")
        super().__init__(port, baudrate=baudrate, timeout_s=timeout_s)
        self.protocol = protocol
        """0 = STS/SMS (little-endian words), 1 = SCS (big-endian words)."""
        self.control_table = STS_CONTROL_TABLE if protocol == 0 else SCS_CONTROL_TABLE
        self.models = FEETECH_MODELS[protocol]
        self.apply_drive_mode = True
        self.byteorder = "little" if protocol == 0 else "big"

    # -- framing ------------------------------------------------------------------------------

    def _frame(self, motor_id: int, instruction: int, params: bytes) -> bytes:
        body = bytes((motor_id, len(params) + 2, instruction)) + params
        return b"\xff\xff" + body + bytes((feetech_checksum(body),))

    def _address_params(self, register: Register) -> bytes:
        return bytes((register.address, register.size))

    def _address(self, address: int) -> bytes:
        return bytes((address,))

    def _error_flags(self, error: int) -> tuple[str, ...]:
        return tuple(name for bit, name in _ERROR_BITS if error & bit)

    def _receive(self, deadline: float) -> Status:
        """Hunt for ``FF FF``, validate ID/LEN/ERR like the SDK, then check the checksum."""
        window = bytearray(self._link.read(4, deadline))
        while True:
            if len(window) < 4:
                raise RxTimeout(len(window))
            motor_id, length = window[2], window[3]
            if window[:2] == b"\xff\xff" and motor_id <= 0xFD and 2 <= length <= _MAX_LEN:
                break
            del window[0]  # not a plausible header: slide by one byte (resync)
            self._stats["discarded_bytes"] += 1
            window += self._link.read(1, deadline)
        rest = self._link.read(length, deadline)
        if len(rest) < length:
            raise RxTimeout(4 + len(rest))
        body = bytes(window[2:]) + rest[:-1]
        if rest[-1] != feetech_checksum(body):
            raise RxCorrupt(f"checksum 0x{rest[-1]:02x}, expected 0x{feetech_checksum(body):02x}", motor_id)
        if rest[0] > 0x7F:
            raise RxCorrupt(f"invalid error byte 0x{rest[0]:02x}", motor_id)
        return Status(motor_id=motor_id, error=rest[0], params=bytes(rest[1:-1]))

    # -- operations ---------------------------------------------------------------------------

    def ping(self, motor_id: int) -> int:
        """PING ``motor_id``, then read its ``Model_Number`` (as the vendor SDK does)."""
        self._transact(motor_id, self.INSTR_PING, b"", "ping")
        return self.read("Model_Number", motor_id)

    def lock(self, motor_ids: Iterable[int]) -> None:
        """Set ``Lock ← 1`` (EEPROM writes no longer persist)."""
        for motor_id in motor_ids:
            self.write("Lock", motor_id, 1)

    def unlock(self, motor_ids: Iterable[int]) -> None:
        """Set ``Lock ← 0`` (EEPROM writable: ids, limits, offsets)."""
        for motor_id in motor_ids:
            self.write("Lock", motor_id, 0)

    def enable_torque(self, motor_ids: Iterable[int]) -> None:
        """Per motor: ``Torque_Enable ← 1`` then ``Lock ← 1`` (LeRobot's choreography)."""
        for motor_id in motor_ids:
            self.write("Torque_Enable", motor_id, 1)
            self.write("Lock", motor_id, 1)

    def disable_torque(self, motor_ids: Iterable[int]) -> None:
        """Per motor: ``Torque_Enable ← 0`` then ``Lock ← 0``."""
        for motor_id in motor_ids:
            self.write("Torque_Enable", motor_id, 0)
            self.write("Lock", motor_id, 0)

    def read_calibration(self, motor_ids: Sequence[int]) -> dict[int, MotorCalibration]:
        """Homing offset (protocol 0 only, else 0) and position limits from the motors."""
        if self.protocol == 0:
            return super().read_calibration(motor_ids)
        mins = self.sync_read("Min_Position_Limit", motor_ids)
        maxes = self.sync_read("Max_Position_Limit", motor_ids)
        return {i: MotorCalibration(id=i, range_min=mins[i], range_max=maxes[i]) for i in motor_ids}

    def write_calibration(self, calibration: Mapping[int, MotorCalibration]) -> None:
        """Write homing offset (protocol 0) and limits; torque off and unlocked first."""
        if self.protocol == 0:
            super().write_calibration(calibration)
            return
        for motor_id, cal in calibration.items():
            self.write("Min_Position_Limit", motor_id, cal.range_min)
            self.write("Max_Position_Limit", motor_id, cal.range_max)


# --------------------------------------------------------------------------- SO-100 / SO-101


def so_follower_motors(*, use_degrees: bool = True) -> dict[str, Motor]:
    """The SO-100/SO-101 arm (follower or leader): six STS3215, ids 1–6, LeRobot's names.

    Arm joints use ``DEGREES`` (LeRobot 0.4.4's default) or ``RANGE_M100_100``; the gripper
    uses ``RANGE_0_100``.
    """
    body = MotorNormMode.DEGREES if use_degrees else MotorNormMode.RANGE_M100_100
    names = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
    motors = {n: Motor(id=i, model="sts3215", norm_mode=body) for i, n in enumerate(names, 1)}
    motors["gripper"] = Motor(id=6, model="sts3215", norm_mode=MotorNormMode.RANGE_0_100)
    return motors


SO_FOLLOWER_SETTINGS: tuple[tuple[str, int], ...] = (
    ("Return_Delay_Time", 0),  # LeRobot: 2 µs instead of the factory 500 µs
    ("Maximum_Acceleration", 254),
    ("Acceleration", 254),
    ("Operating_Mode", 0),  # position mode
    ("P_Coefficient", 16),  # LeRobot lowers the factory 32 to avoid shakiness
    ("I_Coefficient", 0),
    ("D_Coefficient", 32),
)
"""Registers LeRobot's SO follower writes to every motor at configure time (hardware.md §2.3)."""

SO_GRIPPER_SETTINGS: tuple[tuple[str, int], ...] = (
    ("Max_Torque_Limit", 500),  # 50 % of max torque, avoids burning the gripper motor
    ("Protection_Current", 250),  # 50 % of max current
    ("Overload_Torque", 25),  # 25 % torque when overloaded
)
"""Extra gripper protection LeRobot's SO follower writes."""


def configure_so_follower(bus: NamedMotorBus, *, gripper: str = "gripper") -> None:
    """Apply LeRobot's SO follower register settings (torque is disabled first)."""
    bus.disable_torque()
    for name in bus.motors:
        settings = SO_FOLLOWER_SETTINGS + (SO_GRIPPER_SETTINGS if name == gripper else ())
        for register, value in settings:
            bus.write(register, name, value)
