"""rtrun.testing.MockNetwork: the real Zenoh channel ports over an in-memory transport -- the
conformance suite, and loss, latency and vanish faults, on virtual time (and on asyncio)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from rtrun._wire import MessageType, unpack_header_fields
from rtrun._zenoh_channel import open_zenoh_receiver, open_zenoh_sender
from rtrun.testing import SCENARIOS, ConformanceOptions, MockNetwork
from rtrun.testing._mock_transport import key_matches

from .zenoh_helpers import MSGPACK_CODEC, unique_key


@asynccontextmanager
async def mock_pair(network: MockNetwork, capacity: int, policy: str) -> AsyncIterator[tuple[Any, Any]]:
    """Two sessions of ``network`` and a channel between them (msgpack codec)."""
    with network.open_session() as a, network.open_session() as b:
        key = unique_key()
        receive = open_zenoh_receiver(b, key, capacity, policy, codec=MSGPACK_CODEC)  # type: ignore[arg-type]
        send = open_zenoh_sender(a, key, policy=policy, codec=MSGPACK_CODEC)  # type: ignore[arg-type]
        with send, receive:
            with anyio.fail_after(10):
                await send.wait_for_receiver()
                await receive.wait_for_sender()
            yield send, receive


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_the_zenoh_ports_conform_over_the_mock_transport(scenario: Any) -> None:
    network = MockNetwork(latency=0.0005)
    async with network.pump():
        with anyio.fail_after(60):
            await scenario(functools.partial(mock_pair, network), ConformanceOptions())


async def test_lost_samples_are_counted_as_sequence_gaps() -> None:
    def every_third_data(key: str, attachment: bytes | None) -> bool:
        header = unpack_header_fields(attachment) if attachment is not None else None
        return header is not None and header[1] == MessageType.DATA and header[2] % 3 == 2

    network = MockNetwork(loss=every_third_data)
    async with network.pump(), mock_pair(network, 16, "drop_oldest") as (send, receive):
        for i in range(9):
            await send.send(i)
        send.close()  # END_OF_STREAM after 9: the lost tail counts too
        got = [item async for item in receive]
    assert got == [0, 1, 3, 4, 6, 7]
    stats = receive.statistics()
    assert dict(stats.dropped) == {"sequence_gap": 3} and network.lost == 3
    assert stats.sent == stats.received + stats.queued + stats.dropped_total


async def test_latency_delays_delivery_in_runtime_time() -> None:
    network = MockNetwork(latency=0.25)
    async with network.pump(), mock_pair(network, 4, "block") as (send, receive):
        start = anyio.current_time()
        await send.send("x")
        assert await receive.receive() == "x"
        assert anyio.current_time() - start >= 0.25


async def test_a_vanished_sender_breaks_the_receiver_once() -> None:
    network = MockNetwork()
    async with network.pump():
        with network.open_session() as b:
            key = unique_key()
            with open_zenoh_receiver(b, key, 4, "drop_oldest", codec=MSGPACK_CODEC) as receive:  # type: ignore[arg-type]
                a = network.open_session()
                send = open_zenoh_sender(a, key, policy="drop_oldest", codec=MSGPACK_CODEC)  # type: ignore[arg-type]
                with anyio.fail_after(10):
                    await receive.wait_for_sender()
                    await send.send(1)
                    assert await receive.receive() == 1
                a.vanish()  # killed: no END_OF_STREAM
                with anyio.fail_after(10), pytest.raises(anyio.BrokenResourceError):
                    await receive.receive()
                send.close()  # (its session is gone: nothing is published)


def test_deliveries_run_only_when_asked_and_in_order() -> None:
    """Synchronous use: nothing is delivered inside ``put``; ``deliver()`` runs them in order."""
    network = MockNetwork()
    got: list[bytes] = []
    with network.open_session() as a, network.open_session() as b:
        b.declare_subscriber("k/x", lambda payload, attachment: got.append(payload))
        a.put("k/x", b"1")
        a.put("k/y", b"ignored")
        a.put("k/x", b"2")
        assert got == []
        assert network.deliver() == 2
    assert got == [b"1", b"2"]


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/*", "a/b", True),
        ("a/*", "a/b/c", False),
        ("a/**", "a/b/c", True),
        ("a/b", "a", False),
    ],
)
def test_key_matching(pattern: str, key: str, matches: bool) -> None:
    assert key_matches(pattern, key) is matches
