"""``rtrun.abc``: one port contract that the memory and the Zenoh ports both implement.

Two checks per implementation: ``isinstance`` with the ``runtime_checkable`` protocols (the
members exist), and a static-style comparison of every member's signature with the protocol's
(same kind -- property, coroutine function or plain method --, same parameter names and kinds),
which ``isinstance`` does not look at. The type checker's view is the third check: the
annotations of :class:`rtrun.ActorContext` and :class:`rtrun.OutputPort` use the protocols.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator
from typing import Any

import pytest
import rtrun
import rtrun.abc
from rtrun import ActorContext, OutputPort, open_channel
from rtrun._zenoh import ZenohSession
from rtrun._zenoh_channel import open_zenoh_receiver, open_zenoh_sender
from rtrun._zenoh_receiver import ZenohReceivePort
from rtrun._zenoh_sender import ZenohSendPort

from .zenoh_helpers import MSGPACK_CODEC, REAL_TIME_BACKENDS, session_pair, unique_key

PROTOCOLS = (rtrun.abc.Sender, rtrun.abc.SendPort, rtrun.abc.ReceivePort)


def members(protocol: type) -> dict[str, Any]:
    """The members a protocol declares, its own and its protocol bases' (name -> attribute)."""
    found: dict[str, Any] = {}
    for cls in reversed(protocol.__mro__):
        if cls in (object, typing.Protocol, typing.Generic) or not getattr(cls, "_is_protocol", False):
            continue
        for name, value in vars(cls).items():
            if isinstance(value, property) or (inspect.isfunction(value) and name not in _PLUMBING):
                found[name] = value
    return found


_PLUMBING = frozenset({"__init__", "__subclasshook__", "__init_subclass__", "_proto_hook"})


def _shape(attr: Any) -> tuple[str, list[tuple[str, inspect._ParameterKind]]]:
    if isinstance(attr, property):
        return "property", []
    kind = "async" if inspect.iscoroutinefunction(attr) else "sync"
    params = [(p.name, p.kind) for p in inspect.signature(attr).parameters.values()]
    return kind, params


def assert_implements(cls: type, protocol: type) -> None:
    """Every member of ``protocol`` exists on ``cls`` with the same kind and parameters."""
    for name, declared in members(protocol).items():
        actual = inspect.getattr_static(cls, name, None)
        assert actual is not None, f"{cls.__name__} lacks {protocol.__name__}.{name}"
        assert _shape(actual) == _shape(declared), f"{cls.__name__}.{name} differs from {protocol.__name__}"


# ---------------------------------------------------------------------------- the module


def test_abc_is_public_and_documented() -> None:
    assert rtrun.abc.__name__ == "rtrun.abc" and rtrun.abc.__doc__
    assert "abc" in rtrun.__all__
    assert set(rtrun.abc.__all__) == {"Sender", "SendPort", "ReceivePort"}
    for protocol in PROTOCOLS:
        assert protocol.__doc__, protocol.__name__
        assert getattr(protocol, "_is_runtime_protocol", False), f"{protocol.__name__} not runtime_checkable"
        for name, member in members(protocol).items():
            func = member.fget if isinstance(member, property) else member
            assert func.__doc__, f"{protocol.__name__}.{name} has no docstring"


def test_protocols_cover_the_shared_api() -> None:
    shared = {"closed", "close", "aclose", "statistics", "clone"} | {
        "__enter__",
        "__exit__",
        "__aenter__",
        "__aexit__",
    }
    assert set(members(rtrun.abc.Sender)) == {"send", "send_nowait"}
    assert set(members(rtrun.abc.SendPort)) == shared | {"send", "send_nowait"}
    assert set(members(rtrun.abc.ReceivePort)) == shared | {
        "receive",
        "receive_nowait",
        "__aiter__",
        "__anext__",
    }


# ---------------------------------------------------------------------------- memory ports


def test_memory_ports_implement_the_protocols() -> None:
    send, receive = open_channel[int](1)
    with send, receive:
        assert isinstance(send, rtrun.abc.SendPort) and isinstance(send, rtrun.abc.Sender)
        assert isinstance(receive, rtrun.abc.ReceivePort)
        assert not isinstance(send, rtrun.abc.ReceivePort)
        assert not isinstance(receive, rtrun.abc.Sender)
        with send.clone() as clone:
            assert isinstance(clone, rtrun.abc.SendPort)
    assert_implements(rtrun.SendPort, rtrun.abc.SendPort)
    assert_implements(rtrun.ReceivePort, rtrun.abc.ReceivePort)


def test_output_port_is_a_sender_not_a_send_port() -> None:
    send, receive = open_channel[int](1)
    output = OutputPort[int]("out", [send])
    assert isinstance(output, rtrun.abc.Sender)
    assert not isinstance(output, rtrun.abc.SendPort)  # no clone, no aclose: it fans out
    assert_implements(OutputPort, rtrun.abc.Sender)
    output.close()
    receive.close()


def test_actor_context_is_typed_with_the_protocols() -> None:
    hints = typing.get_type_hints(ActorContext.input)
    assert typing.get_origin(hints["return"]) is rtrun.abc.ReceivePort
    assert typing.get_origin(typing.get_type_hints(ActorContext.output)["return"]) is OutputPort
    init = typing.get_type_hints(ActorContext.__init__)["inputs"]
    assert "rtrun.abc.ReceivePort" in str(init)
    branches = typing.get_type_hints(OutputPort.__init__)["branches"]
    assert "rtrun.abc.SendPort" in str(branches)


# ---------------------------------------------------------------------------- Zenoh ports


def test_zenoh_port_classes_implement_the_protocols() -> None:
    assert_implements(ZenohSendPort, rtrun.abc.SendPort)
    assert_implements(ZenohReceivePort, rtrun.abc.ReceivePort)


@pytest.fixture(scope="module")
def sessions() -> Iterator[tuple[ZenohSession, ZenohSession, str]]:
    """Two loopback peer sessions."""
    with session_pair() as pair:
        yield pair


@pytest.mark.parametrize("anyio_backend", REAL_TIME_BACKENDS)
async def test_zenoh_ports_implement_the_protocols(sessions: tuple[ZenohSession, ZenohSession, str]) -> None:
    a, b, _ = sessions
    key = unique_key()
    with (
        open_zenoh_receiver(b, key, 1, "latest", codec=MSGPACK_CODEC) as receive,
        open_zenoh_sender(a, key, policy="latest", codec=MSGPACK_CODEC) as send,
    ):
        assert isinstance(send, rtrun.abc.SendPort) and isinstance(send, rtrun.abc.Sender)
        assert isinstance(receive, rtrun.abc.ReceivePort)
        assert not isinstance(send, rtrun.abc.ReceivePort)
        assert not isinstance(receive, rtrun.abc.Sender)
        with send.clone() as send2, receive.clone() as receive2:
            assert isinstance(send2, rtrun.abc.SendPort)
            assert isinstance(receive2, rtrun.abc.ReceivePort)
        # An actor context accepts a Zenoh receive port as an input, typed as the protocol.
        ctx = ActorContext[None](id="a", params=None, inputs={"in": receive})
        port: rtrun.abc.ReceivePort[Any] = ctx.input("in")
        assert port is receive
