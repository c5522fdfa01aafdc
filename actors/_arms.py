"""Arm adapters for the ``motor_bus`` and ``teleop`` actors: one blocking surface over every driver.

Each adapter wraps one driver family and speaks robot units (degrees, mid-point centred;
gripper 0–100) keyed by joint name. The actors call every method from their worker thread
(``ctx.run_sync``); nothing here touches the event loop or reads a clock: simulated buses are
advanced by the ``dt`` the actor measured on the runtime clock (virtual time in tests).

=============  =========================================================================
driver         adapter and units boundary
=============  =========================================================================
``feetech``    :class:`NamedArm` over ``FeetechBus`` + ``NamedMotorBus`` (calibration)
``dynamixel``  :class:`NamedArm` over ``DynamixelBus`` + ``NamedMotorBus``
``fake``       :class:`NamedArm` over an in-memory ``FakeMotorBus`` (STS3215-like)
``damiao``     :class:`CanArm` over ``MitMotorBus`` (rad ⇄ deg inside the driver)
``sim``        :class:`SimArm` over the MuJoCo ``SO101Plant`` (``SimUnits``: rad ⇄ robot units)
=============  =========================================================================

Design decisions (the brief is silent on them):

- **Devices outlive actor instances.** A supervisor restart creates a fresh actor, but a
  physical arm keeps its pose. Fake buses and simulated plants therefore live in process-wide
  registries (:data:`FAKE_BUSES`, :data:`SIM_PLANTS`) keyed by a device name, so a restarted
  actor reconnects to *the same* simulated device (and a camera actor can render the plant the
  motor bus drives). :func:`forget_devices` clears them (tests).
- **Calibration.** With a calibration file (LeRobot JSON) its values are used; without one the
  range stored in the motors (``Min/Max_Position_Limit``, ``Homing_Offset``) is read at connect,
  which is what LeRobot's calibration wrote there.
- **Torque on without a jump.** Before enabling torque, ``Goal_Position`` is set to the present
  position, so a stale goal register never makes the arm leap at start-up.
- ``disable_torque`` on a simulated arm holds the present pose (a MuJoCo position actuator has
  no limp mode); documented in README.md, "Supported hardware".
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from rtrun.drivers.calibration import SimUnits, load_calibration, normalize
from rtrun.drivers.motor_bus import Motor, NamedMotorBus

__all__ = [
    "FAKE_BUSES",
    "SIM_PLANTS",
    "Arm",
    "CanArm",
    "NamedArm",
    "SimArm",
    "fake_bus",
    "forget_devices",
    "sim_plant",
]

log = logging.getLogger("rtrun.actors.arms")

FAKE_BUSES: dict[str, Any] = {}
"""In-memory fake buses by device name (they persist across actor restarts, like hardware)."""

SIM_PLANTS: dict[str, Any] = {}
"""MuJoCo SO-101 plants by name, shared by motor-bus and camera actors of one process."""

_REGISTRY_LOCK = threading.Lock()


def fake_bus(name: str, *, tau_s: float = 0.05, motor_ids: Sequence[int] = (1, 2, 3, 4, 5, 6)) -> Any:
    """Get (or create) the process-wide ``FakeMotorBus`` called ``name``."""
    from rtrun.drivers.fake import FakeMotorBus

    with _REGISTRY_LOCK:
        if name not in FAKE_BUSES:
            FAKE_BUSES[name] = FakeMotorBus(motor_ids, tau_s=tau_s)
        return FAKE_BUSES[name]


def sim_plant(name: str, *, scene: str = "arm") -> Any:
    """Get (or create) the process-wide ``SO101Plant`` called ``name`` (blocking: loads MuJoCo).

    Raises ``SimUnavailableError`` when the ``sim`` extra is not installed.
    """
    from rtrun.drivers.mujoco_so101 import SO101Plant

    with _REGISTRY_LOCK:
        if name not in SIM_PLANTS:
            SIM_PLANTS[name] = SO101Plant(scene=scene)  # type: ignore[arg-type]
        return SIM_PLANTS[name]


def forget_devices() -> None:
    """Drop every registered fake bus and plant (tests: start from a fresh device)."""
    with _REGISTRY_LOCK:
        plants = list(SIM_PLANTS.values())
        FAKE_BUSES.clear()
        SIM_PLANTS.clear()
    for plant in plants:
        plant.close()


class Arm(Protocol):
    """What the actors need from an arm, in robot units, keyed by joint name (blocking)."""

    joints: tuple[str, ...]
    """Joint names in bus order."""

    def connect(self) -> None:
        """Open the bus, handshake, load calibration."""
        ...

    def advance(self, dt: float) -> None:
        """Let ``dt`` seconds of runtime time pass (simulated buses only; hardware: no-op)."""
        ...

    def read(self) -> dict[str, float]:
        """Present positions of every joint."""
        ...

    def write(self, goal: Mapping[str, float]) -> None:
        """Write goal positions for some joints."""
        ...

    def enable_torque(self) -> None:
        """Hold the present pose, then enable torque."""
        ...

    def disable_torque(self) -> None:
        """Make the arm limp."""
        ...

    def default_limits(self) -> dict[str, tuple[float, float]]:
        """Position limits known from the device (calibrated range, model limits)."""
        ...

    def close(self) -> None:
        """Close the bus without changing torque; idempotent, never raises for a lost device."""
        ...


class NamedArm:
    """A serial servo arm (Feetech, Dynamixel or the in-memory fake) through ``NamedMotorBus``."""

    def __init__(
        self,
        bus: Any,
        motors: Mapping[str, Motor],
        *,
        calibration_file: str = "",
        configure: Any = None,
    ) -> None:
        self.bus = NamedMotorBus(bus, motors)
        """The named bus (raw access for tests and tools)."""
        self.joints = tuple(motors)
        self._calibration_file = calibration_file
        self._configure = configure

    def connect(self) -> None:
        """Open, ping every motor, then load the calibration (file or motors)."""
        self.bus.connect(handshake=True)
        try:
            if self._calibration_file:
                self.bus.calibration = load_calibration(self._calibration_file)
            else:
                self.bus.calibration = self.bus.read_calibration()
        except BaseException:
            self.bus.disconnect(disable_torque=False)
            raise

    def advance(self, dt: float) -> None:
        """Fake buses move toward their goals; real buses ignore it."""
        advance = getattr(self.bus.bus, "advance", None)
        if advance is not None:
            advance(dt)

    def read(self) -> dict[str, float]:
        """``Present_Position`` of every joint, normalized."""
        return self.bus.read_positions()

    def write(self, goal: Mapping[str, float]) -> None:
        """``Goal_Position`` of some joints (one sync write)."""
        self.bus.write_goals(goal)

    def enable_torque(self) -> None:
        """Apply the configuration hook, copy present → goal, then enable torque."""
        if self._configure is not None:
            self._configure(self.bus)
        self.bus.sync_write("Goal_Position", self.bus.sync_read("Present_Position"))
        self.bus.enable_torque()

    def disable_torque(self) -> None:
        """Torque off on every motor (Feetech: and unlock)."""
        self.bus.disable_torque()

    def default_limits(self) -> dict[str, tuple[float, float]]:
        """The calibrated range of every joint, in robot units."""
        out = {}
        res = self.bus.bus.models
        for name, motor in self.bus.motors.items():
            cal = self.bus.calibration[name]
            resolution = res[motor.model].resolution
            ends = [
                normalize(
                    raw,
                    motor.norm_mode,
                    cal,
                    resolution=resolution,
                    apply_drive_mode=self.bus.bus.apply_drive_mode,
                )
                for raw in (cal.range_min, cal.range_max)
            ]
            out[name] = (min(ends), max(ends))
        return out

    def close(self) -> None:
        """Close the port, leaving torque as it is."""
        self.bus.disconnect(disable_torque=False)


class CanArm:
    """Damiao/RobStride MIT motors on CAN; the driver speaks degrees on this surface."""

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        """The ``MitMotorBus``."""
        self.joints = tuple(bus.motors)

    def connect(self) -> None:
        """Open the CAN bus, flush stale frames, require every motor to answer."""
        self.bus.connect(handshake=True)

    def advance(self, dt: float) -> None:
        """Hardware: nothing to do."""

    def read(self) -> dict[str, float]:
        """Refresh and return positions in degrees."""
        return self.bus.read_positions()

    def write(self, goal: Mapping[str, float]) -> None:
        """MIT position commands with each motor's default gains."""
        self.bus.write_goals(goal)

    def enable_torque(self) -> None:
        """Enable (MIT mode) after commanding the present pose."""
        self.bus.enable_torque()
        self.bus.write_goals(self.bus.read_positions())

    def disable_torque(self) -> None:
        """Disable every motor."""
        self.bus.disable_torque()

    def default_limits(self) -> dict[str, tuple[float, float]]:
        """±PMAX of each motor's MIT mapping, in degrees."""
        out = {}
        for name in self.joints:
            pmax = math.degrees(self.bus._limits[name].pmax)
            out[name] = (-pmax, pmax)
        return out

    def close(self) -> None:
        """Close the bus, leaving torque as it is."""
        self.bus.disconnect(disable_torque=False)


