"""The codec: round trips (hypothesis, every registered type), wire layout, every DecodeError
reason, zero-copy read-only arrays and encode validation (fuzzing: ``test_codec_fuzz.py``)."""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.errors import FailedHealthCheck
from rtrun import _codec_fast
from rtrun._codec import MAX_CONTAINER_LEN, ZERO_COPY_MIN_SIZE, decode, encode
from rtrun._errors import DecodeError, EncodeError
from rtrun._message import ARRAY_DTYPES, Message, message_types

from .codec_cases import (
    LOCAL_TYPES,
    Chunk,
    Containers,
    Defaults,
    Frame,
    Point,
    Scalars,
    Tagged,
    arrays_in,
    both_paths,
    corpus,
    frame,
    packb,
    same,
    strategy_for,
    zero_copy_threshold,
)


def test_every_registered_type_has_a_compiled_decoder() -> None:
    """The msgspec mirror exists for every registered type (else decode silently runs slower),
    and a valid body of each decodes on that path alone."""
    assert [tag for tag, cls in message_types().items() if _codec_fast._plans(cls) is None] == []
    for wire in corpus():  # (with ``expected`` the tag need not come first)
        general = decode(wire)
        message = _codec_fast.fast_decode(wire, type(general), zero_copy=False)
        assert isinstance(message, Message) and same(message, general), wire


# -- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", sorted(message_types()))
def test_round_trip_every_registered_type(tag: str) -> None:
    cls = message_types()[tag]

    @settings(max_examples=60, derandomize=True, deadline=None, database=None)
    @given(msg=strategy_for(cls))
    def round_trip(msg: Message) -> None:
        wire = encode(msg)
        back = both_paths(wire, expected=cls)
        assert same(msg, back)
        assert encode(back) == wire  # re-encoding is byte-identical
        for array in arrays_in(back):
            assert not array.flags.writeable

    try:
        round_trip()
    except FailedHealthCheck:
        if cls.__module__ == __name__ or not hasattr(cls, "__post_init__"):
            raise
        pytest.skip(
            f"{tag}: __post_init__ rejects generated values; test it with "
            "rtrun.testing._strategies.message_strategy(cls, field=strategy) overrides"
        )


def test_every_local_type_is_covered_by_the_round_trip() -> None:
    assert {c.__rtrun_tag__ for c in LOCAL_TYPES} <= set(message_types())


def test_frame_round_trip_and_wire_layout() -> None:
    msg = frame()
    wire = encode(msg)
    body = msgpack.unpackb(wire, raw=False)  # any msgpack library can read a body
    assert list(body) == ["@tag", "@version", "seq", "t_capture", "image"]
    assert body["@tag"] == "test.codec.Frame" and body["@version"] == 2
    assert body["image"] == {
        "@nd": 1,
        "dtype": "uint8",
        "shape": [480, 640, 3],
        "data": msg.image.tobytes(),
    }
    back = decode(wire)
    assert isinstance(back, Frame) and back.seq == 7 and back.t_capture == 12.5
    np.testing.assert_array_equal(back.image, msg.image)


def test_nested_and_float_wire_layout() -> None:
    body = msgpack.unpackb(encode(Chunk(request_id=1, actions=np.ones((2, 3), ">f4"))))
    assert body["actions"]["dtype"] == "float32"
    assert body["actions"]["data"] == np.ones((2, 3), "<f4").tobytes()  # little-endian on the wire
    body = msgpack.unpackb(encode(Tagged(label="a", data=np.zeros(0, np.int16))))
    assert body["data"] == {"@nd": 1, "dtype": "int16", "shape": [0], "data": b""}


@pytest.mark.parametrize("name", list(ARRAY_DTYPES))
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 4), (2, 3, 4)])
def test_every_dtype_and_shape_round_trips(name: str, shape: tuple[int, ...]) -> None:
    array = (np.arange(math.prod(shape)) % 2).astype(ARRAY_DTYPES[name]).reshape(shape)
    back = decode(encode(Tagged(label=name, data=array)), expected=Tagged)
    assert back.data.dtype == ARRAY_DTYPES[name] and back.data.shape == shape
    np.testing.assert_array_equal(back.data, array)


