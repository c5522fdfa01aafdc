"""Issue 16: the motor bus never restarts because its command source went away (in-process).

A source that *ends* (``EndOfStream``) or *vanishes* (``BrokenResourceError``, what a Zenoh port
raises once when the producing host dies) is an expected event: the arm holds (or applies its
safe state), state keeps publishing, restarts stay 0, and commands are accepted again when a
source delivers. Cross-process runs (SIGKILL/SIGSTOP of the source host): test_motor_bus_isolate.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import rtrun
from anyio.abc import TaskStatus
from rtrun._launch import _new_sender
from rtrun.actors._arms import fake_bus
from rtrun.actors._source import SourceChange, SourceEvent, WatchedInput
from rtrun.actors.messages import JointCommand, JointState
from rtrun.actors.motor_bus import MotorBusActor, MotorBusParams

from .test_motor_bus import _fresh_devices, anyio_backend, command  # noqa: F401  (fixtures)

FAR = 60.0
"""A goal far enough that, at 1 degree per tick, it takes > 1 s to reach."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptParams:
    """Parameters of :class:`Script`."""

    count: int = 3
    """Commands sent before the source ends."""
    crash_once: bool = False
    """First incarnation: crash after sending; the next one sends ``AGAIN`` and stays."""


AGAIN = -20.0
"""Target of the restarted source (``crash_once``)."""
CRASHED: list[bool] = []


