"""rtrun._zenoh_protocol: the channel protocol driven synchronously (no Zenoh, no event loop):
the receiving side's epoch table, sequence gaps, bad bodies and end-of-stream, and the sending
side's credit ledger."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rtrun._zenoh_protocol import (
    DEAD_EPOCHS_KEPT,
    EOS_GRACE_S,
    FRESH,
    MAX_SEQUENCE_JUMP,
    Admission,
    InboundStream,
    OutboundCredits,
)

E1, E2, E3 = 0x11, 0x22, 0x33


def following(epoch: int, *, seen: int = 0) -> InboundStream:
    """A stream following the live sender ``epoch`` that delivered ids ``0..seen-1``."""
    stream = InboundStream()
    assert stream.sender_appeared(epoch)  # (nothing buffered yet: "stale" is moot)
    for seq in range(seen):
        assert stream.admit(epoch, seq) == Admission(None, 0, False)
    return stream


# the epoch table ---------------------------------------------------------------------------


def test_data_before_any_token_is_adopted_then_the_token_confirms_it() -> None:
    stream = InboundStream()
    assert stream.admit(E1, 0).drop is None  # startup race: nobody followed yet
    assert not stream.sender_appeared(E1) and stream.following_live


def test_a_new_live_epoch_retires_the_current_one() -> None:
    stream = following(E1, seen=3)
    assert stream.sender_appeared(E2)  # E1 had not ended: its buffered items are stale
    assert stream.epoch == E2 and E1 in stream.dead
    assert stream.admit(E1, 3) == Admission("stale_epoch", 0, False)
    assert stream.admit(E2, 0) == Admission(None, 0, False)  # the sequence restarts


def test_data_from_an_unknown_epoch_cannot_hijack_a_live_sender() -> None:
    stream = following(E1, seen=1)
    assert stream.admit(E3, 0) == Admission("unknown_epoch", 0, False)
    assert stream.epoch == E1


def test_a_vanished_sender_breaks_once_and_a_new_one_resumes() -> None:
    stream = following(E1, seen=2)
    assert stream.sender_vanished(E1)  # broken: drop the buffer, raise once
    assert stream.epoch is None and not stream.sender_vanished(E1)
    assert stream.admit(E1, 2).drop == "stale_epoch"
    stream.sender_appeared(E2)
    assert stream.admit(E2, 0).drop is None


def test_a_partition_heals_the_same_epoch_resumes() -> None:
    stream = following(E1, seen=2)
    stream.sender_vanished(E1)
    assert stream.sender_appeared(E1) and stream.epoch == E1 and E1 not in stream.dead


def test_after_end_of_stream_a_new_sender_is_followed_and_the_old_items_stay() -> None:
    """An actor restarted after it terminated reopens its output (issue 15, item 4)."""
    stream = following(E1, seen=2)
    assert stream.end_of_stream(E1, 2) == (True, False)
    assert stream.end_reached(now=0.0) == (True, 0)
    assert not stream.sender_appeared(E2)  # ended for good: its items are delivered first
    assert stream.eos is None and stream.epoch == E2
    assert stream.admit(E2, 0).drop is None


def test_a_superseded_epoch_whose_token_reappears_stays_retired() -> None:
    stream = following(E1, seen=1)
    stream.end_of_stream(E1, 1)
    stream.sender_appeared(E2)
    assert not stream.sender_appeared(E1)  # a late or repeated "alive" for the ended sender
    assert stream.epoch == E2 and E1 in stream.dead
    assert not stream.sender_vanished(E1)  # ...and its token leaving breaks nothing


def test_an_ended_sender_leaving_is_not_a_vanished_one() -> None:
    stream = following(E1, seen=1)
    stream.end_of_stream(E1, 1)
    assert not stream.sender_vanished(E1)


def test_end_of_stream_from_a_retired_epoch_is_not_acknowledged() -> None:
    stream = following(E1, seen=1)
    stream.sender_appeared(E2)
    assert stream.end_of_stream(E1, 1) == (False, False)
    assert stream.eos is None


def test_retired_epochs_are_bounded() -> None:
    stream = following(E1)
    for epoch in range(100, 100 + 3 * DEAD_EPOCHS_KEPT):
        stream.sender_appeared(epoch)
    assert len(stream.dead) == DEAD_EPOCHS_KEPT


# sequence ids ------------------------------------------------------------------------------


def test_gaps_are_lost_and_older_ids_are_stale() -> None:
    stream = following(E1, seen=1)
    assert stream.admit(E1, 4) == Admission(None, 3, False)
    assert stream.admit(E1, 2) == Admission("stale_sequence", 0, False)


def test_an_implausible_jump_is_dropped_unless_the_next_id_confirms_it() -> None:
    stream = following(E1, seen=1)
    far = 1 + MAX_SEQUENCE_JUMP + 5
    assert stream.admit(E1, far).drop == "header_sequence_jump"
    assert stream.admit(E1, 1) == Admission(None, 0, False)  # the real stream goes on
    assert stream.admit(E1, far).drop == "header_sequence_jump"
    assert stream.admit(E1, far + 1) == Admission(None, 0, False)  # confirmed: resynchronized


@given(
    fates=st.lists(st.sampled_from(["delivered", "lost", "bad"]), min_size=1, max_size=40),
    trailing_lost=st.integers(0, 3),
)
def test_every_id_is_accounted_for_exactly_once(fates: list[str], trailing_lost: int) -> None:
    """Ids ``0..n-1`` are delivered, lost in transit, or arrive with an undecodable body (counted
    by the caller); END_OF_STREAM then announces ``n``. Once the end is reached, every id from
    the first one seen on is delivered, lost or bad exactly once (lost messages at the tail are
    counted when the grace period ends, bad bodies there are not counted again)."""
    fates = fates + ["lost"] * trailing_lost
    stream = following(E1)
    delivered = lost = bad = 0
    for seq, fate in enumerate(fates):
        if fate == "delivered":
            admission = stream.admit(E1, seq)
            assert admission.drop is None
            delivered, lost = delivered + 1, lost + admission.lost
        elif fate == "bad":
            stream.bad_body(E1, seq)
            bad += 1
    assert stream.end_of_stream(E1, len(fates)) == (True, False)
    reached, tail = stream.end_reached(now=0.0)
    if not reached:  # messages still "in flight": wait for the grace period
        assert stream.end_reached(now=EOS_GRACE_S / 2) == (False, 0)
        reached, tail = stream.end_reached(now=EOS_GRACE_S)
    assert reached and stream.ended
    # Ids before the first one seen are not counted: a late join and a loss look alike.
    seen = fates.index("delivered") if "delivered" in fates else len(fates)
    unseen = sum(1 for fate in fates[:seen] if fate != "bad")
    assert delivered + lost + tail + bad == len(fates) - unseen


@pytest.mark.parametrize("epoch", [E2, E3])
def test_bad_bodies_of_other_epochs_are_not_remembered(epoch: int) -> None:
    stream = following(E1, seen=1)
    stream.bad_body(epoch, 1)
    assert list(stream.bad_ids) == []


# the sending side's credit ledger ----------------------------------------------------------

R1, R2 = 0xA1, 0xA2


def credits_with(*rids: int) -> OutboundCredits:
    ledger = OutboundCredits(E1)
    for rid in rids:
        ledger.receiver_token(rid, True)
    return ledger


def test_block_sends_only_within_every_receivers_window() -> None:
    ledger = credits_with(R1, R2)
    assert not ledger.may_send(0)  # tokens seen, no credit yet
    assert ledger.credit(R1, 1, E1, (2, 0, 0, 1), next_seq=0)  # window 2 from id 0
    assert not ledger.may_send(0)  # R2 has not credited
    ledger.credit(R2, 1, E1, (1, 0, 0, 1), next_seq=0)
    assert ledger.may_send(0) and not ledger.may_send(1)  # the smaller window bounds
    ledger.credit(R2, 2, E1, (1, 1, 0, 1), next_seq=1)  # R2 consumed id 0
    assert ledger.may_send(1) and not ledger.may_send(2)


def test_an_older_credit_arriving_late_is_ignored() -> None:
    ledger = credits_with(R1)
    ledger.credit(R1, 5, E1, (4, 10, 0, 1), next_seq=10)
    assert not ledger.credit(R1, 3, E1, (1, 2, 0, 1), next_seq=10)
    assert ledger.receivers[R1].consumed == 10 and ledger.receivers[R1].window == 4


@pytest.mark.parametrize(("epoch", "consumed"), [(E1, FRESH), (E2, 0)])
def test_a_fresh_or_other_epochs_credit_grants_from_the_next_id(epoch: int, consumed: int) -> None:
    """A receiver that saw no data yet, or still follows a previous sender (issue 15, item 4),
    grants its window from this sender's next id, not from ids of another incarnation."""
    ledger = credits_with(R1)
    ledger.credit(R1, 1, epoch, (2, consumed, 0, 1), next_seq=7)
    assert ledger.may_send(8) and not ledger.may_send(9)


