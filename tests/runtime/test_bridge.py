"""Thread -> event-loop hand-off (rtrun._bridge) on asyncio and trio."""

from __future__ import annotations

import random
import threading
import time

import anyio
import pytest
from rtrun._bridge import Handoff, ThreadBridge
from rtrun._errors import ChannelError

real_time = pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("asyncio", {}), id="asyncio"), pytest.param(("trio", {}), id="trio-real")],
)
"""Real threads deliver in real time: a mock clock would autojump past every timeout."""


def _feed(handoff: Handoff[int], items: range, jitter: bool = False) -> threading.Thread:
    def run() -> None:
        rng = random.Random(1)
        for i in items:
            if jitter and rng.random() < 0.3:
                time.sleep(rng.random() * 0.0005)
            handoff.put_threadsafe(i)

    thread = threading.Thread(target=run, name="fake-zenoh-thread")
    thread.start()
    return thread


@pytest.mark.anyio
@real_time
async def test_items_cross_in_order_without_loss() -> None:
    handoff: Handoff[int] = Handoff(3000)
    thread = _feed(handoff, range(3000), jitter=True)
    got = [await handoff.get() for _ in range(3000)]
    thread.join()
    assert got == list(range(3000))
    assert handoff.snapshot() == (3000, 0, {})
    assert handoff.wakeups <= 3000
    handoff.close()


@pytest.mark.anyio
@real_time
async def test_no_lost_wakeup_under_contention() -> None:
    """A consumer that parks and wakes thousands of times never misses an item."""
    handoff: Handoff[int] = Handoff(1)  # a single slot forces a park per item
    got: list[int] = []
    done = threading.Event()

    def produce() -> None:
        for i in range(500):
            while handoff.snapshot()[1]:  # wait for room: never drop in this test
                time.sleep(0)
            handoff.put_threadsafe(i)
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    with anyio.fail_after(30):
        while len(got) < 500:
            got.append(await handoff.get())
    thread.join()
    assert got == list(range(500)) and done.is_set()
    handoff.close()


@pytest.mark.parametrize(
    ("policy", "capacity", "kept", "dropped"),
    [
        ("drop_newest", 3, [0, 1, 2], {"overflow_newest": 7}),
        ("drop_oldest", 3, [7, 8, 9], {"overflow_oldest": 7}),
        ("latest", 1, [9], {"superseded": 9}),
    ],
)
async def test_overflow_policies_count_drops(
    policy: str, capacity: int, kept: list[int], dropped: dict[str, int]
) -> None:
    handoff: Handoff[int] = Handoff(capacity, policy)  # type: ignore[arg-type]
    _feed(handoff, range(10)).join()
    assert [await handoff.get() for _ in kept] == kept
    put, queued, drops = handoff.snapshot()
    assert (put, queued, drops) == (10, 0, dropped)
    assert put == len(kept) + queued + sum(drops.values())
    handoff.close()


@pytest.mark.anyio
@real_time
async def test_full_handoff_never_blocks_the_thread() -> None:
    handoff: Handoff[int] = Handoff(1, "drop_newest")
    start = time.perf_counter()
    _feed(handoff, range(20000)).join()
    assert time.perf_counter() - start < 5.0  # ~µs per put; the point: it returned at all
    assert handoff.snapshot()[2] == {"overflow_newest": 19999}
    handoff.close()


@pytest.mark.anyio
@real_time
async def test_close_wakes_a_parked_getter_and_counts_later_puts() -> None:
    handoff: Handoff[int] = Handoff(2)
    outcome: list[str] = []

    async def getter() -> None:
        try:
            await handoff.get()
        except anyio.ClosedResourceError:
            outcome.append("closed")

    async with anyio.create_task_group() as tg:
        tg.start_soon(getter)
        await anyio.wait_all_tasks_blocked()
        handoff.close()
    assert outcome == ["closed"]
    assert handoff.put_threadsafe(1) == "receiver_closed"
    with pytest.raises(anyio.ClosedResourceError):
        await handoff.get()


@pytest.mark.anyio
@real_time
async def test_close_discards_buffered_items_counted() -> None:
    handoff: Handoff[int] = Handoff(4)
    for i in range(3):
        handoff.put_threadsafe(i)
    handoff.close()
    assert handoff.snapshot()[2] == {"receiver_closed": 3}
    with pytest.raises(anyio.WouldBlock):
        handoff.get_nowait()


@pytest.mark.anyio
@real_time
async def test_cancelled_getter_leaves_bridge_usable() -> None:
    handoff: Handoff[int] = Handoff(2)
    with anyio.move_on_after(0.05):
        await handoff.get()
    handoff.put_threadsafe(5)
    assert await handoff.get() == 5
    handoff.close()


@pytest.mark.anyio
@real_time
async def test_thread_bridge_predicate_and_notify() -> None:
    bridge = ThreadBridge()
    state = {"n": 0}

    def bump() -> None:
        time.sleep(0.01)
        with bridge.lock:
            state["n"] += 1
            due = bridge.notify_locked()
        if due:  # the descriptor write happens outside the lock
            bridge.wake()

    thread = threading.Thread(target=bump)
    thread.start()
    with anyio.fail_after(10):
        await bridge.wait_until(lambda: state["n"] == 1)
    thread.join()
    bridge.notify()  # nobody parked: a no-op
    bridge.close()
    bridge.close()  # idempotent
    with pytest.raises(anyio.ClosedResourceError):
        await bridge.wait_until(lambda: False)


@pytest.mark.parametrize(
    ("capacity", "policy"), [(0, "drop_newest"), (2, "latest"), (1, "block"), (True, "drop_oldest")]
)
def test_invalid_handoff_configuration(capacity: int, policy: str) -> None:
    with pytest.raises(ChannelError):
        Handoff(capacity, policy)  # type: ignore[arg-type]


def test_thread_bridge_survives_its_event_loop() -> None:
    """A bridge first waited on in one asyncio loop keeps working in the next run (asyncio
    registers its descriptor once per loop) and on trio."""
    bridge = ThreadBridge()
    state = {"n": 0}

    def bump_later() -> None:
        time.sleep(0.01)
        with bridge.lock:
            state["n"] += 1
            due = bridge.notify_locked()
        if due:
            bridge.wake()

    async def wait_for(n: int) -> None:
        thread = threading.Thread(target=bump_later)
        thread.start()
        with anyio.fail_after(10):
            await bridge.wait_until(lambda: state["n"] == n)
        thread.join()

    for i, backend in enumerate(("asyncio", "asyncio", "trio", "asyncio"), start=1):
        anyio.run(wait_for, i, backend=backend)
    bridge.close()
