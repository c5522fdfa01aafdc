"""The Zenoh wire format: attachment header, credit body and key expressions (pure tests)."""

from __future__ import annotations

import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rtrun._wire import (
    HEADER_SCHEMA_VERSION,
    HEADER_SIZE,
    MAX_CONTROL_BODY,
    CreditBody,
    Header,
    HeaderError,
    KeyExprError,
    MessageType,
    SenderStateBody,
    channel_key,
    check_segment,
    credit_key,
    host_token_key,
    host_token_pattern,
    id_from_token_key,
    pack_credit,
    pack_header,
    pack_header_fields,
    pack_sender_state,
    receiver_token_key,
    receiver_token_pattern,
    sender_token_key,
    sender_token_pattern,
    subscriber_pattern,
    unpack_credit,
    unpack_header,
    unpack_header_fields,
    unpack_sender_state,
)

U8, U16, U32, U64 = 2**8 - 1, 2**16 - 1, 2**32 - 1, 2**64 - 1
headers = st.builds(
    Header,
    message_type=st.sampled_from(list(MessageType)),
    sequence_id=st.integers(0, U64),
    episode_id=st.integers(0, U32),
    sender_ns=st.integers(-(2**63), 2**63 - 1),
    session_epoch=st.integers(0, U32),
)
segments = st.from_regex(r"[A-Za-z0-9_.\-]{1,20}", fullmatch=True)


def test_header_is_27_bytes_little_endian_in_documented_order() -> None:
    h = Header(message_type=MessageType.DATA, sequence_id=2, episode_id=3, sender_ns=-4, session_epoch=5)
    data = pack_header(h)
    assert HEADER_SIZE == len(data) == 27
    assert data == struct.pack("<HBQIqI", 1, 1, 2, 3, -4, 5)
    assert data[0:2] == b"\x01\x00" and data[2] == 1 and data[3:11] == (2).to_bytes(8, "little")
    assert data[23:27] == (5).to_bytes(4, "little")


@given(headers)
def test_header_roundtrip(h: Header) -> None:
    data = pack_header(h)
    assert unpack_header(data) == h
    assert unpack_header_fields(data)[2] == h.sequence_id
    assert unpack_header(memoryview(data)) == h


@pytest.mark.parametrize("data", [None, b"", b"\x01" * 26, b"\x01" * 28])
def test_wrong_size_rejected(data: bytes | None) -> None:
    with pytest.raises(HeaderError) as info:
        unpack_header(data)
    assert info.value.reason == "size"


@given(st.integers(0, U16).filter(lambda v: v != HEADER_SCHEMA_VERSION))
def test_wrong_schema_version_rejected(version: int) -> None:
    with pytest.raises(HeaderError, match="schema_version") as info:
        unpack_header(struct.pack("<HBQIqI", version, 1, 0, 0, 0, 0))
    assert info.value.reason == "schema_version"


@given(st.integers(0, U8).filter(lambda t: t not in {int(m) for m in MessageType}))
def test_unknown_message_type_rejected(mtype: int) -> None:
    with pytest.raises(HeaderError) as info:
        unpack_header(struct.pack("<HBQIqI", 1, mtype, 0, 0, 0, 0))
    assert info.value.reason == "message_type"


@given(st.binary(min_size=27, max_size=27))
def test_random_bytes_parse_or_raise_typed_error(data: bytes) -> None:
    version, mtype = struct.unpack_from("<HB", data)
    if version == HEADER_SCHEMA_VERSION and mtype in {int(m) for m in MessageType}:
        assert pack_header(unpack_header(data)) == data
    else:
        with pytest.raises(HeaderError, match=r"schema_version|message_type"):
            unpack_header(data)


@pytest.mark.parametrize(
    "fields",
    [
        {"sequence_id": -1},
        {"sequence_id": 2**64},
        {"episode_id": 2**32},
        {"session_epoch": -1},
        {"sender_ns": 2**63},
    ],
)
def test_out_of_range_fields_rejected_on_pack(fields: dict[str, int]) -> None:
    values = {"message_type": 1, "sequence_id": 0, "episode_id": 0, "sender_ns": 0, "session_epoch": 0}
    values.update(fields)
    with pytest.raises(HeaderError) as info:
        pack_header_fields(**values)
    assert info.value.reason == "field_range"


@given(st.integers(0, U32), st.integers(0, 2**31 - 1), st.integers(0, U64), st.data())
def test_credit_roundtrip(rid: int, window: int, consumed: int, data: st.DataObject) -> None:
    waiting, ports = data.draw(st.integers(0, window)), data.draw(st.integers(0, U32))
    body = CreditBody(receiver_id=rid, window=window, consumed=consumed, waiting=waiting, open_ports=ports)
    packed = pack_credit(body)
    assert len(packed) == 24 and packed[:16] == struct.pack("<IiQ", rid, window, consumed)
    assert unpack_credit(packed) == body
    assert unpack_credit(packed + b"\x07" * 8) == body  # a later version's extension: ignored


def test_credit_of_an_earlier_version_is_read() -> None:
    """16 bytes ``<IiQ``: the window only (no waiting receives reported, one open port)."""
    body = unpack_credit(struct.pack("<IiQ", 9, 3, 40))
    assert body == CreditBody(receiver_id=9, window=3, consumed=40, waiting=0, open_ports=1)


