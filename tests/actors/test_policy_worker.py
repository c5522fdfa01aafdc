"""policy_worker actor: mailboxes, round robin, validation errors as replies, timings, torch."""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
import pytest
from rtrun.actors.messages import InferenceReply, InferenceRequest
from rtrun.actors.policy_worker import Mailboxes, PolicyWorkerActor, PolicyWorkerParams, load_policy_source
from rtrun.models.testing_policies import SO101_ACTION_NAMES, ScriptedPolicy, SleepPolicy

from ..conftest import VIRTUAL
from .test_action_queue import Harness

virtual = pytest.mark.parametrize("anyio_backend", VIRTUAL)


def _req(
    client: str = "robot",
    seq: int = 1,
    episode: int = 0,
    obs: dict[str, np.ndarray] | None = None,
    prefix: np.ndarray | None = None,
    delay: int = 0,
) -> InferenceRequest:
    if obs is None:
        obs = {"observation.state": np.zeros(6, np.float32)}
    return InferenceRequest(
        client=client, epoch=0, seq=seq, episode=episode, observation=obs,
        inference_delay=delay, prefix=prefix, t_sent=anyio.current_time(),
    )  # fmt: skip


def test_mailboxes_round_robin_and_supersession() -> None:
    mail = Mailboxes(max_clients=5)
    picks: list[str] = []
    for _ in range(50):
        for c in ("c", "a", "b", "e", "d"):
            if mail.slots.get(c) is None or mail.slots[c].request is None:
                assert mail.deposit(
                    InferenceRequest(
                        client=c,
                        epoch=0,
                        seq=1,
                        episode=0,
                        observation={},
                        inference_delay=0,
                        prefix=None,
                        t_sent=0.0,
                    ),
                    0.0,
                )
        client = mail.next_ready()
        assert client is not None
        picks.append(mail.take(client)[0].client)
    assert picks[:6] == ["a", "b", "c", "d", "e", "a"]
    assert {c: picks.count(c) for c in "abcde"} == dict.fromkeys("abcde", 10)
    mail = Mailboxes(max_clients=5)
    req = InferenceRequest(
        client="a", epoch=0, seq=7, episode=0, observation={}, inference_delay=0, prefix=None, t_sent=0.0
    )
    mail.deposit(req, 1.0)
    mail.deposit(req, 2.0)
    taken, received, superseded = mail.take("a")
    assert (taken.seq, received, superseded) == (7, 2.0, 1)
    for client in "bcdef":
        mail.deposit(
            InferenceRequest(
                client=client,
                epoch=0,
                seq=1,
                episode=0,
                observation={},
                inference_delay=0,
                prefix=None,
                t_sent=0.0,
            ),
            0.0,
        )
    assert mail.refused == 1 and "f" not in mail.slots


def test_load_policy_source_specs() -> None:
    assert isinstance(load_policy_source(PolicyWorkerParams(checkpoint="scripted")), ScriptedPolicy)
    sleep = load_policy_source(PolicyWorkerParams(checkpoint="sleep:0.25", demo_chunk_size=7))
    assert isinstance(sleep, SleepPolicy) and sleep.latency_s == 0.25 and sleep.metadata.chunk_size == 7
    assert sleep.metadata.action_names == SO101_ACTION_NAMES


def _worker(**kw: Any) -> Harness:
    kw.setdefault("checkpoint", "sleep")
    kw.setdefault("inference_thread", False)
    return Harness(PolicyWorkerActor, PolicyWorkerParams(**kw), feed=("requests",), actor_id="w")


async def _ask(h: Harness, req: InferenceRequest) -> InferenceReply:
    await h.send["requests"].send(req)
    with anyio.fail_after(5.0):
        return await h.out["replies"].receive()  # type: ignore[no-any-return]


@virtual
async def test_reply_reports_chunk_and_timings() -> None:
    h = _worker(simulated_latency_s=0.3, demo_chunk_size=10)
    async with h.running():
        reply = await _ask(h, _req())
        assert reply.error == "" and reply.chunk.shape == (10, 6) and reply.chunk_robot.shape == (10, 6)
        assert reply.action_names == SO101_ACTION_NAMES
        assert reply.inference_s == pytest.approx(0.3, abs=1e-3) and reply.queue_wait_s == 0.0
        assert not reply.chunk.flags.writeable
        prefix = np.full((3, 6), 42.0, np.float32)
        reply2 = await _ask(h, _req(seq=2, prefix=prefix, delay=2))
        assert reply2.chunk[0, 0] == 42.0  # SleepPolicy continues the prefix
    assert h.ctx.status["replies"] == 2 and h.ctx.status["serving"] == "exclusive"


@virtual
async def test_observation_mismatch_is_an_error_reply_with_rename_hint() -> None:
    h = _worker(checkpoint="scripted")
    async with h.running():
        bad = _req(obs={"observation.joints": np.zeros(6, np.float32)})
        reply = await _ask(h, bad)
        assert reply.error_kind == "observation_mismatch"
        assert (
            "observation.state" in reply.error and '"observation.joints" = "observation.state"' in reply.error
        )
        assert reply.chunk.size == 0
        ok = await _ask(h, _req(seq=2))  # the worker keeps serving
        assert ok.error == ""
    fixed = _worker(checkpoint="scripted", rename_map={"observation.joints": "observation.state"})
    async with fixed.running():
        assert (await _ask(fixed, bad)).error == ""


@virtual
async def test_bad_prefix_and_busy_exclusive() -> None:
    h = _worker()
    async with h.running():
        reply = await _ask(h, _req(prefix=np.zeros((2, 4), np.float32)))
        assert reply.error_kind == "bad_request" and "(k, 6)" in reply.error
        reply = await _ask(h, _req(client="second"))
        assert reply.error_kind == "busy" and "exclusive" in reply.error


@virtual
async def test_shared_serving_several_clients() -> None:
    h = _worker(serving="shared", simulated_latency_s=0.1)
    async with h.running():
        for client in ("r2", "r1", "r3"):
            await h.send["requests"].send(_req(client=client))
        await h.send["requests"].send(_req(client="r2", seq=2))  # supersedes r2's first request
        await anyio.sleep(1.0)
        replies = h.drain("replies")
        assert {r.client for r in replies} == {"r1", "r2", "r3"}
        assert [r.seq for r in replies if r.client == "r2"][-1] == 2
        assert all(r.error == "" for r in replies)
    assert h.ctx.status["superseded"] + len(replies) == 4


@pytest.mark.oracle
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_torch_demo_policy_in_thread(tmp_path: Any) -> None:
    pytest.importorskip("torch")
    h = _worker(checkpoint="demo:act", cache_dir=str(tmp_path), inference_thread=True, demo_chunk_size=12)
    async with h.running():
        reply = await _ask(h, _req(obs={"observation.state": np.ones(6, np.float32)}))
    assert reply.error == "" and reply.chunk.shape == (12, 6)
    assert not np.allclose(reply.chunk, reply.chunk_robot)  # the postprocessor unnormalized it
    assert reply.inference_s > 0 and h.ctx.status["serving"] == "shared"
    assert len(list(tmp_path.iterdir())) == 1  # generated once, atomically
