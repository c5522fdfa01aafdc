"""Zenoh channels keep anyio's memory-object-stream semantics (issue 14, defect 6).

Each test pins one way a cross-host channel used to differ from an in-process one beyond the
documented asynchrony of delivery. Asynchrony is allowed for: a test first *settles* (polls,
bounded) until the far end's view caught up, then asserts; a settle that times out does not
fail by itself -- the assertion after it names what broke.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from rtrun._zenoh import ZenohSession

from .zenoh_helpers import REAL_TIME_BACKENDS, session_pair, zenoh_pair

pytestmark = [pytest.mark.parametrize("anyio_backend", REAL_TIME_BACKENDS)]

SETTLE_S = 5.0
"""Upper bound for one end to learn what the other did (milliseconds on loopback)."""
WAIT_S = 0.3
"""How long a receive waits before the test cancels it (its credit crossed long before)."""

Sessions = tuple[ZenohSession, ZenohSession, str]


@pytest.fixture(scope="module")
def sessions() -> Iterator[Sessions]:
    """Two loopback peer sessions shared by the tests of this module."""
    with session_pair() as pair:
        yield pair


async def settle(predicate: Callable[[], bool], timeout: float = SETTLE_S) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` passed (False)."""
    with anyio.move_on_after(timeout):
        while not predicate():  # (the far end's view has no event to wait on)
            await anyio.sleep(0.005)
        return True
    return False


def anyio_view(port: Any) -> dict[str, int]:
    """``port.statistics()`` as anyio's ``MemoryObjectStreamStatistics`` fields."""
    s = port.statistics()
    return {
        "current_buffer_used": s.queued,
        "max_buffer_size": s.capacity,
        "open_send_streams": s.open_send_ports,
        "open_receive_streams": s.open_receive_ports,
        "tasks_waiting_send": s.tasks_waiting_send,
        "tasks_waiting_receive": s.tasks_waiting_receive,
    }


async def expect_both(send: Any, receive: Any, **expected: int) -> None:
    """Both ends report ``expected`` (a subset of :func:`anyio_view`'s fields), once settled."""

    def matches(port: Any) -> bool:
        view = anyio_view(port)
        return all(view[name] == value for name, value in expected.items())

    await settle(lambda: matches(send) and matches(receive))
    views = {"sender": anyio_view(send), "receiver": anyio_view(receive)}
    for end, view in views.items():
        assert {name: view[name] for name in expected} == expected, (end, views)


# (a) a cancelled rendezvous receive withdraws its credit -------------------------------------


async def test_cancelled_rendezvous_receive_leaves_no_credit(sessions: Sessions) -> None:
    """Capacity 0: a receive that waited and was cancelled no longer admits an item, so a
    later ``send_nowait`` raises WouldBlock (as in-process) instead of parking the item in
    the buffer of a capacity-0 channel; a rendezvous still works afterwards."""
    a, b, _ = sessions
    async with zenoh_pair(a, b, 0, "block") as (tx, rx):
        with anyio.move_on_after(WAIT_S):
            await rx.receive()
        await settle(lambda: tx.statistics().tasks_waiting_receive == 0)  # the withdrawal crossed
        with pytest.raises(anyio.WouldBlock):
            tx.send_nowait("late")
        assert rx.statistics().queued == 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send, "met")
            with anyio.fail_after(SETTLE_S):
                assert await rx.receive() == "met"


# (b) a rendezvous admits one item per waiting receiver --------------------------------------