class Script(rtrun.Actor):
    """Sends ``count`` far commands for shoulder_pan, then ends (a source that goes away)."""

    outputs = {"action": rtrun.Output(JointCommand)}
    Params = ScriptParams

    async def run(self, ctx: rtrun.ActorContext[ScriptParams], *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        again = ctx.params.crash_once and bool(CRASHED)
        for i in range(ctx.params.count):
            await ctx.output("action").send(command({"shoulder_pan": AGAIN if again else FAR}, seq=i))
            await anyio.sleep(0.02)
        if again:
            await anyio.sleep_forever()
        if ctx.params.crash_once:
            CRASHED.append(True)
            raise RuntimeError("the command source crashed")


def _graph(*, src: dict[str, Any] | None = None, restart: str = "temporary", **arm: Any) -> rtrun.GraphSpec:
    params = {"driver": "fake", "device": "arm", "rate_hz": 50.0, "max_relative_target": 1.0, **arm}
    edge = rtrun.InputSpec(name="command", source="src/action", capacity=1, policy="latest")
    return rtrun.GraphSpec(
        name="mbsrc",
        actors=(
            rtrun.ActorSpec(id="arm", kind=MotorBusActor, params=params, inputs={"command": edge}),
            rtrun.ActorSpec(id="src", kind=Script, params=src or {}, restart=restart),
        ),
        root=rtrun.SupervisorSpec(id="root", parent=None, intensity=3, period_s=10.0),
    )


async def _pan(graph: rtrun.Graph) -> float:
    tap = graph.receiver("arm/state", capacity=1, policy="latest")
    try:
        with anyio.fail_after(2):
            state: JointState = await tap.receive()
    finally:
        tap.close()
    return float(state.position[0])


async def _until(graph: rtrun.Graph, field: str, value: Any) -> None:
    with anyio.fail_after(10):
        while graph.context("arm").status.get(field) != value:
            await anyio.sleep(0.02)


def _restarts(graph: rtrun.Graph, actor: str) -> int:
    return next(a.restarts for a in graph.status().actors if a.id == actor)


async def _source_gone(graph: rtrun.Graph) -> None:
    with anyio.fail_after(10):
        while next(a.state for a in graph.status().actors if a.id == "src") != "stopped":
            await anyio.sleep(0.02)
    await anyio.sleep(0.05)  # a few ticks


async def test_ended_source_holds_keeps_publishing_and_accepts_a_new_source() -> None:
    async with rtrun.open_graph(_graph(safe_state="torque_off")) as graph:
        await _source_gone(graph)
        held = await _pan(graph)
        assert held < FAR - 20  # it was still approaching the far goal when the source ended
        await anyio.sleep(1.0)  # 50 ticks: without the hold it would move ~50 degrees on
        assert await _pan(graph) == pytest.approx(held, abs=1.5)
        assert fake_bus("arm").torque_enabled(1)  # hold, not the torque_off safe state
        # a new incarnation of the source reopens the channel (what the launcher does)
        sender = _new_sender(graph.context("arm").input("command"))
        await sender.send(command({"shoulder_pan": held - 10.0}, seq=9))
        await anyio.sleep(2.0)  # ~0.3 degree per tick: the fake joint lags the 1-degree cap
        assert await _pan(graph) == pytest.approx(held - 10.0, abs=1.0)
        assert graph.context("arm").status["command_source"] == "live"
        sender.close()
        assert _restarts(graph, "arm") == 0
        assert graph.context("arm").status["source_losses"] == 1


async def test_lost_source_can_apply_the_torque_off_safe_state_and_recover() -> None:
    async with rtrun.open_graph(_graph(safe_state="torque_off", on_source_lost="safe_state")) as graph:
        await _until(graph, "command_source", "lost:ended")
        await anyio.sleep(0.1)
        assert not fake_bus("arm").torque_enabled(1)
        seq = graph.context("arm").status["seq"]
        await anyio.sleep(0.2)
        assert graph.context("arm").status["seq"] > seq  # state keeps publishing, limp arm
        sender = _new_sender(graph.context("arm").input("command"))
        await sender.send(command({"shoulder_pan": 5.0}, seq=9))
        await _until(graph, "command_source", "live")
        await anyio.sleep(0.1)
        assert fake_bus("arm").torque_enabled(1)  # re-enabled for the returning source
        sender.close()
        assert _restarts(graph, "arm") == 0


async def test_crashed_source_restarts_alone_and_drives_the_arm_again() -> None:
    """An in-process source that crashes is restarted by its supervisor; the arm sees a gap, not an
    end: it never restarts and follows the new incarnation's commands."""
    CRASHED.clear()
    async with rtrun.open_graph(_graph(src={"crash_once": True}, restart="permanent")) as graph:
        with anyio.fail_after(10):
            while await _pan(graph) > AGAIN + 1.0:
                await anyio.sleep(0.1)
        assert _restarts(graph, "src") == 1 and _restarts(graph, "arm") == 0
        assert graph.context("arm").status["command_source"] == "live"


class VanishingPort:
    """An in-process receive port that raises ``BrokenResourceError`` once after :meth:`vanish`
    (exactly what a Zenoh receive port does when the producing host dies)."""

    def __init__(self, port: Any) -> None:
        self.port = port
        self._broken = False

    def vanish(self) -> None:
        self._broken = True

    def _check(self) -> None:
        if self._broken:
            self._broken = False
            raise anyio.BrokenResourceError

    def receive_nowait(self) -> Any:
        self._check()
        return self.port.receive_nowait()

    async def receive(self) -> Any:
        self._check()
        return await self.port.receive()

    def close(self) -> None:
        self.port.close()


async def test_vanished_source_is_not_a_crash() -> None:
    tx, rx = rtrun.open_channel(1, "latest")
    state_tx, state_rx = rtrun.open_channel(1, "latest")
    port = VanishingPort(rx)
    params = MotorBusParams(driver="fake", device="solo", rate_hz=50.0, max_relative_target=1.0)
    ctx = rtrun.ActorContext(
        id="arm",
        params=params,
        inputs={"command": port},
        outputs={"state": rtrun.OutputPort("state", [state_tx])},
    )
    async with anyio.create_task_group() as tg:
        await tg.start(MotorBusActor().run, ctx)
        await tx.send(command({"shoulder_pan": FAR}))
        await anyio.sleep(0.2)
        port.vanish()
        with anyio.fail_after(5):
            while ctx.status.get("command_source") != "lost:vanished":
                await anyio.sleep(0.02)
        held = float((await state_rx.receive()).position[0])
        await anyio.sleep(1.0)
        assert float((await state_rx.receive()).position[0]) == pytest.approx(held, abs=1.5)
        await tx.send(command({"shoulder_pan": held + 5.0}))  # the producer's next epoch
        await anyio.sleep(1.5)
        assert float((await state_rx.receive()).position[0]) == pytest.approx(held + 5.0, abs=1.0)
        assert ctx.status["command_source"] == "live"
        tg.cancel_scope.cancel()
    for end in (tx, rx, state_tx, state_rx):
        end.close()


async def test_watched_input_reports_lost_and_back() -> None:
    tx, rx = rtrun.open_channel(4, "block")
    port = VanishingPort(rx)
    watch: WatchedInput[int] = WatchedInput(port, "in", retry_s=0.05)
    await tx.send(1)
    assert await watch.receive() == 1
    port.vanish()
    lost = await watch.receive()
    assert lost == SourceChange(input="in", event=SourceEvent.LOST, reason="vanished")
    await tx.send(2)
    back = await watch.receive()
    assert back == SourceChange(input="in", event=SourceEvent.BACK, reason="delivered")
    assert await watch.receive() == 2
    tx.close()
    assert (await watch.receive()).reason == "ended"  # type: ignore[union-attr]
    with pytest.raises(anyio.WouldBlock):
        watch.receive_nowait()  # reported once, then quiet
    assert watch.lost == "ended" and watch.losses == 2
    rx.close()
