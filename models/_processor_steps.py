"""The built-in processor steps (pure numpy), re-exported by :mod:`rtrun.models.processors`.

Normalization, renames, relative <-> absolute actions, unit conversion, joint frames and images.
Each step is registered in :data:`~rtrun.models.processors.STEP_TYPES` at import; the façade
:mod:`rtrun.models.processors` (step list, design decisions) re-exports every public name here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ._processor_base import ProcessorError, ProcessorStep, _f32, _need_observation, register_step

DEFAULT_EPS = 1e-8
"""Normalization epsilon; LeRobot's ``NormalizerProcessorStep`` default."""

NORM_MODES: dict[str, tuple[str, ...]] = {
    "identity": (),
    "mean_std": ("mean", "std"),
    "min_max": ("min", "max"),
    "quantiles": ("q01", "q99"),
    "quantile10": ("q10", "q90"),
}
"""Normalization modes and the stats each one needs (LeRobot ``NormalizationMode`` names)."""


# -------------------------------------------------------------------------------- normalization


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class FeatureNorm:
    """How one feature is normalized: a mode from :data:`NORM_MODES` and its stats."""

    mode: str
    """One of :data:`NORM_MODES`."""
    stats: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Exactly the stats the mode needs, broadcastable to the feature (e.g. ``(3, 1, 1)`` for a
    CHW image, ``(A,)`` for a vector)."""

    def __post_init__(self) -> None:
        if self.mode not in NORM_MODES:
            raise ProcessorError(f"normalization mode must be one of {list(NORM_MODES)}, got {self.mode!r}")
        need = NORM_MODES[self.mode]
        missing = [k for k in need if k not in self.stats]
        if missing:
            raise ProcessorError(
                f"normalization mode {self.mode!r} needs stats {list(need)}, missing {missing}"
            )
        stats = {k: np.array(self.stats[k], dtype=np.float32) for k in need}
        for k, v in stats.items():
            if not np.isfinite(v).all():
                raise ProcessorError(f"normalization stat {k!r} must be finite")
            v.setflags(write=False)
        object.__setattr__(self, "stats", stats)

    @classmethod
    def from_data(cls, mode: str, samples: np.ndarray) -> FeatureNorm:
        """Compute the stats of ``mode`` from samples stacked on axis 0 (e.g. a dataset)."""
        x = _f32(samples, "FeatureNorm.from_data").astype(np.float64)
        funcs: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "mean": lambda a: a.mean(axis=0),
            "std": lambda a: a.std(axis=0),
            "min": lambda a: a.min(axis=0),
            "max": lambda a: a.max(axis=0),
            "q01": lambda a: np.quantile(a, 0.01, axis=0),
            "q99": lambda a: np.quantile(a, 0.99, axis=0),
            "q10": lambda a: np.quantile(a, 0.10, axis=0),
            "q90": lambda a: np.quantile(a, 0.90, axis=0),
        }
        return cls(mode=mode, stats={k: funcs[k](x) for k in NORM_MODES.get(mode, ())})

    def forward(self, x: np.ndarray, eps: float) -> np.ndarray:
        """Normalize ``x``."""
        s = self.stats
        if self.mode == "identity":
            return x
        if self.mode == "mean_std":
            return (x - s["mean"]) / (s["std"] + eps)
        lo, hi = (s[k] for k in NORM_MODES[self.mode])
        return 2.0 * (x - lo) / _span(lo, hi, eps) - 1.0

    def inverse(self, x: np.ndarray, eps: float) -> np.ndarray:
        """Unnormalize ``x`` (exact inverse of :meth:`forward`)."""
        s = self.stats
        if self.mode == "identity":
            return x
        if self.mode == "mean_std":
            return x * (s["std"] + eps) + s["mean"]
        lo, hi = (s[k] for k in NORM_MODES[self.mode])
        return (x + 1.0) / 2.0 * _span(lo, hi, eps) + lo


def _span(lo: np.ndarray, hi: np.ndarray, eps: float) -> np.ndarray:
    # LeRobot: a zero range is replaced by eps, so a constant feature maps to -1.
    d = hi - lo
    return np.where(d == 0, np.float32(eps), d).astype(np.float32)


@register_step
class Normalize(ProcessorStep):
    """Normalize observation features and/or the action, per feature (see :data:`NORM_MODES`)."""

    type_name: ClassVar[str] = "normalize"
    _invert: ClassVar[bool] = False

    def __init__(
        self,
        features: Mapping[str, FeatureNorm],
        *,
        action_key: str = "action",
        eps: float = DEFAULT_EPS,
    ) -> None:
        if not (math.isfinite(eps) and eps >= 0):
            raise ProcessorError(f"eps must be finite and >= 0, got {eps}")
        self.features = dict(features)
        self.action_key = action_key
        self.eps = float(eps)
        for name, norm in self.features.items():
            if not isinstance(norm, FeatureNorm):
                raise ProcessorError(f"feature {name!r} must map to a FeatureNorm, got {norm!r}")

    def _apply(self, name: str, x: np.ndarray, inverse: bool) -> np.ndarray:
        norm = self.features[name]
        arr = _f32(x, f"{type(self).__name__} {name}")
        try:
            out = norm.inverse(arr, self.eps) if inverse else norm.forward(arr, self.eps)
        except ValueError as exc:
            shapes = {k: v.shape for k, v in norm.stats.items()}
            raise ProcessorError(
                f"{type(self).__name__}: stats of {name!r} {shapes} do not broadcast to the "
                f"value's shape {arr.shape}"
            ) from exc
        if out.shape != arr.shape:
            raise ProcessorError(
                f"{type(self).__name__}: stats of {name!r} would change the value's shape "
                f"{arr.shape} -> {out.shape}"
            )
        return out.astype(np.float32, copy=False)

    def _obs(self, obs: dict[str, np.ndarray], inverse: bool) -> dict[str, np.ndarray]:
        for name in self.features:
            if name != self.action_key and name in obs:
                obs[name] = self._apply(name, obs[name], inverse)
        return obs

    def _act(self, action: np.ndarray, inverse: bool) -> np.ndarray:
        if self.action_key not in self.features:
            return action
        return self._apply(self.action_key, action, inverse)

    def observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Normalize (``Unnormalize``: unnormalize) the configured observation features."""
        return self._obs(obs, self._invert)

    def inverse_observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Undo :meth:`observation`."""
        return self._obs(obs, not self._invert)

    def action(self, action: np.ndarray, observation: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Normalize (``Unnormalize``: unnormalize) the action feature, if configured."""
        return self._act(action, self._invert)

    def inverse_action(self, action: np.ndarray, observation: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Undo :meth:`action`."""
        return self._act(action, not self._invert)

    def config(self) -> dict[str, Any]:
        """Feature names, modes and stat names (arrays live in :meth:`state`)."""
        feats = [{"name": k, "mode": v.mode} for k, v in self.features.items()]
        return {"features": feats, "action_key": self.action_key, "eps": self.eps}

    def state(self) -> dict[str, np.ndarray]:
        """Stats keyed ``"<feature index>.<stat>"`` (feature names may contain dots)."""
        return {
            f"{i}.{stat}": arr
            for i, norm in enumerate(self.features.values())
            for stat, arr in norm.stats.items()
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], state: Mapping[str, np.ndarray]) -> Any:
        """Rebuild from :meth:`config` + :meth:`state`; a missing stat raises ProcessorError."""
        feats: dict[str, FeatureNorm] = {}
        for i, entry in enumerate(config["features"]):
            mode = str(entry["mode"])
            need = NORM_MODES.get(mode, ())
            missing = [s for s in need if f"{i}.{s}" not in state]
            if missing:
                raise ProcessorError(
                    f"{cls.type_name}: tensor file lacks stats {missing} of feature {entry['name']!r}"
                )
            feats[str(entry["name"])] = FeatureNorm(mode=mode, stats={s: state[f"{i}.{s}"] for s in need})
        return cls(feats, action_key=str(config["action_key"]), eps=float(config["eps"]))


@register_step
class Unnormalize(Normalize):
    """The inverse of :class:`Normalize` as a forward step (a postprocessor's first step)."""

    type_name: ClassVar[str] = "unnormalize"
    _invert: ClassVar[bool] = True


# ---------------------------------------------------------------------------------------- rename


@register_step
class Rename(ProcessorStep):
    """Rename observation keys, provided name -> policy name (LeRobot's ``rename_map``)."""

    type_name: ClassVar[str] = "rename"

    def __init__(self, rename_map: Mapping[str, str]) -> None:
        self.rename_map = {str(k): str(v) for k, v in rename_map.items()}
        targets = list(self.rename_map.values())
        if len(set(targets)) != len(targets):
            raise ProcessorError(f"rename_map must be one-to-one, got {self.rename_map}")
        self._back = {v: k for k, v in self.rename_map.items()}

    @staticmethod
    def _rename(obs: dict[str, np.ndarray], table: Mapping[str, str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for key, value in obs.items():
            new = table.get(key, key)
            if new in out:
                raise ProcessorError(f"rename: two observation keys land on {new!r}")
            out[new] = value
        return out

    def observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Apply the map."""
        return self._rename(obs, self.rename_map)

    def inverse_observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Apply the reversed map."""
        return self._rename(obs, self._back)

    def config(self) -> dict[str, Any]:
        """The map."""
        return {"rename_map": dict(self.rename_map)}


# ------------------------------------------------------------------------ relative <-> absolute


class _RelativeBase(ProcessorStep):
    _to_absolute: ClassVar[bool] = True

    def __init__(self, state_index: Sequence[int], *, state_key: str = "observation.state") -> None:
        self.state_index = tuple(int(i) for i in state_index)
        self.state_key = state_key
        if not self.state_index or any(i < -1 for i in self.state_index):
            raise ProcessorError(
                f"state_index must list, per action column, a state index or -1 (already "
                f"absolute), got {self.state_index}"
            )

    def _shift(self, action: np.ndarray, obs: Mapping[str, np.ndarray] | None, add: bool) -> np.ndarray:
        name = type(self).__name__
        act = _f32(action, name)
        if act.shape[-1:] != (len(self.state_index),):
            raise ProcessorError(
                f"{name}: action width {act.shape[-1:]} must equal len(state_index) = {len(self.state_index)}"
            )
        state = _need_observation(obs, self.state_key, name).reshape(-1)
        if max(self.state_index) >= state.shape[0]:
            raise ProcessorError(
                f"{name}: state_index {self.state_index} exceeds state size {state.shape[0]}"
            )
        idx = np.asarray(self.state_index)
        anchor = np.where(idx >= 0, state[np.maximum(idx, 0)], 0.0).astype(np.float32)
        return act + anchor if add else act - anchor

    def action(self, action: np.ndarray, observation: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Convert (relative -> absolute for :class:`RelativeToAbsolute`)."""
        return self._shift(action, observation, self._to_absolute)

    def inverse_action(self, action: np.ndarray, observation: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Undo :meth:`action`."""
        return self._shift(action, observation, not self._to_absolute)

    def config(self) -> dict[str, Any]:
        """State key and per-column state indices."""
        return {"state_index": list(self.state_index), "state_key": self.state_key}


@register_step
class RelativeToAbsolute(_RelativeBase):
    """``absolute = relative + state[state_index]`` per action column (``-1``: left as is).

    Every row of a chunk is anchored to the same current state (the chunk's observation). The
    state is ``observation[state_key]`` as passed to the pipeline call, so it must be in the same
    units and joint frame as the actions at this point of the pipeline.
    """

    type_name: ClassVar[str] = "relative_to_absolute"
    _to_absolute: ClassVar[bool] = True


@register_step
class AbsoluteToRelative(_RelativeBase):
    """``relative = absolute - state[state_index]``; the inverse of :class:`RelativeToAbsolute`."""

    type_name: ClassVar[str] = "absolute_to_relative"
    _to_absolute: ClassVar[bool] = False


# ------------------------------------------------------------------------- units and joint frames


UNITS: dict[str, tuple[str, float]] = {
    "rad": ("angle", 1.0),
    "deg": ("angle", math.pi / 180.0),
    "turn": ("angle", 2.0 * math.pi),
    "m": ("length", 1.0),
    "cm": ("length", 1e-2),
    "mm": ("length", 1e-3),
    "unit": ("ratio", 1.0),
    "percent": ("ratio", 1e-2),
}
"""Supported units: quantity and factor to the SI (or unit-ratio) base."""


class _ColumnStep(ProcessorStep):
    """A step acting on the last axis of chosen observation keys and/or the action."""

    def __init__(self, keys: Sequence[str], action: bool) -> None:
        self.keys = tuple(str(k) for k in keys)
        self.apply_to_action = bool(action)

    def _columns(self, x: np.ndarray, inverse: bool) -> np.ndarray:
        raise NotImplementedError

    def _obs(self, obs: dict[str, np.ndarray], inverse: bool) -> dict[str, np.ndarray]:
        for key in self.keys:
            if key in obs:
                obs[key] = self._columns(_f32(obs[key], f"{type(self).__name__} {key}"), inverse)
        return obs

    def observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Transform the configured observation keys."""
        return self._obs(obs, False)

    def inverse_observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Undo :meth:`observation`."""
        return self._obs(obs, True)

    def action(self, action: np.ndarray, observation: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Transform the action when ``action=True``."""
        if not self.apply_to_action:
            return action
        return self._columns(_f32(action, type(self).__name__), False)

    def inverse_action(self, action: np.ndarray, observation: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Undo :meth:`action`."""
        if not self.apply_to_action:
            return action
        return self._columns(_f32(action, type(self).__name__), True)


@register_step
class UnitConversion(_ColumnStep):
    """Multiply chosen columns by the factor from ``from_unit`` to ``to_unit`` (see :data:`UNITS`).

    ``indices`` selects columns on the last axis (``None``: all), e.g. every joint but the
    gripper for a deg -> rad conversion.
    """

    type_name: ClassVar[str] = "unit_conversion"

    def __init__(
        self,
        from_unit: str,
        to_unit: str,
        *,
        keys: Sequence[str] = (),
        action: bool = False,
        indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__(keys, action)
        for unit in (from_unit, to_unit):
            if unit not in UNITS:
                raise ProcessorError(f"unit must be one of {list(UNITS)}, got {unit!r}")
        if UNITS[from_unit][0] != UNITS[to_unit][0]:
            raise ProcessorError(f"cannot convert {from_unit!r} to {to_unit!r}: different quantities")
        self.from_unit, self.to_unit = from_unit, to_unit
        self.indices = None if indices is None else tuple(int(i) for i in indices)
        self.factor = UNITS[from_unit][1] / UNITS[to_unit][1]

    def _columns(self, x: np.ndarray, inverse: bool) -> np.ndarray:
        f = np.float32(1.0 / self.factor if inverse else self.factor)
        if self.indices is None:
            return x * f
        out = x.copy()
        try:
            out[..., list(self.indices)] *= f
        except IndexError as exc:
            raise ProcessorError(
                f"unit_conversion: indices {self.indices} out of range for shape {x.shape}"
            ) from exc
        return out

    def config(self) -> dict[str, Any]:
        """Units, keys, action flag and column indices."""
        idx = None if self.indices is None else list(self.indices)
        return {
            "from_unit": self.from_unit,
            "to_unit": self.to_unit,
            "keys": list(self.keys),
            "action": self.apply_to_action,
            "indices": idx,
        }


@register_step
class JointTransform(_ColumnStep):
    """Change joint frame: ``y = sign * x[..., order] + offset``.

    ``order`` is a permutation of the columns (output column ``j`` takes input column
    ``order[j]``), ``sign`` is ``+1``/``-1`` per output column, ``offset`` is added after the
    sign (in the output's units). The inverse is exact.
    """

    type_name: ClassVar[str] = "joint_transform"

    def __init__(
        self,
        *,
        order: Sequence[int] | None = None,
        sign: Sequence[float] | None = None,
        offset: Sequence[float] | None = None,
        keys: Sequence[str] = (),
        action: bool = False,
    ) -> None:
        super().__init__(keys, action)
        n = next((len(v) for v in (order, sign, offset) if v is not None), None)
        if n is None:
            raise ProcessorError("joint_transform needs at least one of order, sign, offset")
        self.order = tuple(int(i) for i in (order if order is not None else range(n)))
        self.sign = tuple(float(s) for s in (sign if sign is not None else [1.0] * n))
        self.offset = tuple(float(o) for o in (offset if offset is not None else [0.0] * n))
        self._validate(n)
        self._inv_order = np.argsort(np.asarray(self.order))

    def _validate(self, n: int) -> None:
        if not (len(self.order) == len(self.sign) == len(self.offset) == n):
            raise ProcessorError(
                f"joint_transform: order, sign and offset must have the same length, got "
                f"{len(self.order)}, {len(self.sign)}, {len(self.offset)}"
            )
        if sorted(self.order) != list(range(n)):
            raise ProcessorError(
                f"joint_transform: order must be a permutation of 0..{n - 1}, got {self.order}"
            )
        if any(s not in (1.0, -1.0) for s in self.sign):
            raise ProcessorError(f"joint_transform: sign entries must be +1 or -1, got {self.sign}")
        if not all(math.isfinite(o) for o in self.offset):
            raise ProcessorError("joint_transform: offsets must be finite")

    def _columns(self, x: np.ndarray, inverse: bool) -> np.ndarray:
        if x.shape[-1:] != (len(self.order),):
            raise ProcessorError(
                f"joint_transform: last axis must have {len(self.order)} columns, got shape {x.shape}"
            )
        sign = np.asarray(self.sign, dtype=np.float32)
        offset = np.asarray(self.offset, dtype=np.float32)
        if inverse:
            return ((x - offset) * sign)[..., self._inv_order]
        return x[..., list(self.order)] * sign + offset

    def config(self) -> dict[str, Any]:
        """Order, sign, offset, keys and action flag."""
        return {
            "order": list(self.order),
            "sign": list(self.sign),
            "offset": list(self.offset),
            "keys": list(self.keys),
            "action": self.apply_to_action,
        }


# ------------------------------------------------------------------------------------------ images


@register_step
class ImagesToCHWFloat(ProcessorStep):
    """RGB ``uint8 (H, W, 3)`` -> ``float32 (3, H, W)`` in [0, 1]; inverse rounds back to uint8."""

    type_name: ClassVar[str] = "images_to_chw_float"

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(str(k) for k in keys)

    def observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Convert the configured image keys."""
        for key in self.keys:
            if key in obs:
                img = np.asarray(obs[key])
                if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
                    raise ProcessorError(
                        f"images_to_chw_float: {key!r} must be uint8 (H, W, 3) RGB, got "
                        f"{img.dtype} {img.shape}"
                    )
                obs[key] = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / 255.0
        return obs

    def inverse_observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Back to ``uint8 (H, W, 3)`` (rounded and clipped)."""
        for key in self.keys:
            if key in obs:
                img = np.clip(np.rint(np.asarray(obs[key]) * 255.0), 0, 255)
                obs[key] = np.ascontiguousarray(img.transpose(1, 2, 0)).astype(np.uint8)
        return obs

    def config(self) -> dict[str, Any]:
        """The image keys."""
        return {"keys": list(self.keys)}
