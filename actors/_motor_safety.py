"""Pure command checks for the ``motor_bus`` actor: validation, position limits, relative clamping.

No I/O, no clock, no anyio: every function takes what it needs and returns a value, so the
whole safety path is tested synchronously with Hypothesis (``tests/actors/test_motor_safety.py``),
as h11 tests its state machine.

Theory of operation
-------------------
A :class:`JointCommand` goes through three stages before anything reaches a motor:

1. **Validation** (:meth:`CommandFilter.validate`): the command must name known joints, each at
   most once, with exactly one finite value per name. Anything else is a :class:`Rejection`
   with a stable ``reason`` (a status counter key) and a message naming the rule; the actor
   logs it (rate-limited) and counts it, and the arm does not move on it. There is no partial
   acceptance: one NaN rejects the whole command (hardware.md §11 #1/#3: never a silent wrong
   motor command, never zero-filling).
2. **Merging**: a valid command may name a subset of the joints (e.g. only the gripper); it
   updates those joints of the *active goal*, the others keep their previous goal.
3. **Clamping** (:meth:`CommandFilter.safe_goal`), every control tick while a goal is active:
   first into the position limits, then LeRobot's ``max_relative_target`` rule
   ``safe = present + clip(goal − present, −cap, +cap)`` against the freshly read positions
   (hardware.md §9.1). Because this is re-applied on every tick, ``max_relative_target`` acts as
   a per-tick speed limit: a far goal is reached in steps of at most ``cap`` per tick instead of
   being dropped (LeRobot re-sends the same action each tick to the same effect).

Design decisions (the brief is silent on them):

- Position limits **clamp** (and count) instead of rejecting: a target slightly past a limit is
  normal for policies trained near the edges; LeRobot's unnormalize clamps the RANGE modes too.
  Non-finite values are the only values rejected.
- ``max_relative_target`` accepts a float (every joint) or a mapping that must name exactly the
  bus's joints (LeRobot raises ``ValueError`` otherwise); ints are coerced to float (LeRobot
  0.4.4 raises ``TypeError`` for ``10`` — hardware.md §11 #13). Caps must be finite and > 0.
- The clamp is computed against the *present* position read in the same tick, never a cached
  one, so a joint pushed away by hand is not yanked back faster than ``cap`` per tick.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

__all__ = [
    "REJECT_REASONS",
    "CommandFilter",
    "Rejection",
    "SafeGoal",
    "normalize_relative_cap",
]

REJECT_REASONS: Final = ("shape", "dimension", "duplicate_joint", "unknown_joint", "non_finite", "empty")
"""Stable rejection reasons (status counter keys), in the order they are checked."""

Limits = Mapping[str, tuple[float, float]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """Why a command was refused; the arm did not move on it."""

    reason: str
    """One of :data:`REJECT_REASONS`."""
    message: str
    """Human-readable rule broken, naming the joints or sizes involved."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SafeGoal:
    """What to write this tick, and which safety rules changed it."""

    goal: dict[str, float]
    """Per-joint targets to write (robot units), after clamping."""
    limited: tuple[str, ...] = ()
    """Joints whose target was clamped into the position limits."""
    relative: tuple[str, ...] = ()
    """Joints whose step was clamped by ``max_relative_target``."""


def normalize_relative_cap(
    cap: float | int | Mapping[str, float] | None, joints: Sequence[str]
) -> dict[str, float] | None:
    """Validate a ``max_relative_target`` and return one finite positive cap per joint (or None).

    Raises ``ValueError`` naming the rule: a mapping must name exactly ``joints``, and every cap
    must be finite and > 0. ``bool`` is refused (TOML ``true`` is not a number of degrees).
    """
    if cap is None:
        return None
    if isinstance(cap, bool):
        raise ValueError(f"max_relative_target must be a number or a table of numbers, got {cap!r}")
    if isinstance(cap, (int, float)):
        caps = dict.fromkeys(joints, float(cap))
    elif isinstance(cap, Mapping):
        if set(cap) != set(joints):
            missing = sorted(set(joints) - set(cap))
            extra = sorted(set(cap) - set(joints))
            raise ValueError(
                f"max_relative_target must name exactly the joints {list(joints)}: "
                f"missing {missing}, unexpected {extra}"
            )
        caps = {j: float(cap[j]) for j in joints}
    else:
        raise ValueError(f"max_relative_target must be a number or a table of numbers, got {cap!r}")
    bad = {j: c for j, c in caps.items() if not (math.isfinite(c) and c > 0)}
    if bad:
        raise ValueError(f"max_relative_target caps must be finite and > 0, got {bad}")
    return caps


