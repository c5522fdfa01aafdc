"""Processor steps and pipelines: exact values, round trips, serialization, clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rtrun.models.processors import (
    STEP_TYPES,
    AbsoluteToRelative,
    FeatureNorm,
    ImagesToCHWFloat,
    JointTransform,
    Normalize,
    ProcessorError,
    ProcessorPipeline,
    ProcessorStep,
    RelativeToAbsolute,
    Rename,
    UnitConversion,
    Unnormalize,
    register_step,
)

A = 4
floats = st.floats(-100.0, 100.0, allow_nan=False, width=32)
vectors = hnp.arrays(np.float32, (A,), elements=floats)
chunks = hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.just(A)), elements=floats)
positive = hnp.arrays(np.float32, (A,), elements=st.floats(0.125, 10.0, width=32))


def _norm(mode: str, center: np.ndarray, scale: np.ndarray) -> FeatureNorm:
    stats = {
        "identity": {},
        "mean_std": {"mean": center, "std": scale},
        "min_max": {"min": center, "max": center + scale},
        "quantiles": {"q01": center, "q99": center + scale},
        "quantile10": {"q10": center, "q90": center + scale},
    }[mode]
    return FeatureNorm(mode=mode, stats=stats)


modes = st.sampled_from(["identity", "mean_std", "min_max", "quantiles", "quantile10"])


# ----------------------------------------------------------------------------- normalization


def test_mean_std_and_min_max_values() -> None:
    norm = Normalize(
        {
            "observation.state": FeatureNorm(mode="mean_std", stats={"mean": [1.0, 2.0], "std": [2.0, 4.0]}),
            "action": FeatureNorm(mode="min_max", stats={"min": [0.0, -1.0], "max": [10.0, 1.0]}),
        }
    )
    pipe = ProcessorPipeline([norm])
    obs = pipe({"observation.state": np.array([3.0, 6.0]), "other": np.array([7])})
    np.testing.assert_allclose(obs["observation.state"], [1.0, 1.0], rtol=1e-6)
    assert obs["observation.state"].dtype == np.float32
    np.testing.assert_array_equal(obs["other"], [7])  # untouched key passes through
    np.testing.assert_allclose(pipe(np.array([5.0, 0.0])), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(pipe(np.array([[10.0, 1.0]])), [[1.0, 1.0]], atol=1e-6)


def test_quantiles_and_zero_range_follow_lerobot() -> None:
    q = FeatureNorm(mode="quantiles", stats={"q01": [0.0, 3.0], "q99": [4.0, 3.0]})
    out = Normalize({"action": q}).action(np.array([2.0, 3.0], dtype=np.float32), None)
    # q01..q99 maps to [-1, 1]; a zero range is replaced by eps, so the value maps to -1.
    np.testing.assert_allclose(out, [0.0, -1.0], atol=1e-6)


def test_from_data_computes_the_modes_stats() -> None:
    samples = np.arange(101, dtype=np.float32).reshape(101, 1)
    assert FeatureNorm.from_data("mean_std", samples).stats["mean"][0] == pytest.approx(50.0)
    q = FeatureNorm.from_data("quantiles", samples).stats
    assert (q["q01"][0], q["q99"][0]) == pytest.approx((1.0, 99.0))
    assert FeatureNorm.from_data("identity", samples).stats == {}


@settings(max_examples=60, deadline=None)
@given(mode=modes, center=vectors, scale=positive, x=chunks)
def test_normalize_round_trips(mode: str, center: np.ndarray, scale: np.ndarray, x: np.ndarray) -> None:
    fn = _norm(mode, center, scale)
    pipe = ProcessorPipeline([Normalize({"action": fn})])
    y = pipe(x)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(pipe.inverse(y), x, rtol=1e-4, atol=1e-3)
    # Unnormalize is Normalize run backwards.
    np.testing.assert_allclose(ProcessorPipeline([Unnormalize({"action": fn})])(y), x, atol=1e-3)


def test_image_stats_broadcast_over_chw() -> None:
    img = np.full((4, 5, 3), 255, dtype=np.uint8)
    img[..., 1] = 0
    pipe = ProcessorPipeline(
        [
            ImagesToCHWFloat(["cam"]),
            Normalize(
                {
                    "cam": FeatureNorm(
                        mode="mean_std",
                        stats={"mean": np.full((3, 1, 1), 0.5), "std": np.full((3, 1, 1), 0.25)},
                    )
                }
            ),
        ]
    )
    out = pipe({"cam": img})
    assert out["cam"].shape == (3, 4, 5)
    np.testing.assert_allclose(out["cam"][:, 0, 0], [2.0, -2.0, 2.0], rtol=1e-6)
    back = pipe.inverse(out)
    np.testing.assert_array_equal(back["cam"], img)


def test_stats_that_do_not_broadcast_name_the_feature() -> None:
    norm = Normalize(
        {"observation.state": FeatureNorm(mode="mean_std", stats={"mean": [0, 0, 0], "std": [1, 1, 1]})}
    )
    with pytest.raises(ProcessorError, match=r"observation.state.*broadcast"):
        norm.observation({"observation.state": np.zeros(4)})


def test_feature_norm_rejects_missing_or_bad_stats() -> None:
    with pytest.raises(ProcessorError, match=r"needs stats \['mean', 'std'\], missing \['std'\]"):
        FeatureNorm(mode="mean_std", stats={"mean": [0.0]})
    with pytest.raises(ProcessorError, match="mode must be one of"):
        FeatureNorm(mode="zscore", stats={})
    with pytest.raises(ProcessorError, match="finite"):
        FeatureNorm(mode="min_max", stats={"min": [math.nan], "max": [1.0]})


# ------------------------------------------------------------------------- rename / frames / units


def test_rename_and_inverse() -> None:
    step = Rename({"observation.images.front": "observation.images.top"})
    obs = {"observation.images.front": np.zeros(1), "observation.state": np.ones(1)}
    out = ProcessorPipeline([step])(obs)
    assert set(out) == {"observation.images.top", "observation.state"}
    assert set(ProcessorPipeline([step]).inverse(out)) == set(obs)
    assert "observation.images.front" in obs  # input not mutated


def test_rename_rejects_collisions() -> None:
    with pytest.raises(ProcessorError, match="one-to-one"):
        Rename({"a": "c", "b": "c"})
    with pytest.raises(ProcessorError, match="land on 'b'"):
        Rename({"a": "b"}).observation({"a": np.zeros(1), "b": np.zeros(1)})


def test_unit_conversion_deg_to_rad_on_chosen_columns() -> None:
    step = UnitConversion("deg", "rad", keys=["observation.state"], action=True, indices=[0, 1])
    out = step.action(np.array([180.0, 90.0, 50.0]), None)
    np.testing.assert_allclose(out, [math.pi, math.pi / 2, 50.0], rtol=1e-6)
    obs = step.observation({"observation.state": np.array([[360.0, 0.0, 1.0]])})
    np.testing.assert_allclose(obs["observation.state"], [[2 * math.pi, 0.0, 1.0]], rtol=1e-6)
    with pytest.raises(ProcessorError, match="different quantities"):
        UnitConversion("deg", "mm")
    with pytest.raises(ProcessorError, match="unit must be one of"):
        UnitConversion("deg", "grad")


def test_joint_transform_values() -> None:
    step = JointTransform(order=[2, 0, 1], sign=[1, -1, 1], offset=[0.0, 0.0, 10.0], action=True)
    out = step.action(np.array([1.0, 2.0, 3.0]), None)
    np.testing.assert_allclose(out, [3.0, -1.0, 12.0])
    np.testing.assert_allclose(step.inverse_action(out, None), [1.0, 2.0, 3.0])
    with pytest.raises(ProcessorError, match="permutation"):
        JointTransform(order=[0, 0, 1])
    with pytest.raises(ProcessorError, match=r"\+1 or -1"):
        JointTransform(sign=[2.0])
    with pytest.raises(ProcessorError, match="3 columns"):
        step.action(np.zeros(4), None)


def test_joint_transform_step_equals_the_drivers_embodiment_convention() -> None:
    """``rtrun.drivers.JointTransform`` (hardware.md §7) and this step are the same math with
    the identity order; the layering rule keeps them in two packages (issue 15), so this test
    keeps them from drifting apart until one is retired."""
    from rtrun.drivers import JointTransform as Convention

    signs, offsets = (1, -1, 1, 1, 1, 1), (0.0, 90.0, 90.0, 0.0, 0.0, 0.0)
    convention = Convention(signs=signs, offsets=offsets)
    step = JointTransform(sign=signs, offset=offsets, keys=["observation.state"], action=True)
    robot = np.array([[10.0, 20.0, 30.0, 40.0, 50.0, 60.0], [-5.0, 0.0, 5.0, 1.0, 2.0, 3.0]])
    model = step.observation({"observation.state": robot})["observation.state"]
    np.testing.assert_allclose(model, convention.to_model(robot), rtol=1e-6)
    np.testing.assert_allclose(step.inverse_action(model, None), convention.to_robot(model), rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    perm=st.permutations(list(range(A))),
    signs=st.lists(st.sampled_from([1.0, -1.0]), min_size=A, max_size=A),
    offsets=st.lists(floats, min_size=A, max_size=A),
    x=chunks,
)
def test_joint_transform_round_trips(
    perm: list[int], signs: list[float], offsets: list[float], x: np.ndarray
) -> None:
    step = JointTransform(order=perm, sign=signs, offset=offsets, keys=["s"], action=True)
    pipe = ProcessorPipeline([step])
    np.testing.assert_allclose(pipe.inverse(pipe(x)), x, atol=1e-4)
    np.testing.assert_allclose(pipe.inverse(pipe({"s": x}))["s"], x, atol=1e-4)


def test_relative_to_absolute_uses_the_observation_state() -> None:
    step = RelativeToAbsolute([0, 1, -1], state_key="observation.state")
    obs = {"observation.state": np.array([10.0, 20.0, 30.0, 40.0])}
    chunk = np.array([[1.0, 2.0, 0.5], [3.0, 4.0, 0.7]])
    out = ProcessorPipeline([step])(chunk, observation=obs)
    np.testing.assert_allclose(out, [[11.0, 22.0, 0.5], [13.0, 24.0, 0.7]], rtol=1e-6)
    back = ProcessorPipeline([AbsoluteToRelative([0, 1, -1])])(out, observation=obs)
    np.testing.assert_allclose(back, chunk, rtol=1e-6)
    with pytest.raises(ProcessorError, match="pass observation="):
        step.action(chunk, None)
    with pytest.raises(ProcessorError, match="exceeds state size"):
        RelativeToAbsolute([0, 9, -1]).action(chunk, obs)
    with pytest.raises(ProcessorError, match="len\\(state_index\\)"):
        step.action(np.zeros((2, 5)), obs)


# --------------------------------------------------------------------------------- pipelines


def _full_pipeline(center: np.ndarray, scale: np.ndarray, mode: str) -> ProcessorPipeline:
    return ProcessorPipeline(
        [
            Rename({"obs.raw": "observation.state"}),
            UnitConversion("deg", "rad", keys=["observation.state"], action=True, indices=[0, 2]),
            JointTransform(
                order=[1, 0, 3, 2],
                sign=[1, -1, 1, -1],
                offset=[0.1, 0, 0, 0],
                keys=["observation.state"],
                action=True,
            ),
            AbsoluteToRelative([0, 1, 2, -1]),
            Normalize(
                {"observation.state": _norm(mode, center, scale), "action": _norm("mean_std", center, scale)}
            ),
        ],
        name="pre",
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=modes, center=vectors, scale=positive, x=chunks, state=vectors)
def test_pipeline_round_trips_through_json_and_safetensors(
    tmp_path: Path, mode: str, center: np.ndarray, scale: np.ndarray, x: np.ndarray, state: np.ndarray
) -> None:
    pipe = _full_pipeline(center, scale, mode)
    pipe.save(tmp_path, "pre")
    loaded = ProcessorPipeline.load(tmp_path, "pre")
    assert loaded.to_config() == pipe.to_config()
    obs = {"obs.raw": state}
    ctx = {"observation.state": state}
    a, b = pipe(obs), loaded(obs)
    assert set(a) == set(b) == {"observation.state"}
    np.testing.assert_array_equal(a["observation.state"], b["observation.state"])
    np.testing.assert_array_equal(pipe(x, observation=ctx), loaded(x, observation=ctx))
    np.testing.assert_allclose(
        pipe.inverse(pipe(x, observation=ctx), observation=ctx), x, rtol=1e-3, atol=1e-2
    )


def test_saved_files_are_plain_json_and_safetensors(tmp_path: Path) -> None:
    pipe = _full_pipeline(np.zeros(A, np.float32), np.ones(A, np.float32), "min_max")
    cfg_path, st_path = pipe.save(tmp_path)
    assert (cfg_path.name, st_path.name) == ("pre.json", "pre.safetensors")
    cfg = json.loads(cfg_path.read_text())
    assert cfg["format"] == "rtrun.processor" and cfg["version"] == 1
    assert [s["type"] for s in cfg["steps"]] == [
        "rename",
        "unit_conversion",
        "joint_transform",
        "absolute_to_relative",
        "normalize",
    ]
    from safetensors.numpy import load_file

    assert sorted(load_file(str(st_path))) == ["4/0.max", "4/0.min", "4/1.mean", "4/1.std"]


def test_empty_pipeline_is_identity(tmp_path: Path) -> None:
    pipe = ProcessorPipeline(name="empty")
    x = np.arange(3.0)
    assert pipe(x) is x
    pipe.save(tmp_path)
    assert ProcessorPipeline.load(tmp_path, "empty").steps == ()


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ProcessorError, match="is missing"):
        ProcessorPipeline.load(tmp_path, "nope")
    pipe = ProcessorPipeline([Normalize({"action": _norm("mean_std", np.zeros(2), np.ones(2))})], name="p")
    pipe.save(tmp_path)
    cfg = json.loads((tmp_path / "p.json").read_text())

    bad = dict(cfg, steps=[{"type": "exec_python", "config": {}}])
    with pytest.raises(ProcessorError, match="unknown step type 'exec_python'"):
        ProcessorPipeline.from_config(bad, {})
    with pytest.raises(ProcessorError, match=r"lacks stats \['mean', 'std'\]"):
        ProcessorPipeline.from_config(cfg, {})
    with pytest.raises(ProcessorError, match=r"not an rtrun\.processor v1"):
        ProcessorPipeline.from_config(dict(cfg, version=99), {})
    (tmp_path / "p.safetensors").write_bytes(b"garbage")
    with pytest.raises(ProcessorError, match="cannot read processor 'p'"):
        ProcessorPipeline.load(tmp_path, "p")
    malformed = dict(cfg, steps=[{"type": "joint_transform", "config": {"order": [0], "bogus": 1}}])
    with pytest.raises(ProcessorError, match="malformed config"):
        ProcessorPipeline.from_config(malformed, {})


def test_pipeline_rejects_other_data() -> None:
    with pytest.raises(ProcessorError, match="observation dict or an action array"):
        ProcessorPipeline()([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(ProcessorError, match="ProcessorStep instances"):
        ProcessorPipeline([lambda x: x])  # type: ignore[list-item]
    with pytest.raises(ProcessorError, match="numeric"):
        ProcessorPipeline([UnitConversion("deg", "rad", action=True)])(np.array(["a"]))


def test_register_step_for_user_steps() -> None:
    class Double(ProcessorStep):
        type_name = "test_double"

        def action(self, action, observation):  # type: ignore[no-untyped-def]
            return action * 2

    try:
        register_step(Double)
        with pytest.raises(ProcessorError, match="already registered"):
            register_step(type("Other", (ProcessorStep,), {"type_name": "test_double"}))
        pipe = ProcessorPipeline.from_config(ProcessorPipeline([Double()]).to_config())
        np.testing.assert_array_equal(pipe(np.array([1.0])), [2.0])
    finally:
        STEP_TYPES.pop("test_double", None)
    with pytest.raises(ProcessorError, match="non-empty type_name"):
        register_step(type("NoName", (ProcessorStep,), {}))
