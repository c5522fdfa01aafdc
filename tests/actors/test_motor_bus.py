"""The motor_bus actor against the in-memory fake bus, on virtual time (trio MockClock).

Worker threads see real time: the MockClock only jumps after AUTOJUMP_S of real idleness, so a
thread call finishes before virtual time moves on. Assertions use what the messages and the
fake bus record, never exact tick counts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
import numpy as np
import pytest
import rtrun
import trio.testing
from rtrun.actors._arms import FAKE_BUSES, fake_bus, forget_devices
from rtrun.actors.messages import JointCommand, JointState
from rtrun.actors.motor_bus import MotorBusActor, MotorBusFailure, MotorBusParams
from rtrun.drivers import FakeMotorBus, ServoError, TransientError

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
TICKS_PER_DEG = 4095 / 360


@pytest.fixture(autouse=True)
def _fresh_devices() -> Iterator[None]:
    forget_devices()
    yield
    forget_devices()


def spec(
    params: dict[str, Any], *, intensity: int = 3, backoff: rtrun.Backoff | None = None
) -> rtrun.GraphSpec:
    return rtrun.GraphSpec(
        name="mb",
        actors=(rtrun.ActorSpec(id="arm", kind=MotorBusActor, params={"driver": "fake", **params}),),
        root=rtrun.SupervisorSpec(
            id="root", parent=None, intensity=intensity, period_s=10.0, backoff=backoff
        ),
    )


def command(values: dict[str, float], seq: int = 0) -> JointCommand:
    pos = np.array(list(values.values()), dtype=np.float32)
    pos.flags.writeable = False
    return JointCommand(names=tuple(values), position=pos, seq=seq, t_issued=0.0)


def raw_command(names: tuple[str, ...], values: list[float]) -> JointCommand:
    return JointCommand(names=names, position=np.array(values, dtype=np.float32), seq=0, t_issued=0.0)


async def latest_state(graph: rtrun.Graph) -> JointState:
    tap = graph.receiver("arm/state", capacity=1, policy="latest")
    return await tap.receive()


def goal_writes(bus: Any) -> list[dict[int, int]]:
    return [values for register, values in bus.writes if register == "Goal_Position"]


AUTOJUMP_S = 0.02
"""Real idle time before the virtual clock jumps: longer than a fake-bus call in a worker thread,
so the clock never jumps while the actor waits for its thread (threshold 0 would)."""


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Virtual time (trio MockClock) that waits for worker threads before jumping."""
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=AUTOJUMP_S)}


async def test_publishes_state_in_robot_units_after_ready() -> None:
    async with rtrun.open_graph(spec({"rate_hz": 50.0})) as graph:
        # readiness = first successful read: the status is there before the body runs
        assert graph.context("arm").status["seq"] >= 1
        state = await latest_state(graph)
        assert state.names == JOINTS
        assert not state.position.flags.writeable
        # fake motors sit at raw 2048, calibration range 0..4095 (mid 2047.5)
        assert state.position[:5] == pytest.approx([0.5 * 360 / 4095] * 5, abs=1e-4)
        assert state.position[5] == pytest.approx(2048 / 4095 * 100, abs=1e-3)
        later = await latest_state(graph)
        assert later.seq > state.seq and later.t_read > state.t_read


async def test_command_moves_the_arm_and_stop_turns_torque_off() -> None:
    async with rtrun.open_graph(spec({"rate_hz": 50.0})) as graph:
        bus = FAKE_BUSES["arm"]
        assert all(bus.torque_enabled(i) for i in range(1, 7))
        async with graph.sender("arm/command") as tx:
            await tx.send(command({"elbow_flex": 30.0, "gripper": 80.0}))
        await anyio.sleep(1.0)
        state = await latest_state(graph)
        assert state.position[2] == pytest.approx(30.0, abs=0.2)
        assert state.position[5] == pytest.approx(80.0, abs=0.2)
        assert state.position[0] == pytest.approx(0.04, abs=0.1)  # untouched joint holds
    assert not any(bus.torque_enabled(i) for i in range(1, 7))  # safe_state = torque_off


