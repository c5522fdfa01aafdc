"""Built-in ACT-style chunking policy (torch, CPU-sized) and the base of the torch policies.

:class:`ACTPolicy` predicts a ``(chunk_size, n_actions)`` chunk from the current state and
(optionally) camera images with a small encoder/decoder transformer
(:mod:`rtrun.models._torch_util`). It is deterministic: the weights come from ``config.seed`` (or
a checkpoint) and inference has no randomness.

:class:`TorchChunkPolicy` holds what both built-in policies share: metadata, processors, the
observation -> tensor path, bounded torch threads, inference mode, weight (de)serialization.

Design decisions (the brief is silent)
--------------------------------------
* torch is imported lazily (inside methods) so ``import rtrun.models`` stays light; constructing
  a torch policy without torch raises :class:`TorchMissingError` naming the ``torch`` extra.
* Processors. The policy owns its **preprocessor** (robot observation -> model inputs, applied
  inside :meth:`predict_chunk` after :func:`check_observation`) and *carries* its
  **postprocessor** (model space -> robot space) as :attr:`postprocessor` without applying it:
  ``predict_chunk`` returns model space, as the Policy protocol requires, and the caller (policy
  worker / RTC merger) applies ``policy.postprocessor(chunk, observation=raw_observation)``.
* The preprocessor must output, per state-like feature (kind ``state``/``env``/``other``), a 1-D
  float vector (they are concatenated in metadata order) and, per image, ``float32 (3, H, W)``.
  The default preprocessor only converts images (:class:`ImagesToCHWFloat`).
* ``num_threads`` calls ``torch.set_num_threads`` (a process-wide setting) at construction and
  before each inference, default 1: on a shared CPU the control actors keep their rate.
* Weights are initialised under a forked, seeded torch RNG, so constructing a policy never
  disturbs the caller's RNG and equal seeds give bit-identical weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .policy import (
    ActionDimensionError,
    CheckpointError,
    ModelError,
    PolicyMetadata,
    check_observation,
)
from .processors import ImagesToCHWFloat, ProcessorPipeline

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["ACTConfig", "ACTPolicy", "TorchChunkPolicy", "TorchMissingError"]

WARMUP_IMAGE_SIZE = 32
"""Pixels used for an image axis declared ``-1`` (any size) when warming up."""


class TorchMissingError(ModelError, ImportError):
    """A torch policy was requested but torch is not installed (``pip install rtrun[torch]``)."""


def import_torch() -> Any:
    """Import and return torch, or raise :class:`TorchMissingError`."""
    try:
        import torch
    except ImportError as exc:
        raise TorchMissingError("the built-in policies need torch: pip install 'rtrun[torch]'") from exc
    return torch


@dataclass(frozen=True, slots=True, kw_only=True)
class ACTConfig:
    """Architecture of the built-in transformer (defaults: ~0.1 M parameters)."""

    dim: int = 64
    """Token width."""
    n_heads: int = 2
    """Attention heads (must divide ``dim``)."""
    dim_feedforward: int = 128
    """Hidden width of each transformer MLP."""
    n_encoder_layers: int = 1
    """Observation encoder layers."""
    n_decoder_layers: int = 1
    """Chunk decoder layers."""
    seed: int = 0
    """Seed of the weight initialisation (ignored when weights are loaded)."""

    def __post_init__(self) -> None:
        for name in ("dim", "n_heads", "dim_feedforward", "n_encoder_layers", "n_decoder_layers"):
            if getattr(self, name) < 1:
                raise ModelError(f"{type(self).__name__}.{name} must be >= 1")
        if self.dim % self.n_heads:
            raise ModelError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")

    def net_kwargs(self) -> dict[str, int]:
        """Keyword arguments of :class:`~rtrun.models._torch_util.ChunkTransformer`."""
        return {
            "dim": self.dim,
            "n_heads": self.n_heads,
            "dim_ff": self.dim_feedforward,
            "enc_layers": self.n_encoder_layers,
            "dec_layers": self.n_decoder_layers,
        }


def _split_features(metadata: PolicyMetadata) -> tuple[list[str], list[str]]:
    images = [k for k, s in metadata.input_features.items() if s.kind == "image"]
    states = [k for k, s in metadata.input_features.items() if s.kind != "image"]
    for key in states:
        if len(metadata.input_features[key].shape) != 1 or metadata.input_features[key].shape[0] < 1:
            raise ModelError(f"state-like feature {key!r} must have a fixed 1-D shape (n,)")
    for key in images:
        shape = metadata.input_features[key].shape
        if len(shape) != 3 or shape[2] != 3:
            raise ModelError(f"image feature {key!r} must have shape (H, W, 3), got {shape}")
    return states, images


class TorchChunkPolicy:
    """Shared machinery of the built-in torch policies (subclasses build ``self.net``)."""

    type_name: ClassVar[str] = ""
    """Checkpoint ``policy_type``."""
    config_cls: ClassVar[type[Any]] = ACTConfig

    def __init__(
        self,
        metadata: PolicyMetadata,
        config: Any = None,
        *,
        preprocessor: ProcessorPipeline | None = None,
        postprocessor: ProcessorPipeline | None = None,
        num_threads: int = 1,
    ) -> None:
        self._torch = import_torch()
        from . import _torch_util

        self._metadata = metadata
        self.config = config if config is not None else self.config_cls()
        self._states, self._images = _split_features(metadata)
        self.preprocessor = preprocessor or ProcessorPipeline(
            [ImagesToCHWFloat(self._images)], name="preprocessor"
        )
        self.postprocessor = postprocessor or ProcessorPipeline(name="postprocessor")
        self.num_threads = num_threads
        _torch_util.set_threads(num_threads)
        state_dim = sum(metadata.input_features[k].shape[0] for k in self._states)
        with _torch_util.seeded(self.config.seed):
            self.net = self._build(_torch_util, state_dim)
        self.net.eval()

    def _build(self, tu: Any, state_dim: int) -> nn.Module:
        raise NotImplementedError

    @property
    def metadata(self) -> PolicyMetadata:
        """Input features, action names, chunk size, fps, capabilities."""
        return self._metadata

    def reset(self) -> None:
        """Nothing to forget by default (the built-in policies are not stateful)."""

    def warmup(self) -> None:
        """Run one inference on a zero observation (allocates buffers, checks processors)."""
        prefix = np.zeros((1, self._metadata.n_actions), np.float32)
        use_prefix = prefix if self._metadata.supports_rtc_prefix else None
        self.predict_chunk(zero_observation(self._metadata), inference_delay=0, prefix=use_prefix)

    # -- observation -> tensors -----------------------------------------------------------------

    def _inputs(self, observation: Mapping[str, np.ndarray]) -> tuple[Any, list[Any]]:
        obs = self.preprocessor(check_observation(self._metadata, observation))
        torch = self._torch
        state = None
        if self._states:
            parts = [self._vector(k, obs) for k in self._states]
            state = torch.from_numpy(np.concatenate(parts))[None]
        images = [torch.from_numpy(self._image(k, obs))[None] for k in self._images]
        return state, images

    def _vector(self, key: str, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        arr = np.asarray(obs.get(key))
        want = self._metadata.input_features[key].shape
        if arr.shape != want or arr.dtype.kind not in "fiu":
            raise ModelError(
                f"preprocessor must output {key!r} as a numeric vector of shape {want}, "
                f"got {arr.dtype} {arr.shape}"
            )
        return arr.astype(np.float32, copy=False)

    def _image(self, key: str, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        arr = np.asarray(obs.get(key))
        if arr.ndim != 3 or arr.shape[0] != 3 or arr.dtype != np.float32:
            raise ModelError(
                f"preprocessor must output image {key!r} as float32 (3, H, W), got "
                f"{arr.dtype} {arr.shape} (add an ImagesToCHWFloat step)"
            )
        return np.ascontiguousarray(arr)

    def _to_chunk(self, out: torch.Tensor) -> np.ndarray:
        return out[0].detach().cpu().numpy().astype(np.float32, copy=True)

    # -- serialization --------------------------------------------------------------------------

    def to_config(self) -> dict[str, Any]:
        """``config.json`` content (policy type, metadata, architecture)."""
        return {
            "policy_type": self.type_name,
            "metadata": self._metadata.to_dict(),
            "model": asdict(self.config),
        }

    def model_state(self) -> dict[str, torch.Tensor]:
        """Weights as contiguous CPU tensors (for ``safetensors.torch.save_file``)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}

    def load_model_state(self, state: Mapping[str, torch.Tensor], *, source: str = "weights") -> None:
        """Load weights after checking names and shapes; raises :class:`CheckpointError`."""
        own = self.net.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = [
            f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
            for k in own
            if k in state and tuple(own[k].shape) != tuple(state[k].shape)
        ]
        if missing or unexpected or wrong:
            parts = [f"{source} do not match the {self.type_name} architecture in config.json"]
            if missing:
                parts.append(f"missing tensors: {_clip(missing)}")
            if unexpected:
                parts.append(f"unexpected tensors: {_clip(unexpected)}")
            parts.extend(f"wrong shape {w}" for w in wrong[:10])
            raise CheckpointError("\n  ".join(parts))
        self.net.load_state_dict(dict(state), strict=True)
        self.net.eval()

    def _check_prefix(self, prefix: np.ndarray | None, inference_delay: int) -> np.ndarray | None:
        if inference_delay < 0:
            raise ModelError(f"inference_delay must be >= 0, got {inference_delay}")
        if prefix is None:
            return None
        arr = np.asarray(prefix, dtype=np.float32)
        if arr.ndim != 2:
            raise ModelError(f"prefix must be 2-D (k, n_actions), got shape {arr.shape}")
        if arr.shape[1] != self._metadata.n_actions:
            raise ActionDimensionError(
                expected=self._metadata.n_actions, got=arr.shape[1], context="RTC prefix"
            )
        if not np.isfinite(arr).all():
            raise ModelError("prefix must be finite (got NaN or inf)")
        return arr if len(arr) else None


