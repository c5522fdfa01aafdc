"""action_queue actor: one action per tick, merges, staleness, fallbacks, interpolation, resets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import numpy as np
import pytest
import rtrun
from rtrun.actors.action_queue import ActionQueueActor, ActionQueueParams, QueueCore, next_episode
from rtrun.actors.messages import EpisodeControl, JointCommand
from rtrun.actors.rtc_messages import MergeChunk, QueueStatus

from ..conftest import VIRTUAL

virtual = pytest.mark.parametrize("anyio_backend", VIRTUAL)

NAMES = ("a.pos", "b.pos", "gripper.pos")


class Harness:
    """One actor on hand-made channels: ``send[input]`` feeds it, ``out[output]`` collects.

    Only the ``feed`` inputs are connected (``ctx.has_input``); the others end at once.
    """

    def __init__(
        self, cls: type[rtrun.Actor], params: Any, *, feed: tuple[str, ...], actor_id: str = "x"
    ) -> None:
        self.send: dict[str, Any] = {}
        inputs: dict[str, Any] = {}
        for name in cls.inputs:
            tx, rx = rtrun.open_channel(64, "block")
            inputs[name] = rx
            self.send[name] = tx
            if name not in feed:
                tx.close()  # unconnected: end-of-stream at once
        self.out: dict[str, Any] = {}
        outputs: dict[str, Any] = {}
        for name in cls.outputs:
            tx, rx = rtrun.open_channel(100_000, "drop_oldest")
            outputs[name] = rtrun.OutputPort(name, [tx])
            self.out[name] = rx
        self.ctx: rtrun.ActorContext[Any] = rtrun.ActorContext(
            id=actor_id, params=params, inputs=inputs, outputs=outputs, connected=frozenset(feed)
        )
        self.cls = cls
        self.collected: dict[str, list[Any]] = {}
        self.closed = False

    def drain(self, output: str) -> list[Any]:
        """Every message sent on ``output`` so far (kept after the harness closed)."""
        items = self.collected.setdefault(output, [])
        port = self.out[output]
        while not self.closed:
            try:
                items.append(port.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        return items

    def close(self) -> None:
        for name in self.out:
            self.drain(name)
        self.closed = True
        for port in (*self.send.values(), *self.out.values(), *self.ctx.inputs.values()):
            port.close()
        for port in self.ctx.outputs.values():
            port.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Harness]:
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(lambda task_status: self.cls().run(self.ctx, task_status=task_status))
                yield self
                tg.cancel_scope.cancel()
        finally:
            self.close()


def ramp(rows: int, base: float = 0.0, width: int = len(NAMES)) -> np.ndarray:
    return np.repeat((base + np.arange(rows, dtype=np.float32))[:, None], width, axis=1)


def chunk(
    rows: int,
    *,
    seq: int = 1,
    episode: int = 0,
    delay: int = 0,
    latency: float = 0.0,
    base: float = 0.0,
    names: tuple[str, ...] = NAMES,
) -> MergeChunk:
    c = ramp(rows, base, len(names))
    c.flags.writeable = False
    return MergeChunk(
        episode=episode, epoch=0, seq=seq, chunk_model=c, chunk_robot=c, action_names=names,
        real_delay=delay, idx_before=None, latency_s=latency,
    )  # fmt: skip


def params(**kw: Any) -> ActionQueueParams:
    kw.setdefault("fps", 10.0)
    kw.setdefault("gripper_range", None)
    return ActionQueueParams(**kw)


def values(cmds: list[JointCommand]) -> list[float]:
    return [float(c.position[0]) for c in cmds]


@virtual
async def test_zero_fallback_one_command_per_tick() -> None:
    h = Harness(ActionQueueActor, params(action_names=NAMES, fallback="zero"), feed=())
    async with h.running():
        await anyio.sleep(1.05)
    cmds = h.drain("action")
    assert len(cmds) == 11  # ticks at 0.0, 0.1, ..., 1.0
    assert [c.seq for c in cmds] == list(range(1, 12))
    assert all(c.names == ("a", "b", "gripper") for c in cmds)
    assert all(not c.position.any() and not c.position.flags.writeable for c in cmds)
    status: QueueStatus = h.drain("status")[-1]
    assert status.fallback_ticks == 11 and status.starved_ticks == 0


@virtual
async def test_replace_merge_trims_delay_and_emits_each_action_once() -> None:
    h = Harness(ActionQueueActor, params(), feed=("merge",))
    async with h.running():
        await anyio.sleep(0.05)
        await h.send["merge"].send(chunk(20, delay=3))
        await anyio.sleep(3.0)
    cmds = h.drain("action")
    assert values(cmds) == [float(v) for v in range(3, 20)]  # trimmed, in order, each once, then hold
    last: QueueStatus = h.drain("status")[-1]
    assert last.action_names == NAMES and last.merges == 1 and last.queued_steps == 0
    assert last.last_merge_seq == 1


@virtual
async def test_status_carries_atomic_snapshot() -> None:
    h = Harness(ActionQueueActor, params(prefix_rows=4), feed=("merge",))
    async with h.running():
        await anyio.sleep(0.05)
        await h.send["merge"].send(chunk(10))
        await anyio.sleep(0.26)  # ticks at 0.1, 0.2, 0.3 consumed rows 0, 1, 2
    status: QueueStatus = h.drain("status")[-1]
    assert status.idx_before == 3 and status.queued_steps == 7
    assert status.prefix_model is not None and status.prefix_model[:, 0].tolist() == [3.0, 4.0, 5.0, 6.0]
    snap = status.to_snapshot()
    assert snap.idx_before == 3 and snap.last_merge_seq == 1


@virtual
async def test_staleness_clears_queue() -> None:
    h = Harness(ActionQueueActor, params(max_action_age_s=1.0), feed=("merge",))
    async with h.running():
        await anyio.sleep(0.05)
        await h.send["merge"].send(chunk(50, latency=0.5))  # anchor = now - 0.5 s
        await anyio.sleep(2.0)
    cmds = h.drain("action")
    assert 4 <= len(cmds) <= 6  # ~0.5 s of actions, then the stale queue is dropped
    assert h.drain("status")[-1].stale_drops == 1


@virtual
async def test_repeat_last_fallback_repeats_last_command() -> None:
    h = Harness(ActionQueueActor, params(fallback="repeat_last"), feed=("merge",))
    async with h.running():
        await anyio.sleep(0.05)
        await h.send["merge"].send(chunk(3))
        await anyio.sleep(0.6)
    cmds = h.drain("action")
    assert values(cmds)[:3] == [0.0, 1.0, 2.0] and set(values(cmds)[3:]) == {2.0}
    seqs = [c.seq for c in cmds]
    assert seqs == sorted(set(seqs))  # a repeated value never repeats a seq
    assert h.drain("status")[-1].fallback_ticks == len(cmds) - 3


@virtual
async def test_interpolation_multiplier() -> None:
    h = Harness(ActionQueueActor, params(interpolation_multiplier=3), feed=("merge",))
    async with h.running():
        await anyio.sleep(0.01)
        await h.send["merge"].send(chunk(4))
        await anyio.sleep(2.0)
    got = values(h.drain("action"))
    assert len(got) == 1 + (4 - 1) * 3
    assert got == pytest.approx([0, 1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2, 7 / 3, 8 / 3, 3])


@virtual
async def test_reset_choreography_never_emits_old_episode() -> None:
    h = Harness(ActionQueueActor, params(), feed=("merge", "episode"))
    async with h.running():
        await anyio.sleep(0.05)
        await h.send["merge"].send(chunk(30, seq=1, episode=0))
        await anyio.sleep(0.3)
        await h.send["episode"].send(EpisodeControl(command="reset"))
        await anyio.sleep(0.01)
        t_reset = anyio.current_time()
        await h.send["merge"].send(chunk(30, seq=2, episode=0, base=100.0))  # late reply of episode 0
        await anyio.sleep(0.3)
        await h.send["merge"].send(chunk(5, seq=3, episode=1, base=500.0))
        await anyio.sleep(1.0)
    cmds = h.drain("action")
    old = [c for c in cmds if c.episode == 0]
    new = [c for c in cmds if c.episode == 1]
    assert old and all(c.t_issued < t_reset for c in old)
    assert values(new) == [500.0, 501.0, 502.0, 503.0, 504.0]
    status: QueueStatus = h.drain("status")[-1]
    assert status.episode == 1 and status.merges_dropped == 1 and status.last_merge_seq == 3


@virtual
async def test_mismatched_action_names_are_dropped() -> None:
    h = Harness(ActionQueueActor, params(action_names=NAMES), feed=("merge",))
    async with h.running():
        await anyio.sleep(0.05)
        await h.send["merge"].send(chunk(5, names=("x.pos", "y.pos", "z.pos")))
        await anyio.sleep(1.0)
    assert h.drain("action") == []
    status: QueueStatus = h.drain("status")[-1]
    assert status.merges_dropped == 1 and status.last_merge_seq == 1


@virtual
async def test_gripper_values_clamped() -> None:
    h = Harness(ActionQueueActor, params(gripper_range=(0.0, 2.0)), feed=("merge",))
    async with h.running():
        await anyio.sleep(0.05)
        await h.send["merge"].send(chunk(5))
        await anyio.sleep(1.0)
    cmds = h.drain("action")
    assert [float(c.position[2]) for c in cmds] == [0.0, 1.0, 2.0, 2.0, 2.0]
    assert [float(c.position[0]) for c in cmds] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_next_episode_rules() -> None:
    assert next_episode(0, EpisodeControl(command="reset")) == 1
    assert next_episode(3, EpisodeControl(command="reset", episode=7)) == 7
    assert next_episode(3, EpisodeControl(command="reset", episode=2)) == 4
    assert next_episode(3, EpisodeControl(command="start")) is None
    assert next_episode(3, EpisodeControl(command="start", episode=5)) == 5
    assert next_episode(3, EpisodeControl(command="save")) is None


def test_core_adopts_names_and_resets() -> None:
    core = QueueCore(params())
    assert core.tick(0.0) == (None, [])
    assert core.merge(chunk(4, episode=0), 0.0) is None
    assert core.names == NAMES and core.commands == ("a", "b", "gripper")
    cmd, _ = core.tick(0.1)
    assert cmd is not None and cmd.position[0] == 0.0
    core.reset(1)
    assert core.tick(0.2) == (None, [])  # nothing of episode 0 after the reset
    assert core.status(0.3).episode == 1 and core.status(0.3).ticks == 3


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="interpolation_multiplier"):
        ActionQueueParams(interpolation_multiplier=0)
    with pytest.raises(ValueError, match="unique"):
        ActionQueueParams(action_names=("a", "a"))
