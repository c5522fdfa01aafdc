"""rtc_merger actor: fail-safe table, observation building, requests, reply filters, episodes."""

from __future__ import annotations

import math
from typing import Any

import anyio
import numpy as np
import pytest
from rtrun.actors.messages import Frame, InferenceReply, InferenceRequest, JointState
from rtrun.actors.rtc_merger import (
    LINK_TRANSITIONS,
    FailSafe,
    FailSafeConfig,
    LinkEvent,
    LinkState,
    ObservationBuilder,
    PolicyPathError,
    RTCMergerActor,
    RTCMergerParams,
)
from rtrun.actors.rtc_messages import MergeChunk, QueueStatus

from ..conftest import VIRTUAL
from .test_action_queue import Harness

virtual = pytest.mark.parametrize("anyio_backend", VIRTUAL)

ACTIONS = ("a.pos", "b.pos")
JOINTS = ("a", "b", "c")


# ------------------------------------------------------------------------------- fail-safe


def test_table_is_complete_and_dead_is_terminal() -> None:
    for state in LinkState:
        assert set(LINK_TRANSITIONS[state]) == set(LinkEvent), state
    assert set(LINK_TRANSITIONS[LinkState.DEAD].values()) == {LinkState.DEAD}


def test_failsafe_degrades_stalls_and_recovers() -> None:
    fs = FailSafe()
    assert fs.state is LinkState.CONNECTING
    fs.on_failure(0.0, queued_steps=0)
    assert fs.state is LinkState.CONNECTING
    fs.on_merge()
    assert fs.state is LinkState.STREAMING and fs.offline_since is None
    fs.on_queue(0)
    assert fs.state is LinkState.STREAMING  # merely late: stays streaming
    fs.on_failure(1.0, queued_steps=5)
    assert fs.state is LinkState.DEGRADED and fs.offline_since == 1.0
    fs.on_queue(0)
    assert fs.state is LinkState.STALLED
    fs.on_merge()
    assert fs.state is LinkState.STREAMING


def test_failsafe_reconnect_backoff_then_dead() -> None:
    fs = FailSafe(
        FailSafeConfig(reconnect_after_s=10.0, initial_backoff_s=0.5, max_backoff_s=2.0, max_offline_s=60.0)
    )
    fs.on_merge()
    fs.on_failure(0.0, queued_steps=0)
    assert fs.state is LinkState.STALLED
    assert not fs.poll(9.9)
    attempts = [t for t in np.arange(10.0, 20.0, 0.1).round(1) if fs.poll(float(t))]
    assert fs.state is LinkState.RECONNECTING
    assert attempts[:5] == [10.0, 10.5, 11.5, 13.5, 15.5]  # backoff 0.5, 1, 2, 2 (capped)
    fs.on_merge()  # STREAMING again only at a merge
    assert fs.state is LinkState.STREAMING and not fs.poll(100.0)
    fs.on_failure(100.0, queued_steps=3)
    assert not fs.poll(160.0) or fs.state is LinkState.RECONNECTING
    fs.poll(160.1)
    assert fs.state is LinkState.DEAD and "max_offline_s" in fs.reason
    fs.on_merge()
    assert fs.state is LinkState.DEAD


def test_failsafe_violation() -> None:
    fs = FailSafe()
    fs.on_violation("observation_mismatch: x")
    assert fs.state is LinkState.DEAD and fs.reason.startswith("observation_mismatch")


# --------------------------------------------------------------------------- observation


def _state(t: float, values: tuple[float, ...] = (1.0, 2.0, 3.0)) -> JointState:
    pos = np.array(values, np.float32)
    pos.flags.writeable = False
    return JointState(names=JOINTS, position=pos, seq=1, t_read=t)


def _frame(camera: str) -> Frame:
    img = np.zeros((4, 5, 3), np.uint8)
    img.flags.writeable = False
    return Frame(camera=camera, seq=1, t_capture=0.0, image=img)


