"""Deterministic policies for tests, examples and benchmarks: `SleepPolicy` and `ScriptedPolicy`.

Both satisfy :class:`rtrun.models.policy.Policy`, need no torch and no weights, and are fully
deterministic.

* :class:`SleepPolicy` models a slow policy: ``predict_chunk`` blocks its calling thread for
  ``latency_s`` (``time.sleep``; the policy worker runs it off the event loop). Its actions are a
  *ramp*: every action equals its intended step index, so on a robot the difference between two
  consecutive executed actions is 1 when chunking is seamless and ``1 + k`` when ``k`` steps were
  skipped (over-trim) or ``1 - k`` when repeated. ``max_jump`` therefore measures RTC alignment.
  **Virtual time:** build it with ``sleep=None`` and model the latency in the harness by waiting
  ``policy.latency_s`` on the virtual clock (e.g. ``await anyio.sleep(policy.latency_s)`` under
  ``trio.testing.MockClock``); a real ``time.sleep`` would stall a virtual-time test for real.
  ``latency_s`` is a plain attribute: change it mid-run to provoke starvation.
* :class:`ScriptedPolicy` drives a (simulated) SO-101 arm along smooth sinusoids within joint
  limits. It is RTC-prefix aware: given a prefix it finds where the prefix sits on its own
  trajectory and continues from there, so the new chunk's first rows equal the prefix (what RTC
  guidance aims for); without a prefix it continues after its previous chunk (append mode). At
  an episode start it blends from the observed state into the trajectory (no initial jump).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .policy import FeatureSpec, MetadataError, PolicyMetadata

__all__ = [
    "SO101_ACTION_NAMES",
    "SO101_LIMITS_DEG",
    "ScriptedPolicy",
    "SleepPolicy",
]

SO101_ACTION_NAMES: tuple[str, ...] = (
    "shoulder_pan.pos",
    "shoulder_lift.pos",
    "elbow_flex.pos",
    "wrist_flex.pos",
    "wrist_roll.pos",
    "gripper.pos",
)
"""LeRobot's SO-101 action names (joint order of the arm)."""

SO101_LIMITS_DEG: dict[str, tuple[float, float]] = {
    "shoulder_pan.pos": (-110.0, 110.0),
    "shoulder_lift.pos": (-100.0, 100.0),
    "elbow_flex.pos": (-100.0, 90.0),
    "wrist_flex.pos": (-95.0, 95.0),
    "wrist_roll.pos": (-160.0, 160.0),
    "gripper.pos": (0.0, 100.0),
}
"""Conservative SO-101 ranges: joints in degrees (mid-point centred), gripper 0-100 %."""

_SO101_CENTERS = (0.0, 0.0, 0.0, 0.0, 0.0, 30.0)
_SO101_AMPLITUDES = (40.0, 30.0, 30.0, 30.0, 45.0, 20.0)
_SO101_PERIODS_S = (6.0, 7.0, 5.0, 4.0, 8.0, 3.0)
"""Distinct periods (3-8 s) keep the joints out of phase; peak speed 2π·a/P ≤ 42 °/s."""

DEFAULT_BLEND_STEPS = 60
"""Steps (2 s at 30 fps) to blend from the observed state into the trajectory at episode start."""


class SleepPolicy:
    """A policy that takes ``latency_s`` per chunk and returns a step-index ramp (module doc)."""

    def __init__(
        self,
        latency_s: float,
        chunk_size: int,
        action_names: Sequence[str],
        *,
        fps: float = 30.0,
        input_features: Mapping[str, FeatureSpec] | None = None,
        supports_rtc_prefix: bool = True,
        sleep: Callable[[float], None] | None = time.sleep,
    ) -> None:
        if latency_s < 0:
            raise MetadataError(f"latency_s must be >= 0, got {latency_s}")
        self.latency_s = float(latency_s)
        """Seconds one ``predict_chunk`` takes (mutable; read by virtual-time harnesses)."""
        self._sleep = sleep
        self._metadata = PolicyMetadata(
            input_features=dict(input_features or {}),
            action_names=tuple(action_names),
            chunk_size=chunk_size,
            fps=fps,
            supports_rtc_prefix=supports_rtc_prefix,
            stateful=True,
        )
        self.calls = 0
        """Number of ``predict_chunk`` calls since construction."""
        self.last_call: tuple[int, np.ndarray | None] | None = None
        """``(inference_delay, prefix)`` of the latest call (for assertions)."""
        self._next_base: float | None = None

    @property
    def metadata(self) -> PolicyMetadata:
        """Policy metadata (the ramp needs no input feature unless given)."""
        return self._metadata

    def predict_chunk(
        self,
        observation: Mapping[str, np.ndarray],
        *,
        inference_delay: int,
        prefix: np.ndarray | None,
    ) -> np.ndarray:
        """Block ``latency_s`` (unless ``sleep=None``), then return ``base + arange(T)``.

        ``base`` is ``prefix[0, 0]`` (continue the prefix), else the step after the previous
        chunk, else 0 after construction/``reset()``.
        """
        if self._sleep is not None and self.latency_s > 0:
            self._sleep(self.latency_s)
        self.calls += 1
        self.last_call = (inference_delay, None if prefix is None else np.array(prefix))
        if prefix is not None and len(prefix) and self._metadata.supports_rtc_prefix:
            base = float(prefix[0, 0])
        else:
            base = self._next_base if self._next_base is not None else 0.0
        size = self._metadata.chunk_size
        self._next_base = base + size
        ramp = base + np.arange(size, dtype=np.float32)
        return np.repeat(ramp[:, None], self._metadata.n_actions, axis=1).astype(np.float32)

    def reset(self) -> None:
        """Restart the ramp at 0."""
        self._next_base = None

    def warmup(self) -> None:
        """Nothing to warm up."""


