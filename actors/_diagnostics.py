"""Deployment diagnostics of the policy path: pure, rate-limited checks with clear messages.

These are the problems users hit daily when a policy first meets a robot (lerobot issues are
full of them). Each check is a small class driven by its actor with explicit times (no clock
reads, no logging here): it returns the message to log, or ``None`` when there is nothing new to
say, so the actor decides the log level and a 30 Hz stream never floods the log.

* :func:`describe_observation_mismatch` — observation keys/shapes do not match the policy's
  features: expected vs provided keys, the ``rename_map`` in use and the suggested one. The
  policy worker returns it as an ``InferenceReply.error`` and the merger stops before the robot
  moves (fail-safe state ``DEAD``).
* :class:`ActionCoverage` — the policy drives fewer actuators than the robot has: one warning per
  episode (re-armed by :meth:`ActionCoverage.rearm` at reset).
* :class:`NearZeroWatch` — policy actions stayed within ``atol`` of zero for ``steps`` consecutive
  steps (starved or all-zero observations, an unnormalized checkpoint): one warning per streak.
* :class:`GripperClamp` — gripper commands outside their range are clamped; counted, and logged
  at most once per ``interval_s`` with the number clamped since the last message.
* :class:`RateLimiter` — "at most one message per key per interval, with the suppressed count";
  the one log limiter of every actor (motor bus, action queue, RTC merger, policy worker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from rtrun.models.policy import ObservationMismatchError

__all__ = [
    "DEFAULT_GRIPPER_RANGE",
    "DEFAULT_LOG_INTERVAL_S",
    "DEFAULT_NEAR_ZERO_ATOL",
    "DEFAULT_NEAR_ZERO_STEPS",
    "ActionCoverage",
    "GripperClamp",
    "NearZeroWatch",
    "RateLimiter",
    "describe_observation_mismatch",
    "joint_name",
]

DEFAULT_LOG_INTERVAL_S = 5.0
"""Same cadence as the motor bus's rejection log (one line per reason per 5 s)."""
DEFAULT_NEAR_ZERO_STEPS = 90
"""3 s at 30 fps: long enough that a policy legitimately resting near the origin is rare."""
DEFAULT_NEAR_ZERO_ATOL = 1e-3
"""Robot units (degrees / gripper %): far below any real motion, above float noise."""
DEFAULT_GRIPPER_RANGE = (0.0, 100.0)
"""LeRobot's gripper convention: 0 (closed) to 100 (open) percent."""


def joint_name(action_name: str) -> str:
    """Motor joint behind a LeRobot action name: ``"gripper.pos"`` -> ``"gripper"``."""
    return action_name.removesuffix(".pos")