def test_observation_builder() -> None:
    b = ObservationBuilder(state_names=("c", "a"), max_age_s=0.5, slots=("frames", "frames_2"))
    assert b.missing(0.0) == "no_state"
    b.on_state(_state(0.0), 0.0)
    assert b.missing(0.1) == "no_frames"
    b.on_frame("frames", _frame("front"), 0.1)
    assert b.missing(0.1) == "no_frames"  # every connected frame input must have delivered
    b.on_frame("frames_2", _frame("side"), 0.1)
    assert b.missing(0.2) is None
    obs = b.build(0.2)
    assert obs["observation.state"].tolist() == [3.0, 1.0]
    assert set(obs) == {"observation.state", "observation.images.front", "observation.images.side"}
    assert b.missing(0.7) == "stale_state"
    b.on_state(_state(0.7), 0.7)
    assert b.missing(0.7) == "stale_frames"
    bad = ObservationBuilder(state_names=("zz",))
    bad.on_state(_state(0.0), 0.0)
    with pytest.raises(PolicyPathError, match="not in the joint state"):
        bad.build(0.0)


# --------------------------------------------------------------------------------- actor


def _status(
    episode: int = 0, queued: int = 0, last_merge_seq: int = -1, names: tuple[str, ...] = ()
) -> QueueStatus:
    return QueueStatus(
        episode=episode, idx_before=0, queued_steps=queued, prefix_model=None, prefix_robot=None,
        last_merge_seq=last_merge_seq, action_names=names, t=anyio.current_time(), ticks=0,
        empty_ticks=0, starved_ticks=0, fallback_ticks=0, stale_drops=0, merges=0, merges_dropped=0,
    )  # fmt: skip


def _reply(
    req: InferenceRequest,
    *,
    error: str = "",
    kind: str = "",
    client: str | None = None,
    seq: int | None = None,
) -> InferenceReply:
    rows = (
        np.zeros((0, 0), np.float32)
        if error
        else np.repeat(np.arange(20, dtype=np.float32)[:, None], 2, axis=1)
    )
    rows.flags.writeable = False
    return InferenceReply(
        client=req.client if client is None else client, epoch=req.epoch,
        seq=req.seq if seq is None else seq, episode=req.episode, chunk=rows, chunk_robot=rows,
        action_names=ACTIONS, t_request=req.t_sent, queue_wait_s=0.0, inference_s=0.1, error=error,
        error_kind=kind,
    )  # fmt: skip


def _merger(**kw: Any) -> Harness:
    return Harness(RTCMergerActor, RTCMergerParams(**kw), feed=("state", "queue", "replies"), actor_id="m")


async def _request(h: Harness) -> InferenceRequest:
    await h.send["state"].send(_state(anyio.current_time()))
    await anyio.sleep(0.001)
    await h.send["queue"].send(_status(h.last_episode, last_merge_seq=h.last_seq))  # type: ignore[attr-defined]
    with anyio.fail_after(1.0):
        return await h.out["requests"].receive()  # type: ignore[no-any-return]


@virtual
async def test_request_reply_merge_with_trim() -> None:
    h = _merger()
    h.last_episode, h.last_seq = 0, -1  # type: ignore[attr-defined]
    async with h.running():
        req = await _request(h)
        assert (req.client, req.seq, req.episode, req.epoch) == ("m", 1, 0, 0)
        assert req.observation["observation.state"].tolist() == [1.0, 2.0, 3.0]
        assert req.prefix is None and req.inference_delay == 0
        await anyio.sleep(0.25)  # latency 0.25 s at 30 fps -> trim ceil(7.5) = 8
        await h.send["replies"].send(_reply(req, client="other"))  # another robot's reply
        await h.send["replies"].send(_reply(req, seq=99))  # not the request in flight
        await h.send["replies"].send(_reply(req))
        with anyio.fail_after(1.0):
            merge: MergeChunk = await h.out["merge"].receive()
        assert (merge.seq, merge.episode, merge.real_delay) == (1, 0, 8)
        assert merge.latency_s == pytest.approx(0.25, abs=0.01) and merge.action_names == ACTIONS
        # the next request waits for the queue to acknowledge the merge, then carries delay 8
        h.last_seq = 1  # type: ignore[attr-defined]
        req2 = await _request(h)
        assert req2.seq == 2 and req2.inference_delay == 8
        await anyio.sleep(0.3)
    status = h.ctx.status
    assert status["counts"]["other_client"] == 1 and status["link"] == "streaming"


