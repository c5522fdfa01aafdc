"""Flow-matching policy: RTC guidance golden, prefix honoured, schedules, noise determinism."""

from __future__ import annotations

import numpy as np
import pytest
from rtrun.models.policy import FeatureSpec, ModelError, PolicyMetadata, check_chunk

torch = pytest.importorskip("torch")

from rtrun.models.flow import FlowConfig, FlowPolicy, guided_velocity  # noqa: E402
from rtrun.models.rtc import get_prefix_weights  # noqa: E402

T, A = 16, 3


def _metadata(horizon: int = 8) -> PolicyMetadata:
    return PolicyMetadata(
        input_features={
            "observation.state": FeatureSpec(shape=(A,)),
            "observation.images.wrist": FeatureSpec(shape=(16, 16, 3), dtype="uint8", kind="image"),
        },
        action_names=("x", "y", "z"),
        chunk_size=T,
        fps=30.0,
        supports_rtc_prefix=True,
        execution_horizon=horizon,
    )


OBS = {
    "observation.state": np.array([0.1, -0.2, 0.3], np.float32),
    "observation.images.wrist": np.full((16, 16, 3), 128, np.uint8),
}
PREFIX = np.stack([np.linspace(0.5, 1.5, 10)] * A, axis=1).astype(np.float32)  # a smooth ramp


@pytest.fixture(scope="module")
def policy() -> FlowPolicy:
    return FlowPolicy(_metadata(), FlowConfig(num_steps=8))


def _predict(pol: FlowPolicy, delay: int, prefix: np.ndarray | None) -> np.ndarray:
    pol.reset()  # same noise for every call: guided and unguided differ only by guidance
    return pol.predict_chunk(OBS, inference_delay=delay, prefix=prefix)


def test_guided_velocity_matches_the_lerobot_golden() -> None:
    # lerobot-rtc.md §5.2: x_t = linspace(-1, 1, 16), prev = 0.25 (6 rows), delay 2, time 0.6, H 5.
    x_t = torch.linspace(-1, 1, 16).reshape(8, 2)
    prev = torch.zeros(8, 2)
    prev[:6] = 0.25
    w = torch.from_numpy(get_prefix_weights(2, 5, 8, "LINEAR"))
    out = guided_velocity(x_t, 0.5 * x_t + 1, prev, w, 0.6, 10.0)
    golden = [
        [-2.8583, -2.5894], [-2.3206, -2.0517], [-1.1454, -0.9271], [-0.1725, -0.0047],
        [0.5982, 0.7154], [1.1667, 1.2333], [1.3000, 1.3667], [1.4333, 1.5000],
    ]  # fmt: skip
    np.testing.assert_allclose(out.numpy(), golden, atol=1e-4)


@pytest.mark.parametrize("delay", [0, 3, 5])
def test_guided_chunk_honours_the_prefix(policy: FlowPolicy, delay: int) -> None:
    free = _predict(policy, delay, None)
    guided = _predict(policy, delay, PREFIX)
    check_chunk(policy.metadata, guided)
    frozen = max(delay, 1)
    err_guided = np.abs(guided[:frozen] - PREFIX[:frozen]).max()
    err_free = np.abs(free[:frozen] - PREFIX[:frozen]).max()
    assert err_guided < 0.05 and err_guided < 0.1 * err_free
    assert not np.allclose(guided, free)
    # Smooth continuation: every step inside the guided horizon moves like the prefix does
    # (0.11 per row), far less than the unguided chunk's jump from the prefix.
    horizon = policy.metadata.execution_horizon
    steps = np.abs(np.diff(np.vstack([PREFIX[:frozen], guided[frozen:horizon]]), axis=0))
    assert steps.max() < 0.5 * np.abs(free[0] - PREFIX[0]).max()
    # Beyond the horizon the chunk is not pulled toward the prefix.
    assert np.abs(guided[horizon:] - PREFIX[horizon]).max() > 0.2


def test_schedules_and_short_prefix_weights() -> None:
    pol = FlowPolicy(_metadata(horizon=6), FlowConfig(num_steps=2, prefix_attention_schedule="ONES"))
    np.testing.assert_array_equal(pol.prefix_weights(2, 10), [1] * 6 + [0] * (T - 6))
    # The horizon is capped to the real prefix (never guided toward padding zeros).
    np.testing.assert_array_equal(pol.prefix_weights(1, 3), [1, 1, 1] + [0] * (T - 3))
    lin = FlowPolicy(_metadata(horizon=6), FlowConfig(num_steps=2))
    np.testing.assert_allclose(lin.prefix_weights(2, 10)[:7], [1, 1, 0.8, 0.6, 0.4, 0.2, 0], atol=1e-6)
    zeros = FlowPolicy(_metadata(), FlowConfig(num_steps=4, prefix_attention_schedule="ZEROS"))
    ones = FlowPolicy(_metadata(), FlowConfig(num_steps=4, prefix_attention_schedule="ONES"))
    a, b = _predict(zeros, 2, PREFIX), _predict(ones, 2, PREFIX)
    assert np.abs(a[2:8] - PREFIX[2:8]).mean() > np.abs(b[2:8] - PREFIX[2:8]).mean()


def test_noise_is_seeded_and_reset_replays(policy: FlowPolicy) -> None:
    policy.reset()
    first = policy.predict_chunk(OBS, inference_delay=0, prefix=None)
    second = policy.predict_chunk(OBS, inference_delay=0, prefix=None)
    assert not np.allclose(first, second)
    policy.reset()
    np.testing.assert_array_equal(policy.predict_chunk(OBS, inference_delay=0, prefix=None), first)
    other = FlowPolicy(_metadata(), FlowConfig(num_steps=8))
    np.testing.assert_array_equal(_predict(other, 0, None), first)


def test_empty_prefix_means_no_guidance(policy: FlowPolicy) -> None:
    np.testing.assert_array_equal(
        _predict(policy, 2, np.zeros((0, A), np.float32)), _predict(policy, 2, None)
    )


def test_config_rules() -> None:
    with pytest.raises(ModelError, match="prefix_attention_schedule must be one of"):
        FlowConfig(prefix_attention_schedule="COSINE")
    with pytest.raises(ModelError, match="max_guidance_weight must be > 0"):
        FlowConfig(max_guidance_weight=0.0)
    with pytest.raises(ModelError, match="num_steps must be >= 1"):
        FlowConfig(num_steps=0)
    with pytest.raises(ModelError, match="divisible"):
        FlowConfig(dim=10, n_heads=4)