async def test_max_relative_target_limits_every_step() -> None:
    cap = 2.0
    async with rtrun.open_graph(spec({"rate_hz": 50.0, "max_relative_target": cap})) as graph:
        bus = FAKE_BUSES["arm"]
        async with graph.sender("arm/command") as tx:
            await tx.send(command({"shoulder_pan": 40.0}))
        await anyio.sleep(3.0)
        state = await latest_state(graph)
        status = graph.context("arm").status
    assert state.position[0] == pytest.approx(40.0, abs=0.3)  # reached in steps
    goals = [w[1] for w in goal_writes(bus) if 1 in w]
    assert len(goals) >= 40 / cap  # at least goal/cap writes were needed
    steps = np.diff([2048, *goals])
    assert np.all(np.abs(steps) <= cap * TICKS_PER_DEG + 2)
    assert status["clamped_relative"] >= 19


async def test_position_limits_clamp_commands() -> None:
    params = {"rate_hz": 50.0, "position_limits": {"elbow_flex": [-10.0, 10.0]}}
    async with rtrun.open_graph(spec(params)) as graph:
        async with graph.sender("arm/command") as tx:
            await tx.send(command({"elbow_flex": 60.0}))
        await anyio.sleep(1.0)
        state = await latest_state(graph)
        assert state.position[2] == pytest.approx(10.0, abs=0.2)
        assert graph.context("arm").status["clamped_limits"] >= 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (raw_command(("elbow_flex",), [math.nan]), "non_finite"),
        (raw_command(("elbow_flex", "gripper"), [math.inf, 1.0]), "non_finite"),
        (raw_command(("elbow_flex", "gripper"), [1.0]), "dimension"),
        (raw_command(("elbow",), [1.0]), "unknown_joint"),
    ],
)
async def test_bad_commands_never_move_the_arm(
    bad: JointCommand, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rtrun.actor.arm")
    async with rtrun.open_graph(spec({"rate_hz": 50.0, "log_interval_s": 100.0})) as graph:
        bus = FAKE_BUSES["arm"]
        before = len(goal_writes(bus))
        async with graph.sender("arm/command") as tx:
            for _ in range(5):
                await tx.send(bad)
                await anyio.sleep(0.1)
        await anyio.sleep(0.2)
        status = graph.context("arm").status
        state = await latest_state(graph)
        assert len(goal_writes(bus)) == before  # never wrote a goal for them
        assert status["rejected"] == 5
        assert status["rejected_by_reason"] == {reason: 5}
        assert state.position[2] == pytest.approx(0.04, abs=0.1)
        assert graph.context("arm").restarts == 0
    lines = [r for r in caplog.records if "rejected command" in r.getMessage()]
    assert len(lines) == 1  # rate-limited: once per reason per interval
    assert reason in lines[0].getMessage()


async def test_hold_safe_state_keeps_torque_and_return_home() -> None:
    params = {"rate_hz": 50.0, "safe_state": "hold", "return_home": True, "return_home_s": 1.0}
    async with rtrun.open_graph(spec(params)) as graph:
        bus = FAKE_BUSES["arm"]
        async with graph.sender("arm/command") as tx:
            await tx.send(command({"wrist_flex": 45.0}))
        await anyio.sleep(1.0)
        assert (await latest_state(graph)).position[3] == pytest.approx(45.0, abs=0.3)
    assert all(bus.torque_enabled(i) for i in range(1, 7))  # hold
    last_goal = goal_writes(bus)[-1]
    assert last_goal[4] == pytest.approx(2048, abs=3)  # returned to the start-up pose


async def test_transient_error_is_tolerated_servo_error_restarts_and_reconnects() -> None:
    async with rtrun.open_graph(spec({"rate_hz": 50.0, "max_consecutive_errors": 2})) as graph:
        bus = FAKE_BUSES["arm"]
        bus.inject_fault("timeout", motor_id=3)
        await anyio.sleep(0.5)
        assert graph.context("arm").status["errors"] >= 1
        assert graph.context("arm").restarts == 0
        bus.inject_fault("overload", motor_id=3)
        with anyio.fail_after(5):
            while graph.context("arm").restarts == 0:
                await anyio.sleep(0.05)
            state = await latest_state(graph)  # the restarted actor reconnected and publishes
        status = graph.status()
        assert status.restarts == 1
        text = " ".join(e.reason for e in status.events if e.kind == "exited")
        assert "elbow_flex" in text and "overload" in text
        assert state.names == JOINTS


class GlitchError(TransientError):
    """A driver's own transient error, unknown to the actor by name."""


class GlitchyBus(FakeMotorBus):
    """A fake bus whose 20th and 21st ``sync_read`` raise a transient error nobody listed."""

    def __init__(self) -> None:
        super().__init__()
        self.sync_reads = 0

    def sync_read(self, register: str, motor_ids: Sequence[int]) -> dict[int, int]:
        self.sync_reads += 1
        if self.sync_reads in (20, 21):
            raise GlitchError("bus hiccup")
        return super().sync_read(register, motor_ids)


async def test_any_transient_driver_error_is_tolerated() -> None:
    """Retry-vs-fail follows ``TransientError``: a subclass the actor never heard of is retried."""
    bus = FAKE_BUSES["arm"] = GlitchyBus()
    async with rtrun.open_graph(spec({"rate_hz": 50.0, "max_consecutive_errors": 2})) as graph:
        with anyio.fail_after(5):
            while bus.sync_reads < 30:
                await anyio.sleep(0.05)
        assert graph.context("arm").status["errors"] == 2
        assert graph.context("arm").restarts == 0


async def test_vanished_port_restarts_until_replugged() -> None:
    backoff = rtrun.Backoff(initial=0.2, maximum=0.2, multiplier=1.0, jitter=0.0)
    async with rtrun.open_graph(spec({"rate_hz": 50.0}, intensity=20, backoff=backoff)) as graph:
        bus = FAKE_BUSES["arm"]
        bus.unplug()
        await anyio.sleep(1.0)
        assert graph.context("arm").restarts >= 1
        bus.replug()
        with anyio.fail_after(5):
            while graph.context("arm").status.get("state") != "running":
                await anyio.sleep(0.05)
            await latest_state(graph)


async def test_failure_error_is_typed_and_names_the_motor() -> None:
    outputs = {"state": rtrun.OutputPort("state", [])}
    ctx = rtrun.ActorContext(id="arm", params=MotorBusParams(driver="fake", device="solo"), outputs=outputs)
    fake_bus("solo").inject_fault("overheat", motor_id=2, count=5)
    with pytest.raises(MotorBusFailure) as info:
        await MotorBusActor().run(ctx)
    assert "shoulder_lift" in str(info.value) and "overheat" in str(info.value)
    assert isinstance(info.value.error, ServoError)


def test_params_are_validated_at_check_time() -> None:
    with pytest.raises(ValueError, match="needs a port"):
        MotorBusParams(driver="feetech")
    with pytest.raises(ValueError, match="exactly the joints"):
        MotorBusParams(max_relative_target={"elbow_flex": 1.0})
    with pytest.raises(ValueError, match="unknown joints"):
        MotorBusParams(position_limits={"elbow": (0.0, 1.0)})
    with pytest.raises(ValueError, match="rate_hz"):
        MotorBusParams(rate_hz=0.0)


async def test_sim_driver_falls_back_to_the_fake_arm_without_mujoco(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from rtrun.actors import _arms
    from rtrun.drivers.mujoco_so101 import SimUnavailableError

    def missing(name: str, *, scene: str = "arm") -> Any:
        raise SimUnavailableError("mujoco is not installed; pip install 'rtrun[sim]'")

    monkeypatch.setattr(_arms, "sim_plant", missing)
    async with rtrun.open_graph(spec({"driver": "sim", "rate_hz": 50.0})) as graph:
        state = await latest_state(graph)
    assert state.names == JOINTS
    assert any("falling back to the kinematic fake arm" in r.getMessage() for r in caplog.records)