def _check_limits(limits: Limits, joints: Sequence[str]) -> dict[str, tuple[float, float]]:
    unknown = sorted(set(limits) - set(joints))
    if unknown:
        raise ValueError(f"position limits name unknown joints {unknown}; joints are {list(joints)}")
    out = {}
    for name, (lo, hi) in limits.items():
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(
                f"position limits of {name!r} must be finite with lower <= upper, got ({lo}, {hi})"
            )
        out[name] = (lo, hi)
    return out


@dataclass(slots=True)
class CommandFilter:
    """Validates commands and turns the active goal into a safe per-tick target (see module doc)."""

    joints: tuple[str, ...]
    """Every joint of the bus, in bus order."""
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Position limits per joint (robot units); joints absent here are not limited."""
    caps: dict[str, float] | None = None
    """Per-joint ``max_relative_target`` (robot units per tick), or None for no clamping."""
    goal: dict[str, float] = field(default_factory=dict)
    """The active goal: the latest accepted value of every commanded joint."""

    @classmethod
    def create(
        cls,
        joints: Iterable[str],
        *,
        limits: Limits | None = None,
        max_relative_target: float | int | Mapping[str, float] | None = None,
    ) -> CommandFilter:
        """Build a filter, validating limits and caps (``ValueError`` naming the rule)."""
        names = tuple(joints)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"joints must be non-empty and unique, got {names}")
        return cls(
            joints=names,
            limits=_check_limits(limits or {}, names),
            caps=normalize_relative_cap(max_relative_target, names),
        )

    # -- stage 1: validation -------------------------------------------------------------------

    def validate(self, names: Sequence[str], position: object) -> dict[str, float] | Rejection:
        """Check one command; return ``{joint: value}`` or a :class:`Rejection` (never raises)."""
        try:
            values = np.asarray(position, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            return Rejection(reason="shape", message=f"command position is not numeric: {exc}")
        if values.ndim != 1:
            return Rejection(
                reason="shape", message=f"command position must be 1-D, got shape {values.shape}"
            )
        if len(names) != values.shape[0]:
            return Rejection(
                reason="dimension",
                message=f"command names {len(names)} joints but carries {values.shape[0]} values",
            )
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if list(names).count(n) > 1})
            return Rejection(reason="duplicate_joint", message=f"command names joints twice: {dupes}")
        unknown = [n for n in names if n not in self.joints]
        if unknown:
            return Rejection(
                reason="unknown_joint",
                message=f"command names unknown joints {unknown}; this bus has {list(self.joints)}",
            )
        if not np.all(np.isfinite(values)):
            bad = [n for n, v in zip(names, values, strict=True) if not math.isfinite(v)]
            return Rejection(reason="non_finite", message=f"command has NaN/inf values for {bad}")
        if not names:
            return Rejection(reason="empty", message="command names no joints")
        return {n: float(v) for n, v in zip(names, values, strict=True)}

    def accept(self, names: Sequence[str], position: object) -> Rejection | None:
        """Validate and merge a command into the active goal; return the rejection, if any."""
        checked = self.validate(names, position)
        if isinstance(checked, Rejection):
            return checked
        self.goal.update(checked)
        return None

    # -- stage 3: clamping ---------------------------------------------------------------------

    def clamp_limits(self, goal: Mapping[str, float]) -> tuple[dict[str, float], tuple[str, ...]]:
        """Clamp each value into its position limits; return the result and the joints clamped."""
        out, clamped = {}, []
        for name, value in goal.items():
            lo, hi = self.limits.get(name, (-math.inf, math.inf))
            safe = min(hi, max(lo, value))
            if safe != value:
                clamped.append(name)
            out[name] = safe
        return out, tuple(clamped)

    def clamp_relative(
        self, goal: Mapping[str, float], present: Mapping[str, float]
    ) -> tuple[dict[str, float], tuple[str, ...]]:
        """LeRobot's ``max_relative_target``: limit each step from ``present`` to its cap."""
        if self.caps is None:
            return dict(goal), ()
        out, clamped = {}, []
        for name, value in goal.items():
            cap, here = self.caps[name], present[name]
            safe = here + min(cap, max(-cap, value - here))
            if abs(safe - value) > 1e-4:  # LeRobot's warning threshold
                clamped.append(name)
            out[name] = safe
        return out, tuple(clamped)

    def safe_goal(self, present: Mapping[str, float]) -> SafeGoal | None:
        """The target to write this tick for the active goal (None when there is no goal yet).

        ``present`` must hold a finite reading of every commanded joint.
        """
        if not self.goal:
            return None
        limited_goal, limited = self.clamp_limits(self.goal)
        goal, relative = self.clamp_relative(limited_goal, present)
        # A present position outside the limits plus a cap can step outside them: clamp last too.
        goal, _ = self.clamp_limits(goal)
        return SafeGoal(goal=goal, limited=limited, relative=relative)

    def reset(self) -> None:
        """Forget the active goal (e.g. after a reconnect: the arm holds where it is)."""
        self.goal.clear()