class RateLimiter:
    """At most one message per key per ``interval_s``; counts what it suppressed."""

    def __init__(self, interval_s: float = DEFAULT_LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str, now: float) -> int | None:
        """``None`` to stay quiet; else the number of suppressed events since the last message."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)


def describe_observation_mismatch(
    exc: ObservationMismatchError, *, rename_map: Mapping[str, str], where: str
) -> str:
    """The message a user needs to fix an observation mismatch in one go.

    ``where`` names the setting to edit (``"policy_worker 'policy' param rename_map"``).
    """
    lines = [str(exc)]
    current = dict(rename_map)
    lines.append(f"  rename_map in use ({where}): {current if current else '{}'}")
    if exc.suggested_rename_map:
        merged = {**current, **exc.suggested_rename_map}
        pairs = ", ".join(f'"{k}" = "{v}"' for k, v in merged.items())
        lines.append(f"  suggested: rename_map = {{ {pairs} }}")
    return "\n".join(lines)


class ActionCoverage:
    """Warn once per episode when the policy drives fewer actuators than the robot has."""

    def __init__(self) -> None:
        self._armed = True
        self.warnings = 0
        """Warnings issued so far."""

    def rearm(self) -> None:
        """Allow one more warning (call at every episode reset)."""
        self._armed = True

    def check(self, action_names: Sequence[str], actuator_names: Sequence[str]) -> str | None:
        """Return a warning when ``action_names`` leave robot actuators undriven (once per episode).

        Actions are matched to actuators by joint name (``"elbow_flex.pos"`` drives ``"elbow_flex"``).
        """
        if not self._armed or not actuator_names:
            return None
        driven = {joint_name(n) for n in action_names}
        idle = [a for a in actuator_names if joint_name(a) not in driven]
        if not idle:
            return None
        self._armed = False
        self.warnings += 1
        return (
            f"the policy emits {len(action_names)} action dimensions but the robot has "
            f"{len(actuator_names)} actuators; not driven by the policy: {idle} "
            f"(they keep their last goal; check the checkpoint's action names)"
        )


class NearZeroWatch:
    """Warn when policy actions stay near zero for ``steps`` consecutive steps (once per streak)."""

    def __init__(self, *, steps: int = DEFAULT_NEAR_ZERO_STEPS, atol: float = DEFAULT_NEAR_ZERO_ATOL) -> None:
        if steps < 1 or atol < 0:
            raise ValueError(f"near-zero watch needs steps >= 1 and atol >= 0, got {steps}, {atol}")
        self.steps = steps
        self.atol = atol
        self._streak = 0
        self.warnings = 0
        """Warnings issued so far."""

    def reset(self) -> None:
        """Forget the current streak (episode reset)."""
        self._streak = 0

    def observe(self, action: np.ndarray) -> str | None:
        """Feed one policy action; return a warning when the streak reaches ``steps``."""
        if not np.all(np.abs(action) <= self.atol):
            self._streak = 0
            return None
        self._streak += 1
        if self._streak != self.steps:
            return None
        self.warnings += 1
        return (
            f"policy actions stayed within {self.atol} of zero for {self.steps} consecutive steps: "
            "is the policy starved (all-zero or missing observations, wrong camera keys) "
            "or is the checkpoint's unnormalization missing?"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClampResult:
    """One :meth:`GripperClamp.apply` outcome."""

    action: np.ndarray
    """The (possibly clamped) action; the input array when nothing changed."""
    clamped: bool
    """Whether any gripper value was out of range."""
    message: str | None
    """A warning to log now (rate-limited), or ``None``."""


class GripperClamp:
    """Clamp gripper columns into ``[lo, hi]``; count every clamp, warn at most once per interval."""

    def __init__(
        self,
        action_names: Sequence[str],
        *,
        value_range: tuple[float, float] = DEFAULT_GRIPPER_RANGE,
        interval_s: float = DEFAULT_LOG_INTERVAL_S,
    ) -> None:
        lo, hi = value_range
        if not lo < hi:
            raise ValueError(f"gripper range must satisfy lo < hi, got {value_range}")
        self.columns = [i for i, n in enumerate(action_names) if "gripper" in n.lower()]
        self.names = [action_names[i] for i in self.columns]
        self.lo, self.hi = float(lo), float(hi)
        self.clamped = 0
        """Actions clamped so far."""
        self._limiter = RateLimiter(interval_s)

    def apply(self, action: np.ndarray, now: float) -> ClampResult:
        """Return ``action`` with its gripper columns clamped, and a rate-limited warning."""
        if not self.columns:
            return ClampResult(action=action, clamped=False, message=None)
        values = action[self.columns]
        if np.all((values >= self.lo) & (values <= self.hi)):
            return ClampResult(action=action, clamped=False, message=None)
        out = np.array(action, copy=True)
        out[self.columns] = np.clip(values, self.lo, self.hi)
        self.clamped += 1
        suppressed = self._limiter.allow("gripper", now)
        message = None
        if suppressed is not None:
            message = (
                f"gripper command {dict(zip(self.names, values.tolist(), strict=True))} outside "
                f"[{self.lo}, {self.hi}] clamped ({self.clamped} clamped so far, "
                f"{suppressed} since the last message)"
            )
        return ClampResult(action=out, clamped=True, message=message)
