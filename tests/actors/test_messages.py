"""The robot message catalogue round-trips through the codec."""

from __future__ import annotations

import pytest
import rtrun
from hypothesis import given, settings
from hypothesis import strategies as st
from rtrun.actors import messages
from rtrun.testing import message_strategy

COMMANDS = st.sampled_from(["start", "save", "discard", "reset", "set_task"])
CATALOGUE = [getattr(messages, name) for name in messages.__all__]


@pytest.mark.parametrize("cls", CATALOGUE, ids=lambda c: c.__name__)
def test_round_trip(cls: type[rtrun.Message]) -> None:
    overrides = {"command": COMMANDS} if cls is messages.EpisodeControl else {}

    @settings(max_examples=50, deadline=None, derandomize=True)
    @given(message_strategy(cls, **overrides))
    def check(msg: rtrun.Message) -> None:
        back = rtrun.decode(rtrun.encode(msg), expected=cls)
        assert rtrun.encode(back) == rtrun.encode(msg)

    check()


def test_episode_control_rejects_unknown_commands() -> None:
    with pytest.raises(ValueError, match=r"start\|save"):
        messages.EpisodeControl(command="explode")
