"""The teleop actor (fake leader → fake follower) and the real-hardware example graphs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
import rtrun
import trio.testing
from rtrun.actors._arms import FAKE_BUSES, forget_devices
from rtrun.actors.camera import FAKE_CAMERAS
from rtrun.actors.messages import Flag
from rtrun.actors.motor_bus import MotorBusActor
from rtrun.actors.teleop import TeleopActor, TeleopParams
from rtrun.drivers import FakeMotorBus, TransientError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TICKS_PER_DEG = 4095 / 360
AUTOJUMP_S = 0.02
"""Real idle time before the virtual clock jumps (longer than a bus call in a worker thread)."""


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Virtual time that waits for worker threads before jumping."""
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=AUTOJUMP_S)}


@pytest.fixture(autouse=True)
def _fresh_devices() -> Iterator[None]:
    forget_devices()
    FAKE_CAMERAS.clear()
    yield
    forget_devices()
    FAKE_CAMERAS.clear()


def teleop_graph(leader: dict[str, Any]) -> rtrun.GraphSpec:
    return rtrun.GraphSpec(
        name="teleop",
        actors=(
            rtrun.ActorSpec(
                id="follower",
                kind=MotorBusActor,
                params={"driver": "fake", "rate_hz": 50.0, "max_relative_target": 10.0},
                inputs={"command": rtrun.InputSpec(name="command", source="leader/command")},
            ),
            rtrun.ActorSpec(
                id="leader", kind=TeleopActor, params={"driver": "fake", "rate_hz": 50.0, **leader}
            ),
        ),
    )


async def follower_pose(graph: rtrun.Graph) -> Any:
    return (await graph.receiver("follower/state", capacity=1, policy="latest").receive()).position


async def test_leader_moves_the_follower_and_raises_the_intervention_flag() -> None:
    async with rtrun.open_graph(teleop_graph({"idle_s": 0.5})) as graph:
        flags = graph.receiver("leader/intervention", capacity=8)
        leader = FAKE_BUSES["leader"]
        assert not any(leader.torque_enabled(i) for i in range(1, 7))  # a limp leader
        leader.move_by_hand(3, round(2047.5 + 25.0 * TICKS_PER_DEG))  # elbow_flex to +25°
        leader.move_by_hand(6, round(0.8 * 4095))  # gripper to 80 %
        await anyio.sleep(1.5)
        pose = await follower_pose(graph)
        assert pose[2] == pytest.approx(25.0, abs=0.3)
        assert pose[5] == pytest.approx(80.0, abs=0.3)
        with anyio.fail_after(5):
            seen: list[Flag] = [await flags.receive(), await flags.receive()]
    assert [f.value for f in seen] == [True, False]  # moved, then idle
    assert all(f.name == "intervention" for f in seen)


async def test_joint_signs_flip_directions() -> None:
    async with rtrun.open_graph(teleop_graph({"joint_signs": {"shoulder_pan": -1.0}})) as graph:
        FAKE_BUSES["leader"].move_by_hand(1, round(2047.5 + 15.0 * TICKS_PER_DEG))
        await anyio.sleep(1.5)
        assert (await follower_pose(graph))[0] == pytest.approx(-15.0, abs=0.3)


class GlitchError(TransientError):
    """A driver's own transient error, unknown to the actor by name."""


class GlitchyBus(FakeMotorBus):
    """A fake bus whose 20th ``sync_read`` raises a transient error of a class nobody listed."""

    def __init__(self) -> None:
        super().__init__()
        self.sync_reads = 0

    def sync_read(self, register: str, motor_ids: Sequence[int]) -> dict[int, int]:
        self.sync_reads += 1
        if self.sync_reads == 20:
            raise GlitchError("bus hiccup")
        return super().sync_read(register, motor_ids)


async def test_any_transient_driver_error_skips_the_tick() -> None:
    """Retry-vs-fail follows ``TransientError``: a subclass the actor never heard of is retried."""
    leader = FAKE_BUSES["leader"] = GlitchyBus()
    async with rtrun.open_graph(teleop_graph({})) as graph:
        await anyio.sleep(1.0)
        status = graph.status()
    assert leader.sync_reads > 20
    assert status.restarts == 0


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="needs a port"):
        TeleopParams(driver="feetech")
    with pytest.raises(ValueError, match="joint_signs"):
        TeleopParams(joint_signs={"gripper": 2.0})


@pytest.mark.parametrize("name", ["so101_real.toml", "koch_real.toml", "sim_so101.toml"])
def test_example_configs_pass_check(name: str) -> None:
    compiled = rtrun.compile_graph(rtrun.load_graph(CONFIGS / name))
    assert compiled.actors


FAKE_OVERRIDES = {
    "so101_real.toml": [
        ("follower", "driver", "fake"),
        ("leader", "driver", "fake"),
        ("front", "driver", "synthetic"),
    ],
    "koch_real.toml": [
        ("follower", "driver", "fake"),
        ("leader", "driver", "fake"),
        ("wrist", "driver", "synthetic"),
    ],
}
"""How tests (and users without hardware) swap the real drivers: ``--set follower.driver=fake``..."""


@pytest.mark.parametrize("name", sorted(FAKE_OVERRIDES))
async def test_real_configs_run_with_fake_drivers(name: str) -> None:
    async with rtrun.open_graph(CONFIGS / name, overrides=FAKE_OVERRIDES[name]) as graph:
        FAKE_BUSES["leader"].move_by_hand(2, round(2047.5 - 20.0 * TICKS_PER_DEG))
        await anyio.sleep(2.0)
        pose = await follower_pose(graph)
        status = graph.status()
    assert pose[1] == pytest.approx(-20.0, abs=0.5)
    assert status.restarts == 0
    assert all(a.state == "running" for a in status.actors)
