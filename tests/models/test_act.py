"""Built-in ACT-style policy: protocol conformance, determinism, validation, thread bounds."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
from rtrun.models.policy import (
    ActionDimensionError,
    FeatureSpec,
    ModelError,
    ObservationMismatchError,
    Policy,
    PolicyMetadata,
    check_chunk,
)
from rtrun.models.processors import ProcessorPipeline

torch = pytest.importorskip("torch")

from rtrun.models.act import ACTConfig, ACTPolicy  # noqa: E402

NAMES = ("a", "b", "c")


def _metadata(image: tuple[int, int, int] | None = (24, 32, 3)) -> PolicyMetadata:
    feats = {"observation.state": FeatureSpec(shape=(3,))}
    if image is not None:
        feats["observation.images.front"] = FeatureSpec(shape=image, dtype="uint8", kind="image")
    return PolicyMetadata(input_features=feats, action_names=NAMES, chunk_size=8, fps=30.0)


def _obs(seed: int = 0, hw: tuple[int, int] = (24, 32)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "observation.state": rng.normal(size=3).astype(np.float32),
        "observation.images.front": rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8),
        "extra.key": np.zeros(1),  # extra keys are ignored
    }


@pytest.fixture(scope="module")
def policy() -> ACTPolicy:
    return ACTPolicy(_metadata(), ACTConfig(seed=0))


def test_predict_chunk_follows_the_protocol(policy: ACTPolicy) -> None:
    assert isinstance(policy, Policy)
    chunk = policy.predict_chunk(_obs(), inference_delay=0, prefix=None)
    assert chunk.shape == (8, 3) and chunk.dtype == np.float32
    check_chunk(policy.metadata, chunk)
    policy.reset()
    policy.warmup()


def test_deterministic_in_seed_and_sensitive_to_inputs(policy: ACTPolicy) -> None:
    obs = _obs()
    a = policy.predict_chunk(obs, inference_delay=0, prefix=None)
    b = ACTPolicy(_metadata(), ACTConfig(seed=0)).predict_chunk(obs, inference_delay=0, prefix=None)
    c = ACTPolicy(_metadata(), ACTConfig(seed=1)).predict_chunk(obs, inference_delay=0, prefix=None)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    d = policy.predict_chunk(_obs(seed=1), inference_delay=0, prefix=None)
    assert not np.allclose(a, d)
    # A prefix is validated but does not change ACT's output.
    e = policy.predict_chunk(obs, inference_delay=3, prefix=np.ones((4, 3), np.float32))
    np.testing.assert_array_equal(a, e)


def test_construction_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ACTPolicy(_metadata(image=None))
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


def test_any_image_size_when_declared_minus_one() -> None:
    pol = ACTPolicy(_metadata(image=(-1, -1, 3)))
    for hw in ((24, 32), (40, 20)):
        assert pol.predict_chunk(_obs(hw=hw), inference_delay=0, prefix=None).shape == (8, 3)
    pol.warmup()


def test_state_only_policy() -> None:
    pol = ACTPolicy(_metadata(image=None))
    obs = {"observation.state": np.ones(3, np.float64)}
    assert pol.predict_chunk(obs, inference_delay=0, prefix=None).shape == (8, 3)


def test_bad_inputs_raise_clear_errors(policy: ACTPolicy) -> None:
    obs = _obs()
    del obs["observation.images.front"]
    with pytest.raises(ObservationMismatchError, match=r"missing:\s+observation\.images\.front"):
        policy.predict_chunk(obs, inference_delay=0, prefix=None)
    with pytest.raises(ActionDimensionError, match="RTC prefix"):
        policy.predict_chunk(_obs(), inference_delay=0, prefix=np.zeros((2, 5), np.float32))
    with pytest.raises(ModelError, match="inference_delay must be >= 0"):
        policy.predict_chunk(_obs(), inference_delay=-1, prefix=None)
    with pytest.raises(ModelError, match="finite"):
        policy.predict_chunk(_obs(), inference_delay=0, prefix=np.full((2, 3), np.nan))


def test_preprocessor_must_produce_chw_float_images() -> None:
    pol = ACTPolicy(_metadata(), preprocessor=ProcessorPipeline())
    with pytest.raises(ModelError, match="ImagesToCHWFloat"):
        pol.predict_chunk(_obs(), inference_delay=0, prefix=None)


def test_configuration_rules() -> None:
    with pytest.raises(ModelError, match="divisible by n_heads"):
        ACTConfig(dim=10, n_heads=3)
    with pytest.raises(ModelError, match="n_decoder_layers must be >= 1"):
        ACTConfig(n_decoder_layers=0)
    with pytest.raises(ModelError, match="supports_rtc_prefix"):
        ACTPolicy(dataclasses.replace(_metadata(), supports_rtc_prefix=True))
    bad = PolicyMetadata(
        input_features={"observation.images.x": FeatureSpec(shape=(3, 24, 32), kind="image")},
        action_names=NAMES,
        chunk_size=4,
        fps=10.0,
    )
    with pytest.raises(ModelError, match=r"must have shape \(H, W, 3\)"):
        ACTPolicy(bad)


def test_num_threads_bounds_torch() -> None:
    before = torch.get_num_threads()
    try:
        ACTPolicy(_metadata(image=None), num_threads=1)
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="num_threads must be >= 1"):
            ACTPolicy(_metadata(image=None), num_threads=0)
    finally:
        torch.set_num_threads(before)


def test_importing_models_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import rtrun.models, rtrun.models.processors, rtrun.models.act, rtrun.models.flow\n"
        "import rtrun.models.checkpoint, rtrun.models.lerobot_adapter\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'lerobot' not in sys.modules, 'lerobot imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stderr