def _clip(names: list[str], n: int = 8) -> str:
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def zero_observation(metadata: PolicyMetadata) -> dict[str, np.ndarray]:
    """An all-zero observation matching ``metadata`` (``-1`` axes become 32 pixels)."""
    out: dict[str, np.ndarray] = {}
    for key, spec in metadata.input_features.items():
        shape = tuple(WARMUP_IMAGE_SIZE if s == -1 else s for s in spec.shape)
        out[key] = np.zeros(shape, dtype=np.dtype(spec.dtype))
    return out


class ACTPolicy(TorchChunkPolicy):
    """ACT-style chunking transformer; deterministic, ignores RTC prefixes.

    ``metadata.supports_rtc_prefix`` must be False: ACT predicts a chunk in one forward pass
    and cannot be guided (use :class:`rtrun.models.flow.FlowPolicy` for RTC guidance).
    """

    type_name: ClassVar[str] = "act"
    config_cls: ClassVar[type[Any]] = ACTConfig

    def _build(self, tu: Any, state_dim: int) -> nn.Module:
        if self._metadata.supports_rtc_prefix:
            raise ModelError("ACTPolicy cannot guide toward a prefix: supports_rtc_prefix=False")
        return tu.ACTNet(
            state_dim=state_dim,
            n_images=len(self._images),
            n_actions=self._metadata.n_actions,
            chunk=self._metadata.chunk_size,
            **self.config.net_kwargs(),
        )

    def predict_chunk(
        self,
        observation: Mapping[str, np.ndarray],
        *,
        inference_delay: int = 0,
        prefix: np.ndarray | None = None,
    ) -> np.ndarray:
        """``float32 (chunk_size, n_actions)`` in model space; ``prefix`` is validated, unused."""
        self._check_prefix(prefix, inference_delay)
        from ._torch_util import set_threads

        set_threads(self.num_threads)
        with self._torch.inference_mode():
            state, images = self._inputs(observation)
            return self._to_chunk(self.net(state, images))
