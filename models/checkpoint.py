"""Checkpoint directories of the built-in policies: save, load (validated), demo weights.

Layout (everything is data: JSON and safetensors, no pickle, no code)::

    <dir>/config.json                 {"format": "rtrun.checkpoint", "version": 1,
                                       "policy_type": "act" | "flow",
                                       "metadata": PolicyMetadata.to_dict(),
                                       "model": ACTConfig / FlowConfig fields}
    <dir>/model.safetensors           network weights (safetensors.torch)
    <dir>/preprocessor.json  + .safetensors    robot observation -> model inputs
    <dir>/postprocessor.json + .safetensors    model-space chunk -> robot-space chunk

:func:`load_policy` also accepts a LeRobot policy directory (``config.json`` with a ``type`` and
``policy_preprocessor.json``) and hands it to :mod:`rtrun.models.lerobot_adapter`.

Design decisions (the brief is silent)
--------------------------------------
* Policy types are looked up in a fixed table (:data:`POLICY_TYPES`); a ``policy_type`` string
  from a file never selects arbitrary code.
* Loading validates everything before returning: file presence, JSON shape, format/version,
  metadata rules, architecture fields, tensor names and shapes (all differences listed at
  once), the caller's expected action names (order matters: column -> motor contract), and a dry
  run of both processors on a zero observation / zero chunk, so a stats file of the wrong width
  fails at load time, not at the first inference on the robot.
* :func:`make_demo_checkpoint` writes random-init weights (seeded, deterministic) with
  ``mean_std`` processors scaled for degree-valued joints, so demos and tests need no hub.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .policy import CheckpointError, FeatureSpec, MetadataError, ModelError, Policy, PolicyMetadata
from .processors import (
    FeatureNorm,
    ImagesToCHWFloat,
    Normalize,
    ProcessorError,
    ProcessorPipeline,
    Unnormalize,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "POLICY_TYPES",
    "SO101_ACTION_NAMES",
    "is_lerobot_checkpoint",
    "load_policy",
    "make_demo_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "rtrun.checkpoint"
"""``format`` field of ``config.json``."""
CHECKPOINT_VERSION = 1
"""Bumped on an incompatible layout change."""
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PREPROCESSOR = "preprocessor"
POSTPROCESSOR = "postprocessor"

POLICY_TYPES: dict[str, tuple[str, str]] = {
    "act": ("act", "ACTPolicy"),
    "flow": ("flow", "FlowPolicy"),
}
"""``policy_type`` -> (module in ``rtrun.models``, class): the only classes a checkpoint can name."""

SO101_ACTION_NAMES: tuple[str, ...] = (
    "shoulder_pan.pos",
    "shoulder_lift.pos",
    "elbow_flex.pos",
    "wrist_flex.pos",
    "wrist_roll.pos",
    "gripper.pos",
)
"""LeRobot's SO-100/SO-101 action names (degrees, gripper 0-100): the demo default."""


def _policy_class(policy_type: str) -> type[Any]:
    import importlib

    if policy_type not in POLICY_TYPES:
        raise CheckpointError(f"unknown policy_type {policy_type!r}; built-in types: {sorted(POLICY_TYPES)}")
    module, name = POLICY_TYPES[policy_type]
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)  # type: ignore[no-any-return]


# -------------------------------------------------------------------------------------- save


