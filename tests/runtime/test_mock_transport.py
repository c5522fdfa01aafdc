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
from rtrun._zenoh_channel import CREDIT_REFRESH_S, open_zenoh_receiver, open_zenoh_sender
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


async def test_a_lost_credit_is_recovered_by_the_refresh() -> None:
    """``block`` across hosts: the receiver's credit for its waiting receive is lost once; the
    sender waits, then the periodic refresh (CREDIT_REFRESH_S, virtual time on trio) re-grants
    and the item goes through -- no deadlock, nothing lost."""
    lost_once: list[bool] = []

    def first_waiting_credit(key: str, attachment: bytes | None) -> bool:
        if not key.endswith("/@credit") or lost_once or attachment is None:
            return False
        if unpack_header_fields(attachment)[2] == 2:  # (#1 announced the port; #2 grants the wait)
            lost_once.append(True)
            return True
        return False

    network = MockNetwork(loss=first_waiting_credit)
    async with (
        network.pump(),
        mock_pair(network, 0, "block") as (send, receive),
        anyio.create_task_group() as tg,
    ):
        start = anyio.current_time()
        tg.start_soon(send.send, "x")
        with anyio.fail_after(10):
            assert await receive.receive() == "x"
        assert anyio.current_time() - start >= CREDIT_REFRESH_S  # it took the refresh
    assert lost_once == [True] and receive.statistics().dropped_total == 0


async def test_a_reopened_sender_after_end_of_stream_is_followed() -> None:
    """Issue 15 item 4 on the mock transport: same session, same key, a new sender."""
    network = MockNetwork(latency=0.001)
    async with network.pump():
        with network.open_session() as a, network.open_session() as b:
            key = unique_key()
            with open_zenoh_receiver(b, key, 4, "drop_oldest", codec=MSGPACK_CODEC) as receive:  # type: ignore[arg-type]
                for n in range(3):
                    async with open_zenoh_sender(a, key, policy="drop_oldest", codec=MSGPACK_CODEC) as send:  # type: ignore[arg-type]
                        with anyio.fail_after(10):
                            await send.wait_for_receiver()
                            while receive._core.epoch != send._core.epoch:
                                await anyio.sleep(0.001)
                            await send.send(n)
                            assert await receive.receive() == n
                    with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
                        await receive.receive()
