"""Units and calibration: LeRobot goldens (hardware.md §6-8), round trips, JSON files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rtrun.drivers.calibration import (
    SO_ARM_JOINTS,
    CalibrationError,
    JointLayout,
    JointTransform,
    MotorCalibration,
    MotorNormMode,
    SimUnits,
    calibration_path,
    load_calibration,
    normalize,
    save_calibration,
    unnormalize,
)

DEG, M100, R100 = MotorNormMode.DEGREES, MotorNormMode.RANGE_M100_100, MotorNormMode.RANGE_0_100


def cal(lo: int, hi: int, drive_mode: int = 0) -> MotorCalibration:
    return MotorCalibration(id=1, drive_mode=drive_mode, range_min=lo, range_max=hi)


# --------------------------------------------------------------------------- goldens


def test_range_m100_100_golden() -> None:
    c = cal(500, 3500)
    assert normalize(1001, M100, c) == pytest.approx(-66.6)
    assert unnormalize(-66.6, M100, c) == 1001
    assert normalize(501, M100, c) == pytest.approx(-99.9333, abs=1e-4)
    assert unnormalize(normalize(501, M100, c), M100, c) == 500  # int() truncation, as LeRobot


def test_degrees_golden_mid_point_centred() -> None:
    c = cal(1000, 3000)
    assert normalize(2500, DEG, c) == pytest.approx(43.956, abs=1e-3)
    assert unnormalize(normalize(2500, DEG, c), DEG, c) in (2499, 2500)
    assert normalize(2000, DEG, c) == 0.0
    assert normalize(5000, DEG, c) > 250  # degrees are not clamped


def test_range_modes_clamp_and_drive_mode() -> None:
    c = cal(1000, 3000, drive_mode=1)
    assert normalize(0, R100, c) == 100.0  # clamped to min, then inverted
    assert normalize(3000, R100, c) == 0.0
    assert normalize(3000, R100, c, apply_drive_mode=False) == 100.0
    assert normalize(1000, M100, c) == 100.0
    assert unnormalize(100.0, M100, c) == 1000
    assert unnormalize(150.0, R100, cal(1000, 3000)) == 3000  # clamped to 100
    assert normalize(2500, DEG, c) == normalize(2500, DEG, cal(1000, 3000))  # no drive_mode


def test_non_finite_never_becomes_ticks() -> None:
    for mode in MotorNormMode:
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(CalibrationError, match="non-finite"):
                unnormalize(bad, mode, cal(0, 4095))


def test_calibration_validation() -> None:
    with pytest.raises(CalibrationError, match="range_min"):
        cal(3000, 1000)
    with pytest.raises(CalibrationError, match="drive_mode"):
        cal(0, 10, drive_mode=2)
    with pytest.raises(CalibrationError, match="must be an int"):
        MotorCalibration(id=1, homing_offset=1.5)  # type: ignore[arg-type]
    with pytest.raises(CalibrationError, match="must be an int"):
        MotorCalibration(id=True)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- round trips

ranges = st.tuples(st.integers(0, 4094), st.integers(1, 4095)).filter(lambda r: r[0] < r[1])


@given(r=ranges, raw=st.integers(0, 4095), mode=st.sampled_from(list(MotorNormMode)), dm=st.integers(0, 1))
def test_raw_round_trip_within_one_tick(r: tuple[int, int], raw: int, mode: MotorNormMode, dm: int) -> None:
    c = cal(*r, drive_mode=dm)
    expected = raw if mode is DEG else min(r[1], max(r[0], raw))
    back = unnormalize(normalize(raw, mode, c), mode, c)
    assert expected - 1 <= back <= expected


@given(r=ranges, value=st.floats(-100, 100), dm=st.integers(0, 1))
def test_normalized_round_trip_within_one_tick_of_resolution(
    r: tuple[int, int], value: float, dm: int
) -> None:
    c = cal(*r, drive_mode=dm)
    raw = unnormalize(value, M100, c)
    step = 200 / (r[1] - r[0])
    assert normalize(raw, M100, c) == pytest.approx(value, abs=step + 1e-9)


# --------------------------------------------------------------------------- transforms


def test_joint_transform_golden() -> None:
    t = JointTransform(signs=(1, -1, 1, 1, 1, 1), offsets=(0, 90, 90, 0, 0, 0))
    robot = [10, 20, 30, 40, 50, 60]
    model = t.to_model(robot)
    assert model.tolist() == [10, 70, 120, 40, 50, 60]
    assert t.to_robot(model).tolist() == robot
    chunk = np.stack([model, model])
    assert t.to_robot(chunk).tolist() == [robot, robot]


def test_joint_transform_rules() -> None:
    assert JointTransform().to_model([1.0, 2.0]).tolist() == [1.0, 2.0]
    with pytest.raises(CalibrationError, match="set together"):
        JointTransform(signs=(1,))
    with pytest.raises(CalibrationError, match="equal length"):
        JointTransform(signs=(1, 1), offsets=(0,))
    with pytest.raises(CalibrationError, match=r"\+1 or -1"):
        JointTransform(signs=(2,), offsets=(0,))
    with pytest.raises(CalibrationError, match="at least 2"):
        JointTransform(signs=(1, 1), offsets=(0, 0)).to_robot([1.0])


@given(
    signs=st.lists(st.sampled_from([1, -1]), min_size=1, max_size=8),
    data=st.data(),
)
def test_joint_transform_round_trip(signs: list[int], data: st.DataObject) -> None:
    n = len(signs)
    offsets = data.draw(st.lists(st.floats(-180, 180), min_size=n, max_size=n))
    state = data.draw(st.lists(st.floats(-360, 360), min_size=n, max_size=n + 2))
    t = JointTransform(signs=tuple(signs), offsets=tuple(offsets))
    np.testing.assert_allclose(t.to_robot(t.to_model(state)), state, atol=1e-9)


def test_joint_layout() -> None:
    layout = JointLayout(names=SO_ARM_JOINTS)
    values = {n: float(i) for i, n in enumerate(reversed(SO_ARM_JOINTS))}
    vec = layout.to_array(values)
    assert vec.tolist() == [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    assert layout.from_array(vec) == values
    with pytest.raises(CalibrationError, match=r"missing \['gripper'\]"):
        layout.to_array({n: 0.0 for n in SO_ARM_JOINTS[:-1]})
    with pytest.raises(CalibrationError, match="shape"):
        layout.from_array([1.0, 2.0])


def test_sim_units_golden() -> None:
    sim = SimUnits()
    q = sim.to_sim([30, 30, 30, 30, 30, 50])
    np.testing.assert_allclose(q, [0.5236] * 5 + [0.7854], atol=1e-4)
    np.testing.assert_allclose(sim.to_robot(q), [30, 30, 30, 30, 30, 50], atol=1e-9)
    mids = SimUnits(joint_mids_deg=(10, 0, 0, 0, 0, 99))
    assert mids.to_sim([0, 0, 0, 0, 0, 0])[0] == pytest.approx(math.radians(10))
    assert mids.to_sim([0] * 6)[5] == pytest.approx(-0.17453)  # gripper ignores mids
    with pytest.raises(CalibrationError, match="6 values"):
        sim.to_sim([1.0])


# --------------------------------------------------------------------------- files


LEROBOT_FILE = {
    "shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1470, "range_min": 758, "range_max": 3292},
    "gripper": {"id": 6, "drive_mode": 0, "homing_offset": 1407, "range_min": 2031, "range_max": 3476},
}


def test_load_lerobot_file_and_save_round_trip(tmp_path) -> None:
    src = tmp_path / "arm.json"
    src.write_text(json.dumps(LEROBOT_FILE, indent=4))
    loaded = load_calibration(src)
    assert loaded["gripper"] == MotorCalibration(id=6, homing_offset=1407, range_min=2031, range_max=3476)
    out = tmp_path / "sub" / "copy.json"
    save_calibration(out, loaded)
    assert json.loads(out.read_text()) == LEROBOT_FILE
    assert list(json.loads(out.read_text())["gripper"]) == [
        "id",
        "drive_mode",
        "homing_offset",
        "range_min",
        "range_max",
    ]
    assert load_calibration(out) == loaded
    assert [p.name for p in out.parent.iterdir()] == ["copy.json"]  # no temp file left behind


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "non-empty object"),
        ('{"a": 1}', "must map to an object"),
        ('{"a": {"id": 1}}', r"missing \['drive_mode'"),
        (
            '{"a": {"id": 1, "drive_mode": 0, "homing_offset": 0, "range_min": 0, "range_max": 9, "x": 1}}',
            r"unknown \['x'\]",
        ),
        (
            '{"a": {"id": 1, "drive_mode": 0, "homing_offset": 0, "range_min": 9, "range_max": 9}}',
            "range_min",
        ),
        (
            '{"a": {"id": 1, "drive_mode": 0, "homing_offset": 0, "range_min": 0, "range_max": 9},'
            ' "b": {"id": 1, "drive_mode": 0, "homing_offset": 0, "range_min": 0, "range_max": 9}}',
            "unique",
        ),
    ],
)
def test_bad_files_name_file_and_rule(tmp_path, content: str, rule: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CalibrationError, match=rule) as info:
        load_calibration(path)
    assert str(path) in str(info.value)


def test_calibration_path_follows_lerobot_layout(tmp_path, monkeypatch) -> None:
    assert calibration_path("so_follower", "arm1", root=tmp_path) == tmp_path / "robots/so_follower/arm1.json"
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "cal"))
    assert calibration_path("koch_follower", "k") == tmp_path / "cal/robots/koch_follower/k.json"
    monkeypatch.delenv("HF_LEROBOT_CALIBRATION")
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    assert calibration_path("x", "y") == tmp_path / "home/calibration/robots/x/y.json"
