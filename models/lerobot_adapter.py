"""Serve a LeRobot policy directory (``save_pretrained`` output) through the rtrun Policy protocol.

Needs the optional ``lerobot`` package (and torch); both are imported lazily, so importing this
module is free. ``load_lerobot_policy(dir)`` reads ``config.json`` + ``model.safetensors`` and the
``policy_preprocessor`` / ``policy_postprocessor`` pipelines with LeRobot's own loaders (local
files only), then :class:`LeRobotPolicy` answers ``predict_chunk``:

1. :func:`~rtrun.models.policy.check_observation` against metadata derived from the LeRobot
   config (``VISUAL (3, H, W)`` features become RGB ``uint8 (H, W, 3)`` image features);
2. LeRobot's robot-side conversion (``prepare_observation_for_inference``: images ``/255`` and
   HWC -> CHW, state as float32, optional ``task`` string);
3. the LeRobot **preprocessor** (rename, batch dim, device, normalization);
4. ``policy.predict_action_chunk`` under ``torch.inference_mode()``, with LeRobot's RTC keyword
   arguments when the config enables RTC (``rtc_config.enabled``), the prefix padded/truncated
   to the execution horizon exactly as LeRobot's policy server does;
5. the first ``n_action_steps`` rows as ``float32`` — **model space**, as the protocol requires.

The postprocessor (model -> robot space) is exposed as :attr:`LeRobotPolicy.postprocessor`, like
the built-in policies. When LeRobot's postprocessor is only unnormalization + device moves (every
stock policy), it is converted into a native numpy :class:`ProcessorPipeline` (serializable,
invertible); otherwise a thin wrapper calls LeRobot's pipeline.

Design decisions (the brief is silent)
--------------------------------------
* LeRobot configs carry no action names; pass ``action_names`` (the column -> motor contract)
  or get ``action.0 …`` placeholders, which the ``rtc_merger`` names after the joints of the
  ``observation.state`` it sent (``<joint>.pos``, LeRobot's rule; ``actors/_lerobot_names.py``).
* The trained ``fps`` is not in a LeRobot policy config either: ``fps`` argument, default 30.
* Policies whose ``predict_action_chunk`` needs observation history (``n_obs_steps > 1``,
  e.g. Diffusion) are rejected with a clear error: the protocol passes one observation.
* No environment tweaks happen here (no ``HF_HUB_OFFLINE``, no torchvision shims): loading reads
  local files only, and a broken torchvision install is the user's to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .policy import (
    ActionDimensionError,
    CheckpointError,
    FeatureSpec,
    ModelError,
    PolicyMetadata,
    check_observation,
)
from .processors import NORM_MODES, FeatureNorm, ProcessorPipeline, Unnormalize

__all__ = ["LeRobotPolicy", "load_lerobot_policy"]

DEFAULT_FPS = 30.0
"""LeRobot's default control rate; LeRobot policy configs do not record the trained fps."""
_KINDS = {"STATE": "state", "ENV": "env", "VISUAL": "image"}