def test_closed_receivers_break_the_sender_vanished_ones_do_not() -> None:
    ledger = credits_with(R1, R2)
    ledger.receiver_token(R1, False)  # vanished: its host will come back
    assert not ledger.broken
    ledger.receiver_closed(R2)
    assert ledger.broken
    ledger.receiver_token(R2, True)  # a closed receiver never becomes live again
    assert not ledger.credit(R2, 9, E1, (4, 0, 0, 1), next_seq=0) and ledger.broken


def test_the_statistics_view() -> None:
    ledger = credits_with(R1, R2)
    ledger.credit(R1, 1, E1, (3, 5, 1, 2), next_seq=8)
    assert ledger.view(block=True) == (2, 5, 3, 1)  # R2 (no credit) counts one port
    assert ledger.view(block=False) == (2, None, 3, 0)


def test_a_grant_counts_from_the_oldest_buffered_item_of_the_followed_sender() -> None:
    stream = following(E1, seen=5)
    assert stream.grant([], room=4) == (4, 5)  # nothing buffered: from the next id
    assert stream.grant([(E1, 3), (E1, 4)], room=4) == (4, 3)
    assert InboundStream().grant([], room=2) == (2, FRESH)


def test_items_an_ended_sender_left_use_up_the_next_senders_window() -> None:
    stream = following(E1, seen=2)
    stream.end_of_stream(E1, 2)
    stream.sender_appeared(E2)  # items 0 and 1 of E1 stay buffered
    assert stream.grant([(E1, 0), (E1, 1)], room=2) == (0, FRESH)
    assert stream.grant([(E1, 1), (E2, 0)], room=2) == (1, 0)
