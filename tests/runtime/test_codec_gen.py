"""The generated per-class codec functions (rtrun._codec_gen): the flat encode writes exactly the
general (segment) path's bytes, and the generated decode builds exactly what ``__init__`` builds
-- defaults, ``__post_init__``, a class's own ``__init__``, repeated keys."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from numpy.typing import NDArray
from rtrun import _codec_fast, _codec_gen, _gen
from rtrun._codec import decode, decoder_for, encode
from rtrun._codec_ops import _codec_of
from rtrun._codec_wire import _packer
from rtrun._errors import DecodeError
from rtrun._message import Message, message, message_types
from rtrun.testing._strategies import message_strategy

with contextlib.suppress(ImportError):  # the robot catalogue is part of "every registered type"
    importlib.import_module("rtrun.actors.messages")


def segment_path(msg: Message) -> bytes:
    """The general encode path's bytes (what ``encode`` writes when the flat path declines)."""
    codec = _codec_of(type(msg))
    out: list[Any] = [codec.prefix]
    codec.emit_fields(msg, out, _packer().pack)
    return b"".join(out)


@message(tag="test.codec_gen.Flat")
class Flat(Message):
    """Every kind the flat encode handles inline."""

    count: int
    ratio: float
    name: str
    blob: bytes
    flag: bool
    joints: NDArray[np.float32]
    any_array: np.ndarray
    maybe: np.ndarray | None = None
    labels: tuple[str, ...] = ()
    limits: dict[str, float] = dataclasses.field(default_factory=dict)


@message(tag="test.codec_gen.Scaled")
class Scaled(Message):
    """A class with its own ``__init__`` (it upper-cases ``note``): the decoder must call it."""

    value: int
    note: str = "x"

    def __init__(self, *, value: int, note: str = "x") -> None:
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "note", note.upper())


@message(tag="test.codec_gen.Positive")
class Positive(Message):
    """``__post_init__`` refuses negative values."""

    value: int
    tail: tuple[int, ...] = dataclasses.field(default_factory=lambda: (7,))

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("value must be >= 0")


def packb(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize("tag", sorted(message_types()))
def test_flat_encode_writes_the_segment_paths_bytes(tag: str) -> None:
    cls = message_types()[tag]
    pack_flat = _codec_of(cls).pack_flat
    if pack_flat is None:
        pytest.skip(f"{tag} has no flat encode (an array in a container or a nested message)")

    @settings(
        max_examples=60,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.filter_too_much],
    )
    @given(msg=message_strategy(cls))
    def same_bytes(msg: Message) -> None:
        flat = pack_flat(msg)
        if flat is not None:  # (None: an array over PACK_ARRAY_MAX, a non-native dtype, ...)
            assert flat == segment_path(msg)

    try:
        same_bytes()
    except (FailedHealthCheck, Unsatisfiable):
        if cls.__module__ == __name__ or not hasattr(cls, "__post_init__"):
            raise
        pytest.skip(f"{tag}: __post_init__ rejects generated values (see test_codec's round trip)")


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(
    count=st.integers(-(2**63), 2**64 - 1),
    ratio=st.floats(allow_nan=False),
    name=st.text(max_size=300),
    blob=st.binary(max_size=70_000),
    n=st.integers(0, 12_000),
    dtype=st.sampled_from(["<f4", "<u2", "|i1", "<f8"]),
    maybe=st.booleans(),
)
def test_flat_encode_boundaries_match_the_segment_path(
    count: int, ratio: float, name: str, blob: bytes, n: int, dtype: str, maybe: bool
) -> None:
    """Integer, string and bin size classes, and array sizes around PACK_ARRAY_MAX."""
    arr = np.arange(n).astype(dtype)
    msg = Flat(
        count=count,
        ratio=ratio,
        name=name,
        blob=blob,
        flag=maybe,
        joints=np.zeros(3, np.float32),
        any_array=arr,
        maybe=arr[:3] if maybe else None,
        labels=(name,),
        limits={name: ratio},
    )
    flat = _codec_of(Flat).pack_flat(msg)
    assert flat is None or flat == segment_path(msg)
    assert (flat is not None) is (arr.nbytes <= _codec_gen.PACK_ARRAY_MAX)
    assert encode(msg) == segment_path(msg)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(np.int64(3), id="numpy-int"),
        pytest.param(True, id="bool-for-int"),
        pytest.param(2**64, id="int-too-big"),
    ],
)
def test_flat_encode_declines_what_it_does_not_accept_exactly(value: object) -> None:
    msg = Flat(
        count=value,  # type: ignore[arg-type]
        ratio=1.0,
        name="",
        blob=b"",
        flag=False,
        joints=np.zeros(3, np.float32),
        any_array=np.zeros(2, ">f4"),
    )
    assert _codec_of(Flat).pack_flat(msg) is None