# -- arrays: zero-copy, read-only, conversions --------------------------------------------------------


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_decoded_arrays_are_zero_copy_read_only_views(kind: type) -> None:
    wire = kind(encode(frame()))
    back = decode(wire, expected=Frame)
    assert np.shares_memory(back.image, np.frombuffer(wire, np.uint8))
    assert not back.image.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        back.image[0, 0, 0] = 1
    with pytest.raises(ValueError):
        back.image.flags.writeable = True


def test_zero_copy_through_containers_and_nested_messages() -> None:
    msg = Containers(
        maybe=None,
        floats=(),
        ints=(),
        pair=(1, "a"),
        table={},
        points=(),
        arrays=(np.ones(1000, np.float64),),
        named={"k": np.ones(10, np.int32)},
        maybe_array=np.ones(5, np.uint16),
        tagged=(Tagged(label="t", data=np.ones(3, np.complex64)),),
        mixed=(Tagged(label="m", data=np.ones(2, np.bool_)), Point(x=1.0)),
        nested=Tagged(label="n", data=np.ones(4, np.int8)),
    )
    wire = encode(msg)
    assert len(wire) < ZERO_COPY_MIN_SIZE
    with zero_copy_threshold(0):
        back = decode(wire, expected=Containers)
    assert same(back, msg)
    decoded = arrays_in(back)
    assert len(decoded) == 6
    for array in decoded:
        assert np.shares_memory(array, np.frombuffer(wire, np.uint8))
        assert not array.flags.writeable


def test_small_bodies_are_unpacked_in_one_call_still_read_only() -> None:
    """Below ZERO_COPY_MIN_SIZE the payload is copied once (cheaper than walking it)."""
    wire = encode(Chunk(request_id=1, actions=np.ones((50, 14), np.float32)))
    back = decode(wire, expected=Chunk)
    assert not back.actions.flags.writeable
    assert not np.shares_memory(back.actions, np.frombuffer(wire, np.uint8))
    big = encode(Chunk(request_id=1, actions=np.ones(ZERO_COPY_MIN_SIZE // 4, np.float32)))
    assert np.shares_memory(decode(big, expected=Chunk).actions, np.frombuffer(big, np.uint8))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda a: a.astype(">u2"), id="big-endian"),
        pytest.param(lambda a: a[:, ::2], id="strided"),
        pytest.param(lambda a: a.T, id="transposed"),
        pytest.param(lambda a: np.asfortranarray(a), id="fortran"),
        pytest.param(lambda a: a.astype(">f8")[::-1], id="big-endian-reversed"),
    ],
)
def test_big_endian_and_non_contiguous_inputs(make: Any) -> None:
    array = make(np.arange(24, dtype=np.uint16).reshape(4, 6))
    back = decode(encode(Tagged(label="x", data=array)), expected=Tagged)
    assert back.data.dtype.byteorder in "<|="
    assert back.data.flags.c_contiguous
    np.testing.assert_array_equal(back.data, array)


def test_pinned_dtype_is_enforced_on_encode_and_decode() -> None:
    with pytest.raises(EncodeError, match="field image: expected dtype uint8, got float32"):
        encode(Frame(seq=1, t_capture=0.0, image=np.zeros(3, np.float32)))
    wire = encode(Tagged(label="x", data=np.zeros(3, np.float32)))
    body = msgpack.unpackb(wire)
    bad = packb(
        {"@tag": "test.codec.Frame", "@version": 2, "seq": 1, "t_capture": 0.0, "image": body["data"]}
    )
    with pytest.raises(DecodeError, match="expected dtype uint8, got float32") as info:
        decode(bad)
    assert info.value.reason == "field_type"


# -- decoding tolerance -------------------------------------------------------------------------------