def load_lerobot_policy(
    directory: str | Path,
    *,
    action_names: Sequence[str] | None = None,
    fps: float = DEFAULT_FPS,
    device: str = "cpu",
    num_threads: int = 1,
    task: str | None = None,
) -> LeRobotPolicy:
    """Load a LeRobot policy directory; raises :class:`CheckpointError` with the reason."""
    root = Path(directory)
    try:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    except ImportError as exc:
        raise CheckpointError(
            f"{root} is a LeRobot policy directory but lerobot is not importable: {exc}"
        ) from exc
    try:
        config = PreTrainedConfig.from_pretrained(str(root), local_files_only=True)
        config.device = device
        _metadata(config, action_names, fps)  # names checked before the weights are read
        policy = get_policy_class(config.type).from_pretrained(
            str(root), config=config, local_files_only=True
        )
        pre, post = make_pre_post_processors(
            config,
            pretrained_path=str(root),
            preprocessor_overrides={"device_processor": {"device": device}},
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{root}: LeRobot could not load the policy: {exc}") from exc
    return LeRobotPolicy(
        policy, pre, post, action_names=action_names, fps=fps, num_threads=num_threads, task=task
    )


def _metadata(config: Any, action_names: Sequence[str] | None, fps: float) -> PolicyMetadata:
    feats: dict[str, FeatureSpec] = {}
    for key, ft in config.input_features.items():
        kind = _KINDS.get(ft.type.value, "other")
        shape = tuple(ft.shape)
        if kind == "image":
            shape = (shape[1], shape[2], shape[0])
        feats[key] = FeatureSpec(shape=shape, dtype="uint8" if kind == "image" else "float32", kind=kind)
    n_actions = int(config.output_features["action"].shape[0])
    names = (
        tuple(action_names) if action_names is not None else tuple(f"action.{i}" for i in range(n_actions))
    )
    if len(names) != n_actions:
        raise CheckpointError(
            f"the LeRobot policy outputs {n_actions} actions but {len(names)} action names were given"
        )
    rtc = getattr(config, "rtc_config", None)
    return PolicyMetadata(
        input_features=feats,
        action_names=names,
        chunk_size=int(config.n_action_steps),
        fps=fps,
        supports_rtc_prefix=bool(rtc is not None and rtc.enabled),
        stateful=False,
        execution_horizon=int(rtc.execution_horizon) if rtc is not None else 10,
    )


class LeRobotPolicy:
    """A loaded LeRobot policy behind the rtrun :class:`~rtrun.models.policy.Policy` protocol."""

    def __init__(
        self,
        policy: Any,
        preprocessor: Any,
        postprocessor: Any,
        *,
        action_names: Sequence[str] | None = None,
        fps: float = DEFAULT_FPS,
        num_threads: int = 1,
        task: str | None = None,
    ) -> None:
        import torch

        from ._torch_util import set_threads

        if int(getattr(policy.config, "n_obs_steps", 1)) > 1:
            raise CheckpointError(
                "LeRobot policies with n_obs_steps > 1 need observation history; the Policy "
                "protocol passes one observation per chunk"
            )
        self._torch = torch
        self.policy = policy.eval()
        self.lerobot_preprocessor = preprocessor
        self.lerobot_postprocessor = postprocessor
        self.postprocessor = convert_postprocessor(postprocessor)
        self._metadata = _metadata(policy.config, action_names, fps)
        self.num_threads = num_threads
        self.task = task
        set_threads(num_threads)

    @property
    def metadata(self) -> PolicyMetadata:
        """Features (images as RGB uint8 HWC), action names, chunk size, RTC capability."""
        return self._metadata

    def reset(self) -> None:
        """Reset the LeRobot policy and both of its processors."""
        self.policy.reset()
        self.lerobot_preprocessor.reset()
        self.lerobot_postprocessor.reset()

    def warmup(self) -> None:
        """One inference on an all-zero observation."""
        from .act import zero_observation

        self.predict_chunk(zero_observation(self._metadata), inference_delay=0, prefix=None)

    def _batch(self, obs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        # lerobot.utils.control_utils.prepare_observation_for_inference, without the batch dim
        # (the preprocessor's to_batch step adds it).
        torch = self._torch
        batch: dict[str, Any] = {}
        for key, value in obs.items():
            array = np.ascontiguousarray(value)
            # rtrun's producers mark arrays read-only; torch wants writable memory (a warning)
            t = torch.from_numpy(array if array.flags.writeable else array.copy())
            if self._metadata.input_features[key].kind == "image":
                t = t.type(torch.float32).div_(255).permute(2, 0, 1).contiguous()
            batch[key] = t.type(torch.float32)
        if self.task is not None:
            batch["task"] = self.task
        return batch

    def _rtc_kwargs(self, prefix: np.ndarray | None, inference_delay: int) -> dict[str, Any]:
        if not self._metadata.supports_rtc_prefix:
            return {}
        from .rtc import pad_prefix

        h = self._metadata.execution_horizon
        kwargs: dict[str, Any] = {"inference_delay": inference_delay, "execution_horizon": h}
        if prefix is not None and len(prefix):
            kwargs["prev_chunk_left_over"] = self._torch.from_numpy(pad_prefix(prefix, h))[None]
        return kwargs

    def predict_chunk(
        self,
        observation: Mapping[str, np.ndarray],
        *,
        inference_delay: int = 0,
        prefix: np.ndarray | None = None,
    ) -> np.ndarray:
        """``float32 (n_action_steps, n_actions)`` in model space (before the postprocessor)."""
        if inference_delay < 0:
            raise ModelError(f"inference_delay must be >= 0, got {inference_delay}")
        if prefix is not None and np.shape(prefix)[-1:] != (self._metadata.n_actions,):
            raise ActionDimensionError(
                expected=self._metadata.n_actions, got=int(np.shape(prefix)[-1]), context="RTC prefix"
            )
        from ._torch_util import set_threads

        set_threads(self.num_threads)
        obs = check_observation(self._metadata, observation)
        torch = self._torch
        with torch.inference_mode():
            batch = self.lerobot_preprocessor(self._batch(obs))
            kwargs = self._rtc_kwargs(prefix, inference_delay)
            chunk = self.policy.predict_action_chunk(batch, **kwargs)
        rows = self._metadata.chunk_size
        return chunk[0, :rows].detach().float().cpu().numpy().astype(np.float32, copy=True)


# ---------------------------------------------------------------------------- postprocessor


class LeRobotPostprocessor:
    """Numpy-facing wrapper around a LeRobot action pipeline (used when it cannot be converted)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def __call__(
        self, chunk: np.ndarray, *, observation: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """Model-space chunk -> robot-space chunk (``observation`` is unused)."""
        import torch

        out = self.pipeline(torch.from_numpy(np.asarray(chunk, dtype=np.float32)))
        return out.detach().float().cpu().numpy()


def convert_postprocessor(pipeline: Any) -> ProcessorPipeline | LeRobotPostprocessor:
    """Convert a LeRobot postprocessor (unnormalizer + device steps) to a native pipeline.

    Any other step keeps LeRobot in charge through :class:`LeRobotPostprocessor`.
    """
    from lerobot.processor import DeviceProcessorStep, UnnormalizerProcessorStep

    steps = []
    for step in pipeline.steps:
        if isinstance(step, DeviceProcessorStep):
            continue
        if not isinstance(step, UnnormalizerProcessorStep):
            return LeRobotPostprocessor(pipeline)
        steps.append(_convert_unnormalizer(step))
    return ProcessorPipeline(steps, name="postprocessor")


def _convert_unnormalizer(step: Any) -> Unnormalize:
    norms: dict[str, FeatureNorm] = {}
    stats = step.stats or {}
    for key, ft in step.features.items():
        mode = step.norm_map.get(ft.type)
        mode_name = "identity" if mode is None or key not in stats else str(mode.value).lower()
        needed = {k: np.asarray(v, dtype=np.float32) for k, v in stats.get(key, {}).items()}
        norms[key] = FeatureNorm(mode=mode_name, stats={k: needed[k] for k in NORM_MODES[mode_name]})
    return Unnormalize(norms, eps=float(step.eps))
