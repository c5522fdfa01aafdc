"""Codec fuzzing (>= 10k deterministic hypothesis examples): arbitrary bytes, mutated valid
encodings and well-formed bodies with random field values only ever raise DecodeError, and
every decoder path agrees (a differential test)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rtrun._message import ARRAY_DTYPES, Message

from .codec_cases import (
    LOCAL_TYPES,
    Checked,
    both_paths,
    corpus,
    packb,
)

# -- fuzzing: only DecodeError, ever ----------------------------------------------------------------------


def fuzz(examples: int) -> settings:
    """Deterministic hypothesis settings for the fuzz tests (>= 10k examples in total)."""
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


REASONS = {
    "malformed",
    "unknown_tag",
    "schema_version",
    "missing_field",
    "field_type",
    "field_value",
    "wrong_type",
    "oversize",
}


def decode_or_decode_error(data: bytes) -> None:
    """The fuzz oracle: either a message comes out, or DecodeError; nothing else."""
    result = both_paths(data)  # also a differential test of the two decoder paths
    assert isinstance(result, Message) or result in REASONS


CORPUS = corpus()


@fuzz(3500)
@given(st.binary(max_size=64) | st.binary(max_size=8).map(lambda b: b"\x8a\xa4@tag" + b))
def test_fuzz_random_bytes(data: bytes) -> None:
    decode_or_decode_error(data)


MUTATION = st.tuples(
    st.sampled_from(["flip", "set", "cut", "insert"]),
    st.integers(0, 2**16),
    st.integers(0, 255),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, arg in mutations:
        i = where % (len(buf) + 1)
        if kind == "flip" and i < len(buf):
            buf[i] ^= arg or 0x80
        elif kind == "set" and i < len(buf):
            buf[i] = arg
        elif kind == "cut":
            del buf[i : i + arg % 16 + 1]
        elif kind == "insert":
            buf[i:i] = bytes([arg])
    return bytes(buf)


@fuzz(4500)
@given(wire=st.sampled_from(CORPUS), mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_fuzz_mutated_valid_bytes(wire: bytes, mutations: list[tuple[str, int, int]]) -> None:
    decode_or_decode_error(mutate(wire, mutations))


ARRAY_MAPS = st.fixed_dictionaries(
    {
        "@nd": st.sampled_from([1, 1, 2, True]),
        "dtype": st.sampled_from([*ARRAY_DTYPES, "object", "<f4"]),
        "shape": st.lists(st.integers(-1, 3), max_size=3),
        "data": st.binary(max_size=16),
    }
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=4)
    | st.binary(max_size=8)
)
WIRE_VALUES = (
    LEAVES
    | ARRAY_MAPS
    | st.lists(LEAVES | ARRAY_MAPS, max_size=3)
    | st.dictionaries(st.sampled_from(["@tag", "@version", "x", "label", "data"]), LEAVES, max_size=3)
)


def structured_bodies(cls: type[Message]) -> st.SearchStrategy[dict[str, Any]]:
    """Maps holding a random subset of ``cls``'s fields, each with a random wire value."""
    names = [p.name for p in cls.__rtrun_fields__]
    return st.fixed_dictionaries({}, optional=dict.fromkeys(names, WIRE_VALUES))


@fuzz(2500)
@given(
    cls=st.sampled_from([*LOCAL_TYPES, Checked]),
    values=st.data(),
    tag_first=st.booleans(),
)
def test_fuzz_structured_bodies(cls: type[Message], values: st.DataObject, tag_first: bool) -> None:
    """Well-formed msgpack with a valid tag and random field values: reaches the type checks."""
    body = values.draw(structured_bodies(cls))
    head = {"@tag": cls.__rtrun_tag__, "@version": cls.__rtrun_version__}
    decode_or_decode_error(packb({**head, **body} if tag_first else {**body, **head}))
