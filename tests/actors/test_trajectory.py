"""The scripted trajectory source: pure core (Hypothesis), and closed loops through the motor bus."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import rtrun
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from rtrun.actors._arms import forget_devices, sim_plant
from rtrun.actors.motor_bus import MotorBusActor
from rtrun.actors.trajectory import Trajectory, TrajectoryActor, TrajectoryParams, blend

AUTOJUMP_S = 0.01
"""Real idle time before the virtual clock jumps (longer than a bus call in a worker thread)."""


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Virtual time that waits for worker threads before jumping."""
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=AUTOJUMP_S)}


@pytest.fixture(autouse=True)
def _fresh_devices() -> Iterator[None]:
    forget_devices()
    yield
    forget_devices()


coord = st.floats(-150.0, 150.0, allow_nan=False)
waypoint_lists = st.integers(2, 5).flatmap(
    lambda k: st.lists(st.lists(coord, min_size=3, max_size=3), min_size=k, max_size=k)
)


@pytest.mark.parametrize("profile", ["minimum_jerk", "cosine", "linear"])
def test_blend_endpoints_and_monotonic(profile: Any) -> None:
    taus = np.linspace(0, 1, 101)
    values = [blend(t, profile) for t in taus]
    assert values[0] == 0.0 and values[-1] == pytest.approx(1.0)
    assert np.all(np.diff(values) >= 0)


@given(points=waypoint_lists, t=st.floats(0.0, 100.0), loop=st.booleans())
def test_samples_stay_within_the_waypoints_bounding_box(
    points: list[list[float]], t: float, loop: bool
) -> None:
    w = np.array(points)
    traj = Trajectory(waypoints=w, segment_s=1.5, dwell_s=0.25, loop=loop)
    x = traj.sample(t)
    assert np.all(x >= w.min(axis=0) - 1e-9) and np.all(x <= w.max(axis=0) + 1e-9)


@given(points=waypoint_lists, t=st.floats(0.0, 50.0))
def test_motion_is_continuous(points: list[list[float]], t: float) -> None:
    traj = Trajectory(waypoints=np.array(points), segment_s=2.0, dwell_s=0.0, loop=True)
    span = np.ptp(np.array(points), axis=0).max()
    dt = 1e-3
    # minimum jerk peaks at 1.875x the mean speed: a bound on the step over dt
    assert np.max(np.abs(traj.sample(t + dt) - traj.sample(t))) <= 1.875 * span / 2.0 * dt * 1.01 + 1e-9


def test_reaches_each_waypoint_then_holds_when_not_looping() -> None:
    w = np.array([[0.0, 0.0], [10.0, -10.0], [20.0, 5.0]])
    traj = Trajectory(waypoints=w, segment_s=1.0, dwell_s=0.5, loop=False)
    assert traj.sample(0.0) == pytest.approx(w[0])
    assert traj.sample(1.0) == pytest.approx(w[1])
    assert traj.sample(1.2) == pytest.approx(w[1])  # dwell
    assert traj.sample(2.5) == pytest.approx(w[2])
    assert traj.done(3.0) and not traj.done(2.9)
    assert traj.sample(10.0) == pytest.approx(w[2])


def test_looping_cycles_over_the_user_waypoints() -> None:
    w = np.array([[0.0], [1.0], [2.0], [3.0]])  # row 0 is only the start pose
    traj = Trajectory(waypoints=w, segment_s=1.0, loop=True)
    ends = [traj.sample(k)[0] for k in range(1, 9)]
    assert ends == pytest.approx([1, 2, 3, 1, 2, 3, 1, 2])


def test_params_reject_waypoints_outside_limits_or_of_wrong_length() -> None:
    with pytest.raises(ValueError, match="outside its limits"):
        TrajectoryParams(joints=("a",), waypoints=((5.0,),), position_limits={"a": (-1.0, 1.0)})
    with pytest.raises(ValueError, match="has 2 values"):
        TrajectoryParams(joints=("a",), waypoints=((1.0, 2.0),))
    with pytest.raises(ValueError, match="rate_hz"):
        TrajectoryParams(rate_hz=-1.0)