class SimArm:
    """The MuJoCo SO-101 plant as an arm in robot units (``SimUnits``: rad ⇄ deg / 0–100)."""

    def __init__(self, plant: Any, units: SimUnits) -> None:
        self.plant = plant
        """The shared ``SO101Plant``."""
        self.units = units
        self.joints = tuple(units.names)

    def connect(self) -> None:
        """Nothing to open: the plant is already loaded."""

    def advance(self, dt: float) -> None:
        """Step the physics by ``dt`` seconds of runtime time."""
        self.plant.step(dt)

    def read(self) -> dict[str, float]:
        """Joint positions converted to robot units."""
        robot = self.units.to_robot(self.plant.positions())
        return dict(zip(self.joints, robot.tolist(), strict=True))

    def write(self, goal: Mapping[str, float]) -> None:
        """Update the targets of some joints (the others keep theirs)."""
        current = self.units.to_robot(self.plant.targets())
        for i, name in enumerate(self.joints):
            if name in goal:
                current[i] = goal[name]
        self.plant.set_targets(self.units.to_sim(current))

    def enable_torque(self) -> None:
        """Hold the present pose."""
        self.write(self.read())

    def disable_torque(self) -> None:
        """A position actuator cannot go limp: hold the present pose instead."""
        self.write(self.read())

    def default_limits(self) -> dict[str, tuple[float, float]]:
        """The model's joint ranges, in robot units."""
        limits = self.plant.joint_limits
        lo = self.units.to_robot(np.array([limits[n][0] for n in self.joints]))
        hi = self.units.to_robot(np.array([limits[n][1] for n in self.joints]))
        return {n: (float(min(a, b)), float(max(a, b))) for n, a, b in zip(self.joints, lo, hi, strict=True)}

    def close(self) -> None:
        """The plant is shared and outlives the actor: nothing to close."""