class ScriptedPolicy:
    """Smooth deterministic sinusoids for the SO-101 (or any arm), chunked and prefix-aware.

    Joint ``j`` follows ``c_j + a_j·sin(2π·s·dt / P_j)`` at step ``s`` of the episode, blended
    from the state observed at the episode's first call over ``blend_steps`` steps.
    """

    def __init__(
        self,
        *,
        action_names: Sequence[str] = SO101_ACTION_NAMES,
        chunk_size: int = 50,
        fps: float = 30.0,
        centers: Sequence[float] = _SO101_CENTERS,
        amplitudes: Sequence[float] = _SO101_AMPLITUDES,
        periods_s: Sequence[float] = _SO101_PERIODS_S,
        limits: Mapping[str, tuple[float, float]] | None = None,
        blend_steps: int = DEFAULT_BLEND_STEPS,
        state_feature: str = "observation.state",
        execution_horizon: int = 10,
    ) -> None:
        names = tuple(action_names)
        self._c, self._a, self._p = (
            np.asarray(v, dtype=np.float64) for v in (centers, amplitudes, periods_s)
        )
        if not len(names) == len(self._c) == len(self._a) == len(self._p):
            raise MetadataError("action_names, centers, amplitudes and periods_s must have equal length")
        if np.any(self._p <= 0) or np.any(self._a < 0):
            raise MetadataError("periods_s must be > 0 and amplitudes >= 0")
        _check_limits(names, self._c, self._a, limits if limits is not None else SO101_LIMITS_DEG)
        self._state_feature = state_feature
        self._blend = max(1, int(blend_steps))
        self._metadata = PolicyMetadata(
            input_features={state_feature: FeatureSpec(shape=(len(names),), kind="state")},
            action_names=names,
            chunk_size=chunk_size,
            fps=fps,
            supports_rtc_prefix=True,
            stateful=True,
            execution_horizon=execution_horizon,
        )
        self._x0: np.ndarray | None = None
        self._last_s0: int | None = None

    @classmethod
    def so101(cls, *, units: str = "deg", **kwargs: object) -> ScriptedPolicy:
        """SO-101 defaults; ``units="rad"`` converts the five joints (gripper stays 0-100)."""
        if units == "deg":
            return cls(**kwargs)  # type: ignore[arg-type]
        if units != "rad":
            raise MetadataError(f"units must be 'deg' or 'rad', got {units!r}")
        conv = np.array([math.pi / 180.0] * 5 + [1.0])
        limits = {
            k: (lo * f, hi * f) for (k, (lo, hi)), f in zip(SO101_LIMITS_DEG.items(), conv, strict=True)
        }
        return cls(
            centers=tuple(np.asarray(_SO101_CENTERS) * conv),
            amplitudes=tuple(np.asarray(_SO101_AMPLITUDES) * conv),
            limits=limits,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def metadata(self) -> PolicyMetadata:
        """One state input (``observation.state``), ``len(action_names)`` actions."""
        return self._metadata

    def trajectory(self, steps: np.ndarray) -> np.ndarray:
        """The episode's planned actions at integer ``steps`` (needs a first call for ``x0``)."""
        s = np.asarray(steps, dtype=np.float64)[:, None]
        ref = self._c + self._a * np.sin(2.0 * math.pi * s * self._metadata.dt / self._p)
        x0 = self._c if self._x0 is None else self._x0
        u = np.clip(s / self._blend, 0.0, 1.0)
        w = u * u * (3.0 - 2.0 * u)  # smoothstep: zero velocity at both ends of the blend
        return (w * ref + (1.0 - w) * x0).astype(np.float32)

    def predict_chunk(
        self,
        observation: Mapping[str, np.ndarray],
        *,
        inference_delay: int,
        prefix: np.ndarray | None,
    ) -> np.ndarray:
        """Return ``trajectory(s0 … s0+T-1)``; ``s0`` continues the prefix or the last chunk."""
        size = self._metadata.chunk_size
        if self._last_s0 is None:
            state = observation.get(self._state_feature)
            self._x0 = self._c.copy() if state is None else np.asarray(state, dtype=np.float64).copy()
            s0 = 0
        elif prefix is not None and len(prefix):
            s0 = self._locate(np.asarray(prefix[0], dtype=np.float64))
        else:
            s0 = self._last_s0 + size
        self._last_s0 = s0
        return self.trajectory(np.arange(s0, s0 + size))

    def _locate(self, row: np.ndarray) -> int:
        assert self._last_s0 is not None
        candidates = np.arange(self._last_s0, self._last_s0 + self._metadata.chunk_size)
        dist = np.abs(self.trajectory(candidates) - row).max(axis=1)
        return int(candidates[int(np.argmin(dist))])

    def reset(self) -> None:
        """Forget the episode: the next call starts at step 0 from the observed state."""
        self._x0 = None
        self._last_s0 = None

    def warmup(self) -> None:
        """Nothing to warm up."""


def _check_limits(
    names: tuple[str, ...], c: np.ndarray, a: np.ndarray, limits: Mapping[str, tuple[float, float]]
) -> None:
    for name, ci, ai in zip(names, c, a, strict=True):
        lo, hi = limits.get(name, (-math.inf, math.inf))
        if ci - ai < lo or ci + ai > hi:
            raise MetadataError(
                f"scripted trajectory of {name!r} must stay within its limits [{lo}, {hi}], "
                f"got [{ci - ai}, {ci + ai}]"
            )