def test_unknown_keys_are_ignored_everywhere() -> None:
    image = {"@nd": 1, "dtype": "uint8", "shape": [2], "data": b"\x01\x02", "future": [1]}
    body = {
        "@tag": "test.codec.Frame",
        "@version": 2,
        "seq": 3,
        "new_field": {"deep": [1, 2, {"x": b"bin"}]},
        "t_capture": 1,  # int accepted for a float field
        "@reserved_later": True,
        "image": image,
    }
    back = decode(packb(body), expected=Frame)
    assert back.seq == 3 and back.t_capture == 1.0 and type(back.t_capture) is float
    assert back.image.tolist() == [1, 2]
    nested = packb(
        {"@tag": "test.codec.Tagged", "@version": 1, "label": "x", "data": {**image, "dtype": "uint8"}}
    )
    assert decode(nested, expected=Tagged).label == "x"


def test_tag_after_the_fields_is_accepted() -> None:
    """Third-party encoders may write keys in any order (e.g. Go maps)."""
    body = msgpack.unpackb(encode(frame()))
    reordered = {k: body[k] for k in ["image", "seq", "extra", "t_capture", "@version", "@tag"] if k in body}
    wire = packb({"extra": [b"x", {"y": b"z"}], **reordered})
    back = decode(wire, expected=Frame)
    np.testing.assert_array_equal(back.image, frame().image)
    assert np.shares_memory(back.image, np.frombuffer(wire, np.uint8))
    small = packb({"y": 2.0, "x": 1.0, "@version": 1, "@tag": "test.codec.Point"})
    assert decode(small) == Point(x=1.0, y=2.0)


def test_missing_fields_with_defaults_get_them() -> None:
    back = decode(packb({"@tag": "test.codec.Defaults", "@version": 1, "required": 5}))
    assert back == Defaults(required=5, with_default="dflt", with_factory={"k": 1})


# -- every DecodeError reason ---------------------------------------------------------------------------


def assert_error(kind: type[Exception], call: Any, where: str, rule: str, reason: str | None = None) -> None:
    """``call()`` raises ``kind`` whose text names the field path ``where`` and states ``rule``."""
    with pytest.raises(kind) as info:
        call()
    text = str(info.value)
    assert where in text and rule in text, text
    if reason is not None:
        assert info.value.reason == reason  # type: ignore[attr-defined]


def reason_of(data: bytes, **kwargs: Any) -> str:
    with pytest.raises(DecodeError) as info:
        decode(data, **kwargs)
    return info.value.reason


def test_oversize() -> None:
    wire = encode(frame())
    with pytest.raises(DecodeError, match=r"\(oversize\): 921\d+ bytes exceeds max_size=1000"):
        decode(wire, max_size=1000)
    assert decode(wire, max_size=len(wire)).seq == 7


def _map32(count: int) -> bytes:
    return b"\xdf" + count.to_bytes(4, "big")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x01", id="not-a-map"),
        pytest.param(packb([1, 2]), id="array-body"),
        pytest.param(encode(Point(x=1.0)) + b"\x00", id="trailing-bytes"),
        pytest.param(encode(frame()) + b"\xc0", id="trailing-bytes-array-path"),
        pytest.param(packb({"@version": 1, "x": 1.0}), id="no-tag"),
        pytest.param(packb({"@tag": 5, "@version": 1}), id="tag-not-str"),
        pytest.param(packb({"@tag": "test.codec.Point", "x": 1.0}), id="no-version"),
        pytest.param(packb({"@tag": "test.codec.Point", "@version": "1"}), id="version-not-int"),
        pytest.param(packb({"@tag": "test.codec.Frame", "@version": 2.0}), id="version-float-arr"),
        pytest.param(b"\x82\xa4@tag\xb0test.codec.Point\xa4@tag\xb0test.codec.Point", id="dup-key"),
        pytest.param(b"\x83\xa1x\xcb" + bytes(8) + b"\xa1x\xc0\xa4@tag\xa1q", id="dup-key-late"),
        pytest.param(b"\x82\xa4@tag\xb0test.codec.Point\x01\x02", id="int-key"),
        pytest.param(b"\x81\xa4@tag\xa2\xff\xfe", id="bad-utf8-tag"),
        pytest.param(
            b"\x83\xa4@tag\xb0test.codec.Frame\xa8@version\x02\xa3seq\xa2\xc3\x28", id="bad-utf8-str"
        ),
        pytest.param(b"\x82\xa4@tag\xb0test.codec.Frame\xa1x" + b"\x91" * 5000, id="deep-c-flat"),
        pytest.param(b"\x82\xa4@tag\xb0test.codec.Frame\xa5image" + b"\x91" * 5000, id="deep-c"),
        pytest.param(b"\x81\xa1x\xdd\xff\xff\xff\xff", id="huge-array-header"),
        pytest.param(_map32(MAX_CONTAINER_LEN + 1), id="huge-map-header"),
        pytest.param(b"\x81\xa1x\xc6\xff\xff\xff\xff", id="huge-bin-header"),
        pytest.param(b"\x82\xa4@tag\xb0test.codec.Frame\xa5image\xc5\x00", id="truncated-bin"),
    ],
)
def test_malformed(data: bytes) -> None:
    assert reason_of(data) == "malformed"
    assert both_paths(data) == "malformed"


