"""Checkpoint directories: layout, exact round trip, demo weights, validation errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rtrun.models.policy import CheckpointError, FeatureSpec, Policy, PolicyMetadata

torch = pytest.importorskip("torch")

from rtrun.models.act import ACTConfig, ACTPolicy  # noqa: E402
from rtrun.models.checkpoint import (  # noqa: E402
    SO101_ACTION_NAMES,
    load_policy,
    make_demo_checkpoint,
    save_checkpoint,
)
from rtrun.models.flow import FlowPolicy  # noqa: E402
from rtrun.models.processors import (  # noqa: E402
    FeatureNorm,
    ImagesToCHWFloat,
    Normalize,
    ProcessorPipeline,
    Unnormalize,
)

CAMERAS = {"front": (24, 32)}


def _obs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "observation.state": rng.uniform(-90, 90, size=6).astype(np.float32),
        "observation.images.front": rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8),
    }


@pytest.fixture(scope="module")
def act_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_checkpoint(tmp_path_factory.mktemp("act"), "act", cameras=CAMERAS)


@pytest.mark.parametrize("kind", ["act", "flow"])
def test_demo_checkpoint_loads_and_is_deterministic(tmp_path: Path, kind: str) -> None:
    path = make_demo_checkpoint(tmp_path / kind, kind, seed=3, cameras=CAMERAS)
    names = sorted(p.name for p in path.iterdir())
    assert names == [
        "config.json",
        "model.safetensors",
        "postprocessor.json",
        "postprocessor.safetensors",
        "preprocessor.json",
        "preprocessor.safetensors",
    ]
    assert sum(p.stat().st_size for p in path.iterdir()) < 2_000_000
    a, b = load_policy(path), load_policy(path, action_names=SO101_ACTION_NAMES)
    assert isinstance(a, Policy) and isinstance(a, ACTPolicy if kind == "act" else FlowPolicy)
    assert a.metadata.action_names == SO101_ACTION_NAMES
    assert a.metadata.supports_rtc_prefix is (kind == "flow")
    ca = a.predict_chunk(_obs(), inference_delay=0, prefix=None)
    cb = b.predict_chunk(_obs(), inference_delay=0, prefix=None)
    np.testing.assert_array_equal(ca, cb)
    robot = a.postprocessor(ca, observation=_obs())  # type: ignore[attr-defined]
    np.testing.assert_allclose(robot, ca * 5.0, rtol=1e-6)  # action_std = 5 degrees
    again = make_demo_checkpoint(tmp_path / "again", kind, seed=3, cameras=CAMERAS)
    assert (again / "model.safetensors").read_bytes() == (path / "model.safetensors").read_bytes()


def test_save_and_load_round_trip_exactly(tmp_path: Path) -> None:
    md = PolicyMetadata(
        input_features={
            "observation.state": FeatureSpec(shape=(2,)),
            "observation.images.top": FeatureSpec(shape=(16, 20, 3), dtype="uint8", kind="image"),
        },
        action_names=("l", "r"),
        chunk_size=5,
        fps=15.0,
    )
    norm = FeatureNorm(mode="min_max", stats={"min": [-1.0, -2.0], "max": [1.0, 2.0]})
    pre = ProcessorPipeline(
        [ImagesToCHWFloat(["observation.images.top"]), Normalize({"observation.state": norm})],
        name="preprocessor",
    )
    post = ProcessorPipeline([Unnormalize({"action": norm})], name="postprocessor")
    pol = ACTPolicy(md, ACTConfig(dim=32, n_heads=4, seed=9), preprocessor=pre, postprocessor=post)
    save_checkpoint(pol, tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["format"] == "rtrun.checkpoint" and cfg["policy_type"] == "act"
    assert cfg["model"]["dim"] == 32 and cfg["metadata"]["action_names"] == ["l", "r"]
    loaded = load_policy(tmp_path)
    obs = {
        "observation.state": np.array([0.5, 1.0]),
        "observation.images.top": np.zeros((16, 20, 3), np.uint8),
    }
    np.testing.assert_array_equal(
        loaded.predict_chunk(obs, inference_delay=0, prefix=None),
        pol.predict_chunk(obs, inference_delay=0, prefix=None),
    )


def _rewrite(path: Path, **changes: object) -> None:
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_action_names_mismatch_is_explicit(act_dir: Path) -> None:
    reordered = tuple(reversed(SO101_ACTION_NAMES))
    with pytest.raises(CheckpointError, match=r"action names disagree.*\n.*checkpoint:.*\n.*expected:"):
        load_policy(act_dir, action_names=reordered)


def test_missing_things_are_named(tmp_path: Path, act_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "nope")
    with pytest.raises(CheckpointError, match=r"config\.json is missing"):
        load_policy(tmp_path)
    for name, pattern in [
        ("model.safetensors", r"model\.safetensors is missing"),
        ("postprocessor.json", r"postprocessor\.json is missing"),
        ("preprocessor.safetensors", r"preprocessor\.safetensors is missing"),
    ]:
        broken = _copy(act_dir, tmp_path / name)
        (broken / name).unlink()
        with pytest.raises(CheckpointError, match=pattern):
            load_policy(broken)


def test_malformed_configs(tmp_path: Path, act_dir: Path) -> None:
    cases = [
        ({"format": "other"}, "not an rtrun.checkpoint config"),
        ({"version": 7}, "version 7 is not supported"),
        ({"policy_type": "diffusion"}, "unknown policy_type 'diffusion'"),
        ({"model": {"dim": 64, "bogus": 1}}, "invalid 'model' section"),
        ({"metadata": {"action_names": []}}, "invalid metadata"),
    ]
    for i, (change, pattern) in enumerate(cases):
        broken = _copy(act_dir, tmp_path / str(i))
        _rewrite(broken, **change)
        with pytest.raises(CheckpointError, match=pattern):
            load_policy(broken)
    broken = _copy(act_dir, tmp_path / "json")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_policy(broken)


def test_weights_that_do_not_fit_list_every_difference(tmp_path: Path, act_dir: Path) -> None:
    broken = _copy(act_dir, tmp_path / "dim")
    cfg = json.loads((broken / "config.json").read_text())
    _rewrite(broken, model=dict(cfg["model"], dim=32))
    with pytest.raises(CheckpointError, match=r"wrong shape .*expected \(.*32.*got \(.*64"):
        load_policy(broken)
    broken = _copy(act_dir, tmp_path / "layers")
    _rewrite(broken, model=dict(cfg["model"], n_encoder_layers=2))
    with pytest.raises(CheckpointError, match=r"missing tensors: core\.encoder\.layers\.1\."):
        load_policy(broken)
    broken = _copy(act_dir, tmp_path / "flow")
    _rewrite(broken, policy_type="flow", metadata=dict(cfg["metadata"], supports_rtc_prefix=True))
    with pytest.raises(CheckpointError, match=r"unexpected tensors|missing tensors"):
        load_policy(broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_policy(broken)


def test_processors_that_do_not_fit_fail_at_load(tmp_path: Path, act_dir: Path) -> None:
    broken = _copy(act_dir, tmp_path / "post")
    wide = FeatureNorm(mode="mean_std", stats={"mean": np.zeros(5), "std": np.ones(5)})
    ProcessorPipeline([Unnormalize({"action": wide})]).save(broken, "postprocessor")
    with pytest.raises(CheckpointError, match="postprocessor does not fit the action chunk"):
        load_policy(broken)
    broken = _copy(act_dir, tmp_path / "pre")
    ProcessorPipeline([]).save(broken, "preprocessor")  # forgets the image conversion
    with pytest.raises(CheckpointError, match="preprocessor does not fit the policy inputs"):
        load_policy(broken)
    broken = _copy(act_dir, tmp_path / "steps")
    cfg = json.loads((broken / "preprocessor.json").read_text())
    cfg["steps"][0]["type"] = "os_system"
    (broken / "preprocessor.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown step type 'os_system'"):
        load_policy(broken)


def test_save_rejects_foreign_policies(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="built-in torch policies"):
        save_checkpoint(object(), tmp_path)
