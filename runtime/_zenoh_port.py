"""Shared pieces of the Zenoh channel ports (see :mod:`rtrun._zenoh_channel` for the design)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ._channel import PortLifecycle
from ._wire import MessageType, pack_header_fields

__all__ = [
    "CREDIT_REFRESH_S",
    "EOS_BLOCK_TIMEOUT_S",
    "LOG_INTERVAL_S",
    "Codec",
    "LogThrottle",
    "PortBase",
    "header_bytes",
    "kernel_codec",
    "log",
]

T = TypeVar("T")
log = logging.getLogger("rtrun.zenoh")

EOS_BLOCK_TIMEOUT_S: Final = 2.0
"""``aclose()`` waits at most this long for Zenoh queue room to publish END_OF_STREAM (queues
drain in well under a millisecond unless the peer is hung; then its lease decides anyway)."""
CREDIT_REFRESH_S: Final = 1.0
"""A waiting receiver re-announces its grant this often (recovers a lost credit or EOS)."""
LOG_INTERVAL_S: Final = 10.0
"""Bad input of one reason is logged at most once per this interval per port."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Codec:
    """How items become bodies and back. Default: the kernel codec (``rtrun.encode/decode``)."""

    encode: Callable[[Any], bytes]
    """Item -> body bytes (raise ``EncodeError`` on a bad item)."""
    decode: Callable[[bytes], Any]
    """Body bytes -> item (raise ``DecodeError`` with a ``reason`` on bad input)."""


def kernel_codec(message_type: type | None) -> Codec:
    """The kernel codec, optionally requiring one message class on decode."""
    from ._codec import decode, decoder_for, encode

    return Codec(encode=encode, decode=decode if message_type is None else decoder_for(message_type))


class LogThrottle:
    """Logs one line per reason per :data:`LOG_INTERVAL_S` (called on Zenoh threads)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.last: dict[str, float] = {}

    def __call__(self, reason: str, detail: str) -> None:
        now = time.monotonic()
        if now - self.last.get(reason, -LOG_INTERVAL_S) >= LOG_INTERVAL_S:
            self.last[reason] = now
            log.warning("%s: dropped bad input (%s): %s", self.where, reason, detail)


def header_bytes(mtype: MessageType, seq: int, epoch: int, episode: int = 0, ns: int = 0) -> bytes:
    """Pack one attachment header (hot path: plain ints)."""
    return pack_header_fields(mtype, seq, episode, ns, epoch)


class PortBase(PortLifecycle):
    """Zenoh ports share the in-process lifecycle; ``async with`` awaits ``aclose()`` (a sender's
    last clone then publishes END_OF_STREAM reliably and waits for the acknowledgement)."""

    __slots__ = ("_core",)

    _factory = "open_zenoh_*()"

    @classmethod
    def _create(cls, core: Any) -> Any:
        """A new port (clone) on ``core``: counted as open under the core's bridge lock."""
        port = object.__new__(cls)
        port._core, port._closed = core, False
        with core.bridge.lock:
            core.open_clones += 1
        return port
