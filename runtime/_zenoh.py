"""The only rtrun module that imports zenoh: sessions, QoS, publishers, subscribers, liveliness.

Theory of operation
-------------------
One :class:`ZenohSession` per process (``open_session``), opened from :class:`ZenohSettings`.
It wraps the zenoh session so that the rest of rtrun never touches zenoh objects:

* publishers get a :class:`~rtrun.QoS` (reliability, congestion control, priority, express),
  the graph's own type (:mod:`rtrun._qos`). Data publishers may only use congestion control
  ``drop`` -- ``block`` on a data key would let one dead or slow peer stall the publishing actor
  (and Zenoh's TX thread), so :meth:`ZenohSession.declare_publisher` refuses it;
* subscriber callbacks receive ``(payload: bytes, attachment: bytes | None)``: one copy out of
  Zenoh's buffer (shared memory above ~3 KB), done on Zenoh's thread. Callbacks given here must
  only deposit into an :class:`rtrun._bridge.ThreadBridge`-guarded structure;
* liveliness: tokens (presence of a host, actor or channel end) and liveliness subscribers with
  history, whose callbacks receive ``(key, alive)``;
* every zenoh exception is mapped once to :class:`TransportError` (chained ``from exc``).

``zenoh`` is imported lazily on first use so that ``import rtrun`` stays light. ``run_router``
backs ``rtrun router``: zenoh-python's router mode with the same Rust core as ``zenohd`` (no
plugins, storage or REST; no zenohd is on PyPI).

The session *epoch* is a random non-zero u32 chosen at open (or given by the launcher, e.g. from
a restart counter), named in logs. Channel senders draw epochs of their own the same way
(:func:`new_epoch`, one per opened sender): receivers drop data from epochs they have retired,
which is how messages of a crashed-and-restarted process, or of an ended sender, are kept apart
from its successor's (see :mod:`rtrun._zenoh_channel`).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._errors import TransportError
from ._qos import QoS
from ._wire import host_token_key, host_token_pattern
from ._zenoh_config import ZenohSettings, to_zenoh_config

if TYPE_CHECKING:
    import zenoh

__all__ = [
    "QOS_ACTION",
    "QOS_CONTROL",
    "QOS_OBSERVATION",
    "QoS",
    "ZenohSession",
    "declare_presence",
    "open_router",
    "open_session",
    "run_router",
    "watch_presence",
]

SampleCallback = Callable[[bytes, "bytes | None"], None]
"""``callback(payload, attachment)``, run on a Zenoh thread."""
LivelinessCallback = Callable[[str, bool], None]
PeerCallback = Callable[[str, str, bool], None]
"""``callback(zid, kind, joined)``: a session connected (``joined``) to this one or left it."""
"""``callback(token_key, alive)``, run on a Zenoh thread."""


QOS_OBSERVATION = QoS(reliability="best_effort", congestion="drop", priority="data")
"""Frames and observations: newest wins, losing one is harmless."""
QOS_ACTION = QoS(reliability="reliable", congestion="drop", priority="data_high", express=True)
"""Action chunks: reliable, never blocking, ahead of bulk data, unbatched."""
QOS_CONTROL = QoS(reliability="reliable", congestion="drop", priority="interactive_high", express=False)
"""rtrun's own control samples (credits): small, urgent, on their own lane. Not ``express``:
express samples bypass batching into a tiny queue that drops under load (bursts of 3+ credits
lost 10-35 % on a loaded 2-core machine, stalling a rendezvous until the 1 s credit refresh);
batched, none were lost, at a similar median latency."""


def _zenoh() -> Any:
    import zenoh  # lazy: the only import of zenoh in rtrun

    return zenoh


def _qos_kwargs(qos: QoS, *, data: bool) -> dict[str, Any]:
    if problems := qos.problems(data=data):
        raise TransportError(f"invalid QoS {qos}: {'; '.join(problems)}")
    z = _zenoh()
    return {
        "congestion_control": getattr(z.CongestionControl, qos.congestion.upper()),
        "priority": getattr(z.Priority, qos.priority.upper()),
        "express": qos.express,
        "reliability": getattr(z.Reliability, qos.reliability.upper()),
    }


@contextmanager
def _mapped(action: str) -> Iterator[None]:
    """Translate zenoh errors into :class:`TransportError` (once, here)."""
    z = _zenoh()
    try:
        yield
    except z.ZError as exc:
        raise TransportError(f"zenoh: {action} failed: {exc}") from exc


class Publisher:
    """A declared publisher with fixed QoS. ``put`` never blocks (congestion ``drop``).

    Thread-safe: zenoh-python's publisher cannot be used by two threads at once ("Already
    borrowed"), and rtrun puts from the event loop *and* from Zenoh callbacks (credits,
    acknowledgements), so every call holds a small lock (uncontended in the common case).
    """

    __slots__ = ("_lock", "_pub", "key")

    def __init__(self, pub: zenoh.Publisher, key: str) -> None:
        self._pub: zenoh.Publisher | None = pub
        self._lock = threading.Lock()
        self.key = key
        """The key expression published to."""

    def put(self, payload: bytes, attachment: bytes) -> None:
        """Publish one sample; raises :class:`TransportError` once closed."""
        with self._lock:  # hot path: no context-manager layers
            if self._pub is None:
                raise TransportError(f"publisher on {self.key!r} is closed")
            try:
                self._pub.put(payload, attachment=attachment)
            except _zenoh().ZError as exc:
                raise TransportError(f"zenoh: put on {self.key!r} failed: {exc}") from exc

    def unguarded_put(self) -> tuple[Callable[..., None], type[Exception]]:
        """zenoh-python's own ``put`` of this publisher and the exception type it raises.

        For an owner that serializes every use of this publisher itself (under its own lock,
        never concurrently with :meth:`close`): it saves this wrapper's lock and call layer,
        ~5 µs per put with the cold cache a sparse message meets. Call it as
        ``put(payload, attachment=attachment)``; map the exception to :class:`TransportError`.
        """
        if self._pub is None:
            raise TransportError(f"publisher on {self.key!r} is closed")
        return self._pub.put, _zenoh().ZError

    def close(self) -> None:
        """Undeclare (idempotent; errors on an already closed session are ignored)."""
        with self._lock:
            pub, self._pub = self._pub, None
            if pub is not None:
                _undeclare(pub)


class Declared:
    """A declared subscriber or liveliness token/subscriber; ``close()`` undeclares it."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def close(self) -> None:
        """Undeclare (idempotent)."""
        obj, self._obj = self._obj, None
        if obj is not None:
            _undeclare(obj)

    def __enter__(self) -> Declared:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _undeclare(obj: Any) -> None:
    z = _zenoh()
    try:
        obj.undeclare()
    except z.ZError:  # already undeclared, or the session is closed: nothing left to release
        return