# --------------------------------------------------------------------------- building from params

ARMS = ("so100", "so101", "koch", "koch_leader")
"""Arm models with a built-in motor table (ids 1–6, LeRobot's joint names)."""


def arm_motors(arm: str, driver: str, *, use_degrees: bool) -> dict[str, Motor]:
    """The motor table of ``arm`` for ``driver`` (``fake`` emulates every arm with STS3215s)."""
    from rtrun.drivers.calibration import MotorNormMode
    from rtrun.drivers.dynamixel import koch_follower_motors
    from rtrun.drivers.feetech import so_follower_motors

    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    if arm in ("so100", "so101"):
        if driver == "dynamixel":
            raise ValueError(f"arm {arm!r} uses Feetech servos: driver must be 'feetech' (or fake/sim)")
        motors = so_follower_motors(use_degrees=use_degrees)
    else:
        if driver == "feetech":
            raise ValueError(f"arm {arm!r} uses Dynamixel servos: driver must be 'dynamixel' (or fake)")
        motors = koch_follower_motors(use_degrees=use_degrees)
        if arm == "koch_leader":  # XL330-M077; degrees like the follower so units match in teleop
            body = MotorNormMode.DEGREES if use_degrees else MotorNormMode.RANGE_M100_100
            motors = {
                n: Motor(id=m.id, model="xl330-m077", norm_mode=m.norm_mode if n == "gripper" else body)
                for n, m in motors.items()
            }
    if driver == "fake":
        motors = {n: Motor(id=m.id, model="sts3215", norm_mode=m.norm_mode) for n, m in motors.items()}
    return motors