def test_flat_encode_declines_big_endian_and_pinned_mismatch() -> None:
    base = {"count": 1, "ratio": 1.0, "name": "", "blob": b"", "flag": False}
    pack_flat = _codec_of(Flat).pack_flat
    ok = np.zeros(3, np.float32)
    assert pack_flat(Flat(**base, joints=ok, any_array=ok)) is not None
    assert pack_flat(Flat(**base, joints=ok, any_array=np.zeros(3, ">f4"))) is None
    assert pack_flat(Flat(**base, joints=np.zeros(3, np.float64), any_array=ok)) is None


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.float32)[::2],  # strided
        np.arange(12, dtype=np.int16).reshape(3, 4).T,  # Fortran order
        np.arange(12, dtype=np.uint8).reshape(3, 4)[:, 1:3],  # a non-contiguous 2-D slice
    ],
)
def test_flat_encode_writes_any_layout_in_c_order_as_the_segment_path(array: np.ndarray) -> None:
    msg = Flat(
        count=1, ratio=1.0, name="", blob=b"", flag=False, joints=np.zeros(3, np.float32), any_array=array
    )
    wire = _codec_of(Flat).pack_flat(msg)
    assert wire is not None and wire == segment_path(msg)
    np.testing.assert_array_equal(decode(wire, expected=Flat).any_array, array)


def decode_compiled(wire: bytes, cls: type[Message]) -> Message | None:
    """The compiled path alone (None: it declined)."""
    return _codec_fast.fast_decode(wire, cls, zero_copy=False)


def test_generated_decode_calls_a_class_own_init() -> None:
    head = {"@tag": "test.codec_gen.Scaled", "@version": 1}
    back = decode_compiled(packb({**head, "value": 3, "note": "a"}), Scaled)
    assert isinstance(back, Scaled) and (back.value, back.note) == (3, "A")
    absent = decode_compiled(packb({**head, "value": 1}), Scaled)  # its own default, then its body
    assert isinstance(absent, Scaled) and absent.note == "X"


def test_generated_decode_applies_defaults_and_runs_post_init() -> None:
    head = {"@tag": "test.codec_gen.Positive", "@version": 1}
    back = decode_compiled(packb({**head, "value": 2}), Positive)
    assert back == Positive(value=2) and back.tail == (7,)  # type: ignore[union-attr]
    negative = packb({**head, "value": -1})
    assert decode_compiled(negative, Positive) is None  # declined: the general path reports it
    with pytest.raises(DecodeError) as info:
        decode(negative, expected=Positive)
    assert info.value.reason == "field_value"


def test_generated_decode_builds_what_init_builds() -> None:
    msg = Flat(
        count=5,
        ratio=0.5,
        name="n",
        blob=b"b",
        flag=True,
        joints=np.arange(3, dtype=np.float32),
        any_array=np.arange(6, dtype=np.int16).reshape(2, 3),
        maybe=np.ones(2),
        labels=("x",),
        limits={"a": 1.0},
    )
    back = decode_compiled(encode(msg), Flat)
    assert isinstance(back, Flat)
    for f in dataclasses.fields(Flat):
        a, b = getattr(msg, f.name), getattr(back, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b) and not b.flags.writeable
        else:
            assert a == b
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.count = 1  # type: ignore[misc]


def test_generated_decode_declines_a_repeated_key() -> None:
    good = encode(Positive(value=1))
    body = msgpack.unpackb(good)
    # fixmap with one entry more than the keys present, the last "value" repeated
    repeated = bytes([0x80 | (len(body) + 1)]) + good[1:] + packb("value") + packb(2)
    assert decode_compiled(repeated, Positive) is None
    with pytest.raises(DecodeError):
        decode(repeated, expected=Positive)


def test_generated_source_only_takes_identifiers() -> None:
    with pytest.raises(TypeError, match="not an identifier"):
        _gen.source_name("x): import os; (")
    with pytest.raises(TypeError, match="not an identifier"):
        _gen.source_name("class")


def outcome(fn: Any, wire: bytes) -> object:
    try:
        return fn(wire)
    except DecodeError as exc:
        return exc.reason


def same_outcome(a: object, b: object) -> bool:
    """Equal reasons, or messages of one class that encode identically (NaN-safe, dtype-exact)."""
    if isinstance(a, Message):
        return type(a) is type(b) and encode(a) == encode(b)  # type: ignore[arg-type]
    return a == b


@settings(max_examples=400, derandomize=True, deadline=None, database=None)
@given(
    cls=st.sampled_from([Flat, Positive, Scaled]),
    data=st.data(),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
    cut=st.integers(0, 10_000),
)
def test_decoder_for_matches_decode_on_valid_and_mutated_bodies(
    cls: type[Message], data: st.DataObject, flips: list[tuple[int, int]], cut: int
) -> None:
    wire = bytearray(encode(data.draw(message_strategy(cls))))
    for at, value in flips:
        wire[at % len(wire)] = value
    mutated = bytes(wire[: max(1, len(wire) - cut % 4)])
    one = decoder_for(cls)
    for body in (bytes(encode(data.draw(message_strategy(cls)))), mutated):
        assert same_outcome(outcome(one, body), outcome(lambda b: decode(b, expected=cls), body))


def test_decoder_for_respects_max_size_and_other_classes() -> None:
    wire = encode(Positive(value=3))
    assert decoder_for(Positive)(wire) == Positive(value=3)
    with pytest.raises(DecodeError) as info:
        decoder_for(Positive, max_size=len(wire) - 1)(wire)
    assert info.value.reason == "oversize"
    with pytest.raises(DecodeError) as info:
        decoder_for(Scaled)(wire)
    assert info.value.reason == "wrong_type"
