"""Normalization vs LeRobot 0.4.4's own arithmetic (``MotorsBus._normalize``/``_unnormalize``).

The oracle is a ``FeetechMotorsBus`` that is never connected: only its unit conversion runs.
Importing lerobot pulls in torch (several seconds), hence one module with few, dense examples.
"""

from __future__ import annotations

import os
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtrun.drivers.calibration import MotorCalibration, MotorNormMode, normalize, unnormalize

pytestmark = pytest.mark.oracle

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hub
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
pytest.importorskip("lerobot")
lerobot_bus = pytest.importorskip("lerobot.motors.motors_bus")
lerobot_feetech = pytest.importorskip("lerobot.motors.feetech")

ranges = st.tuples(st.integers(0, 4094), st.integers(1, 4095)).filter(lambda r: r[0] < r[1])


def oracle(mode: MotorNormMode, lo: int, hi: int, drive_mode: int) -> object:
    motors = {"j": lerobot_bus.Motor(1, "sts3215", lerobot_bus.MotorNormMode(mode.value))}
    calibration = {"j": lerobot_bus.MotorCalibration(1, drive_mode, 0, lo, hi)}
    return lerobot_feetech.FeetechMotorsBus("/nonexistent", motors, calibration=calibration)


@settings(max_examples=150, deadline=None)
@given(
    r=ranges,
    raw=st.integers(-200, 4300),
    value=st.floats(-400, 400),
    mode=st.sampled_from(list(MotorNormMode)),
    dm=st.integers(0, 1),
)
def test_matches_lerobot_exactly(
    r: tuple[int, int], raw: int, value: float, mode: MotorNormMode, dm: int
) -> None:
    bus = oracle(mode, *r, dm)
    c = MotorCalibration(id=1, drive_mode=dm, range_min=r[0], range_max=r[1])
    assert normalize(raw, mode, c) == bus._normalize({1: raw})[1]  # type: ignore[attr-defined]
    assert unnormalize(value, mode, c) == bus._unnormalize({1: value})[1]  # type: ignore[attr-defined]
