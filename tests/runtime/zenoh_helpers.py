"""Helpers shared by the Zenoh tests: loopback sessions, unique keys, a msgpack test codec."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import msgpack
import pytest
from rtrun._errors import DecodeError
from rtrun._zenoh import ZenohSession, open_session
from rtrun._zenoh_channel import Codec, open_zenoh_receiver, open_zenoh_sender
from rtrun._zenoh_config import ZenohSettings

REAL_TIME_BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("trio", {}), id="trio-real"),
]
"""Zenoh delivers on real threads in real time: these tests never use the mock clock."""

_counter = itertools.count()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_key(graph: str = "t") -> str:
    """A fresh channel key per call (one key = one channel)."""
    return f"@rtrun/{graph}/p{os.getpid()}/c{next(_counter)}"


def _decode(body: bytes) -> Any:
    try:
        return msgpack.unpackb(body)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise DecodeError("malformed", f"not msgpack: {exc}") from None


MSGPACK_CODEC = Codec(encode=msgpack.packb, decode=_decode)
"""Plain msgpack values (the conformance suite sends ints and strings, not Messages)."""


@contextmanager
def session_pair(**overrides: Any) -> Iterator[tuple[ZenohSession, ZenohSession, str]]:
    """Two peer sessions in this process: A listens on a free loopback port, B connects.

    Yields ``(a, b, endpoint)``; more peers can :func:`connect` to ``endpoint``.
    """
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    with (
        open_session(ZenohSettings(listen=(endpoint,), **overrides)) as a,
        open_session(ZenohSettings(connect=(endpoint,), **overrides)) as b,
    ):
        yield a, b, endpoint


def connect(endpoint: str, **overrides: Any) -> ZenohSession:
    """Another peer session connected to ``endpoint``."""
    return open_session(ZenohSettings(connect=(endpoint,), **overrides))


@asynccontextmanager
async def zenoh_pair(
    sender_session: ZenohSession, receiver_session: ZenohSession, capacity: int, policy: str
) -> AsyncIterator[tuple[Any, Any]]:
    """A connected cross-session channel with the msgpack codec."""
    key = unique_key()
    receive = open_zenoh_receiver(receiver_session, key, capacity, policy, codec=MSGPACK_CODEC)  # type: ignore[arg-type]
    send = open_zenoh_sender(sender_session, key, policy=policy, codec=MSGPACK_CODEC)  # type: ignore[arg-type]
    with send, receive:
        with anyio.fail_after(10):
            await send.wait_for_receiver()
            await receive.wait_for_sender()
        yield send, receive
