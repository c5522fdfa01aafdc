"""LeRobot adapter against a randomly initialised LeRobot ACT (test-oracles.md §3-§4, no hub)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hub
sys.modules.setdefault(
    "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
)  # torchvision shim (test-oracles.md §3)
torch = pytest.importorskip("torch")
pytest.importorskip("lerobot")

from rtrun.models.checkpoint import is_lerobot_checkpoint, load_policy  # noqa: E402
from rtrun.models.lerobot_adapter import LeRobotPolicy, load_lerobot_policy  # noqa: E402
from rtrun.models.policy import CheckpointError, Policy, check_chunk  # noqa: E402
from rtrun.models.processors import FeatureNorm, Normalize, ProcessorPipeline  # noqa: E402

pytestmark = pytest.mark.oracle

NAMES = ("j0", "j1", "j2", "j3", "j4", "j5")
STATE = "observation.state"
IMAGE = "observation.images.front"


def _stats() -> dict[str, dict[str, Any]]:
    return {
        STATE: {"mean": torch.linspace(-1, 1, 6), "std": torch.full((6,), 2.0)},
        IMAGE: {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)},
        "action": {"mean": torch.arange(6.0), "std": torch.full((6,), 3.0)},
    }


@pytest.fixture(scope="module")
def lerobot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(0)
    cfg = ACTConfig(
        input_features={
            STATE: PolicyFeature(type=FeatureType.STATE, shape=(6,)),
            IMAGE: PolicyFeature(type=FeatureType.VISUAL, shape=(3, 48, 64)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(6,))},
        pretrained_backbone_weights=None,
        dim_model=64,
        n_heads=2,
        dim_feedforward=128,
        n_encoder_layers=1,
        n_decoder_layers=1,
        chunk_size=10,
        n_action_steps=10,
        use_vae=False,
        device="cpu",
    )
    policy = ACTPolicy(cfg)
    pre, post = make_pre_post_processors(cfg, dataset_stats=_stats())
    root = tmp_path_factory.mktemp("lerobot_act")
    policy.save_pretrained(root)
    pre.save_pretrained(root)
    post.save_pretrained(root)
    return root


def _obs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        STATE: rng.normal(size=6).astype(np.float32),
        IMAGE: rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8),
    }


@pytest.fixture(scope="module")
def adapted(lerobot_dir: Path) -> LeRobotPolicy:
    return load_lerobot_policy(lerobot_dir, action_names=NAMES, fps=30.0)


def test_metadata_is_derived_from_the_lerobot_config(adapted: LeRobotPolicy) -> None:
    md = adapted.metadata
    assert isinstance(adapted, Policy)
    assert md.action_names == NAMES and md.chunk_size == 10 and md.fps == 30.0
    assert md.input_features[IMAGE].shape == (48, 64, 3)
    assert md.input_features[IMAGE].kind == "image" and md.input_features[IMAGE].dtype == "uint8"
    assert md.input_features[STATE].shape == (6,)
    assert md.supports_rtc_prefix is False


def test_chunk_equals_lerobots_own_pipeline(lerobot_dir: Path, adapted: LeRobotPolicy) -> None:
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    ref = ACTPolicy.from_pretrained(str(lerobot_dir))
    pre, post = make_pre_post_processors(ref.config, pretrained_path=str(lerobot_dir))
    obs = _obs()
    batch = {
        STATE: torch.from_numpy(obs[STATE]),
        IMAGE: torch.from_numpy(obs[IMAGE]).float().div(255).permute(2, 0, 1),
    }
    with torch.inference_mode():
        expected_model = ref.predict_action_chunk(pre(batch))
        expected_robot = post(expected_model)
    chunk = adapted.predict_chunk(obs, inference_delay=2, prefix=None)
    check_chunk(adapted.metadata, chunk)
    np.testing.assert_allclose(chunk, expected_model[0].numpy(), rtol=1e-5, atol=1e-6)
    robot = adapted.postprocessor(chunk)
    assert isinstance(adapted.postprocessor, ProcessorPipeline)  # converted to numpy
    np.testing.assert_allclose(robot, expected_robot[0].numpy(), rtol=1e-5, atol=1e-5)
    # Deterministic, and the observation matters.
    np.testing.assert_array_equal(adapted.predict_chunk(obs, inference_delay=0, prefix=None), chunk)
    assert not np.allclose(adapted.predict_chunk(_obs(1), inference_delay=0, prefix=None), chunk)
    adapted.reset()
    adapted.warmup()


def test_load_policy_detects_lerobot_directories(lerobot_dir: Path, tmp_path: Path) -> None:
    assert is_lerobot_checkpoint(lerobot_dir) and not is_lerobot_checkpoint(tmp_path)
    pol = load_policy(lerobot_dir, fps=15.0)
    assert isinstance(pol, LeRobotPolicy) and pol.metadata.fps == 15.0
    assert pol.metadata.action_names == tuple(f"action.{i}" for i in range(6))


def test_wrong_action_names_and_bad_directories(lerobot_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="outputs 6 actions but 2 action names"):
        load_lerobot_policy(lerobot_dir, action_names=("a", "b"))
    (tmp_path / "config.json").write_text('{"type": "act"}')
    (tmp_path / "policy_preprocessor.json").write_text("{}")
    with pytest.raises(CheckpointError, match="LeRobot could not load the policy"):
        load_lerobot_policy(tmp_path)


@pytest.mark.parametrize("mode", ["MEAN_STD", "MIN_MAX", "QUANTILES", "QUANTILE10"])
def test_normalize_matches_lerobots_normalizer(mode: str) -> None:
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
    from lerobot.processor import NormalizerProcessorStep
    from lerobot.processor.converters import create_transition

    rng = np.random.default_rng(0)
    lo = rng.normal(size=4).astype(np.float32)
    stats = {
        "mean": lo, "std": np.abs(lo) + 0.5, "min": lo, "max": lo + 2,
        "q01": lo, "q99": lo + 3, "q10": lo, "q90": lo + 1,
    }  # fmt: skip
    step = NormalizerProcessorStep(
        features={STATE: PolicyFeature(type=FeatureType.STATE, shape=(4,))},
        norm_map={FeatureType.STATE: NormalizationMode(mode)},
        stats={STATE: {k: torch.from_numpy(v) for k, v in stats.items()}},
    )
    x = rng.normal(size=(5, 4)).astype(np.float32)
    expected = step(create_transition(observation={STATE: torch.from_numpy(x)}))
    ours = Normalize({STATE: FeatureNorm(mode=mode.lower(), stats=stats)})
    np.testing.assert_allclose(
        ours.observation({STATE: x})[STATE], expected["observation"][STATE].numpy(), rtol=1e-6
    )