def closed_loop(arm: dict[str, Any], waypoints: list[list[float]]) -> rtrun.GraphSpec:
    return rtrun.GraphSpec(
        name="loop",
        actors=(
            rtrun.ActorSpec(
                id="arm",
                kind=MotorBusActor,
                params=arm,
                inputs={"command": rtrun.InputSpec(name="command", source="tour/command")},
            ),
            rtrun.ActorSpec(
                id="tour",
                kind=TrajectoryActor,
                params={
                    "waypoints": waypoints,
                    "segment_s": 1.0,
                    "dwell_s": 0.2,
                    "loop": False,
                    "rate_hz": 50.0,
                },
                inputs={"state": rtrun.InputSpec(name="state", source="arm/state")},
            ),
        ),
    )


async def wait_done(graph: rtrun.Graph) -> None:
    with anyio.fail_after(30):
        while not graph.context("tour").status.get("done"):
            await anyio.sleep(0.1)
    await anyio.sleep(1.0)  # settle


async def test_closed_loop_on_the_fake_arm() -> None:
    target = [20.0, -15.0, 30.0, 10.0, -25.0, 70.0]
    async with rtrun.open_graph(
        closed_loop({"driver": "fake", "rate_hz": 50.0}, [[0.0] * 5 + [50.0], target])
    ) as graph:
        await wait_done(graph)
        state = await graph.receiver("arm/state", capacity=1, policy="latest").receive()
        status = graph.context("arm").status
    assert state.position == pytest.approx(target, abs=0.2)
    assert status["rejected"] == 0


@pytest.mark.oracle
async def test_closed_loop_on_the_mujoco_plant() -> None:
    pytest.importorskip("mujoco", reason="the MuJoCo closed-loop test needs the 'sim' extra (mujoco)")
    from rtrun.drivers.mujoco_so101 import SimUnavailableError

    try:
        plant = await anyio.to_thread.run_sync(sim_plant, "so101-test")  # load before the clock runs
    except SimUnavailableError as exc:
        pytest.skip(f"the 'sim' extra is incomplete: {exc}")
    target = [20.0, -15.0, 30.0, 10.0, -25.0, 70.0]
    arm = {"driver": "sim", "device": "so101-test", "rate_hz": 100.0, "max_relative_target": 5.0}
    async with rtrun.open_graph(closed_loop(arm, [target])) as graph:
        await wait_done(graph)
        state = await graph.receiver("arm/state", capacity=1, policy="latest").receive()
        sim_rad = plant.positions()
    # joints loaded by gravity sag 1-2° with the model's kp (hardware.md §8): 3° tolerance
    assert state.position == pytest.approx(target, abs=3.0)
    # unit boundary: robot degrees/0-100 are the plant's radians through SimUnits
    assert np.degrees(sim_rad[:5]) == pytest.approx(state.position[:5], abs=0.5)
    lo, hi = -0.17453, 1.74533
    assert sim_rad[5] == pytest.approx(lo + state.position[5] / 100 * (hi - lo), abs=0.01)
    assert not math.isnan(float(state.position.sum()))


CONFIG = Path(__file__).resolve().parents[2] / "configs" / "sim_so101.toml"


async def test_sim_config_runs_with_the_fake_arm() -> None:
    overrides = [("arm", "driver", "fake"), ("front", "fps", 10.0)]
    async with rtrun.open_graph(CONFIG, overrides=overrides) as graph:
        await anyio.sleep(2.5)
        status = {a.id: a for a in graph.status().actors}
    assert status["tour"].status["seq"] > 100
    assert status["tour"].status["tracking_error"] < 10.0  # the arm follows the tour
    assert status["arm"].status["commands"] > 100 and status["arm"].status["rejected"] == 0
    assert status["front"].status["seq"] > 10
    assert graph.status().restarts == 0


@pytest.mark.oracle
async def test_sim_config_runs_on_the_mujoco_plant() -> None:
    pytest.importorskip("mujoco", reason="the sim demo needs the 'sim' extra (mujoco)")
    from rtrun.drivers.mujoco_so101 import SimUnavailableError

    try:
        await anyio.to_thread.run_sync(sim_plant, "so101")  # load before the virtual clock runs
    except SimUnavailableError as exc:
        pytest.skip(f"the 'sim' extra is incomplete: {exc}")
    async with rtrun.open_graph(CONFIG, overrides=[("front", "fps", 10.0)]) as graph:
        await anyio.sleep(2.5)
        status = {a.id: a for a in graph.status().actors}
    assert status["arm"].status["driver"] == "sim"
    assert status["tour"].status["tracking_error"] < 10.0
    assert status["arm"].status["rejected"] == 0
