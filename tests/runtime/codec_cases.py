"""Shared by the codec tests: local message types covering every field kind, a corpus of valid
encodings, and helpers that decode through every decoder path and compare results deeply."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
from typing import Any
from unittest import mock

import msgpack
import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray
from rtrun import _codec
from rtrun._codec import decode, encode
from rtrun._errors import DecodeError
from rtrun._message import Message, message
from rtrun.testing._strategies import message_strategy

# The robot message catalogue, when present, is part of "every registered message type".
with contextlib.suppress(ImportError):
    importlib.import_module("rtrun.actors.messages")


def zero_copy_threshold(size: int) -> contextlib.AbstractContextManager[object]:
    """Force the zero-copy walker (0) or the one-call unpack path (huge) for small bodies."""
    return mock.patch.object(_codec, "ZERO_COPY_MIN_SIZE", size)


def fast_decode(enabled: bool) -> contextlib.AbstractContextManager[object]:
    """Switch the compiled (msgspec) decode path on or off."""
    return mock.patch.object(_codec, "FAST_DECODE", enabled)


def both_paths(data: bytes, **kwargs: Any) -> object:
    """Decode with every decoder path (compiled or not, zero-copy walk or one-call unpack); they
    must agree. Returns the message or the reason."""
    outcomes = []
    for enabled in (True, False):
        for threshold in (0, 2**62):
            with fast_decode(enabled), zero_copy_threshold(threshold):
                try:
                    outcomes.append(decode(data, **kwargs))
                except DecodeError as exc:
                    outcomes.append(exc.reason)
    for other in outcomes[1:]:
        assert same(outcomes[0], other), outcomes
    return outcomes[0]


def strategy_for(message_cls: type[Message]) -> st.SearchStrategy[Message]:
    """Hypothesis strategy for valid instances of ``message_cls`` (see rtrun.testing)."""
    return message_strategy(message_cls)


# -- test message types ---------------------------------------------------------------------------


@message(tag="test.codec.Scalars")
class Scalars(Message):
    """Every scalar kind."""

    flag: bool
    count: int
    ratio: float
    name: str
    blob: bytes


@message(tag="test.codec.Frame", version=2)
class Frame(Message):
    """A camera frame."""

    seq: int
    t_capture: float
    image: NDArray[np.uint8]


@message(tag="test.codec.Chunk")
class Chunk(Message):
    """An action chunk."""

    request_id: int
    actions: NDArray[np.float32]
    names: tuple[str, ...] = ()


@message(tag="test.codec.Point")
class Point(Message):
    """Array-free nested message."""

    x: float
    y: float = 0.0


@message(tag="test.codec.Tagged")
class Tagged(Message):
    """Nested message holding an array."""

    label: str
    data: np.ndarray


@message(tag="test.codec.Containers")
class Containers(Message):
    """Containers of every kind, with and without arrays inside."""

    maybe: int | None
    floats: tuple[float, ...]
    ints: tuple[int, ...]
    pair: tuple[int, str]
    table: dict[str, Point]
    points: tuple[Point, ...]
    arrays: tuple[np.ndarray, ...]
    named: dict[str, np.ndarray]
    maybe_array: np.ndarray | None
    tagged: tuple[Tagged, ...]
    mixed: tuple[Tagged, Point]
    nested: Tagged | None


@message(tag="test.codec.Defaults")
class Defaults(Message):
    """Required and defaulted fields."""

    required: int
    with_default: str = "dflt"
    with_factory: dict[str, int] = dataclasses.field(default_factory=lambda: {"k": 1})


@message(tag="test.codec.Checked")
class Checked(Message):
    """A class with a semantic check."""

    speed: float

    def __post_init__(self) -> None:
        if not self.speed >= 0:
            raise ValueError("speed must be >= 0")


LOCAL_TYPES = [Scalars, Frame, Chunk, Point, Tagged, Containers, Defaults]


def frame(seq: int = 7) -> Frame:
    image = np.arange(480 * 640 * 3, dtype=np.uint8).reshape(480, 640, 3)
    image.flags.writeable = False
    return Frame(seq=seq, t_capture=12.5, image=image)


def packb(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def same(a: object, b: object) -> bool:
    """Deep equality treating NaN as equal and comparing arrays by dtype, shape and values."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, Message):
        return type(a) is type(b) and all(
            same(getattr(a, p.name), getattr(b, p.name)) for p in type(a).__rtrun_fields__
        )
    if isinstance(a, tuple):
        return type(b) is tuple and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def arrays_in(value: object) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, Message):
        return [a for p in type(value).__rtrun_fields__ for a in arrays_in(getattr(value, p.name))]
    if isinstance(value, tuple):
        return [a for v in value for a in arrays_in(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in arrays_in(v)]
    return []


def corpus() -> list[bytes]:
    """Valid encodings of every local type, reaching every decode path (arrays, nesting...)."""
    img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    tagged = Tagged(label="t", data=np.arange(6, dtype=">i4").reshape(2, 3))
    messages: list[Message] = [
        Scalars(flag=True, count=-5, ratio=0.25, name="név", blob=b"\x00\xff"),
        Frame(seq=1, t_capture=2.0, image=img),
        Chunk(request_id=9, actions=np.ones((3, 2), np.float32), names=("a", "b")),
        Point(x=1.0, y=-1.0),
        tagged,
        Defaults(required=1),
        Containers(
            maybe=3,
            floats=(1.0, 2.5),
            ints=(1, -2),
            pair=(7, "x"),
            table={"p": Point(x=0.0)},
            points=(Point(x=2.0),),
            arrays=(np.zeros(2, np.float16), np.ones((), np.complex128)),
            named={"n": np.arange(3, dtype=np.int64)},
            maybe_array=np.ones(2, np.bool_),
            tagged=(tagged,),
            mixed=(tagged, Point(x=3.0)),
            nested=tagged,
        ),
    ]
    wires = [encode(m) for m in messages]
    reordered = {**msgpack.unpackb(wires[1]), "@tag": "test.codec.Frame"}  # tag last
    del reordered["@tag"]
    wires.append(packb({**reordered, "@tag": "test.codec.Frame"}))
    return wires
