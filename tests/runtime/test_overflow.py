"""rtrun._overflow, the bounded-buffer policy engine every transport uses (pure: no event loop)."""

from __future__ import annotations

import warnings
from collections import deque

import pytest
import rtrun
from anyio import WouldBlock
from hypothesis import given
from hypothesis import strategies as st
from rtrun._errors import ChannelError
from rtrun._overflow import (
    OVERFLOW_NEWEST,
    OVERFLOW_OLDEST,
    OVERFLOW_POLICIES,
    RECEIVER_CLOSED,
    SUPERSEDED,
    check_overflow,
    count_drop,
    discard_all,
    offer,
    overflow_reason,
)

REFERENCE_REASON = {"drop_oldest": OVERFLOW_OLDEST, "drop_newest": OVERFLOW_NEWEST, "latest": SUPERSEDED}


def _valid_configs() -> st.SearchStrategy[tuple[int, str]]:
    return st.one_of(
        st.tuples(st.integers(0, 6), st.just("block")),
        st.tuples(st.integers(1, 6), st.sampled_from(["drop_oldest", "drop_newest"])),
        st.just((1, "latest")),
    )


# An operation: an int is "offer this item", None is "take the oldest item (if any)".
_OPERATIONS = st.lists(st.one_of(st.integers(0, 10**6), st.none()), max_size=60)


@given(config=_valid_configs(), operations=_OPERATIONS)
def test_offer_follows_the_policy_table_and_conserves_items(
    config: tuple[int, str], operations: list[int | None]
) -> None:
    """Against a list-based reference model: what is kept, what is dropped and why, and
    ``offered == taken + queued + dropped + refused`` at every step."""
    capacity, policy = config
    buffer: deque[int] = deque()
    model: list[int] = []
    dropped: dict[str, int] = {}
    offered = taken = refused = 0
    for op in operations:
        if op is None:
            if model:
                assert buffer.popleft() == model.pop(0)
                taken += 1
            continue
        offered += 1
        full = len(model) >= capacity
        if policy == "block" and full:
            with pytest.raises(WouldBlock):
                offer(buffer, op, capacity, policy)
            refused += 1
        else:
            reason = offer(buffer, op, capacity, policy)
            assert reason == (REFERENCE_REASON[policy] if full else None)
            if reason is not None:
                count_drop(dropped, reason)
            if not full:
                model.append(op)
            elif policy != "drop_newest":
                model = [*model[1:], op]
        assert list(buffer) == model
        assert len(buffer) <= capacity
        assert offered == taken + len(buffer) + sum(dropped.values()) + refused
    assert set(dropped) <= {REFERENCE_REASON.get(policy)}


@given(items=st.lists(st.integers(), max_size=20))
def test_latest_always_holds_the_newest_value(items: list[int]) -> None:
    buffer: deque[int] = deque()
    for item in items:
        offer(buffer, item, 1, "latest")
        assert list(buffer) == [item]


@given(items=st.lists(st.integers(), max_size=10), reason=st.sampled_from([RECEIVER_CLOSED, "peer_vanished"]))
def test_discard_all_counts_every_item(items: list[int], reason: str) -> None:
    buffer = deque(items)
    dropped = {reason: 2}
    assert discard_all(buffer, dropped, reason) == len(items)
    assert not buffer and dropped == {reason: 2 + len(items)}


@given(capacity=st.integers(-2, 4), policy=st.sampled_from([*OVERFLOW_POLICIES, "fifo"]))
def test_check_overflow_accepts_exactly_the_valid_buffers(capacity: int, policy: str) -> None:
    valid = policy in OVERFLOW_POLICIES and capacity >= 0
    valid = valid and (policy != "latest" or capacity == 1) and (policy == "block" or capacity >= 1)
    if valid:
        check_overflow(capacity, policy)
    else:
        with pytest.raises(ChannelError):
            check_overflow(capacity, policy)


def test_a_boolean_capacity_is_refused() -> None:
    with pytest.raises(ChannelError, match="integer"):
        check_overflow(True, "block")


def test_overflow_reason_names_each_dropping_policy() -> None:
    assert [overflow_reason(p) for p in OVERFLOW_POLICIES] == [
        None,
        OVERFLOW_OLDEST,
        OVERFLOW_NEWEST,
        SUPERSEDED,
    ]


def test_the_old_public_name_still_resolves_with_a_deprecation_warning() -> None:
    assert "Policy" not in rtrun.__all__ and "OverflowPolicy" in rtrun.__all__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert rtrun.Policy is rtrun.OverflowPolicy  # type: ignore[attr-defined]
    assert [w.category for w in caught] == [DeprecationWarning]
    with pytest.raises(AttributeError):
        rtrun.NoSuchName  # type: ignore[attr-defined]  # noqa: B018
