"""In-process channel details beyond the conformance suite."""

from __future__ import annotations

import gc

import anyio
import pytest
import rtrun
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from rtrun import ChannelError, open_channel

from ..conftest import VIRTUAL


@pytest.mark.parametrize(
    ("capacity", "policy", "rule"),
    [
        (1, "fifo", "unknown channel policy"),
        (-1, "block", "integer >= 0"),
        (True, "block", "integer >= 0"),
        (2, "latest", "one-slot mailbox"),
        (0, "drop_oldest", "needs capacity >= 1"),
        (0, "drop_newest", "needs capacity >= 1"),
    ],
)
def test_invalid_configuration_names_the_rule(capacity: object, policy: str, rule: str) -> None:
    with pytest.raises(ChannelError, match=rule):
        open_channel(capacity, policy)  # type: ignore[arg-type]


def test_subscriptable_factory_and_no_public_constructor() -> None:
    send, receive = open_channel[int](1, "latest")
    with send, receive:
        assert isinstance(send, rtrun.SendPort) and isinstance(receive, rtrun.ReceivePort)
    with pytest.raises(TypeError, match="no public constructor"):
        rtrun.SendPort()


def test_unclosed_port_warns() -> None:
    send, receive = open_channel(1)
    receive.close()
    with pytest.warns(ResourceWarning, match="unclosed SendPort"):
        del send
        gc.collect()


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_send_and_receive_are_always_checkpoints() -> None:
    send, receive = open_channel(4, "drop_oldest")
    with send, receive:
        with trio.testing.assert_checkpoints():
            await send.send(1)
        with trio.testing.assert_checkpoints():
            assert await receive.receive() == 1


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_cancelled_receiver_never_loses_an_item() -> None:
    send, receive = open_channel(0)
    with send, receive:
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive.receive)
            await trio.testing.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
            with pytest.raises(anyio.WouldBlock):  # the parked receiver is being cancelled
                send.send_nowait("item")
        assert receive.statistics().sent == 0


async def test_unread_items_count_as_dropped_when_receiver_closes() -> None:
    send, receive = open_channel(3, "block")
    with send:
        await send.send(1)
        await send.send(2)
        receive.close()
        stats = send.statistics()
        assert stats.dropped == {"receiver_closed": 2} and stats.queued == 0
        with pytest.raises(anyio.BrokenResourceError):
            await send.send(3)


OPS = st.lists(st.sampled_from(["send", "receive"]), max_size=60)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    ops=OPS,
    policy_capacity=st.sampled_from(
        [("drop_oldest", 1), ("drop_oldest", 3), ("drop_newest", 2), ("latest", 1)]
    ),
)
def test_counter_invariant_holds(ops: list[str], policy_capacity: tuple[str, int]) -> None:
    """sent == received + queued + dropped after any sequence of operations (no silent drop)."""
    policy, capacity = policy_capacity
    send, receive = open_channel(capacity, policy)  # type: ignore[arg-type]
    with send, receive:
        for n, op in enumerate(ops):
            if op == "send":
                send.send_nowait(n)
            else:
                try:
                    receive.receive_nowait()
                except anyio.WouldBlock:
                    pass
            s = send.statistics()
            assert s.sent == s.received + s.queued + s.dropped_total
            assert s.queued <= capacity


async def test_closing_the_receive_port_wakes_a_blocked_receive_with_closed_resource_error() -> None:
    """Issue 14 defect 4: the woken receive raised AttributeError (anyio: ClosedResourceError)."""
    send, receive = open_channel[str](0)
    with send:

        async def blocked_receive() -> None:
            with pytest.raises(anyio.ClosedResourceError):
                await receive.receive()

        async with anyio.create_task_group() as tg:
            tg.start_soon(blocked_receive)
            await anyio.wait_all_tasks_blocked()
            receive.close()
        assert send.statistics().tasks_waiting_receive == 0


async def test_send_whose_item_was_taken_returns_normally_when_its_port_closes() -> None:
    """Issue 14 defect 5: ``receive_nowait`` took the blocked send's item, then the send port
    closed before the sender resumed; ``send`` raised ClosedResourceError although the item was
    delivered (a retry duplicates it). As anyio 4.16, it returns normally."""
    send, receive = open_channel[str](0)
    with receive:
        async with anyio.create_task_group() as tg:
            tg.start_soon(send.send, "item")
            await anyio.wait_all_tasks_blocked()
            assert receive.receive_nowait() == "item"
            send.close()
        stats = receive.statistics()
        assert (stats.sent, stats.received, stats.tasks_waiting_send) == (1, 1, 0)


async def test_send_whose_item_was_not_taken_raises_closed_when_its_port_closes() -> None:
    """The other half of defect 5's rule: an item still waiting when its port closes is
    withdrawn, and the blocked ``send`` raises ClosedResourceError (nothing was sent)."""
    send, receive = open_channel[str](0)
    with receive:

        async def blocked_send() -> None:
            with pytest.raises(anyio.ClosedResourceError):
                await send.send("withdrawn")

        async with anyio.create_task_group() as tg:
            tg.start_soon(blocked_send)
            await anyio.wait_all_tasks_blocked()
            send.close()
        with pytest.raises(anyio.EndOfStream):
            receive.receive_nowait()
        assert receive.statistics().sent == 0
