"""Processor step base: :class:`ProcessorStep`, the :data:`STEP_TYPES` registry, the error type.

The bottom layer of the processor modules (the façade and the design notes are in
:mod:`rtrun.models.processors`, which re-exports everything here): the built-in steps
(:mod:`rtrun.models._processor_steps`) and user-defined ones subclass :class:`ProcessorStep` and
register with :func:`register_step`; the pipeline loads only registered types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np

from .policy import ModelError


class ProcessorError(ModelError, ValueError):
    """A processor is misconfigured, applied to the wrong data, or cannot be (de)serialized."""


# ------------------------------------------------------------------------------------ base step


class ProcessorStep:
    """Base class of pipeline steps; every transform defaults to the identity.

    Subclasses set :attr:`type_name`, override the transforms they need, and implement
    :meth:`config` / :meth:`state` / :meth:`from_config` for serialization.
    """

    type_name: ClassVar[str] = ""
    """Stable name written to JSON and looked up in :data:`STEP_TYPES` at load time."""

    def observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Transform an observation dict (a fresh dict the step may modify and return)."""
        return obs

    def inverse_observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Undo :meth:`observation`."""
        return obs

    def action(self, action: np.ndarray, observation: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Transform an action ``(..., A)``; ``observation`` is the one given to the call."""
        return action

    def inverse_action(self, action: np.ndarray, observation: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Undo :meth:`action`."""
        return action

    def config(self) -> dict[str, Any]:
        """JSON-able configuration (no arrays)."""
        return {}

    def state(self) -> dict[str, np.ndarray]:
        """Arrays of this step, keyed by names local to the step."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], state: Mapping[str, np.ndarray]) -> Any:
        """Rebuild a step from :meth:`config` and :meth:`state`."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()!r})"


_StepT = TypeVar("_StepT", bound=type[ProcessorStep])

STEP_TYPES: dict[str, type[ProcessorStep]] = {}
"""Registry of step types by :attr:`ProcessorStep.type_name` (the only types a file can name)."""


def register_step(cls: _StepT) -> _StepT:
    """Class decorator adding a step type to :data:`STEP_TYPES` (for user-defined steps)."""
    if not cls.type_name:
        raise ProcessorError(f"{cls.__name__} must set a non-empty type_name to be registered")
    if STEP_TYPES.get(cls.type_name, cls) is not cls:
        raise ProcessorError(f"step type name {cls.type_name!r} is already registered")
    STEP_TYPES[cls.type_name] = cls
    return cls


def _f32(x: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise ProcessorError(f"{what}: processors need numeric arrays, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def _need_observation(obs: Mapping[str, np.ndarray] | None, key: str, step: str) -> np.ndarray:
    if obs is None or key not in obs:
        raise ProcessorError(
            f"{step}: converting actions needs the current observation with {key!r}; "
            "pass observation=... to the pipeline call"
        )
    return _f32(obs[key], f"{step} {key}")
