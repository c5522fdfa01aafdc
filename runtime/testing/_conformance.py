"""Channel conformance suite: every transport must pass it unchanged.

Theory of operation
-------------------
``check_channel(open_pair)`` runs a list of scenario coroutines against a channel *factory*.
``open_pair(capacity, policy)`` is an async context manager yielding ``(send_port,
receive_port)``; for the in-process transport it wraps :func:`rtrun.open_channel`, for Zenoh it
opens two sessions (or processes) and yields the two ends of a cross-host channel.

Transports deliver asynchronously (Zenoh hands items over from its own threads), so scenarios
never assume an item is visible the instant ``send`` returns: they *settle* by polling the
receiver's statistics until the expected counters are reached (bounded by ``settle_timeout``).
In-process channels settle immediately. Assertions about "this send blocks" use a short
``move_on_after`` window, which is instantaneous on virtual time.

Statistics follow anyio's ``MemoryObjectStreamStatistics`` (``queued`` is its
``current_buffer_used``, ``capacity`` its ``max_buffer_size``, ``open_*_ports`` its
``open_*_streams``): in-process both ports read one state; across hosts each end reports its
own view, and once settled the two views agree (``statistics_agree``).

Scenarios are plain functions so a failing one names exactly which semantic broke.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel

from .._channel import ReceivePort, SendPort, open_channel

__all__ = ["ChannelFactory", "ConformanceOptions", "check_channel", "memory_channel_factory"]

ChannelFactory = Callable[[int, str], AbstractAsyncContextManager[tuple[Any, Any]]]
"""``open_pair(capacity, policy)`` -> async context manager of ``(send_port, receive_port)``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConformanceOptions:
    """What the transport under test supports and how long it may take to settle."""

    settle_timeout: float = 5.0
    """Upper bound for an asynchronous transport to deliver what was sent (seconds)."""
    block_window: float = 0.2
    """How long a send must stay blocked to count as "blocks" (seconds)."""
    rendezvous: bool = True
    """Whether capacity 0 (rendezvous) is supported."""
    local_cancellation: bool = True
    """Whether a cancelled blocked send is checked to be withdrawn (in-process semantics)."""


@asynccontextmanager
async def memory_channel_factory(capacity: int, policy: str) -> AsyncIterator[tuple[Any, Any]]:
    """The in-process reference factory for :func:`check_channel`."""
    send, receive = open_channel(capacity, policy)  # type: ignore[arg-type]
    with send, receive:
        yield send, receive


