"""The `Policy` protocol, its metadata, and the checks the policy worker runs against it.

A policy maps one observation to one *chunk* of future actions in **model space** (before the
postprocessor). Everything around it — processors, the RTC merger, the action queue — talks to
it only through :class:`Policy` and :class:`PolicyMetadata`, so a built-in torch policy, a LeRobot
adapter and a scripted test policy are interchangeable.

Contract of :meth:`Policy.predict_chunk`
----------------------------------------
* ``observation`` maps feature names (exactly the keys of ``metadata.input_features``; extra keys
  may be present and must be ignored) to numpy arrays. Images are RGB ``uint8`` ``(H, W, 3)``
  (DESIGN §2: RGB everywhere); the policy owns any CHW/float conversion.
* ``inference_delay`` is the *sent* delay of lerobot-rtc.md §4: ``ceil(tracker.max() / dt)``
  steps, always ``>= 0``. Policies without RTC guidance ignore it.
* ``prefix`` is the unexecuted model-space tail of the previous chunk, shape ``(k, n_actions)``
  with ``k >= 1``, **not** padded: an empty left-over is passed as ``None`` (lerobot-rtc.md §12.1,
  never a zero prefix). A policy that guides toward a prefix pads/truncates it to its own
  execution horizon (:func:`rtrun.models.rtc.pad_prefix`), as LeRobot's policy server does.
* It returns a ``float32`` array of shape ``(chunk_size, n_actions)`` whose columns follow
  ``metadata.action_names``. The policy worker validates it with :func:`check_chunk`.
* It is synchronous and may block: the worker runs it in a thread (or another process), never on
  the event loop.

Design decisions (the brief is silent)
--------------------------------------
* Model errors derive from :class:`ModelError` (a plain ``Exception``), not from
  ``rtrun.RtrunError``: ``rtrun.models`` is pure compute and must not import the kernel (which
  pulls in anyio). Actors may translate them at the boundary.
* Extra observation keys are allowed (a robot often has more cameras than the policy uses, as in
  LeRobot's session check "expected cameras ⊆ provided"); missing keys and shape mismatches are
  errors. A ``-1`` in a feature shape matches any size on that axis (e.g. any image resolution
  when the policy resizes). Dtypes are compared by numpy *kind* (float / int / uint / bool):
  ``float64`` state passes a ``float32`` spec; ``float32`` pixels do not pass a ``uint8`` spec.
* A ``rename_map`` maps **provided** names to **policy** names (LeRobot's direction:
  ``{"observation.images.front": "observation.images.top"}``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "FEATURE_KINDS",
    "ActionDimensionError",
    "CheckpointError",
    "FeatureSpec",
    "MetadataError",
    "ModelError",
    "ObservationMismatchError",
    "Policy",
    "PolicyMetadata",
    "PolicyOutputError",
    "check_action_dim",
    "check_chunk",
    "check_observation",
    "rename_observation",
    "suggest_rename_map",
    "uncovered_actuators",
]

FEATURE_KINDS: frozenset[str] = frozenset({"state", "image", "env", "other"})
"""Allowed :attr:`FeatureSpec.kind` values: joint/proprio state, RGB image, environment state
(LeRobot's ``observation.environment_state``), anything else."""


# --------------------------------------------------------------------------------------- errors
#
#   ModelError
#   ├── MetadataError              a PolicyMetadata / FeatureSpec breaks its own rules
#   ├── ObservationMismatchError   observation keys/shapes do not match the policy's input features
#   ├── ActionDimensionError       action width differs from the policy's / robot's action names
#   ├── PolicyOutputError          predict_chunk returned a wrong shape, dtype or non-finite values
#   └── CheckpointError            a checkpoint directory is missing files or disagrees with itself


class ModelError(Exception):
    """Base class of every error raised by ``rtrun.models``."""


class MetadataError(ModelError, ValueError):
    """Policy metadata is invalid (the message names the rule)."""


class CheckpointError(ModelError):
    """A checkpoint cannot be loaded: missing file, bad JSON, or shapes/names that disagree."""


class ActionDimensionError(ModelError):
    """The width of an action (chunk) does not match the action names it must follow."""

    def __init__(self, *, expected: int, got: int, context: str) -> None:
        self.expected = expected
        self.got = got
        self.context = context
        super().__init__(
            f"{context}: action dimension must equal the number of action names ({expected}), got {got}"
        )


class PolicyOutputError(ModelError):
    """``predict_chunk`` broke its output contract (shape, dtype or finiteness)."""


@dataclass(frozen=True, slots=True)
class _Mismatch:
    name: str
    expected: tuple[int, ...]
    got: tuple[int, ...]
    what: str


class ObservationMismatchError(ModelError):
    """Observation features do not match the policy's input features.

    Raised before the robot moves. The message lists expected vs provided keys (with shapes), the
    per-feature shape/dtype problems, and a suggested ``rename_map`` when one can be guessed.
    """

    def __init__(
        self,
        *,
        expected: Mapping[str, tuple[int, ...]],
        provided: Mapping[str, tuple[int, ...]],
        missing: Sequence[str],
        problems: Sequence[str],
        suggested_rename_map: Mapping[str, str],
    ) -> None:
        self.expected = dict(expected)
        self.provided = dict(provided)
        self.missing = tuple(missing)
        self.problems = tuple(problems)
        self.suggested_rename_map = dict(suggested_rename_map)
        super().__init__(self._build_message())

    def _build_message(self) -> str:
        lines = ["observation does not match the policy's input features"]
        lines.append("  expected: " + _fmt_keys(self.expected))
        lines.append("  provided: " + _fmt_keys(self.provided))
        if self.missing:
            lines.append("  missing:  " + ", ".join(self.missing))
        lines.extend("  " + p for p in self.problems)
        if self.suggested_rename_map:
            pairs = ", ".join(f"{k!r}: {v!r}" for k, v in self.suggested_rename_map.items())
            lines.append(f"  hint: set rename_map = {{{pairs}}} (provided name -> policy name)")
        return "\n".join(lines)


def _fmt_keys(keys: Mapping[str, tuple[int, ...]]) -> str:
    if not keys:
        return "(none)"
    return ", ".join(f"{k} {list(v)}" for k, v in sorted(keys.items()))


# ------------------------------------------------------------------------------------ metadata


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureSpec:
    """Shape, dtype and role of one input feature of a policy."""

    shape: tuple[int, ...]
    """Array shape of one observation (no batch axis); ``-1`` matches any size on that axis.
    Images are ``(H, W, 3)`` RGB."""
    dtype: str = "float32"
    """numpy dtype name; compared by kind (float/int/uint/bool), see the module docstring."""
    kind: str = "state"
    """One of :data:`FEATURE_KINDS`."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if any(s < -1 or s == 0 for s in self.shape):
            raise MetadataError(f"feature shape entries must be >= 1 or -1 (any), got {self.shape}")
        if self.kind not in FEATURE_KINDS:
            raise MetadataError(f"feature kind must be one of {sorted(FEATURE_KINDS)}, got {self.kind!r}")
        try:
            np.dtype(self.dtype)
        except TypeError as exc:
            raise MetadataError(f"feature dtype must be a numpy dtype name, got {self.dtype!r}") from exc

    def matches_shape(self, shape: tuple[int, ...]) -> bool:
        """Whether an array of ``shape`` fits this spec (``-1`` axes match anything)."""
        return len(shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, shape, strict=True)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (used in checkpoint ``config.json`` and handshakes)."""
        return {"shape": list(self.shape), "dtype": self.dtype, "kind": self.kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`; raises :class:`MetadataError` on a malformed entry."""
        try:
            return cls(
                shape=tuple(data["shape"]),
                dtype=str(data.get("dtype", "float32")),
                kind=str(data.get("kind", "state")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MetadataError(f"malformed feature spec {dict(data)!r}: {exc}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyMetadata:
    """What a policy consumes and produces; everything the runtime needs to drive it."""

    input_features: Mapping[str, FeatureSpec]
    """Observation features by name (LeRobot style, e.g. ``observation.state``,
    ``observation.images.top``)."""
    action_names: tuple[str, ...]
    """Ordered action column names (column -> motor order contract)."""
    chunk_size: int
    """Rows of a chunk returned by ``predict_chunk``."""
    fps: float
    """Action rate the policy was trained at (steps per second)."""
    supports_rtc_prefix: bool = False
    """Whether ``predict_chunk`` uses ``prefix``/``inference_delay`` (RTC guidance)."""
    stateful: bool = False
    """Whether the policy keeps per-episode state (``reset()`` matters; cannot be shared by
    several clients: serving mode ``exclusive``)."""
    execution_horizon: int = 10
    """RTC ``H``: leading steps of a new chunk guided toward the prefix (LeRobot default 10).
    Informational for callers; the policy pads/truncates the prefix to it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_features", dict(self.input_features))
        object.__setattr__(self, "action_names", tuple(self.action_names))
        if not self.action_names:
            raise MetadataError("action_names must not be empty")
        if len(set(self.action_names)) != len(self.action_names):
            raise MetadataError(f"action_names must be unique, got {self.action_names}")
        if self.chunk_size < 1:
            raise MetadataError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise MetadataError(f"fps must be a finite positive number, got {self.fps}")
        if self.execution_horizon < 0:
            raise MetadataError(f"execution_horizon must be >= 0, got {self.execution_horizon}")
        for name, spec in self.input_features.items():
            if not isinstance(spec, FeatureSpec):
                raise MetadataError(f"input feature {name!r} must be a FeatureSpec, got {spec!r}")

    @property
    def n_actions(self) -> int:
        """Action dimension ``A`` (number of action names)."""
        return len(self.action_names)

    @property
    def dt(self) -> float:
        """Seconds per action step at the trained fps."""
        return 1.0 / self.fps

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (checkpoint ``config.json``, session handshakes)."""
        return {
            "input_features": {k: v.to_dict() for k, v in self.input_features.items()},
            "action_names": list(self.action_names),
            "chunk_size": self.chunk_size,
            "fps": self.fps,
            "supports_rtc_prefix": self.supports_rtc_prefix,
            "stateful": self.stateful,
            "execution_horizon": self.execution_horizon,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyMetadata:
        """Inverse of :meth:`to_dict`; raises :class:`MetadataError` on malformed data."""
        try:
            feats = {str(k): FeatureSpec.from_dict(v) for k, v in data["input_features"].items()}
            return cls(
                input_features=feats,
                action_names=tuple(str(n) for n in data["action_names"]),
                chunk_size=int(data["chunk_size"]),
                fps=float(data["fps"]),
                supports_rtc_prefix=bool(data.get("supports_rtc_prefix", False)),
                stateful=bool(data.get("stateful", False)),
                execution_horizon=int(data.get("execution_horizon", 10)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, MetadataError):
                raise
            raise MetadataError(f"malformed policy metadata: {exc!r}") from exc


# -------------------------------------------------------------------------------------- protocol


@runtime_checkable
class Policy(Protocol):
    """A chunking policy (see the module docstring for the full contract)."""

    @property
    def metadata(self) -> PolicyMetadata:
        """Input features, action names, chunk size, trained fps and capabilities."""
        ...

    def predict_chunk(
        self,
        observation: Mapping[str, np.ndarray],
        *,
        inference_delay: int,
        prefix: np.ndarray | None,
    ) -> np.ndarray:
        """Return a ``float32`` ``(chunk_size, n_actions)`` chunk in model space."""
        ...

    def reset(self) -> None:
        """Forget per-episode state (called at every episode start)."""
        ...

    def warmup(self) -> None:
        """Run whatever makes the first real call fast (allocations, compilation)."""
        ...


# ------------------------------------------------------------------------------------- checks


def rename_observation(
    observation: Mapping[str, np.ndarray], rename_map: Mapping[str, str] | None
) -> dict[str, np.ndarray]:
    """Return ``observation`` with keys renamed by ``rename_map`` (provided -> policy name).

    Raises :class:`ObservationMismatchError` if two keys would land on the same name.
    """
    if not rename_map:
        return dict(observation)
    out: dict[str, np.ndarray] = {}
    for key, value in observation.items():
        new = rename_map.get(key, key)
        if new in out:
            raise ObservationMismatchError(
                expected={},
                provided={k: np.shape(v) for k, v in observation.items()},
                missing=(),
                problems=[f"rename_map maps two keys onto {new!r}"],
                suggested_rename_map={},
            )
        out[new] = value
    return out


def check_observation(
    metadata: PolicyMetadata,
    observation: Mapping[str, np.ndarray],
    *,
    rename_map: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Validate ``observation`` against ``metadata.input_features``; return the renamed view.

    Every problem is collected before raising one :class:`ObservationMismatchError`, so the
    user fixes the configuration in one go. Extra keys are ignored (not returned).
    """
    obs = rename_observation(observation, rename_map)
    missing = [k for k in metadata.input_features if k not in obs]
    problems = [
        p
        for k, spec in metadata.input_features.items()
        if k in obs
        for p in _feature_problems(k, spec, obs[k])
    ]
    if missing or problems:
        provided = {k: tuple(np.shape(v)) for k, v in obs.items()}
        expected = {k: s.shape for k, s in metadata.input_features.items()}
        raise ObservationMismatchError(
            expected=expected,
            provided=provided,
            missing=missing,
            problems=problems,
            suggested_rename_map=suggest_rename_map(metadata, provided),
        )
    return {k: obs[k] for k in metadata.input_features}


def _feature_problems(name: str, spec: FeatureSpec, value: object) -> list[str]:
    if not isinstance(value, np.ndarray):
        return [f"{name}: must be a numpy array, got {type(value).__name__}"]
    problems = []
    if not spec.matches_shape(value.shape):
        problems.append(f"{name}: shape must be {list(spec.shape)}, got {list(value.shape)}")
    if value.dtype.kind != np.dtype(spec.dtype).kind:
        problems.append(f"{name}: dtype must be of the kind of {spec.dtype}, got {value.dtype}")
    return problems


def suggest_rename_map(metadata: PolicyMetadata, provided: Mapping[str, tuple[int, ...]]) -> dict[str, str]:
    """Guess a ``rename_map`` (provided -> policy name) for the policy features not provided.

    Candidates are provided keys the policy does not know. For each missing feature the best
    candidate wins: compatible shape and similar name (difflib ratio) first, then a compatible
    shape alone when it is the only one, then a similar name alone. Each candidate is used once.
    """
    missing = [k for k in metadata.input_features if k not in provided]
    spare = [k for k in provided if k not in metadata.input_features]
    out: dict[str, str] = {}
    for want in missing:
        pick = _best_candidate(want, metadata.input_features[want], spare, provided)
        if pick is not None:
            out[pick] = want
            spare.remove(pick)
    return out


def _best_candidate(
    want: str, spec: FeatureSpec, spare: list[str], provided: Mapping[str, tuple[int, ...]]
) -> str | None:
    fits = [k for k in spare if spec.matches_shape(tuple(provided[k]))]
    close = difflib.get_close_matches(want, spare, n=len(spare) or 1, cutoff=0.5)
    both = [k for k in close if k in fits]
    if both:
        return both[0]
    if len(fits) == 1:
        return fits[0]
    return close[0] if close and not fits else None


def check_action_dim(metadata: PolicyMetadata, actions: np.ndarray, *, context: str) -> None:
    """Raise :class:`ActionDimensionError` unless ``actions.shape[-1] == metadata.n_actions``."""
    got = int(actions.shape[-1]) if actions.ndim else 0
    if got != metadata.n_actions:
        raise ActionDimensionError(expected=metadata.n_actions, got=got, context=context)


def check_chunk(metadata: PolicyMetadata, chunk: object) -> np.ndarray:
    """Validate a ``predict_chunk`` result and return it as a ``float32`` array.

    Raises :class:`ActionDimensionError` for a wrong width and :class:`PolicyOutputError` for
    anything else (not an array, wrong rank or length, non-numeric, NaN/inf).
    """
    if not isinstance(chunk, np.ndarray):
        raise PolicyOutputError(f"predict_chunk must return a numpy array, got {type(chunk).__name__}")
    if chunk.ndim != 2:
        raise PolicyOutputError(
            f"predict_chunk must return a 2-D (chunk_size, n_actions) array, got shape {chunk.shape}"
        )
    check_action_dim(metadata, chunk, context="predict_chunk output")
    if chunk.shape[0] != metadata.chunk_size:
        raise PolicyOutputError(
            f"predict_chunk must return chunk_size={metadata.chunk_size} rows, got {chunk.shape[0]}"
        )
    if chunk.dtype.kind not in "fiu":
        raise PolicyOutputError(f"predict_chunk must return numbers, got dtype {chunk.dtype}")
    out = np.asarray(chunk, dtype=np.float32)
    if not np.isfinite(out).all():
        raise PolicyOutputError("predict_chunk must return finite values (got NaN or inf)")
    return out


def uncovered_actuators(metadata: PolicyMetadata, actuator_names: Sequence[str]) -> tuple[str, ...]:
    """Return the robot actuators the policy does not drive (for a once-per-episode warning).

    Raises :class:`ActionDimensionError` if the policy names actions the robot does not have:
    those commands would have nowhere to go.
    """
    unknown = [n for n in metadata.action_names if n not in set(actuator_names)]
    if unknown:
        raise ActionDimensionError(
            expected=len(actuator_names),
            got=metadata.n_actions,
            context=f"policy action names {unknown} are not robot actuators {list(actuator_names)}",
        )
    return tuple(n for n in actuator_names if n not in set(metadata.action_names))
