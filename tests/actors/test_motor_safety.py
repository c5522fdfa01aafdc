"""Pure command checks of the motor-bus actor (sans-io, Hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rtrun.actors._motor_safety import CommandFilter, Rejection, normalize_relative_cap

JOINTS = ("a", "b", "c")
LIMITS = {"a": (-90.0, 90.0), "b": (-45.0, 45.0), "c": (0.0, 100.0)}

finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


def make(cap: object = 5.0) -> CommandFilter:
    return CommandFilter.create(JOINTS, limits=LIMITS, max_relative_target=cap)  # type: ignore[arg-type]


def test_valid_subset_command_merges_into_goal() -> None:
    f = make()
    assert f.accept(("c",), np.array([50.0])) is None
    assert f.accept(("a", "b"), np.array([1.0, 2.0])) is None
    assert f.goal == {"c": 50.0, "a": 1.0, "b": 2.0}


@pytest.mark.parametrize(
    ("names", "position", "reason"),
    [
        (("a", "b"), [1.0], "dimension"),
        (("a",), [[1.0]], "shape"),
        (("a",), ["x"], "shape"),
        (("a", "a"), [1.0, 2.0], "duplicate_joint"),
        (("a", "z"), [1.0, 2.0], "unknown_joint"),
        (("a", "b"), [1.0, math.nan], "non_finite"),
        (("a",), [math.inf], "non_finite"),
        ((), [], "empty"),
    ],
)
def test_rejections_name_the_rule_and_leave_the_goal(
    names: tuple[str, ...], position: list, reason: str
) -> None:
    f = make()
    f.accept(("a",), [3.0])
    rejection = f.accept(names, position)
    assert isinstance(rejection, Rejection)
    assert rejection.reason == reason
    assert rejection.message
    assert f.goal == {"a": 3.0}


def test_relative_cap_accepts_dict_and_int_and_refuses_bad_values() -> None:
    assert normalize_relative_cap(10, JOINTS) == {"a": 10.0, "b": 10.0, "c": 10.0}  # int coerced (§11 #13)
    assert normalize_relative_cap({"a": 1, "b": 2, "c": 3.5}, JOINTS) == {"a": 1.0, "b": 2.0, "c": 3.5}
    assert normalize_relative_cap(None, JOINTS) is None
    with pytest.raises(ValueError, match="exactly the joints"):
        normalize_relative_cap({"a": 1.0}, JOINTS)
    with pytest.raises(ValueError, match="finite and > 0"):
        normalize_relative_cap(0.0, JOINTS)
    with pytest.raises(ValueError, match="number"):
        normalize_relative_cap(True, JOINTS)


def test_lerobot_relative_clamp_example() -> None:
    f = make(cap=10.0)
    f.accept(JOINTS, [50.0, 0.0, 50.0])
    safe = f.safe_goal({"a": 0.0, "b": 0.0, "c": 45.0})
    assert safe is not None
    assert safe.goal == {"a": 10.0, "b": 0.0, "c": 50.0}
    assert safe.relative == ("a",)


def test_limits_clamp_and_are_reported() -> None:
    f = make(cap=None)
    f.accept(JOINTS, [120.0, -60.0, 10.0])
    safe = f.safe_goal({"a": 0.0, "b": 0.0, "c": 0.0})
    assert safe is not None
    assert safe.goal == {"a": 90.0, "b": -45.0, "c": 10.0}
    assert set(safe.limited) == {"a", "b"}


@given(
    goal=st.lists(finite, min_size=3, max_size=3),
    present=st.lists(finite, min_size=3, max_size=3),
    cap=st.floats(0.01, 100.0),
)
def test_safe_goal_is_within_limits_and_caps(goal: list[float], present: list[float], cap: float) -> None:
    f = make(cap=cap)
    assert f.accept(JOINTS, goal) is None
    here = dict(zip(JOINTS, present, strict=True))
    safe = f.safe_goal(here)
    assert safe is not None
    for name, value in safe.goal.items():
        lo, hi = LIMITS[name]
        assert lo <= value <= hi
        assert math.isfinite(value)
        inside = min(hi, max(lo, here[name]))
        # a step never exceeds the cap, except to come back inside the limits
        assert abs(value - here[name]) <= cap + 1e-9 or value == inside or value in (lo, hi)


@given(
    values=st.lists(
        st.one_of(finite, st.just(math.nan), st.just(math.inf), st.just(-math.inf)), min_size=3, max_size=3
    )
)
def test_any_non_finite_value_is_rejected_whole(values: list[float]) -> None:
    f = make()
    result = f.accept(JOINTS, values)
    if all(math.isfinite(v) for v in values):
        assert result is None
    else:
        assert isinstance(result, Rejection) and result.reason == "non_finite"
        assert f.goal == {}


@given(target=finite, start=finite, cap=st.floats(0.1, 20.0))
def test_repeated_ticks_converge_to_the_clamped_goal(target: float, start: float, cap: float) -> None:
    f = CommandFilter.create(("a",), limits={"a": (-90.0, 90.0)}, max_relative_target=cap)
    f.accept(("a",), [target])
    present = min(90.0, max(-90.0, start))
    for _ in range(int(200 / cap) + 2):
        safe = f.safe_goal({"a": present})
        assert safe is not None
        present = safe.goal["a"]  # an ideal servo reaches each written goal
    assert present == pytest.approx(min(90.0, max(-90.0, target)))


def test_create_validates_limits() -> None:
    with pytest.raises(ValueError, match="unknown joints"):
        CommandFilter.create(JOINTS, limits={"z": (0.0, 1.0)})
    with pytest.raises(ValueError, match="lower <= upper"):
        CommandFilter.create(JOINTS, limits={"a": (1.0, 0.0)})