async def test_a_rendezvous_admits_one_item_per_waiting_receiver(sessions: Sessions) -> None:
    """Capacity 0 with three receives waiting (two on one port, one on a clone): after one of
    them is cancelled, exactly two ``send_nowait`` succeed and each waiter gets one item."""
    a, b, _ = sessions
    async with zenoh_pair(a, b, 0, "block") as (tx, rx):
        got: list[str] = []

        async def take(port: Any) -> None:
            got.append(await port.receive())

        with rx.clone() as clone, anyio.fail_after(4 * SETTLE_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(take, rx)
                tg.start_soon(take, clone)
                with anyio.CancelScope() as third:
                    async with anyio.create_task_group() as inner:
                        inner.start_soon(take, rx)
                        await settle(lambda: tx.statistics().tasks_waiting_receive == 3)
                        third.cancel()
                await settle(lambda: tx.statistics().tasks_waiting_receive == 2)
                tx.send_nowait("one")
                tx.send_nowait("two")
                with pytest.raises(anyio.WouldBlock):
                    tx.send_nowait("three")
        assert sorted(got) == ["one", "two"]
        assert rx.statistics().queued == 0


# (c) statistics agree between the two ends ---------------------------------------------------


async def test_sender_counts_unconsumed_items_as_buffered(sessions: Sessions) -> None:
    """The sender's ``queued`` (anyio's ``current_buffer_used``) counts the items it sent that
    the receiver has not taken yet -- from the first one, not only after one was consumed."""
    a, b, _ = sessions
    async with zenoh_pair(a, b, 2, "block") as (tx, rx):
        await tx.send("x")
        assert tx.statistics().queued == 1
        await tx.send("y")
        await expect_both(tx, rx, current_buffer_used=2, max_buffer_size=2)
        assert await rx.receive() == "x"
        await expect_both(tx, rx, current_buffer_used=1)
        assert await rx.receive() == "y"
        await expect_both(tx, rx, current_buffer_used=0)


async def test_waiting_tasks_are_counted_at_both_ends(sessions: Sessions) -> None:
    """Every task blocked in ``send`` (three of them) and in ``receive`` is counted, and each
    end learns the other end's count."""
    a, b, _ = sessions
    async with zenoh_pair(a, b, 1, "block") as (tx, rx):
        await tx.send(0)
        with anyio.fail_after(4 * SETTLE_S):
            async with anyio.create_task_group() as tg:
                for i in (1, 2, 3):
                    tg.start_soon(tx.send, i)
                await expect_both(tx, rx, tasks_waiting_send=3, current_buffer_used=1)
                assert sorted([await rx.receive() for _ in range(4)]) == [0, 1, 2, 3]
            await expect_both(tx, rx, tasks_waiting_send=0, current_buffer_used=0)
            async with anyio.create_task_group() as tg:
                tg.start_soon(rx.receive)
                await expect_both(tx, rx, tasks_waiting_receive=1)
                await tx.send(4)
            await expect_both(tx, rx, tasks_waiting_receive=0, current_buffer_used=0)


@pytest.mark.parametrize(("capacity", "policy"), [(1, "block"), (2, "drop_oldest")])
async def test_clones_are_counted_at_both_ends(sessions: Sessions, capacity: int, policy: str) -> None:
    """``open_send_ports``/``open_receive_ports`` count clones, at both ends, on every policy."""
    a, b, _ = sessions
    async with zenoh_pair(a, b, capacity, policy) as (tx, rx):
        await expect_both(tx, rx, open_send_streams=1, open_receive_streams=1)
        with tx.clone() as tx2, rx.clone() as rx2, rx.clone():
            await expect_both(tx, rx, open_send_streams=2, open_receive_streams=3)
            tx2.close()
            rx2.close()
            await expect_both(tx, rx, open_send_streams=1, open_receive_streams=2, max_buffer_size=capacity)


# (d) receive is a cancellation point even while items are buffered -------------------------


@pytest.mark.parametrize("policy", ["block", "drop_oldest"])
async def test_receive_in_a_cancelled_scope_raises_with_items_buffered(
    sessions: Sessions, policy: str
) -> None:
    """With items buffered (and the receive budget open after a first receive), a ``receive``
    in a cancelled scope raises the cancellation and takes nothing (as in-process)."""
    a, b, _ = sessions
    async with zenoh_pair(a, b, 4, policy) as (tx, rx):
        for i in range(3):
            await tx.send(i)
        assert await settle(lambda: rx.statistics().queued == 3)
        assert await rx.receive() == 0
        returned: list[Any] = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            returned.append(await rx.receive())
        assert returned == [] and scope.cancelled_caught
        assert rx.statistics().queued == 2
        assert [await rx.receive(), await rx.receive()] == [1, 2]