@pytest.mark.parametrize(
    "msg", [Point(x=1.5), frame(), Scalars(flag=True, count=1, ratio=2.0, name="n", blob=b"b")]
)
def test_every_truncation_is_malformed(msg: Message) -> None:
    wire = encode(msg)
    cuts = range(len(wire)) if len(wire) < 200 else [*range(200), *range(len(wire) - 200, len(wire))]
    for cut in cuts:
        assert both_paths(wire[:cut]) == "malformed", cut


def test_unknown_tag() -> None:
    with pytest.raises(DecodeError, match="no message type is registered under tag 'nope'") as i:
        decode(packb({"@tag": "nope", "@version": 1}))
    assert i.value.reason == "unknown_tag"


def test_wrong_type() -> None:
    with pytest.raises(DecodeError, match=r"expected 'test\.codec\.Frame', got 'test\.codec\.Point'"):
        decode(encode(Point(x=1.0)), expected=Frame)
    assert reason_of(encode(Point(x=1.0)), expected=Frame) == "wrong_type"


def test_schema_version() -> None:
    body = msgpack.unpackb(encode(frame()))
    body["@version"] = 1
    with pytest.raises(DecodeError, match=r"'test\.codec\.Frame' has version 1 on the wire, regis"):
        decode(packb(body))
    nested = msgpack.unpackb(encode(Tagged(label="x", data=np.zeros(1))))
    outer = _containers_body(nested={**nested, "@version": 9})
    with pytest.raises(DecodeError, match=r"field nested: nested 'test\.codec\.Tagged' has version 9"):
        decode(packb(outer))
    assert reason_of(packb(outer)) == "schema_version"


def test_missing_field() -> None:
    with pytest.raises(DecodeError, match=r"test\.codec\.Point field x: required field is missing"):
        decode(packb({"@tag": "test.codec.Point", "@version": 1, "y": 1.0}))
    assert reason_of(packb({"@tag": "test.codec.Defaults", "@version": 1})) == "missing_field"
    inner = {"@tag": "test.codec.Point", "@version": 1}
    with pytest.raises(DecodeError, match=r"field mixed\[1\]\.x: required") as info:
        decode(packb(_containers_body(mixed=[_tagged_body(), inner])))
    assert info.value.reason == "missing_field"


def _tagged_body() -> dict[str, Any]:
    return msgpack.unpackb(encode(Tagged(label="t", data=np.zeros(2, np.uint8))))  # type: ignore[no-any-return]


def _containers_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "@tag": "test.codec.Containers",
        "@version": 1,
        "maybe": None,
        "floats": [],
        "ints": [],
        "pair": [1, "a"],
        "table": {},
        "points": [],
        "arrays": [],
        "named": {},
        "maybe_array": None,
        "tagged": [],
        "mixed": [_tagged_body(), {"@tag": "test.codec.Point", "@version": 1, "x": 1.0}],
        "nested": None,
    }
    body.update(overrides)
    return body


def test_valid_containers_body_decodes() -> None:
    assert isinstance(decode(packb(_containers_body())), Containers)


ARRAY = {"@nd": 1, "dtype": "uint8", "shape": [2], "data": b"ab"}


