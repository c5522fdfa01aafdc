"""rtrun's additions to the vendored anyio suite, in its style and on the same adapter.

* anyio 4.16's close-while-waiting cases, which the vendored snapshot predates: the suite-level
  regression tests of issue 14 defects 4 and 5 (``rtrun.ReceivePort``/``SendPort`` close).
* ``math.inf`` is refused: every rtrun buffer is bounded (see ``_adapter``).
* *Settled* variants of upstream cases that an asynchronous transport cannot meet within one
  tick: each adds ``wait_all_tasks_blocked()`` (which lets a cross-host channel settle) where
  the upstream test relies on a synchronous handoff, so the semantics stay checked across
  hosts. In-process they are the upstream cases, barrier or not.
"""

from __future__ import annotations

import pytest
from anyio import CancelScope, ClosedResourceError, EndOfStream, WouldBlock, create_task_group, fail_after

from ._adapter import create_memory_object_stream, wait_all_tasks_blocked


async def test_close_receive_while_receiving() -> None:
    """Closing the receive stream wakes its blocked receive() with ClosedResourceError."""
    send, receive = create_memory_object_stream[str](0)
    with pytest.raises(ExceptionGroup) as exc:
        async with create_task_group() as tg:
            tg.start_soon(receive.receive)
            await wait_all_tasks_blocked()
            await receive.aclose()

    assert len(exc.value.exceptions) == 1
    assert isinstance(exc.value.exceptions[0], ClosedResourceError)

    send.close()
    receive.close()


async def test_close_receive_after_item_handed_while_receiving() -> None:
    """A blocked receive() that was already handed an item returns it, although its stream
    is closed before it resumes."""

    async def receiver() -> None:
        received.append(await receive.receive())

    received: list[str] = []
    send, receive = create_memory_object_stream[str](0)
    async with create_task_group() as tg:
        tg.start_soon(receiver)
        await wait_all_tasks_blocked()
        send.send_nowait("hello")
        receive.close()

    assert received == ["hello"]

    send.close()


async def test_close_send_while_sending() -> None:
    """Closing the send stream withdraws the item of its blocked send(), which raises
    ClosedResourceError: the item was not sent."""
    send, receive = create_memory_object_stream[str](0)
    with pytest.raises(ExceptionGroup) as exc:
        async with create_task_group() as tg:
            tg.start_soon(send.send, "hello")
            await wait_all_tasks_blocked()
            await send.aclose()

    assert len(exc.value.exceptions) == 1
    assert isinstance(exc.value.exceptions[0], ClosedResourceError)
    with fail_after(5), pytest.raises(EndOfStream):
        await receive.receive()

    receive.close()


async def test_close_send_after_item_taken_while_sending() -> None:
    """A blocked send() whose item receive_nowait() took returns normally when its stream
    is closed before it resumes: the item was delivered, so raising would invite a retry
    that duplicates it."""
    send, receive = create_memory_object_stream[str](0)
    async with create_task_group() as tg:
        tg.start_soon(send.send, "hello")
        await wait_all_tasks_blocked()
        assert receive.receive_nowait() == "hello"
        send.close()

    receive.close()


def test_unbounded_buffer_is_rejected() -> None:
    """rtrun keeps every buffer bounded: anyio's ``math.inf`` is refused."""
    with pytest.raises(ValueError, match="channel capacity must be an integer >= 0, got inf"):
        create_memory_object_stream(float("inf"))


async def test_cancel_receive_settled() -> None:
    """``test_cancel_receive`` with a barrier after the cancellation: a cancelled receive
    leaves no grant behind, so a rendezvous ``send_nowait`` finds no receiver."""
    send, receive = create_memory_object_stream[str]()
    async with create_task_group() as tg:
        tg.start_soon(receive.receive)
        await wait_all_tasks_blocked()
        tg.cancel_scope.cancel()

    await wait_all_tasks_blocked()
    with pytest.raises(WouldBlock):
        send.send_nowait("hello")

    send.close()
    receive.close()


async def test_receive_when_cancelled_with_items_buffered() -> None:
    """``test_receive_when_cancelled`` with the items already buffered: ``receive()`` is a
    checkpoint even when it need not wait, so in a cancelled scope it takes nothing."""
    send, receive = create_memory_object_stream[str](2)
    send.send_nowait("hello")
    send.send_nowait("world")
    await wait_all_tasks_blocked()
    assert await receive.receive() == "hello"
    with CancelScope() as scope:
        scope.cancel()
        await receive.receive()

    assert scope.cancelled_caught
    assert receive.receive_nowait() == "world"

    send.close()
    receive.close()


async def test_statistics_settled() -> None:
    """``test_statistics``' first half with a barrier after each step: once settled, both
    ends report the same statistics, and the expected ones."""

    def both() -> tuple[int, int, int, int]:
        assert send.statistics() == receive.statistics()
        stats = receive.statistics()
        return (
            stats.current_buffer_used,
            stats.tasks_waiting_send,
            stats.tasks_waiting_receive,
            stats.open_send_streams,
        )

    send, receive = create_memory_object_stream[None](1)
    assert both() == (0, 0, 0, 1)
    async with create_task_group() as tg:
        send.send_nowait(None)
        tg.start_soon(send.send, None)
        await wait_all_tasks_blocked()
        assert both() == (1, 1, 0, 1)
        receive.receive_nowait()
        await wait_all_tasks_blocked()
        assert both() == (1, 0, 0, 1)
        receive.receive_nowait()
        tg.start_soon(receive.receive)
        await wait_all_tasks_blocked()
        assert both() == (0, 0, 1, 1)
        send.send_nowait(None)

    await wait_all_tasks_blocked()
    assert both() == (0, 0, 0, 1)

    send.close()
    receive.close()
