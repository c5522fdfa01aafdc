"""Placement and reopened outputs: an actor restarted after it terminated reopens its outputs;
across hosts each reopen is a new Zenoh sender on the same key in the same session (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from rtrun import compile_graph, load_graph
from rtrun._placement import Transport
from rtrun.testing import Count

from .test_placement import split_graph


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Zenoh delivers on real threads: no virtual time here


async def test_reopening_a_cross_host_output_keeps_one_port_and_is_received(tmp_path: Path) -> None:
    """The robot's output ``src/out`` feeds the gpu host. Closed (end-of-stream) and reopened
    five times, the robot's transport tracks one open port (not one per reopen), and the gpu
    side's receive port gets the newest sender's item after each end-of-stream; each ended
    sender's Zenoh declarations are released at the next reopen, breaking no receiver."""
    compiled = compile_graph(load_graph(split_graph(tmp_path, policy="drop_oldest")))
    robot, gpu = Transport(compiled, frozenset({"robot"})), Transport(compiled, frozenset({"gpu"}))
    await robot.open()
    await gpu.open()
    try:
        (edge,) = [e for e in robot.outgoing if e.source_actor == "src"]
        receive = gpu.receiver(edge)
        previous: Any = None
        for round_ in range(5):
            send = robot.sender(edge)
            with anyio.fail_after(10):
                await send.wait_for_receiver()
                while receive._core.epoch != send._core.epoch:
                    await anyio.sleep(0.005)
                await send.send(Count(value=round_))
                assert (await receive.receive()).value == round_
            await send.aclose()  # the actor terminated: END_OF_STREAM, acknowledged
            with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
                await receive.receive()
            assert len(robot._ports) == 1  # (the closed ones are forgotten at the next reopen)
            if previous is not None:  # ... and, acknowledged, undeclared: nothing left behind
                assert previous._core.resources == []
            previous = send
        assert previous.release() and previous._core.resources == []
        await anyio.sleep(0.2)  # (its token's disappearance reaches the receiver meanwhile)
        with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
            await receive.receive()  # the ended sender's token leaving broke nothing
        assert receive.statistics().dropped_total == 0
    finally:
        await robot.aclose()
        await gpu.aclose()
