"""Issue 16: the policy worker's host stopping is a fail-safe event for the merger, not a crash,
and the merger requests as soon as the worker is present (never into the void, then 5 s late).

The ``replies`` port is an in-process channel behind :class:`PresencePort`, which behaves as a
Zenoh receive port does: ``BrokenResourceError`` once when the producing host vanishes, and
``wait_for_sender()`` returning once a sender is live again.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from rtrun.actors.messages import InferenceRequest
from rtrun.actors.rtc_messages import MergeChunk

from ..conftest import VIRTUAL
from .test_action_queue import Harness
from .test_rtc_merger import _merger, _reply, _state, _status

virtual = pytest.mark.parametrize("anyio_backend", VIRTUAL)


class PresencePort:
    """A receive port with Zenoh's vanished-peer semantics and sender presence."""

    def __init__(self, port: Any, *, present: bool) -> None:
        self.port = port
        self._present = anyio.Event()
        self._broken = False
        if present:
            self._present.set()

    def appear(self) -> None:
        """A sender (the restarted worker host) is live."""
        self._present.set()

    def vanish(self) -> None:
        """The sender's host vanished: the next receive raises BrokenResourceError once."""
        self._broken = True
        self._present = anyio.Event()

    async def wait_for_sender(self) -> None:
        await self._present.wait()

    def receive_nowait(self) -> Any:
        if self._broken:
            self._broken = False
            raise anyio.BrokenResourceError
        return self.port.receive_nowait()

    async def receive(self) -> Any:
        while True:  # poll so that vanish() is noticed by a waiting receive
            try:
                return self.receive_nowait()
            except anyio.WouldBlock:
                await anyio.sleep(0.005)

    def __aiter__(self) -> PresencePort:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self.port.close()


def _harness(*, present: bool, **kw: Any) -> tuple[Harness, PresencePort]:
    h = _merger(**kw)
    port = PresencePort(h.ctx.inputs["replies"], present=present)
    h.ctx._inputs["replies"] = port
    return h, port


async def _status_and_request(h: Harness, queued: int, last_merge_seq: int) -> InferenceRequest | None:
    await h.send["state"].send(_state(anyio.current_time()))
    await anyio.sleep(0.001)
    await h.send["queue"].send(_status(0, queued=queued, last_merge_seq=last_merge_seq))
    with anyio.move_on_after(0.1):
        return await h.out["requests"].receive()  # type: ignore[no-any-return]
    return None


@virtual
async def test_worker_host_vanishing_enters_the_failsafe_without_a_crash() -> None:
    h, port = _harness(present=True, request_timeout_s=5.0)
    async with h.running():
        req = await _status_and_request(h, 0, -1)
        assert req is not None
        await h.send["replies"].send(_reply(req))
        with anyio.fail_after(1.0):
            merge: MergeChunk = await h.out["merge"].receive()
        assert h.ctx.status["link"] in ("streaming", "connecting")
        req2 = await _status_and_request(h, 10, merge.seq)  # 10 steps queued <= 0.5 s: request
        assert req2 is not None
        port.vanish()  # the GPU host stops (or is killed) with a request in flight
        await anyio.sleep(0.1)
        assert await _status_and_request(h, 8, merge.seq) is None  # nobody to ask
        h.drain("requests")
        status = h.ctx.status
        assert status["link"] == "degraded" and status["counts"]["lost_replies"] == 1
        t_back = anyio.current_time()
        port.appear()  # the restarted worker's sender is live: request at once, not after 5 s
        req3 = await _status_and_request(h, 6, merge.seq)
        assert req3 is not None and anyio.current_time() - t_back < 0.5
        assert req3.epoch > req2.epoch  # a late answer to req2 would be dropped
        await h.send["replies"].send(_reply(req3))
        with anyio.fail_after(1.0):
            await h.out["merge"].receive()
        await anyio.sleep(0.3)
        assert h.ctx.status["link"] == "streaming"


@virtual
async def test_first_request_waits_for_the_worker_presence() -> None:
    h, port = _harness(present=False)
    async with h.running():
        for _ in range(3):
            assert await _status_and_request(h, 0, -1) is None
        assert h.ctx.status["counts"]["skipped_no_worker"] >= 1
        port.appear()
        await anyio.sleep(0.001)
        req = await _status_and_request(h, 0, -1)
        assert req is not None and req.seq == 1
        await anyio.sleep(0.3)
    assert h.ctx.status["timeouts"] == 0