def save_checkpoint(policy: Any, directory: str | Path) -> Path:
    """Write ``policy`` (an ``ACTPolicy`` / ``FlowPolicy``) as a checkpoint directory."""
    from safetensors.torch import save_file

    if not hasattr(policy, "model_state") or getattr(policy, "type_name", "") not in POLICY_TYPES:
        raise CheckpointError(
            f"save_checkpoint saves the built-in torch policies, got {type(policy).__name__}"
        )
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    config = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **policy.to_config()}
    (root / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    save_file(policy.model_state(), str(root / WEIGHTS_FILE), metadata={"format": "pt"})
    policy.preprocessor.save(root, PREPROCESSOR)
    policy.postprocessor.save(root, POSTPROCESSOR)
    return root


# -------------------------------------------------------------------------------------- load


def is_lerobot_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` looks like a LeRobot ``save_pretrained`` policy directory."""
    root = Path(directory)
    try:
        config = json.loads((root / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(config, dict)
        and "type" in config
        and "format" not in config
        and (root / "policy_preprocessor.json").is_file()
    )


def load_policy(
    directory: str | Path,
    *,
    action_names: Sequence[str] | None = None,
    num_threads: int = 1,
    **lerobot_options: Any,
) -> Policy:
    """Load a checkpoint directory as a :class:`Policy`; raises :class:`CheckpointError`.

    ``action_names``, when given, must equal the checkpoint's ordered action names. A LeRobot
    directory is delegated to :func:`rtrun.models.lerobot_adapter.load_lerobot_policy` (extra
    keyword arguments such as ``fps`` go there).
    """
    root = Path(directory)
    if is_lerobot_checkpoint(root):
        from .lerobot_adapter import load_lerobot_policy

        return load_lerobot_policy(  # type: ignore[no-any-return]
            root, action_names=action_names, num_threads=num_threads, **lerobot_options
        )
    if lerobot_options:
        raise CheckpointError(f"unexpected options for an rtrun checkpoint: {sorted(lerobot_options)}")
    config = _read_config(root)
    cls = _policy_class(str(config.get("policy_type")))
    metadata = _read_metadata(root, config)
    if action_names is not None and tuple(action_names) != metadata.action_names:
        raise CheckpointError(
            f"{root / CONFIG_FILE}: action names disagree (order is the column -> motor contract)"
            f"\n  checkpoint: {list(metadata.action_names)}\n  expected:   {list(action_names)}"
        )
    model_cfg = _read_model_config(root, cls, config)
    pre, post = _read_processor(root, PREPROCESSOR), _read_processor(root, POSTPROCESSOR)
    try:
        policy = cls(metadata, model_cfg, preprocessor=pre, postprocessor=post, num_threads=num_threads)
    except ModelError as exc:
        raise CheckpointError(f"{root / CONFIG_FILE}: {exc}") from exc
    policy.load_model_state(_read_weights(root), source=str(root / WEIGHTS_FILE))
    _dry_run_processors(root, policy)
    return policy  # type: ignore[no-any-return]


def _read_config(root: Path) -> dict[str, Any]:
    path = root / CONFIG_FILE
    if not root.is_dir():
        raise CheckpointError(f"checkpoint directory {root} does not exist")
    if not path.is_file():
        found = sorted(p.name for p in root.iterdir())
        raise CheckpointError(f"{path} is missing (directory holds {found})")
    try:
        config = json.loads(path.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an {CHECKPOINT_FORMAT} config (no matching 'format')")
    if config.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {config.get('version')!r} is not supported "
            f"(this rtrun reads version {CHECKPOINT_VERSION})"
        )
    return config


def _read_metadata(root: Path, config: Mapping[str, Any]) -> PolicyMetadata:
    if not isinstance(config.get("metadata"), dict):
        raise CheckpointError(f"{root / CONFIG_FILE}: missing 'metadata' object")
    try:
        return PolicyMetadata.from_dict(config["metadata"])
    except MetadataError as exc:
        raise CheckpointError(f"{root / CONFIG_FILE}: invalid metadata: {exc}") from exc


def _read_model_config(root: Path, cls: type[Any], config: Mapping[str, Any]) -> Any:
    fields = config.get("model", {})
    if not isinstance(fields, dict):
        raise CheckpointError(f"{root / CONFIG_FILE}: 'model' must be an object")
    try:
        return cls.config_cls(**fields)
    except (TypeError, ModelError) as exc:
        raise CheckpointError(f"{root / CONFIG_FILE}: invalid 'model' section: {exc}") from exc


def _read_processor(root: Path, name: str) -> ProcessorPipeline:
    try:
        return ProcessorPipeline.load(root, name)
    except ProcessorError as exc:
        raise CheckpointError(f"{root}: {name}: {exc}") from exc


def _read_weights(root: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = root / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file: {exc}") from exc


def _dry_run_processors(root: Path, policy: Any) -> None:
    from .act import zero_observation

    md: PolicyMetadata = policy.metadata
    obs = zero_observation(md)
    try:
        policy._inputs(obs)
    except (ModelError, ValueError) as exc:
        raise CheckpointError(f"{root}: preprocessor does not fit the policy inputs: {exc}") from exc
    chunk = np.zeros((md.chunk_size, md.n_actions), np.float32)
    try:
        out = policy.postprocessor(chunk, observation=obs)
    except (ModelError, ValueError) as exc:
        raise CheckpointError(f"{root}: postprocessor does not fit the action chunk: {exc}") from exc
    if np.shape(out) != chunk.shape:
        raise CheckpointError(f"{root}: postprocessor turns a {chunk.shape} chunk into {np.shape(out)}")


# ------------------------------------------------------------------------------------- demo


def make_demo_checkpoint(
    directory: str | Path,
    kind: str = "act",
    *,
    seed: int = 0,
    action_names: Sequence[str] = SO101_ACTION_NAMES,
    cameras: Mapping[str, tuple[int, int]] | None = None,
    chunk_size: int = 20,
    fps: float = 30.0,
    execution_horizon: int = 10,
    state_std: float = 50.0,
    action_std: float = 5.0,
    config: Any = None,
) -> Path:
    """Write a small random-init checkpoint (``kind`` "act" or "flow") and return its path.

    The policy reads ``observation.state`` (one value per action name) and, per entry of
    ``cameras`` (name -> (height, width)), ``observation.images.<name>`` RGB uint8. Processors
    are ``mean_std`` with zero mean and the given standard deviations (degree-valued joints), so
    robot-space actions stay within a few ``action_std`` of zero. Deterministic in ``seed``.
    """
    cls = _policy_class(kind)
    n = len(action_names)
    feats = {"observation.state": FeatureSpec(shape=(n,), dtype="float32", kind="state")}
    for cam, (h, w) in (cameras or {}).items():
        feats[f"observation.images.{cam}"] = FeatureSpec(shape=(h, w, 3), dtype="uint8", kind="image")
    metadata = PolicyMetadata(
        input_features=feats,
        action_names=tuple(action_names),
        chunk_size=chunk_size,
        fps=fps,
        supports_rtc_prefix=kind == "flow",
        execution_horizon=execution_horizon,
    )
    images = [k for k, s in feats.items() if s.kind == "image"]
    state_norm = FeatureNorm(mode="mean_std", stats={"mean": np.zeros(n), "std": np.full(n, state_std)})
    act_norm = FeatureNorm(mode="mean_std", stats={"mean": np.zeros(n), "std": np.full(n, action_std)})
    pre = ProcessorPipeline(
        [ImagesToCHWFloat(images), Normalize({"observation.state": state_norm})], name=PREPROCESSOR
    )
    post = ProcessorPipeline([Unnormalize({"action": act_norm})], name=POSTPROCESSOR)
    model_cfg = config if config is not None else cls.config_cls(seed=seed)
    policy = cls(metadata, model_cfg, preprocessor=pre, postprocessor=post)
    return save_checkpoint(policy, directory)