@virtual
async def test_a_connected_camera_must_deliver_before_the_first_request() -> None:
    """Connected frame inputs (``has_input``) gate requests; no ``cameras`` list to keep in sync."""
    feed = ("state", "queue", "replies", "frames_2")
    h = Harness(RTCMergerActor, RTCMergerParams(), feed=feed, actor_id="m")
    async with h.running():
        await h.send["state"].send(_state(anyio.current_time()))
        await anyio.sleep(0.001)
        await h.send["queue"].send(_status())
        await anyio.sleep(0.5)
        assert h.drain("requests") == []  # no frame yet: no request
        await h.send["frames_2"].send(_frame("wrist"))
        await h.send["state"].send(_state(anyio.current_time()))
        await anyio.sleep(0.001)
        await h.send["queue"].send(_status())
        with anyio.fail_after(1.0):
            req: InferenceRequest = await h.out["requests"].receive()
    assert set(req.observation) == {"observation.state", "observation.images.wrist"}


@virtual
async def test_transient_error_reply_retries_with_new_epoch() -> None:
    h = _merger()
    h.last_episode, h.last_seq = 0, -1  # type: ignore[attr-defined]
    async with h.running():
        req = await _request(h)
        await h.send["replies"].send(_reply(req, kind="inference", error="boom"))
        await anyio.sleep(0.01)
        req2 = await _request(h)
        assert req2.epoch == req.epoch + 1 and req2.seq == req.seq + 1
        await h.send["replies"].send(_reply(req))  # a late answer of the old epoch is dropped
        await anyio.sleep(0.3)
        assert h.drain("merge") == []
    assert h.ctx.status["failures"] == 1


@virtual
async def test_contract_violation_is_dead_before_the_robot_moves() -> None:
    h = _merger()
    h.last_episode, h.last_seq = 0, -1  # type: ignore[attr-defined]
    with pytest.raises(BaseExceptionGroup) as info:
        async with h.running():
            req = await _request(h)
            await h.send["replies"].send(_reply(req, kind="observation_mismatch", error="missing images"))
            await anyio.sleep(1.0)
    assert info.group_contains(PolicyPathError, match="observation_mismatch: missing images")
    assert h.drain("merge") == [] and h.ctx.status["link"] == "dead"


@virtual
async def test_action_names_differing_from_the_queue_are_a_violation() -> None:
    h = _merger()
    with pytest.raises(BaseExceptionGroup) as info:
        async with h.running():
            await h.send["state"].send(_state(anyio.current_time()))
            await anyio.sleep(0.001)
            await h.send["queue"].send(_status(names=("x.pos", "y.pos")))
            req = await h.out["requests"].receive()
            await h.send["replies"].send(_reply(req))
            await anyio.sleep(1.0)
    assert info.group_contains(PolicyPathError, match="differ from the queue")
    assert h.drain("merge") == []


@virtual
async def test_follows_queue_episode_and_drops_old_replies() -> None:
    h = _merger()
    h.last_episode, h.last_seq = 0, -1  # type: ignore[attr-defined]
    async with h.running():
        req = await _request(h)
        h.last_episode = 1  # type: ignore[attr-defined]
        req2 = await _request(h)  # the queue reset: the merger follows and abandons the old request
        assert req2.episode == 1 and req2.seq == req.seq + 1
        await h.send["replies"].send(_reply(req))
        await h.send["replies"].send(_reply(req2))
        with anyio.fail_after(1.0):
            merge: MergeChunk = await h.out["merge"].receive()
        assert merge.episode == 1 and merge.seq == req2.seq
        await anyio.sleep(0.3)
    assert h.ctx.status["dropped"] == {"old_episode": 1}


@virtual
async def test_timeout_counts_failure_and_reissues() -> None:
    h = _merger(request_timeout_s=1.0)
    h.last_episode, h.last_seq = 0, -1  # type: ignore[attr-defined]
    async with h.running():
        req = await _request(h)
        await anyio.sleep(1.1)
        req2 = await _request(h)
        assert req2.seq == req.seq + 1
        await anyio.sleep(0.3)
    assert h.ctx.status["timeouts"] == 1 and h.ctx.status["link"] == "connecting"


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="fps"):
        RTCMergerParams(fps=0.0)
    assert math.isclose(RTCMergerParams().planner_config().dt, 1 / 30)
