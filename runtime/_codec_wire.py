"""Wire-level vocabulary of the codec: reserved keys, msgpack header bytes, the error type.

The leaf of the codec modules (layout in :mod:`rtrun._codec`'s docstring): constants and tiny
byte-level helpers shared by the compiled operations (:mod:`rtrun._codec_ops`), the decode reader
(:mod:`rtrun._codec_read`) and the public API, plus ``_Bad``, the internal error that carries a
field path until the public API turns it into an :class:`~rtrun.EncodeError` /
:class:`~rtrun.DecodeError`.
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack

from ._message import ARRAY_DTYPES

TAG_KEY = "@tag"
"""Reserved map key holding the message tag."""
VERSION_KEY = "@version"
"""Reserved map key holding the schema version."""
ARRAY_LAYOUT = 1
"""Value of the ``"@nd"`` key of an array map (the array layout version)."""

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1

# -- tiny msgpack writer helpers (for the hand-spliced array segments) -----------------------


def _packb(obj: Any) -> bytes:
    """Pack a constant (class compile time only; the hot path uses the per-thread Packer)."""
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


_MAP_HEAD = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}
_ARRAY_HEAD = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}
_BIN_HEADER_LEN = {0xC4: 2, 0xC5: 3, 0xC6: 5}
_NIL = b"\xc0"

_DTYPE_NAME_LE = {dt.str: name for name, dt in ARRAY_DTYPES.items()}
_DTYPE_NAME_BE = {dt.newbyteorder(">").str: name for name, dt in ARRAY_DTYPES.items()}
_ARRAY_PREFIX = {  # map header + "@nd": 1 + "dtype": name + "shape" key
    name: b"\x84" + _packb("@nd") + _packb(ARRAY_LAYOUT) + _packb("dtype") + _packb(name) + _packb("shape")
    for name in ARRAY_DTYPES
}
_DATA_KEY = _packb("data")


def _bin_header(size: int) -> bytes:
    if size < 0x100:
        return b"\xc4" + size.to_bytes(1, "big")
    if size < 0x10000:
        return b"\xc5" + size.to_bytes(2, "big")
    if size < 0x100000000:
        return b"\xc6" + size.to_bytes(4, "big")
    raise _Bad("field_type", f"array of {size} bytes exceeds msgpack's 4 GiB bin limit")


def _map_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x80 | n,))
    return (b"\xde" + n.to_bytes(2, "big")) if n < 0x10000 else (b"\xdf" + n.to_bytes(4, "big"))


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    return (b"\xdc" + n.to_bytes(2, "big")) if n < 0x10000 else (b"\xdd" + n.to_bytes(4, "big"))


_local = threading.local()


def _packer() -> msgpack.Packer:
    """This thread's reusable Packer (a Packer is not safe to share across threads)."""
    try:
        return _local.packer  # type: ignore[no-any-return]
    except AttributeError:
        _local.packer = msgpack.Packer(use_bin_type=True, autoreset=True)
        return _local.packer  # type: ignore[no-any-return]


# -- errors with a field path -----------------------------------------------------------------


class _Bad(Exception):
    """Internal: a value broke a rule. ``where`` collects path parts innermost first."""

    def __init__(self, reason: str, rule: str) -> None:
        super().__init__(rule)
        self.reason = reason
        self.rule = rule
        self.where: list[str] = []

    def located(self) -> str:
        """`` field <path>`` (e.g. `` field poses[2].image``), or nothing at the top level."""
        path = "".join(reversed(self.where)).lstrip(".")
        return f" field {path}" if path else ""


_WIRE_NAMES = {
    type(None): "nil",
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    bytes: "bin",
    memoryview: "bin",
    tuple: "array",
    dict: "map",
}


def _wire_name(value: object) -> str:
    return _WIRE_NAMES.get(type(value), type(value).__name__)