@pytest.mark.parametrize(
    ("field", "value", "where", "rule"),
    [
        ("flag", 1, "flag", "expected bool, got int"),
        ("count", True, "count", "expected int, got bool"),
        ("count", 1.0, "count", "expected int, got float"),
        ("ratio", False, "ratio", "expected float, got bool"),
        ("ratio", "1", "ratio", "expected float, got str"),
        ("name", b"x", "name", "expected str, got bin"),
        ("blob", "x", "blob", "expected bin, got str"),
        ("blob", None, "blob", "expected bin, got nil"),
    ],
)
def test_field_type_scalars(field: str, value: object, where: str, rule: str) -> None:
    body = {
        "@tag": "test.codec.Scalars",
        "@version": 1,
        "flag": True,
        "count": 1,
        "ratio": 1.0,
        "name": "n",
        "blob": b"b",
        field: value,
    }
    assert_error(DecodeError, lambda: decode(packb(body)), f"field {where}: ", rule, "field_type")


@pytest.mark.parametrize(
    ("overrides", "where", "rule"),
    [
        ({"maybe": "x"}, "maybe", "expected int, got str"),
        ({"floats": [1.0, "x"]}, "floats[1]", "expected float, got str"),
        ({"floats": {"a": 1}}, "floats", "expected array, got map"),
        ({"ints": [1, 2, True]}, "ints[2]", "expected int, got bool"),
        ({"pair": [1]}, "pair", "expected a 2-tuple, got array of length 1"),
        ({"pair": [1, 2]}, "pair[1]", "expected str, got int"),
        ({"table": {"k": 1}}, "table['k']", "expected a test.codec.Point message map"),
        ({"table": {b"k": {}}}, "table", "dict keys must be str, got bytes"),
        (
            {"points": [{"@tag": "test.codec.Tagged", "@version": 1}]},
            "points[0]",
            "expected nested 'test.codec.Point', got 'test.codec.Tagged'",
        ),
        ({"arrays": [{**ARRAY, "dtype": "object"}]}, "arrays[0]", "dtype 'object' is not all"),
        ({"arrays": [{**ARRAY, "dtype": "<u1"}]}, "arrays[0]", "dtype '<u1' is not allowed"),
        ({"arrays": [{**ARRAY, "shape": [3]}]}, "arrays[0]", "data is 2 bytes but shape"),
        ({"arrays": [{**ARRAY, "shape": [-2]}]}, "arrays[0]", "non-negative ints"),
        ({"arrays": [{**ARRAY, "shape": [2.0]}]}, "arrays[0]", "non-negative ints"),
        ({"arrays": [{**ARRAY, "shape": [1] * 33}]}, "arrays[0]", "non-negative ints"),
        ({"arrays": [{**ARRAY, "data": "ab"}]}, "arrays[0]", "data must be bin, got str"),
        ({"arrays": [{**ARRAY, "@nd": 2}]}, "arrays[0]", "expected an array map"),
        ({"arrays": [b"ab"]}, "arrays[0]", "expected an array map with '@nd': 1, got bin"),
        ({"named": {"a": ARRAY, "b": 5}}, "named['b']", "expected an array map"),
        ({"maybe_array": [ARRAY]}, "maybe_array", "expected an array map"),
        (
            {"tagged": [{"@tag": "test.codec.Tagged", "@version": 1, "label": 1, "data": ARRAY}]},
            "tagged[0].label",
            "expected str, got int",
        ),
        (
            {"nested": {"@tag": "test.codec.Tagged", "@version": 1, "label": "x", "data": 1}},
            "nested.data",
            "expected an array map",
        ),
    ],
)
def test_field_type_containers(overrides: dict[str, Any], where: str, rule: str) -> None:
    body = packb(_containers_body(**overrides))
    assert_error(DecodeError, lambda: decode(body), f"field {where}: ", rule, "field_type")


def test_field_value_from_post_init() -> None:
    with pytest.raises(DecodeError, match="Checked rejected the values: speed must be >= 0") as i:
        decode(packb({"@tag": "test.codec.Checked", "@version": 1, "speed": -1.0}))
    assert i.value.reason == "field_value"
    assert isinstance(i.value.__cause__, ValueError)


def test_msgpack_errors_are_chained() -> None:
    with pytest.raises(DecodeError) as info:
        decode(encode(Point(x=1.0))[:-3])
    assert isinstance(info.value.__cause__, msgpack.OutOfData | ValueError)


