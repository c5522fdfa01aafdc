"""Processors: composable, serializable steps between robot space and model space.

A :class:`ProcessorPipeline` is an ordered list of steps. Called on an **observation dict** it
runs each step's observation transform; called on an **action array** (one action ``(A,)`` or a
chunk ``(T, A)``) it runs each step's action transform. :meth:`ProcessorPipeline.inverse` runs
the steps backwards with their inverse transforms, so a postprocessor (model -> robot space) can
also map robot-space actions back into model space (an RTC prefix, a recorded action).

Steps (all pure numpy, state held in memory):

* :class:`Normalize` / :class:`Unnormalize` -- per feature ``identity``, ``mean_std``,
  ``min_max``, ``quantiles`` (q01/q99) or ``quantile10`` (q10/q90), formulas and stat names as in
  LeRobot's ``NormalizerProcessorStep`` so LeRobot ``stats`` can be used unchanged.
* :class:`Rename` -- observation keys, provided name -> policy name.
* :class:`RelativeToAbsolute` / :class:`AbsoluteToRelative` -- actions expressed relative to the
  current state and back; they read ``observation[state_key]`` given to the call.
* :class:`UnitConversion` -- deg <-> rad, mm <-> m, percent <-> unit... on chosen columns.
* :class:`JointTransform` -- joint order, sign and offset (embodiment frame changes).
* :class:`ImagesToCHWFloat` -- RGB ``uint8 (H, W, 3)`` -> ``float32 (3, H, W)`` in [0, 1].

Serialization: :meth:`ProcessorPipeline.save` writes ``<name>.json`` (step types + JSON config,
no code, no pickle) and ``<name>.safetensors`` (every array, through ``safetensors.numpy`` so torch
is not needed). Loading only instantiates step types from :data:`STEP_TYPES`; an unknown type is
an error, never an import.

Design decisions (the brief is silent)
--------------------------------------
* Numeric steps compute and return ``float32`` (model inputs are float32); stats are stored as
  float32.
* ``mean_std`` inverse is the exact inverse ``x * (std + eps) + mean`` (LeRobot uses
  ``x * std + mean``; the difference is at most ``eps * |x|`` with ``eps = 1e-8``), so
  pipelines round-trip.
* Observation steps ignore keys they are not configured for and keys that are absent: checking
  that the observation has the policy's features is :func:`rtrun.models.policy.check_observation`'s
  job. Inputs are never mutated; every call returns a new dict / array.
* Action arrays are always the action feature (``action_key``, default ``"action"``): a step's
  action transform applies along the last axis, so one action and a whole chunk both work.

Modules: this façade holds :class:`ProcessorPipeline` and re-exports every public name; the step
base class, :func:`register_step` and :class:`ProcessorError` live in
:mod:`rtrun.models._processor_base`, the built-in steps in :mod:`rtrun.models._processor_steps`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._processor_base import STEP_TYPES as STEP_TYPES
from ._processor_base import ProcessorError as ProcessorError
from ._processor_base import ProcessorStep as ProcessorStep
from ._processor_base import register_step as register_step
from ._processor_steps import DEFAULT_EPS as DEFAULT_EPS
from ._processor_steps import NORM_MODES as NORM_MODES
from ._processor_steps import UNITS as UNITS
from ._processor_steps import AbsoluteToRelative as AbsoluteToRelative
from ._processor_steps import FeatureNorm as FeatureNorm
from ._processor_steps import ImagesToCHWFloat as ImagesToCHWFloat
from ._processor_steps import JointTransform as JointTransform
from ._processor_steps import Normalize as Normalize
from ._processor_steps import RelativeToAbsolute as RelativeToAbsolute
from ._processor_steps import Rename as Rename
from ._processor_steps import UnitConversion as UnitConversion
from ._processor_steps import Unnormalize as Unnormalize

__all__ = [
    "NORM_MODES",
    "STEP_TYPES",
    "AbsoluteToRelative",
    "FeatureNorm",
    "ImagesToCHWFloat",
    "JointTransform",
    "Normalize",
    "ProcessorError",
    "ProcessorPipeline",
    "ProcessorStep",
    "RelativeToAbsolute",
    "Rename",
    "UnitConversion",
    "Unnormalize",
    "register_step",
]

PROCESSOR_FORMAT = "rtrun.processor"
"""``format`` field of a pipeline JSON file."""
PROCESSOR_FORMAT_VERSION = 1
"""Bumped on any incompatible change of the JSON layout."""

Data = Mapping[str, np.ndarray] | np.ndarray


# ---------------------------------------------------------------------------------------- pipeline


class ProcessorPipeline:
    """An ordered list of :class:`ProcessorStep`; call it on an observation dict or an action."""

    def __init__(self, steps: Sequence[ProcessorStep] = (), *, name: str = "processor") -> None:
        self.steps = tuple(steps)
        self.name = name
        for step in self.steps:
            if not isinstance(step, ProcessorStep):
                raise ProcessorError(f"pipeline steps must be ProcessorStep instances, got {step!r}")

    def __call__(self, data: Data, *, observation: Mapping[str, np.ndarray] | None = None) -> Any:
        """Run every step forward. ``observation`` feeds steps that convert actions."""
        return self._run(data, observation, inverse=False)

    def inverse(self, data: Data, *, observation: Mapping[str, np.ndarray] | None = None) -> Any:
        """Run every step's inverse, last step first."""
        return self._run(data, observation, inverse=True)

    def _run(self, data: Data, obs: Mapping[str, np.ndarray] | None, inverse: bool) -> Any:
        steps = reversed(self.steps) if inverse else self.steps
        if isinstance(data, Mapping):
            out = dict(data)
            for step in steps:
                out = step.inverse_observation(out) if inverse else step.observation(out)
            return out
        if isinstance(data, np.ndarray):
            act = data
            for step in steps:
                act = step.inverse_action(act, obs) if inverse else step.action(act, obs)
            return act
        raise ProcessorError(
            f"a pipeline applies to an observation dict or an action array, got {type(data).__name__}"
        )

    def __repr__(self) -> str:
        return f"ProcessorPipeline(name={self.name!r}, steps={list(self.steps)!r})"

    # -- serialization ------------------------------------------------------------------------

    def to_config(self) -> dict[str, Any]:
        """JSON-able description (step types and configs, no arrays)."""
        return {
            "format": PROCESSOR_FORMAT,
            "version": PROCESSOR_FORMAT_VERSION,
            "name": self.name,
            "steps": [{"type": s.type_name, "config": s.config()} for s in self.steps],
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every step's arrays, keyed ``"<step index>/<local key>"``."""
        return {
            f"{i}/{k}": np.ascontiguousarray(v)
            for i, step in enumerate(self.steps)
            for k, v in step.state().items()
        }

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], state: Mapping[str, np.ndarray] | None = None
    ) -> ProcessorPipeline:
        """Rebuild from :meth:`to_config` + :meth:`state_dict`; raises :class:`ProcessorError`."""
        if config.get("format") != PROCESSOR_FORMAT or config.get("version") != PROCESSOR_FORMAT_VERSION:
            raise ProcessorError(
                f"not an {PROCESSOR_FORMAT} v{PROCESSOR_FORMAT_VERSION} file "
                f"(format={config.get('format')!r}, version={config.get('version')!r})"
            )
        state = state or {}
        steps = [cls._load_step(i, entry, state) for i, entry in enumerate(config.get("steps", []))]
        return cls(steps, name=str(config.get("name", "processor")))

    @staticmethod
    def _load_step(i: int, entry: Mapping[str, Any], state: Mapping[str, np.ndarray]) -> ProcessorStep:
        kind = entry.get("type")
        step_cls = STEP_TYPES.get(str(kind))
        if step_cls is None:
            raise ProcessorError(f"step {i}: unknown step type {kind!r}; known: {sorted(STEP_TYPES)}")
        prefix = f"{i}/"
        local = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            step = step_cls.from_config(entry.get("config", {}), local)
        except ProcessorError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ProcessorError(f"step {i} ({kind}): malformed config: {exc!r}") from exc
        if not isinstance(step, ProcessorStep):
            raise ProcessorError(f"step {i} ({kind}): from_config returned {type(step).__name__}")
        return step

    def save(self, directory: str | Path, name: str | None = None) -> tuple[Path, Path]:
        """Write ``<name>.json`` and ``<name>.safetensors`` into ``directory``; return the paths."""
        from safetensors.numpy import save_file

        name = name or self.name
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        cfg_path, st_path = root / f"{name}.json", root / f"{name}.safetensors"
        cfg_path.write_text(json.dumps(self.to_config(), indent=2) + "\n")
        save_file(self.state_dict(), str(st_path), metadata={"format": PROCESSOR_FORMAT})
        return cfg_path, st_path

    @classmethod
    def load(cls, directory: str | Path, name: str) -> ProcessorPipeline:
        """Read a pipeline written by :meth:`save`; a missing or malformed file raises."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        root = Path(directory)
        cfg_path, st_path = root / f"{name}.json", root / f"{name}.safetensors"
        for path in (cfg_path, st_path):
            if not path.is_file():
                raise ProcessorError(f"processor file {path} is missing")
        try:
            config = json.loads(cfg_path.read_text())
            state = load_file(str(st_path))
        except (ValueError, OSError, SafetensorError) as exc:
            raise ProcessorError(f"cannot read processor {name!r} in {root}: {exc}") from exc
        if not isinstance(config, dict):
            raise ProcessorError(f"{cfg_path}: top level must be a JSON object")
        return cls.from_config(config, state)
