"""Thread -> event-loop hand-off for foreign callbacks (Zenoh), on asyncio and trio.

Theory of operation
-------------------
zenoh-python runs subscriber and liveliness callbacks on Zenoh's own threads. Those callbacks
must never run user code, take long, or block (a blocked Zenoh thread stalls every subscriber of
the session). So a callback only *deposits*: under a short ``threading.Lock`` it mutates plain
data (appends to a bounded deque, updates a counter) and, if a loop task is parked waiting for
exactly that, schedules one non-blocking wake-up of the loop.

:class:`ThreadBridge` is that primitive: a lock shared by both sides plus at most one parked
waiter. The loop side calls :meth:`ThreadBridge.wait_until` with a predicate evaluated under the
lock; if it is false the task marks itself parked and polls a wake-up descriptor. The thread
side calls :meth:`ThreadBridge.notify_locked` while still holding the lock: if a task is parked
and no wake-up is pending it marks the wake-up pending, and the thread makes the descriptor
readable (:meth:`ThreadBridge.wake`) right after releasing the lock. Because the predicate check and the
parking happen under the same lock as the deposit, a wake-up can never be lost; because only
the first notify of a park signals, a burst of N samples costs one loop wake-up, not N.

Waking mechanism (measured with ``benchmarks/bridge_wake.py``, median one-way latency from a
foreign thread's deposit to the waiting task running, 2000 samples, this 2-core machine):

=======================================  ==============  ==============
mechanism                                asyncio p50     trio p50
=======================================  ==============  ==============
eventfd + ``anyio.wait_readable``        50-70 us        42-55 us
loop scheduler (``call_soon_threadsafe``
/ ``TrioToken.run_sync_soon``) setting
an ``anyio.Event``                       60-75 us        80-95 us
``anyio.from_thread.run_sync``           rejected: it *blocks* the Zenoh thread
=======================================  ==============  ==============

On asyncio the two are within noise; on trio the descriptor wins clearly, because the poller resumes the waiting task directly, whereas a scheduled
callback costs an extra scheduling round (trio runs ``run_sync_soon`` callbacks in a system
task, then reschedules the waiter). So the bridge owns one non-blocking eventfd (a pipe where
eventfd does not exist); the foreign thread writes to it only when a waiter is parked and no
wake-up is pending, so it is written at most once per park and never blocks. It works
unchanged on asyncio (also uvloop) and trio, needs no event-loop token, and the descriptor is
released by :meth:`ThreadBridge.close` or a finalizer.

Two refinements found by profiling a receiver under a burst (``py-spy``):

- The write happens *after* the lock is released (:meth:`ThreadBridge.notify_locked` only
  decides; the caller then calls :meth:`ThreadBridge.wake`). ``os.write`` drops the GIL; done
  under the lock, the woken loop thread took the GIL and ran straight into the lock still held by
  the Zenoh thread, which then waited for the GIL: a convoy costing two context switches.
- On asyncio the descriptor is registered with the loop *once*, on the first wait
  (``loop.add_reader``), and each wait parks on a plain future that the reader callback
  resolves. ``anyio.wait_readable`` registers and unregisters the descriptor on every wait,
  about forty Python calls in ``selectors`` per wake-up. trio keeps ``anyio.wait_readable``.
  ``bridge_wake.py`` afterwards: asyncio p50 19.6 us (a bare pipe + ``wait_readable``: 26 us,
  ``call_soon_threadsafe``: 30 us); trio 18.8 us.

:class:`Handoff` is the bounded buffer built on it, with the channel overflow policies
(``drop_newest``, ``drop_oldest``, ``latest``, applied by :func:`rtrun._overflow.offer` as on
every channel): every drop is counted per reason; the deque never
exceeds its capacity, so nothing here is unbounded.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Generic, Literal, TypeVar

import anyio
from anyio import ClosedResourceError, WouldBlock
from anyio.lowlevel import checkpoint

from ._errors import ChannelError
from ._overflow import (
    OVERFLOW_NEWEST,
    RECEIVER_CLOSED,
    check_overflow,
    count_drop,
    discard_all,
    offer,
    overflow_reason,
)

__all__ = ["Handoff", "HandoffPolicy", "ThreadBridge"]

T = TypeVar("T")

HandoffPolicy = Literal["drop_newest", "drop_oldest", "latest"]
"""What a full :class:`Handoff` does with a new item (never ``block``: threads must not wait)."""


class _Wakeup:
    """A non-blocking, coalescing wake-up file descriptor (eventfd on Linux, else a pipe)."""

    __slots__ = ("_read_fd", "_write_fd")

    def __init__(self) -> None:
        if hasattr(os, "eventfd"):
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._read_fd = self._write_fd = fd
        else:  # pragma: no cover - non-Linux
            self._read_fd, self._write_fd = os.pipe()
            os.set_blocking(self._read_fd, False)
            os.set_blocking(self._write_fd, False)

    @property
    def fileno(self) -> int:
        """The descriptor the event loop polls for readability."""
        return self._read_fd

    @property
    def write_fd(self) -> int:
        """The descriptor a wake-up writes to (:meth:`ThreadBridge.wake`; never blocks)."""
        return self._write_fd

    def drain(self) -> None:
        """Make the descriptor unreadable again."""
        try:
            os.read(self._read_fd, 64)
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Release the descriptor(s); only when no task polls them."""
        os.close(self._read_fd)
        if self._write_fd != self._read_fd:
            os.close(self._write_fd)


