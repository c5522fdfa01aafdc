"""MockTransport: an in-memory stand-in for Zenoh sessions, with loss, latency and vanish faults.

Theory of operation
-------------------
The cross-host channel ports (:mod:`rtrun._zenoh_channel`) use a small part of a
:class:`~rtrun._zenoh.ZenohSession`: publishers, sample subscribers, liveliness tokens and
liveliness subscribers, plus ``epoch``. A :class:`MockNetwork` connects any number of
:class:`MockSession` objects offering exactly that part, so the real sender and receiver cores run
unchanged -- only Zenoh is replaced (httpx's ``MockTransport`` plays the same role for HTTP).

Every sample published, and every token declared or undeclared, becomes a *delivery* queued on
the network with a due time of ``now + latency``. Nothing is delivered from inside a ``put``
(callbacks never run re-entrantly under a port's lock, as with Zenoh's own threads); instead
:meth:`MockNetwork.deliver` runs the callbacks of every delivery due by a given time, in order.
Tests drive it synchronously (``network.deliver(now)``) or let :meth:`MockNetwork.pump` do it
from a task, on the runtime clock -- so on trio's ``MockClock`` cross-host behaviour runs in
virtual time. Faults:

- ``loss``: a predicate ``(key, attachment) -> bool`` deciding which data samples are lost
  (liveliness is never lost: Zenoh reports a session leaving through its lease);
- ``latency``: seconds between a publication and its delivery (samples keep their order);
- :meth:`MockSession.vanish`: the session disappears without a word (its tokens vanish; nothing
  else is published), as a killed process does.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from .._errors import TransportError
from .._zenoh import new_epoch

__all__ = ["MockNetwork", "MockSession"]

LossPredicate = Callable[[str, "bytes | None"], bool]


def key_matches(pattern: str, key: str) -> bool:
    """Zenoh key-expression matching for the forms rtrun uses: ``*`` is one chunk, ``**`` any."""
    parts, chunks = pattern.split("/"), key.split("/")
    for i, part in enumerate(parts):
        if part == "**":
            return True
        if i >= len(chunks) or (part != "*" and part != chunks[i]):
            return False
    return len(parts) == len(chunks)


@dataclass(frozen=True, slots=True)
class _Bytes:
    """What ``sample.payload`` / ``sample.attachment`` look like to a Zenoh callback."""

    data: bytes

    def to_bytes(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class _Sample:
    key_expr: str
    payload: _Bytes
    attachment: _Bytes | None


class _Declared:
    """A declaration; ``close()`` undoes it (idempotent)."""

    def __init__(self, undo: Callable[[], None]) -> None:
        self._undo: Callable[[], None] | None = undo

    def close(self) -> None:
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()


class _Publisher(_Declared):
    def __init__(self, session: MockSession, key: str) -> None:
        super().__init__(lambda: None)
        self.session, self.key = session, key

    def put(self, payload: bytes, attachment: bytes | None = None) -> None:
        if self._undo is None:
            raise TransportError(f"publisher on {self.key!r} is closed")
        self.session.put(self.key, payload, attachment)

    def unguarded_put(self) -> tuple[Callable[..., None], type[Exception]]:
        return self.put, TransportError


@dataclass(eq=False)
class MockNetwork:
    """Sessions that see each other; deliveries wait here until :meth:`deliver` runs them."""

    latency: float = 0.0
    """Seconds from a publication to its delivery (runtime clock)."""
    loss: LossPredicate = field(default=lambda key, attachment: False)
    """Which data samples are lost in transit."""
    delivered: int = 0
    """Deliveries run so far (samples and liveliness changes)."""
    lost: int = 0
    """Data samples lost by :attr:`loss`."""
    _queue: deque[tuple[float, Callable[[], None]]] = field(default_factory=deque)
    _last_due: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sessions: list[MockSession] = field(default_factory=list)

    def open_session(self) -> MockSession:
        """A new session on this network (its own epoch, as a process has)."""
        session = MockSession(self)
        self._sessions.append(session)
        return session

    def _enqueue(self, run: Callable[[], None]) -> None:
        """Queue one delivery, due ``latency`` from now but never before an earlier one (the
        queue stays in publication order: Zenoh keeps the order of one lane)."""
        try:
            now = anyio.current_time()
        except RuntimeError:  # no event loop here (a synchronous test, a worker thread)
            now = None
        with self._lock:  # (ports publish from worker threads too: aclose's END_OF_STREAM)
            due = self._last_due if now is None else max(now + self.latency, self._last_due)
            self._last_due = due
            self._queue.append((due, run))

    def deliver(self, until: float | None = None) -> int:
        """Run every delivery due by ``until`` (default: all), oldest first; return how many."""
        count = 0
        while True:
            with self._lock:
                if not self._queue or (until is not None and self._queue[0][0] > until):
                    return count
                _, run = self._queue.popleft()
            run()
            self.delivered += 1
            count += 1

    @asynccontextmanager
    async def pump(self, interval: float = 0.001) -> AsyncIterator[MockNetwork]:
        """Deliver in the background, every ``interval`` seconds of the runtime clock."""

        async def run() -> None:
            while True:
                self.deliver(anyio.current_time())
                await anyio.sleep(interval)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    def _publish(self, key: str, payload: bytes, attachment: bytes | None) -> None:
        if self.loss(key, attachment):
            self.lost += 1
            return
        sample = _Sample(key, _Bytes(payload), None if attachment is None else _Bytes(attachment))
        for session in list(self._sessions):
            for pattern, callback in list(session._subscribers):
                if key_matches(pattern, key):
                    self._enqueue(functools.partial(callback, sample))

    def _liveliness(self, key: str, alive: bool) -> None:
        for session in list(self._sessions):
            for pattern, callback in list(session._watchers):
                if key_matches(pattern, key):
                    self._enqueue(functools.partial(callback, key, alive))


class MockSession:
    """One participant of a :class:`MockNetwork` (the ``ZenohSession`` surface channels use)."""

    def __init__(self, network: MockNetwork) -> None:
        self.network = network
        self.epoch = new_epoch()
        """This session's epoch (as a real session's)."""
        self._subscribers: list[tuple[str, Callable[[Any], None]]] = []
        self._watchers: list[tuple[str, Callable[[str, bool], None]]] = []
        self._tokens: dict[int, str] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("mock session is closed")

    def declare_publisher(self, key: str, qos: Any = None, *, data: bool = True) -> _Publisher:
        self._check_open()
        return _Publisher(self, key)

    def put(self, key: str, payload: bytes, attachment: bytes | None = None, qos: Any = None) -> None:
        self._check_open()
        self.network._publish(key, payload, attachment)

    def declare_sample_subscriber(self, key: str, callback: Callable[[Any], None]) -> _Declared:
        self._check_open()
        entry = (key, callback)
        self._subscribers.append(entry)
        return _Declared(lambda: self._subscribers.remove(entry))

    def declare_subscriber(self, key: str, callback: Callable[[bytes, bytes | None], None]) -> _Declared:
        def on_sample(sample: _Sample) -> None:
            attachment = None if sample.attachment is None else sample.attachment.to_bytes()
            callback(sample.payload.to_bytes(), attachment)

        return self.declare_sample_subscriber(key, on_sample)

    def declare_token(self, key: str) -> _Declared:
        self._check_open()
        token = object()
        self._tokens[id(token)] = key
        self.network._liveliness(key, True)

        def undeclare() -> None:
            if self._tokens.pop(id(token), None) is not None:
                self.network._liveliness(key, False)

        declared = _Declared(undeclare)
        declared.token = token  # type: ignore[attr-defined]  # (keeps its id unique while declared)
        return declared

    def declare_liveliness_subscriber(
        self, pattern: str, callback: Callable[[str, bool], None], *, history: bool = True
    ) -> _Declared:
        self._check_open()
        entry = (pattern, callback)
        self._watchers.append(entry)
        if history:  # the tokens already alive, reported first
            for session in self.network._sessions:
                for key in list(session._tokens.values()):
                    if key_matches(pattern, key):
                        self.network._enqueue(functools.partial(callback, key, True))
        return _Declared(lambda: self._watchers.remove(entry) if entry in self._watchers else None)

    def vanish(self) -> None:
        """Disappear without a word: every token vanishes, nothing more is published."""
        self.close()

    def close(self) -> None:
        """Leave the network (idempotent): tokens vanish, subscriptions end."""
        if self._closed:
            return
        self._closed = True
        for key in list(self._tokens.values()):
            self.network._liveliness(key, False)
        self._tokens.clear()
        self._subscribers.clear()
        self._watchers.clear()
        if self in self.network._sessions:
            self.network._sessions.remove(self)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> MockSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