# -- encode validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "where", "rule"),
    [
        (Scalars(flag=1, count=1, ratio=1.0, name="n", blob=b""), "flag", "expected bool, got int"),
        (Scalars(flag=True, count=True, ratio=1.0, name="n", blob=b""), "count", "expected int"),
        (Scalars(flag=True, count=2**64, ratio=1.0, name="n", blob=b""), "count", "outside"),
        (Scalars(flag=True, count=-(2**63) - 1, ratio=1.0, name="n", blob=b""), "count", "outs"),
        (Scalars(flag=True, count=1, ratio=True, name="n", blob=b""), "ratio", "expected float"),
        (Scalars(flag=True, count=1, ratio=10**400, name="n", blob=b""), "ratio", "too large"),
        (Scalars(flag=True, count=1, ratio=1.0, name=b"n", blob=b""), "name", "expected str"),
        (Scalars(flag=True, count=1, ratio=1.0, name="n", blob=bytearray()), "blob", "bytes"),
        (Chunk(request_id=1, actions=np.zeros(1, np.float32), names=["a"]), "names", "tuple"),
        (
            Chunk(request_id=1, actions=np.zeros(1, np.float32), names=("a", 1)),
            "names[1]",
            "expected str, got int",
        ),
        (Chunk(request_id=1, actions=[1.0]), "actions", "expected numpy.ndarray, got list"),
        (Tagged(label="x", data=np.array([object()])), "data", "dtype object is not allowed"),
        (Tagged(label="x", data=np.array(["s"])), "data", "dtype <U1 is not allowed"),
        (Tagged(label="x", data=np.zeros(2, "m8[s]")), "data", "not allowed"),
        (Tagged(label="x", data=np.zeros((1,) * 33)), "data", "33 dimensions"),
    ],
)
def test_encode_errors_name_the_field(msg: Message, where: str, rule: str) -> None:
    assert_error(EncodeError, lambda: encode(msg), f"field {where}: ", rule)


def test_encode_errors_in_containers_name_the_path() -> None:
    good = decode(packb(_containers_body()), expected=Containers)
    cases = {
        "table['k'].x": dataclasses.replace(good, table={"k": Point(x="1")}),
        "arrays[1]": dataclasses.replace(good, arrays=(np.zeros(1), "x")),
        "named['b']": dataclasses.replace(good, named={"a": np.zeros(1), "b": None}),
        "mixed[1]": dataclasses.replace(good, mixed=(good.mixed[0], good.mixed[0])),
        "tagged[0].label": dataclasses.replace(good, tagged=(Tagged(label=1, data=np.ones(1)),)),
        "pair": dataclasses.replace(good, pair=(1, "a", 2)),
        "nested": dataclasses.replace(good, nested=Point(x=1.0)),
    }
    for where, msg in cases.items():
        assert_error(EncodeError, lambda msg=msg: encode(msg), f"field {where}: ", "expected")
    bad_key = dataclasses.replace(good, table={1: Point(x=1.0)})
    assert_error(EncodeError, lambda: encode(bad_key), "field table: ", "dict keys must be str")


def test_encode_normalizes_numbers() -> None:
    msg = Scalars(flag=np.bool_(True), count=np.int16(-3), ratio=np.float32(0.5), name="n", blob=b"")
    assert decode(encode(msg)) == Scalars(flag=True, count=-3, ratio=0.5, name="n", blob=b"")
    back = decode(encode(Scalars(flag=False, count=2**64 - 1, ratio=3, name="", blob=b"")))
    assert back.count == 2**64 - 1 and back.ratio == 3.0 and type(back.ratio) is float


def test_encode_rejects_non_messages() -> None:
    class NotRegistered(Message):
        pass

    with pytest.raises(EncodeError, match="not a registered message class"):
        encode(NotRegistered())
    with pytest.raises(EncodeError, match="not a registered message class"):
        encode(object())  # type: ignore[arg-type]


def test_encode_is_thread_safe() -> None:
    messages = [Chunk(request_id=i, actions=np.full((50, 14), i, np.float32)) for i in range(64)]
    expected = [encode(m) for m in messages]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(encode, messages)) == expected
