"""PolicyMetadata, the Policy protocol and the worker-side checks in ``rtrun.models.policy``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from rtrun.models.policy import (
    ActionDimensionError,
    FeatureSpec,
    MetadataError,
    ModelError,
    ObservationMismatchError,
    Policy,
    PolicyMetadata,
    PolicyOutputError,
    check_action_dim,
    check_chunk,
    check_observation,
    rename_observation,
    suggest_rename_map,
    uncovered_actuators,
)
from rtrun.models.testing_policies import ScriptedPolicy, SleepPolicy

STATE = "observation.state"
TOP = "observation.images.top"
WRIST = "observation.images.wrist"


def meta(**kw: Any) -> PolicyMetadata:
    args: dict[str, Any] = {
        "input_features": {
            STATE: FeatureSpec(shape=(6,)),
            TOP: FeatureSpec(shape=(48, 64, 3), dtype="uint8", kind="image"),
            WRIST: FeatureSpec(shape=(-1, -1, 3), dtype="uint8", kind="image"),
        },
        "action_names": tuple(f"j{i}.pos" for i in range(6)),
        "chunk_size": 10,
        "fps": 30.0,
        **kw,
    }
    return PolicyMetadata(**args)


def obs(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        STATE: np.zeros(6, dtype=np.float32),
        TOP: np.zeros((48, 64, 3), dtype=np.uint8),
        WRIST: np.zeros((120, 160, 3), dtype=np.uint8),
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


# ---------------------------------------------------------------------------------- metadata


def test_metadata_roundtrips_through_json() -> None:
    m = meta(supports_rtc_prefix=True, stateful=True, execution_horizon=8)
    again = PolicyMetadata.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m
    assert (m.n_actions, m.dt) == (6, pytest.approx(1 / 30))


@pytest.mark.parametrize(
    ("kw", "rule"),
    [
        ({"action_names": ()}, "must not be empty"),
        ({"action_names": ("a", "a")}, "unique"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"fps": 0.0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"execution_horizon": -1}, "execution_horizon"),
        ({"input_features": {"x": (6,)}}, "FeatureSpec"),
    ],
)
def test_metadata_rules(kw: dict[str, Any], rule: str) -> None:
    with pytest.raises(MetadataError, match=rule):
        meta(**kw)


@pytest.mark.parametrize(
    ("kw", "rule"),
    [
        ({"shape": (0,)}, "shape"),
        ({"shape": (3,), "kind": "audio"}, "kind"),
        ({"shape": (3,), "dtype": "nope"}, "dtype"),
    ],
)
def test_feature_spec_rules(kw: dict[str, Any], rule: str) -> None:
    with pytest.raises(MetadataError, match=rule):
        FeatureSpec(**kw)


def test_malformed_dict_is_a_metadata_error() -> None:
    with pytest.raises(MetadataError, match="malformed"):
        PolicyMetadata.from_dict({"action_names": ["a"]})
    with pytest.raises(MetadataError, match="malformed feature"):
        FeatureSpec.from_dict({"dtype": "float32"})


def test_errors_share_the_model_base() -> None:
    for cls in (MetadataError, ObservationMismatchError, ActionDimensionError, PolicyOutputError):
        assert issubclass(cls, ModelError)


def test_testing_policies_satisfy_the_protocol() -> None:
    assert isinstance(SleepPolicy(0.0, 4, ["a"], sleep=None), Policy)
    assert isinstance(ScriptedPolicy(), Policy)


# ------------------------------------------------------------------------------ observations


def test_check_observation_accepts_and_drops_extras() -> None:
    m = meta()
    out = check_observation(m, obs(extra=np.zeros(3)))
    assert set(out) == set(m.input_features)
    float64_state = check_observation(m, obs(**{STATE: np.zeros(6)}))  # same dtype kind
    assert float64_state[STATE].dtype == np.float64


def test_missing_camera_suggests_rename_map() -> None:
    m = meta()
    o = obs(**{TOP: None, "observation.images.front": np.zeros((48, 64, 3), np.uint8)})
    with pytest.raises(ObservationMismatchError) as info:
        check_observation(m, o)
    err = info.value
    assert err.missing == (TOP,)
    assert err.suggested_rename_map == {"observation.images.front": TOP}
    text = str(err)
    assert "expected:" in text
    assert "provided:" in text
    assert "observation.images.front [48, 64, 3]" in text
    assert "rename_map = {'observation.images.front': 'observation.images.top'}" in text
    fixed = check_observation(m, o, rename_map=err.suggested_rename_map)
    assert set(fixed) == set(m.input_features)


def test_similar_names_disambiguate_same_shapes() -> None:
    m = meta()
    o = obs(
        **{
            TOP: None,
            WRIST: None,
            "cam_wrist": np.zeros((48, 64, 3), np.uint8),
            "images.top": np.zeros((48, 64, 3), np.uint8),
        }
    )
    provided = {k: v.shape for k, v in o.items()}
    assert suggest_rename_map(m, provided) == {"images.top": TOP, "cam_wrist": WRIST}


def test_shape_and_dtype_problems_are_listed_together() -> None:
    m = meta()
    o = obs(**{STATE: np.zeros(7, np.float32), TOP: np.zeros((48, 64, 3), np.float32)})
    with pytest.raises(ObservationMismatchError) as info:
        check_observation(m, o)
    text = str(info.value)
    assert "observation.state: shape must be [6], got [7]" in text
    assert "observation.images.top: dtype must be of the kind of uint8, got float32" in text
    assert info.value.missing == ()


def test_non_array_value() -> None:
    with pytest.raises(ObservationMismatchError, match="must be a numpy array"):
        check_observation(meta(), obs(**{STATE: [0.0] * 6}))


def test_rename_collision() -> None:
    with pytest.raises(ObservationMismatchError, match="two keys onto"):
        rename_observation({"a": np.zeros(1), "b": np.zeros(1)}, {"a": "b"})
    assert rename_observation({"a": np.zeros(1)}, None).keys() == {"a"}


# ------------------------------------------------------------------------------- actions


def test_check_chunk() -> None:
    m = meta()
    out = check_chunk(m, np.zeros((10, 6), dtype=np.float64))
    assert out.dtype == np.float32
    with pytest.raises(ActionDimensionError, match=r"\(6\), got 5"):
        check_chunk(m, np.zeros((10, 5)))
    with pytest.raises(PolicyOutputError, match="chunk_size=10"):
        check_chunk(m, np.zeros((9, 6)))
    with pytest.raises(PolicyOutputError, match="2-D"):
        check_chunk(m, np.zeros(6))
    with pytest.raises(PolicyOutputError, match="finite"):
        check_chunk(m, np.full((10, 6), np.nan))
    with pytest.raises(PolicyOutputError, match="numpy array"):
        check_chunk(m, [[0.0] * 6] * 10)
    with pytest.raises(PolicyOutputError, match="numbers"):
        check_chunk(m, np.zeros((10, 6), dtype=bool))


def test_check_action_dim() -> None:
    check_action_dim(meta(), np.zeros(6), context="action")
    with pytest.raises(ActionDimensionError, match="action: action dimension"):
        check_action_dim(meta(), np.zeros(4), context="action")


def test_uncovered_actuators() -> None:
    m = meta(action_names=("j0.pos", "j1.pos"))
    assert uncovered_actuators(m, ["j0.pos", "j1.pos", "gripper.pos"]) == ("gripper.pos",)
    assert uncovered_actuators(m, ["j1.pos", "j0.pos"]) == ()
    with pytest.raises(ActionDimensionError, match="not robot actuators"):
        uncovered_actuators(m, ["j0.pos"])
