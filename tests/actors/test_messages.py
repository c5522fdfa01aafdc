"""The robot message catalogue round-trips through the codec."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import rtrun
from hypothesis import given, settings
from hypothesis import strategies as st
from rtrun.actors import messages
from rtrun.testing import message_strategy

COMMANDS = st.sampled_from(["start", "save", "discard", "reset", "set_task"])
CATALOGUE = [
    obj
    for obj in (getattr(messages, name) for name in messages.__all__)
    if isinstance(obj, type) and issubclass(obj, rtrun.Message)
]
OVERRIDES = {
    messages.EpisodeControl: {"command": COMMANDS},
    messages.InferenceReply: {"error_kind": st.sampled_from(("", *messages.ERROR_KINDS))},
}


@pytest.mark.parametrize("cls", CATALOGUE, ids=lambda c: c.__name__)
def test_round_trip(cls: type[rtrun.Message]) -> None:
    overrides = OVERRIDES.get(cls, {})

    @settings(max_examples=50, deadline=None, derandomize=True)
    @given(message_strategy(cls, **overrides))
    def check(msg: rtrun.Message) -> None:
        back = rtrun.decode(rtrun.encode(msg), expected=cls)
        assert rtrun.encode(back) == rtrun.encode(msg)

    check()


def test_episode_control_rejects_unknown_commands() -> None:
    with pytest.raises(ValueError, match=r"start\|save"):
        messages.EpisodeControl(command="explode")


def _reply(**kw: object) -> messages.InferenceReply:
    empty = np.zeros((0, 0), np.float32)
    fields: dict[str, object] = {
        "client": "robot", "epoch": 1, "seq": 7, "episode": 0, "chunk": empty, "chunk_robot": empty,
        "action_names": ("a",), "t_request": 0.5, "queue_wait_s": 0.0, "inference_s": 0.0,
    }  # fmt: skip
    return messages.InferenceReply(**{**fields, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", messages.ERROR_KINDS)
def test_inference_reply_error_kind_round_trips(kind: str) -> None:
    reply = _reply(error="the policy said no", error_kind=kind)
    back = rtrun.decode(rtrun.encode(reply), expected=messages.InferenceReply)
    assert back.error_kind == kind and back.error == "the policy said no"


def test_inference_reply_success_has_no_kind() -> None:
    back = rtrun.decode(rtrun.encode(_reply()), expected=messages.InferenceReply)
    assert back.error == "" and back.error_kind == ""


def test_inference_reply_error_kind_is_a_fixed_set() -> None:
    with pytest.raises(ValueError, match="error_kind must be one of"):
        _reply(error="x", error_kind="kaput")
    with pytest.raises(ValueError, match="needs an error text"):
        _reply(error_kind="busy")
    body = msgpack.unpackb(rtrun.encode(_reply(error="x", error_kind="busy")))
    body["error_kind"] = "kaput"  # a bad kind on the wire is a typed decode error
    with pytest.raises(rtrun.DecodeError, match="error_kind"):
        rtrun.decode(msgpack.packb(body), expected=messages.InferenceReply)


def test_inference_reply_without_kind_from_an_older_sender_counts_as_inference() -> None:
    """The field is additive (same schema version): a body without it still decodes."""
    body = msgpack.unpackb(rtrun.encode(_reply(error="boom", error_kind="policy_output")))
    del body["error_kind"]
    back = rtrun.decode(msgpack.packb(body), expected=messages.InferenceReply)
    assert back.error == "boom" and back.error_kind == "inference"
    assert set(messages.CONTRACT_ERRORS) < set(messages.ERROR_KINDS)