def build_arm(driver: str, *, device: str, **options: Any) -> Arm:
    """Create the adapter for ``driver`` (blocking: may load MuJoCo). ``options`` are the actor's
    params relevant to the driver (see ``MotorBusParams``); unknown drivers raise ``ValueError``."""
    if driver == "sim":
        return _build_sim(device, **options)
    if driver == "damiao":
        return _build_can(**options)
    motors = arm_motors(options["arm"], driver, use_degrees=options["use_degrees"])
    calibration = options.get("calibration", "")
    if driver == "fake":
        bus = fake_bus(
            device, tau_s=options.get("fake_tau_s", 0.05), motor_ids=[m.id for m in motors.values()]
        )
        return NamedArm(bus, motors, calibration_file=calibration)
    if driver == "feetech":
        from rtrun.drivers.feetech import FeetechBus, configure_so_follower

        bus = FeetechBus(options["port"], baudrate=options["baudrate"], timeout_s=options["bus_timeout_s"])
        configure = configure_so_follower if options.get("configure", True) else None
        return NamedArm(bus, motors, calibration_file=calibration, configure=configure)
    if driver == "dynamixel":
        from rtrun.drivers.dynamixel import DynamixelBus

        bus = DynamixelBus(options["port"], baudrate=options["baudrate"], timeout_s=options["bus_timeout_s"])
        return NamedArm(bus, motors, calibration_file=calibration)
    raise ValueError(f"unknown motor driver {driver!r}")


def _build_sim(device: str, **options: Any) -> Arm:
    from rtrun.drivers.mujoco_so101 import SimUnavailableError

    units = SimUnits(joint_mids_deg=tuple(options.get("sim_joint_mids_deg", ())))
    try:
        plant = sim_plant(device, scene=options.get("sim_scene", "arm"))
    except SimUnavailableError as exc:
        if options.get("sim_fallback", "fake") != "fake":
            raise
        log.warning("%s; falling back to the kinematic fake arm (sim_fallback = 'fake')", exc)
        motors = arm_motors("so101", "fake", use_degrees=True)
        return NamedArm(fake_bus(f"sim-fallback:{device}", tau_s=options.get("fake_tau_s", 0.05)), motors)
    return SimArm(plant, units)


def _build_can(**options: Any) -> Arm:
    from rtrun.drivers.damiao import CanMotor, MitMotorBus

    table = options.get("can_motors") or {}
    if not table:
        raise ValueError("driver 'damiao' needs can_motors = { joint = [id, recv_id], ... }")
    motors = []
    for name, ids in table.items():
        if len(ids) != 2:
            raise ValueError(f"can_motors.{name} must be [id, recv_id], got {list(ids)}")
        motors.append(
            CanMotor(name=name, id=ids[0], recv_id=ids[1], model=options.get("can_model", "DM4310"))
        )
    bus = MitMotorBus(
        options["port"],
        motors,
        interface=options.get("can_interface", "auto"),
        bitrate=options.get("can_bitrate", 1_000_000),
    )
    return CanArm(bus)