def test_credit_wrong_size_and_range() -> None:
    for size in (15, 17, 23, MAX_CONTROL_BODY + 1):
        with pytest.raises(HeaderError) as info:
            unpack_credit(b"\x00" * size)
        assert info.value.reason == "credit_size"
    with pytest.raises(HeaderError):
        unpack_credit(struct.pack("<IiQ", 1, -5, 0))
    with pytest.raises(HeaderError) as info:
        unpack_credit(struct.pack("<IiQII", 1, 2, 0, 3, 1))  # more waiting receives than window
    assert info.value.reason == "field_range"
    with pytest.raises(HeaderError):
        pack_credit(CreditBody(receiver_id=-1, window=0, consumed=0))
    with pytest.raises(HeaderError):
        pack_credit(CreditBody(receiver_id=1, window=1, consumed=0, waiting=2))


def test_sender_state_body() -> None:
    body = SenderStateBody(open_ports=3, waiting=2)
    assert pack_sender_state(body) == struct.pack("<II", 3, 2)
    assert unpack_sender_state(pack_sender_state(body)) == body
    assert unpack_sender_state(pack_sender_state(body) + b"\x00" * 4) == body  # extension ignored
    for size in (0, 7, MAX_CONTROL_BODY + 1):
        with pytest.raises(HeaderError) as info:
            unpack_sender_state(b"\x00" * size)
        assert info.value.reason == "state_size"
    with pytest.raises(HeaderError):
        pack_sender_state(SenderStateBody(open_ports=-1, waiting=0))


# --- keys --------------------------------------------------------------------------------------


@given(segments)
def test_valid_segments_are_accepted_verbatim(segment: str) -> None:
    assert check_segment(segment) == segment


@pytest.mark.parametrize(
    "bad", ["", "a/b", "*", "a*", "$*", "a$b", "#", "a?b", "@x", "a b", "é", "x" * 129, "**"]
)
def test_invalid_segments_rejected_with_the_rule(bad: str) -> None:
    with pytest.raises(KeyExprError, match="key segments"):
        check_segment(bad)


@given(st.text(max_size=30))
def test_segment_rule_is_exactly_the_documented_charset(text: str) -> None:
    ok = re.fullmatch(r"[A-Za-z0-9_.\-]{1,128}", text) is not None
    try:
        check_segment(text)
    except KeyExprError:
        assert not ok
    else:
        assert ok


def test_key_layout() -> None:
    key = channel_key("g", ["cam0", "frames", "policy", "frames"])
    assert key == "@rtrun/g/cam0/frames/policy/frames"
    assert credit_key(key) == key + "/@credit"
    assert sender_token_key(key, 0xAB) == key + "/@tx/000000ab"
    assert receiver_token_key(key, 0xFFFFFFFF) == key + "/@rx/ffffffff"
    assert sender_token_pattern(key) == key + "/@tx/*"
    assert receiver_token_pattern(key) == key + "/@rx/*"
    assert id_from_token_key(sender_token_key(key, 77)) == 77
    assert host_token_key("g", "robot") == "@rtrun/g/@host/robot"
    assert host_token_key("g", "robot", "cam") == "@rtrun/g/@host/robot/cam"
    assert host_token_pattern("g") == "@rtrun/g/@host/*"
    assert subscriber_pattern("g", [None, "obs"]) == "@rtrun/g/*/obs"


@pytest.mark.parametrize(
    "call",
    [
        lambda: channel_key("g", []),
        lambda: channel_key("g", "cam/frames"),
        lambda: channel_key("g*", ["a"]),
        lambda: subscriber_pattern("g", []),
        lambda: credit_key("rtrun/g/a"),
        lambda: credit_key("@rtrun/g"),
        lambda: id_from_token_key("@rtrun/g/a/@tx/xyz"),
        lambda: id_from_token_key("@rtrun/g/a/@tx/zzzzzzzz"),
    ],
)
def test_bad_keys_rejected(call: object) -> None:
    with pytest.raises(KeyExprError):
        call()  # type: ignore[operator]


# --- Zenoh as the key-expression oracle ---------------------------------------------------------


@pytest.mark.oracle
@given(segments, st.lists(segments, min_size=1, max_size=4), st.integers(0, U32))
def test_zenoh_oracle_on_generated_keys(graph: str, segs: list[str], epoch: int) -> None:
    zenoh = pytest.importorskip("zenoh")
    k = zenoh.KeyExpr
    key = channel_key(graph, segs)
    assert str(k(key)) == key  # already canonical: Zenoh accepts it unchanged
    wildcard = subscriber_pattern(graph, [None, *segs[1:]])
    assert k(wildcard).intersects(k(key))
    assert k(f"@rtrun/{graph}/**").intersects(k(key))
    assert not k("**").intersects(k(key))  # verbatim root: invisible to stray '**'
    for control in (credit_key(key), sender_token_key(key, epoch), receiver_token_key(key, epoch)):
        assert not k("@rtrun/**").intersects(k(control))  # '@' chunks hidden from wildcards
        assert not k(key).intersects(k(control))
    assert k(sender_token_pattern(key)).intersects(k(sender_token_key(key, epoch)))
    assert not k(sender_token_pattern(key)).intersects(k(receiver_token_key(key, epoch)))


@pytest.mark.oracle
def test_zenoh_oracle_reference_examples() -> None:
    zenoh = pytest.importorskip("zenoh")
    k = zenoh.KeyExpr
    assert k(subscriber_pattern("g", [None, "obs"])).intersects(k(channel_key("g", ["cam0", "obs"])))
    assert not k("**").intersects(k("@rtrun/g/cam0/obs"))
    assert k(host_token_pattern("g")).intersects(k(host_token_key("g", "robot")))
    assert not k(host_token_pattern("g")).intersects(k(host_token_key("g", "robot", "cam")))