_write: Final = os.write
_ONE: Final = (1).to_bytes(8, sys.byteorder)  # eventfd wants one native u64; a pipe takes any byte


class ThreadBridge:
    """A lock shared with foreign threads plus one parked loop waiter (see module docstring).

    ``lock`` guards whatever state the owner shares with callbacks. Foreign threads mutate that
    state under ``lock``, call :meth:`notify_locked` (still holding it) and, if it returned
    True, :meth:`wake` *after* releasing it. Call :meth:`close` when done (a finalizer also
    releases the descriptor).
    """

    __slots__ = (
        "__weakref__",
        "_closing",
        "_finalizer",
        "_future",
        "_loop",
        "_parked",
        "_signalled",
        "_wake_fd",
        "_wakeup",
        "lock",
        "wakeups",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        """Guards the owner's shared state and the parked waiter."""
        self.wakeups = 0
        """How many loop wake-ups were signalled (diagnostics)."""
        self._wakeup = _Wakeup()
        self._wake_fd = self._wakeup.write_fd
        self._finalizer = weakref.finalize(self, self._wakeup.close)
        self._parked = False
        self._signalled = False
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None  # asyncio: the loop we read in
        self._future: asyncio.Future[None] | None = None  # asyncio: the parked waiter's

    def notify_locked(self) -> bool:
        """Mark the parked loop task (if any) as woken. Call with :attr:`lock` held; returns
        True when the caller must call :meth:`wake` once it has released the lock."""
        if self._parked and not self._signalled:
            self._signalled = True
            self.wakeups += 1
            return True
        return False

    def wake(self) -> None:
        """Make the wake-up descriptor readable (from any thread, never blocks).

        Called *outside* :attr:`lock`: the write is a system call that releases the GIL, and
        doing it under the lock would let the woken loop thread run straight into the lock.
        (The write is done here, not in a ``_Wakeup`` method: one call layer less for the
        sparse sample's callback, which meets a cold cache.)
        """
        try:
            _write(self._wake_fd, _ONE)
        except BlockingIOError:  # pragma: no cover - already readable: the wake is pending
            pass

    def notify(self) -> None:
        """Take :attr:`lock` and wake the parked loop task, if any (from any thread)."""
        with self.lock:
            due = self.notify_locked()
        if due:
            self.wake()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait (in the event loop) until ``predicate()`` -- evaluated under the lock -- holds.

        Only one task may wait at a time (the owner serializes its waiters). Not a checkpoint
        when the predicate already holds; callers add one.
        """
        loop = self._loop
        if loop is None or (loop is not _NOT_ASYNCIO and loop.is_closed()):
            loop = self._attach()  # first wait, or the previous loop is gone
        while True:
            with self.lock:
                if predicate():
                    return
                if self._closing:
                    raise ClosedResourceError
                future = loop.create_future() if loop is not _NOT_ASYNCIO else None
                self._parked = True
                self._future = future
            woken = False
            try:
                if future is not None:
                    await future
                else:
                    await anyio.wait_readable(self._wakeup.fileno)
                    woken = True
            finally:
                self._unpark(woken)

    def _attach(self) -> Any:
        """First wait: on asyncio, watch the descriptor for good (one reader registration for
        the bridge's life instead of one per wait); elsewhere use ``anyio.wait_readable``."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no asyncio loop in this thread: trio
            self._loop = _NOT_ASYNCIO
            return _NOT_ASYNCIO
        self._loop = loop  # (a closed previous loop took its reader registration with it)
        loop.add_reader(self._wakeup.fileno, self._on_readable)
        return loop

    def _on_readable(self) -> None:
        """asyncio reader callback (loop thread): consume the wake-up, resume the waiter."""
        self._wakeup.drain()
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def _unpark(self, woken: bool) -> None:
        with self.lock:
            self._parked = False
            self._future = None
            signalled, self._signalled = self._signalled, False
            release = self._closing
        if (signalled or woken) and self._loop is _NOT_ASYNCIO:
            self._wakeup.drain()  # (a late wake() after a cancelled wait costs one spurious wake)
        if release:
            self._release()

    def _release(self) -> None:
        loop, self._loop = self._loop, _NOT_ASYNCIO
        if loop is not None and loop is not _NOT_ASYNCIO and not loop.is_closed():
            try:
                loop.remove_reader(self._wakeup.fileno)
            except (OSError, ValueError):  # pragma: no cover - already gone
                pass
        self._finalizer()

    def close(self) -> None:
        """Release the wake-up descriptor (now, or as soon as the parked waiter leaves).

        Call it from the event loop thread that waited on the bridge (if any did).
        """
        with self.lock:
            if self._closing:
                return
            self._closing = True
            parked = self._parked
            due = self.notify_locked()
        if due:
            self.wake()
        if not parked:
            self._release()


_NOT_ASYNCIO: Final[Any] = object()  # ThreadBridge._loop when waiting with anyio.wait_readable


class Handoff(Generic[T]):
    """A bounded, thread-safe buffer from foreign threads into one event loop.

    :meth:`put_threadsafe` never blocks; when full it applies ``policy`` and counts the drop.
    """

    __slots__ = ("_bridge", "_buffer", "_closed", "capacity", "dropped", "policy", "put_count")

    def __init__(self, capacity: int, policy: HandoffPolicy = "drop_newest") -> None:
        if overflow_reason(policy) is None:  # (``block`` too: a Zenoh thread must never wait)
            raise ChannelError(f"hand-off policy must be drop_newest, drop_oldest or latest, not {policy!r}")
        check_overflow(capacity, policy)  # (>= 1 for these policies; 'latest' is one slot)
        self.capacity = capacity
        """Maximum number of buffered items."""
        self.policy: HandoffPolicy = policy
        """Overflow policy."""
        self.dropped: dict[str, int] = {}
        """Drops per reason (read under the bridge lock or via :meth:`snapshot`)."""
        self.put_count = 0
        """Items offered by :meth:`put_threadsafe` (accepted or dropped)."""
        self._bridge = ThreadBridge()
        self._buffer: deque[T] = deque()
        self._closed = False

    def put_threadsafe(self, item: T) -> str | None:
        """Deposit ``item`` from any thread. Returns the drop reason if something was dropped."""
        with self._bridge.lock:
            self.put_count += 1
            if self._closed:
                return self._drop_locked(RECEIVER_CLOSED)
            reason = offer(self._buffer, item, self.capacity, self.policy)  # (rtrun._overflow)
            if reason is not None:
                self._drop_locked(reason)
            if reason == OVERFLOW_NEWEST:
                return reason
            due = self._bridge.notify_locked()
        if due:
            self._bridge.wake()
        return reason

    def _drop_locked(self, reason: str) -> str:
        count_drop(self.dropped, reason)
        return reason

    def get_nowait(self) -> T:
        """Take the oldest item (event-loop side). Raises ``WouldBlock`` when empty."""
        with self._bridge.lock:
            if not self._buffer:
                raise WouldBlock
            return self._buffer.popleft()

    async def get(self) -> T:
        """Wait for and take the oldest item. Always a checkpoint.

        Raises ``ClosedResourceError`` once :meth:`close` was called.
        """
        await checkpoint()
        while True:
            await self._bridge.wait_until(lambda: bool(self._buffer))
            try:
                return self.get_nowait()
            except WouldBlock:  # pragma: no cover - single consumer: cannot happen
                continue

    def close(self) -> None:
        """Discard buffered items (counted as ``receiver_closed``); later puts are dropped too."""
        with self._bridge.lock:
            self._closed = True
            discard_all(self._buffer, self.dropped, RECEIVER_CLOSED)
        self._bridge.close()

    def snapshot(self) -> tuple[int, int, dict[str, int]]:
        """``(put_count, queued, dropped)`` read atomically."""
        with self._bridge.lock:
            return self.put_count, len(self._buffer), dict(self.dropped)

    @property
    def wakeups(self) -> int:
        """Loop wake-ups scheduled so far (fewer than puts when items arrive in bursts)."""
        return self._bridge.wakeups