class ZenohSession:
    """rtrun's handle on the process's Zenoh session (see the module docstring)."""

    __slots__ = ("_closed", "_lock", "_session", "epoch", "settings")

    def __init__(self, session: zenoh.Session, settings: ZenohSettings, epoch: int) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._closed = False
        self.settings = settings
        """The settings the session was opened with."""
        self.epoch = epoch
        """This process's session epoch (u32, non-zero)."""

    @property
    def zid(self) -> str:
        """Zenoh id of this session (diagnostics)."""
        return str(self._session.info.zid())

    def declare_publisher(self, key: str, qos: QoS, *, data: bool = True) -> Publisher:
        """Declare a publisher on ``key`` with ``qos``; ``data=False`` (rtrun's own control keys)
        allows congestion ``block``. An invalid ``qos`` raises :class:`TransportError`."""
        kwargs = _qos_kwargs(qos, data=data)
        with _mapped(f"declaring a publisher on {key!r}"):
            return Publisher(self._session.declare_publisher(key, **kwargs), key)

    def put(self, key: str, payload: bytes, attachment: bytes, qos: QoS) -> None:
        """One-shot control put (reliability is the session default); never ``block`` from the loop."""
        kwargs = _qos_kwargs(qos, data=False)
        del kwargs["reliability"]  # per-put reliability does not exist: a publisher's property
        with _mapped(f"put on {key!r}"):
            self._session.put(key, payload, attachment=attachment, **kwargs)

    def declare_subscriber(self, key: str, callback: SampleCallback) -> Declared:
        """Subscribe ``key`` (may contain ``*``); ``callback(payload, attachment)`` on Zenoh threads."""

        def on_sample(sample: zenoh.Sample) -> None:
            attachment = sample.attachment
            callback(sample.payload.to_bytes(), None if attachment is None else attachment.to_bytes())

        return self.declare_sample_subscriber(key, on_sample)

    def declare_sample_subscriber(self, key: str, callback: Callable[[zenoh.Sample], None]) -> Declared:
        """Subscribe ``key`` with ``callback(sample)`` getting zenoh's ``Sample`` itself (on Zenoh
        threads): one Python frame less per sample than :meth:`declare_subscriber`."""
        with _mapped(f"subscribing {key!r}"):
            return Declared(self._session.declare_subscriber(key, callback))

    def declare_token(self, key: str) -> Declared:
        """Declare a liveliness token (present while the session lives or until closed)."""
        with _mapped(f"declaring liveliness token {key!r}"):
            return Declared(self._session.liveliness().declare_token(key))

    def declare_liveliness_subscriber(
        self, pattern: str, callback: LivelinessCallback, *, history: bool = True
    ) -> Declared:
        """Watch tokens matching ``pattern``; ``callback(key, alive)`` on Zenoh threads.

        With ``history`` the tokens already alive are reported first (``alive=True``).
        """
        z = _zenoh()

        def on_sample(sample: zenoh.Sample) -> None:
            callback(str(sample.key_expr), sample.kind == z.SampleKind.PUT)

        with _mapped(f"watching liveliness {pattern!r}"):
            sub = self._session.liveliness().declare_subscriber(pattern, on_sample, history=history)
            return Declared(sub)

    def watch_peers(self, callback: PeerCallback) -> Declared:
        """Report sessions connecting to / leaving this one: ``callback(zid, kind, joined)`` on
        Zenoh threads (``kind`` is ``peer``, ``client`` or ``router``); only changes from now on."""
        z = _zenoh()

        def on_event(event: Any) -> None:
            transport = event.transport
            callback(str(transport.zid), str(transport.whatami), event.kind == z.SampleKind.PUT)

        with _mapped("watching transports"):
            return Declared(self._session.info.declare_transport_events_listener(on_event, history=False))

    def close(self) -> None:
        """Close the session (idempotent): undeclares everything declared through it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with _mapped("closing the session"):
            self._session.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> ZenohSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def declare_presence(session: ZenohSession, graph: str, host: str, actor: str | None = None) -> Declared:
    """Announce that ``host`` (or one of its actors) is alive: ``@rtrun/<graph>/@host/<host>[/<actor>]``.

    The token vanishes when closed, when the process dies (1-2 ms: the socket closes) or when it
    hangs longer than its lease (``ZenohSettings.lease_ms``).
    """
    return session.declare_token(host_token_key(graph, host, actor))


def watch_presence(
    session: ZenohSession,
    graph: str,
    callback: Callable[[str, str | None, bool], None],
) -> Declared:
    """Call ``callback(host, actor_or_None, alive)`` (on a Zenoh thread) for every presence
    token of ``graph``, starting with those already alive. Deposit only (see ``_bridge``)."""
    prefix = f"{host_token_pattern(graph)[:-1]}"

    def on_token(key: str, alive: bool) -> None:
        host, _, actor = key.removeprefix(prefix).partition("/")
        callback(host, actor or None, alive)

    return session.declare_liveliness_subscriber(f"{prefix}**", on_token)


def new_epoch() -> int:
    """A random non-zero u32 session epoch."""
    return secrets.randbelow(0xFFFF_FFFF) + 1


def open_session(settings: ZenohSettings | None = None, *, epoch: int | None = None) -> ZenohSession:
    """Open the process's Zenoh session (blocking for a few ms: call it via ``to_thread`` from
    async code). Raises :class:`TransportError` (e.g. a listen endpoint already in use)."""
    settings = settings if settings is not None else ZenohSettings()
    if epoch is not None and not 0 < epoch <= 0xFFFF_FFFF:
        raise TransportError(f"session epoch must be a non-zero u32, got {epoch}")
    config = to_zenoh_config(settings)
    with _mapped("opening a session"):
        session = _zenoh().open(config)
    return ZenohSession(session, settings, epoch if epoch is not None else new_epoch())


def open_router(listen: tuple[str, ...], **overrides: Any) -> ZenohSession:
    """Open a Zenoh *router* session listening on ``listen`` (other fields via ``overrides``)."""
    return open_session(ZenohSettings(mode="router", listen=tuple(listen), **overrides))


def run_router(listen: tuple[str, ...], *, stop: threading.Event | None = None, **overrides: Any) -> None:
    """Run a router until ``stop`` is set (or forever / until KeyboardInterrupt): ``rtrun router``."""
    stop = stop if stop is not None else threading.Event()
    with open_router(listen, **overrides):
        try:
            stop.wait()
        except KeyboardInterrupt:
            return