async def _settle(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    with anyio.move_on_after(timeout):
        while not predicate():  # noqa: ASYNC110 - a transport has no event to wait on
            await anyio.sleep(0.005)
        return
    raise AssertionError(f"transport did not settle within {timeout} s: expected {what}")


async def _settled(predicate: Callable[[], bool], timeout: float) -> None:
    """Wait until ``predicate()`` holds, at most ``timeout``; never fails by itself (the
    assertion that follows names what did not happen)."""
    with anyio.move_on_after(timeout):
        while not predicate():  # noqa: ASYNC110 - a transport has no event to wait on
            await anyio.sleep(0.005)


_ANYIO_FIELDS = ("queued", "capacity", "open_send_ports", "open_receive_ports")
_ANYIO_FIELDS += ("tasks_waiting_send", "tasks_waiting_receive")


def _anyio_view(port: Any) -> dict[str, int]:
    stats = port.statistics()
    return {name: getattr(stats, name) for name in _ANYIO_FIELDS}


async def _agree(send: Any, receive: Any, opts: ConformanceOptions, **expected: int) -> None:
    """Once settled, both ends report ``expected`` (a subset of the anyio-named fields)."""

    def holds() -> bool:
        views = (_anyio_view(send), _anyio_view(receive))
        return all(view[k] == v for view in views for k, v in expected.items())

    await _settled(holds, opts.settle_timeout)
    views = {"send": _anyio_view(send), "receive": _anyio_view(receive)}
    assert holds(), f"statistics: expected {expected} at both ends, got {views}"


async def _drain(receive: ReceivePort[Any], count: int) -> list[Any]:
    return [await receive.receive() for _ in range(count)]


Scenario = Callable[[ChannelFactory, ConformanceOptions], Awaitable[None]]


async def fifo_order(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """``block``: items arrive in order, none lost, counters consistent."""
    async with open_pair(4, "block") as (send, receive):
        async with anyio.create_task_group() as tg:

            async def produce() -> None:
                for i in range(50):
                    await send.send(i)

            tg.start_soon(produce)
            assert await _drain(receive, 50) == list(range(50))
        stats = receive.statistics()
        assert (stats.sent, stats.received, stats.dropped_total) == (50, 50, 0), stats


async def block_backpressure(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """``block``: ``capacity`` sends complete without a reader, the next one waits."""
    async with open_pair(2, "block") as (send, receive):
        await send.send(0)
        await send.send(1)
        with anyio.move_on_after(opts.block_window) as scope:
            await send.send(2)
        assert scope.cancelled_caught, "send on a full 'block' channel must wait"
        assert await receive.receive() == 0
        assert await receive.receive() == 1
        await send.send(3)  # room again
        assert await receive.receive() == 3
        assert receive.statistics().dropped_total == 0


async def rendezvous(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """``block`` with capacity 0: a send completes only when a receiver takes the item."""
    if not opts.rendezvous:
        return
    async with open_pair(0, "block") as (send, receive):
        with anyio.move_on_after(opts.block_window) as scope:
            await send.send("x")
        assert scope.cancelled_caught, "capacity 0 send must wait for a receiver"
        async with anyio.create_task_group() as tg:
            tg.start_soon(send.send, "y")
            assert await receive.receive() == "y"


async def cancelled_receive_withdraws(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """Capacity 0: a receive that waited and was cancelled admits no item afterwards."""
    if not opts.rendezvous:
        return
    async with open_pair(0, "block") as (send, receive):
        with anyio.move_on_after(opts.block_window):
            await receive.receive()
        await _settled(lambda: send.statistics().tasks_waiting_receive == 0, opts.settle_timeout)
        try:
            send.send_nowait("late")
        except anyio.WouldBlock:
            pass
        else:  # pragma: no cover - failure path
            raise AssertionError("send_nowait succeeded on capacity 0 with no receive waiting")
        assert receive.statistics().queued == 0


async def rendezvous_per_waiting_receiver(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """Capacity 0 with two receives waiting (one on a clone): two ``send_nowait`` succeed."""
    if not opts.rendezvous:
        return
    async with open_pair(0, "block") as (send, receive):
        got: list[Any] = []

        async def take(port: Any) -> None:
            got.append(await port.receive())

        with receive.clone() as clone:
            async with anyio.create_task_group() as tg:
                tg.start_soon(take, receive)
                tg.start_soon(take, clone)
                await _settled(lambda: send.statistics().tasks_waiting_receive == 2, opts.settle_timeout)
                send.send_nowait("a")
                send.send_nowait("b")
                try:
                    send.send_nowait("c")
                except anyio.WouldBlock:
                    pass
                else:  # pragma: no cover - failure path
                    raise AssertionError("a third send_nowait succeeded with two receives waiting")
        assert sorted(got) == ["a", "b"]


async def receive_cancelled_with_items_buffered(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """``receive`` is a cancellation point even with items buffered: it raises, takes nothing."""
    async with open_pair(4, "block") as (send, receive):
        for i in range(3):
            await send.send(i)
        await _settled(lambda: receive.statistics().queued == 3, opts.settle_timeout)
        assert await receive.receive() == 0
        returned: list[Any] = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            returned.append(await receive.receive())
        assert returned == [], "receive in a cancelled scope returned an item"
        assert receive.statistics().queued == 2
        assert await _drain(receive, 2) == [1, 2]


async def send_cancelled_publishes_nothing(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """``send`` is a cancellation point on every call: in a cancelled scope it raises and sends
    nothing, even right after a send that completed without waiting."""
    async with open_pair(4, "block") as (send, receive):
        await send.send(0)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await send.send("cancelled")
        assert scope.cancelled_caught, "send in a cancelled scope did not raise the cancellation"
        await send.send(1)
        assert await _drain(receive, 2) == [0, 1]
        assert receive.statistics().sent == 2


async def _count_scheduling_points(operation: Callable[[], Awaitable[Any]], times: int) -> int:
    """Run ``operation`` ``times`` in a row, with another task that only counts its own turns;
    return how many turns it had meanwhile (0 if ``operation`` never let it run)."""
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_task)
        await anyio.lowlevel.checkpoint()  # let it start (and reach its loop)
        await anyio.lowlevel.checkpoint()
        before = turns
        for _ in range(times):
            await operation()
        after = turns
        tg.cancel_scope.cancel()
    return after - before


_BURST = 12
"""Items per scheduling scenario: below any plausible "yield every N" budget (Tokio's is 128,
rtrun's Zenoh ports had 32), so a budget shows as (almost) no turns for the other task."""


async def receive_is_a_scheduling_point(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """Every ``receive`` yields to the scheduler, also when it takes an item already buffered:
    another task runs between two receives (a busy consumer cannot starve the loop)."""
    async with open_pair(_BURST, "block") as (send, receive):
        for i in range(_BURST):
            await send.send(i)
        await _settle(lambda: receive.statistics().queued == _BURST, opts.settle_timeout, f"{_BURST} queued")
        turns = await _count_scheduling_points(receive.receive, _BURST)
        # trio runs each runnable task once per batch, in a random order per batch: the other
        # task gets between _BURST - 1 and _BURST + 1 turns; asyncio gives exactly _BURST.
        assert turns >= _BURST - 1, f"{_BURST} receives let another task run only {turns} times"


async def send_is_a_scheduling_point(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """Every ``send`` yields to the scheduler, also when it never waits (a dropping policy)."""
    async with open_pair(_BURST, "drop_oldest") as (send, receive):
        counter = iter(range(_BURST))
        turns = await _count_scheduling_points(lambda: send.send(next(counter)), _BURST)
        assert turns >= _BURST - 1, f"{_BURST} sends let another task run only {turns} times"
        await _settle(lambda: receive.statistics().queued == _BURST, opts.settle_timeout, f"{_BURST} queued")
        assert await _drain(receive, _BURST) == list(range(_BURST))


async def statistics_agree(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """Both ends report anyio's statistics alike: buffered items (sent, not yet received),
    capacity, open clones of each side, tasks waiting in ``send`` and in ``receive``."""
    async with open_pair(1, "block") as (send, receive):
        await _agree(send, receive, opts, queued=0, capacity=1, open_send_ports=1, open_receive_ports=1)
        await send.send("a")
        await _agree(send, receive, opts, queued=1, tasks_waiting_send=0)
        async with anyio.create_task_group() as tg:
            for item in ("b", "c"):
                tg.start_soon(send.send, item)
            await _agree(send, receive, opts, queued=1, tasks_waiting_send=2)
            assert sorted([await receive.receive() for _ in range(3)]) == ["a", "b", "c"]
        await _agree(send, receive, opts, queued=0, tasks_waiting_send=0)
        with send.clone(), receive.clone(), receive.clone():
            await _agree(send, receive, opts, open_send_ports=2, open_receive_ports=3)
            async with anyio.create_task_group() as tg:
                tg.start_soon(receive.receive)
                await _agree(send, receive, opts, tasks_waiting_receive=1)
                await send.send("d")
            await _agree(send, receive, opts, queued=0, tasks_waiting_receive=0)
        await _agree(send, receive, opts, open_send_ports=1, open_receive_ports=1)


async def _overflow(
    open_pair: ChannelFactory, opts: ConformanceOptions, policy: str, capacity: int
) -> list[Any]:
    async with open_pair(capacity, policy) as (send, receive):
        for i in range(10):
            await send.send(i)  # never waits with a dropping policy
        await _settle(
            lambda: receive.statistics().queued + receive.statistics().dropped_total >= 10,
            opts.settle_timeout,
            "10 items queued or dropped",
        )
        stats = receive.statistics()
        assert stats.queued == capacity and stats.dropped_total == 10 - capacity, stats
        return await _drain(receive, capacity)


async def drop_oldest(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """``drop_oldest``: the newest ``capacity`` items survive; drops are counted."""
    assert await _overflow(open_pair, opts, "drop_oldest", 3) == [7, 8, 9]


async def drop_newest(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """``drop_newest``: the oldest ``capacity`` items survive; drops are counted."""
    assert await _overflow(open_pair, opts, "drop_newest", 3) == [0, 1, 2]


async def latest(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """``latest``: the newest value wins; a waiting receiver gets the next value at once."""
    assert await _overflow(open_pair, opts, "latest", 1) == [9]
    async with open_pair(1, "latest") as (send, receive):
        async with anyio.create_task_group() as tg:
            got: list[Any] = []

            async def take() -> None:
                got.append(await receive.receive())

            tg.start_soon(take)
            await anyio.sleep(opts.block_window / 4)
            await send.send("fresh")
        assert got == ["fresh"]


async def end_of_stream(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """EndOfStream only after every sender clone closed, and only once the buffer is drained."""
    async with open_pair(4, "block") as (send, receive):
        clone = send.clone()
        await send.send("a")
        await send.aclose()
        await clone.send("b")
        clone.close()
        assert await receive.receive() == "a"
        assert await receive.receive() == "b"
        try:
            with anyio.fail_after(opts.settle_timeout):
                await receive.receive()
        except anyio.EndOfStream:
            pass
        else:  # pragma: no cover - failure path
            raise AssertionError("expected EndOfStream after every sender closed")
        assert [item async for item in receive] == []


async def end_of_stream_wakes_waiter(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """A receiver already waiting is woken with EndOfStream when the last sender closes."""
    async with open_pair(1, "latest") as (send, receive):
        outcome: list[str] = []

        async def wait() -> None:
            try:
                await receive.receive()
            except anyio.EndOfStream:
                outcome.append("eos")

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.sleep(opts.block_window / 4)
            send.close()
        assert outcome == ["eos"]


async def closed_ports(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """Your own closed port raises ClosedResourceError; close is idempotent."""
    async with open_pair(1, "block") as (send, receive):
        send.close()
        send.close()  # idempotent
        await send.aclose()  # also fine on a closed port
        try:
            await send.send(1)
        except anyio.ClosedResourceError:
            pass
        else:  # pragma: no cover - failure path
            raise AssertionError("send on a closed port must raise ClosedResourceError")
        receive.close()
        try:
            await receive.receive()
        except anyio.ClosedResourceError:
            pass
        else:  # pragma: no cover - failure path
            raise AssertionError("receive on a closed port must raise ClosedResourceError")


async def broken_when_receivers_gone(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """Once every receiver is closed, send raises BrokenResourceError (also a waiting send)."""
    async with open_pair(1, "block") as (send, receive):
        await send.send(1)
        outcome: list[str] = []

        async def blocked_send() -> None:
            try:
                await send.send(2)
            except anyio.BrokenResourceError:
                outcome.append("broken")

        async with anyio.create_task_group() as tg:
            tg.start_soon(blocked_send)
            await anyio.sleep(opts.block_window / 4)
            receive.close()
        assert outcome == ["broken"]
        with anyio.fail_after(opts.settle_timeout):
            while True:
                try:
                    await send.send(3)
                except anyio.BrokenResourceError:
                    break
                await anyio.sleep(0.01)


async def cancelled_send_is_withdrawn(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """A blocked send that is cancelled did not send its item (atomic under cancellation)."""
    if not opts.local_cancellation:
        return
    async with open_pair(1, "block") as (send, receive):
        await send.send("kept")
        with anyio.move_on_after(opts.block_window):
            await send.send("withdrawn")
        assert await receive.receive() == "kept"
        await send.send("after")
        assert await receive.receive() == "after"
        assert receive.statistics().sent == 2


async def fan_in(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """Several sender clones feed one receiver; EndOfStream after the last clone closes."""
    async with open_pair(8, "block") as (send, receive):
        clones = [send.clone() for _ in range(3)]
        send.close()

        async def produce(port: SendPort[Any], base: int) -> None:
            async with port:
                for i in range(5):
                    await port.send(base + i)

        async with anyio.create_task_group() as tg:
            for n, port in enumerate(clones):
                tg.start_soon(produce, port, 100 * n)
            got = [item async for item in receive]
        assert sorted(got) == sorted(100 * n + i for n in range(3) for i in range(5))
        for n in range(3):  # per-sender order is preserved
            mine = [g for g in got if g // 100 == n]
            assert mine == sorted(mine)


async def statistics_fields(open_pair: ChannelFactory, opts: ConformanceOptions) -> None:
    """statistics() reports capacity, policy, counts and open ports."""
    async with open_pair(2, "drop_newest") as (send, receive):
        for i in range(3):
            await send.send(i)
        await _settle(lambda: receive.statistics().dropped_total == 1, opts.settle_timeout, "1 drop")
        stats = receive.statistics()
        assert stats.capacity == 2 and stats.policy == "drop_newest"
        assert stats.dropped == {"overflow_newest": 1}
        assert stats.open_receive_ports >= 1 and stats.open_send_ports >= 1
        assert await receive.receive() == 0
        assert receive.statistics().received == 1


SCENARIOS: tuple[Scenario, ...] = (
    fifo_order,
    block_backpressure,
    rendezvous,
    drop_oldest,
    drop_newest,
    latest,
    end_of_stream,
    end_of_stream_wakes_waiter,
    closed_ports,
    broken_when_receivers_gone,
    cancelled_send_is_withdrawn,
    fan_in,
    statistics_fields,
    cancelled_receive_withdraws,
    rendezvous_per_waiting_receiver,
    receive_cancelled_with_items_buffered,
    statistics_agree,
    send_cancelled_publishes_nothing,
    receive_is_a_scheduling_point,
    send_is_a_scheduling_point,
)
"""Every scenario, in a stable order (tests parametrize over it to get one result each)."""


async def check_channel(open_pair: ChannelFactory, options: ConformanceOptions | None = None) -> None:
    """Run every conformance scenario against ``open_pair``; raise AssertionError on the first failure."""
    opts = options or ConformanceOptions()
    for scenario in SCENARIOS:
        await scenario(open_pair, opts)
