"""Zenoh channels between two sessions of this process: conformance, codec, faults, bad input."""

from __future__ import annotations

import functools
import gc
import struct
import time
from collections.abc import Iterator

import anyio
import anyio.lowlevel
import msgpack
import numpy as np
import pytest
import rtrun
from rtrun._wire import MessageType, credit_key, pack_batch, pack_header_fields
from rtrun._zenoh import ZenohSession
from rtrun._zenoh_channel import open_zenoh_receiver, open_zenoh_sender
from rtrun.testing import SCENARIOS, ConformanceOptions

from .zenoh_helpers import MSGPACK_CODEC, REAL_TIME_BACKENDS, connect, session_pair, unique_key, zenoh_pair

pytestmark = [pytest.mark.parametrize("anyio_backend", REAL_TIME_BACKENDS)]


@rtrun.message(tag="rtrun.test.ZPose", version=1)
class ZPose(rtrun.Message):
    """A test message crossing Zenoh."""

    seq: int
    """Counter."""
    joints: np.ndarray
    """float32 joint positions."""


@rtrun.message(tag="rtrun.test.ZOther", version=1)
class ZOther(rtrun.Message):
    """A different message type (to check wrong-type drops)."""

    text: str
    """Anything."""


@pytest.fixture(scope="module")
def sessions() -> Iterator[tuple[ZenohSession, ZenohSession, str]]:
    """Two loopback peer sessions shared by the tests of this module."""
    with session_pair() as pair:
        yield pair


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_zenoh_channel_conforms(sessions: tuple[ZenohSession, ZenohSession, str], scenario) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = sessions
    factory = functools.partial(zenoh_pair, a, b)
    with anyio.fail_after(60):
        await scenario(factory, ConformanceOptions())


def pose(i: int) -> ZPose:
    joints = np.arange(6, dtype=np.float32) + i
    joints.flags.writeable = False
    return ZPose(seq=i, joints=joints)


async def _connected(sender: object, receiver: object) -> None:
    with anyio.fail_after(10):
        await sender.wait_for_receiver()  # type: ignore[attr-defined]
        await receiver.wait_for_sender()  # type: ignore[attr-defined]


async def test_messages_roundtrip_with_header(sessions: tuple[ZenohSession, ZenohSession, str]) -> None:
    a, b, _ = sessions
    key = unique_key()
    with open_zenoh_receiver(b, key, 32, "block", message_type=ZPose) as rx, open_zenoh_sender(a, key) as tx:
        await _connected(tx, rx)
        tx.set_episode(7)
        for i in range(20):
            await tx.send(pose(i))
        with anyio.fail_after(10):
            got = [await rx.receive() for _ in range(20)]
        assert [g.seq for g in got] == list(range(20))
        assert got[3].joints.tolist() == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
        header = rx.last_header
        assert header is not None and header.episode_id == 7 and header.session_epoch == tx._core.epoch  # type: ignore[attr-defined]
        assert header.sequence_id == 19 and header.message_type is MessageType.DATA


async def test_send_fast_path_mixed_classes_and_declined_values(
    sessions: tuple[ZenohSession, ZenohSession, str],
) -> None:
    """``send`` on a non-``block`` channel publishes inline with a per-class cached flat
    encode: switching classes, a value the flat encode declines (an array over its size limit, a
    strided one) and an invalid one (EncodeError, nothing sent) all behave as ``send_nowait``."""
    a, b, _ = sessions
    key = unique_key()
    big = np.arange(5_000, dtype=np.float32)  # 20 KB: over the flat encode's limit
    with (
        open_zenoh_receiver(b, key, 64, "drop_newest") as rx,
        open_zenoh_sender(a, key, policy="drop_newest") as tx,
    ):
        await _connected(tx, rx)
        with pytest.raises(ValueError, match="u32"):
            tx.set_episode(2**32)
        tx.set_episode(3)
        sent = [pose(1), ZOther(text="x"), pose(2), ZPose(seq=3, joints=big), ZPose(seq=4, joints=big[::2])]
        for item in sent[:3]:
            await tx.send(item)
            await anyio.sleep(0.01)  # (paced: congestion "drop" may shed a back-to-back burst)
        with pytest.raises(rtrun.EncodeError):
            await tx.send(ZPose(seq="not an int", joints=big))  # type: ignore[arg-type]
        for item in sent[3:]:
            await tx.send(item)
            await anyio.sleep(0.01)
        with anyio.fail_after(10):
            got = [await rx.receive() for _ in sent]
        assert [rtrun.encode(g) for g in got] == [rtrun.encode(m) for m in sent]
        assert rx.last_header is not None and rx.last_header.episode_id == 3
        assert rx.statistics().dropped == {} and tx.statistics().sent == len(sent)


class _RawTap:
    """A plain zenoh subscriber on a data key: records (message type, sequence id, body)."""

    def __init__(self, session: ZenohSession, key: str) -> None:
        self.samples: list[tuple[int, int, bytes]] = []

        def on_sample(sample: object) -> None:
            header = struct.unpack("<HBQIqI", sample.attachment.to_bytes())  # type: ignore[attr-defined]
            self.samples.append((header[1], header[2], sample.payload.to_bytes()))  # type: ignore[attr-defined]

        self._sub = session._session.declare_subscriber(key, on_sample)

    def close(self) -> None:
        self._sub.undeclare()


def _steady_bursts(monkeypatch: pytest.MonkeyPatch, sender: object) -> None:
    """Make the sender's burst rule independent of how long each ``put`` takes: the burst gap
    becomes 1 s (back-to-back sends are a burst even on a loaded machine, where one put can take
    longer than the real 250 µs) and the previous publish lies 2 s back (the next message is
    sparse). Which messages batch is then decided by the code alone, not by the wall clock."""
    import rtrun._zenoh_sender as sender_module

    monkeypatch.setattr(sender_module, "BURST_GAP_NS", 10**9)
    sender._core.last_publish_ns = time.monotonic_ns() - 2 * 10**9  # type: ignore[attr-defined]


async def test_a_burst_goes_out_in_batches_and_arrives_whole_in_order(
    sessions: tuple[ZenohSession, ZenohSession, str], anyio_backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """send_nowait x100 within one loop iteration: on asyncio the first message leaves alone,
    the other 99 as DATA_BATCH samples of BATCH_MAX_MESSAGES (32, 32, 32, 3); the receiver gets
    all 100 in order with per-message sequence ids, and a batch body is a msgpack array of DATA
    bodies. The burst rule is made independent of put timing (:func:`_steady_bursts`)."""
    from rtrun._zenoh_sender import BATCH_MAX_MESSAGES

    a, b, _ = sessions
    key = unique_key()
    tap = _RawTap(b, key)
    with (
        open_zenoh_receiver(b, key, 128, "drop_oldest", message_type=ZPose) as rx,
        open_zenoh_sender(a, key, policy="drop_oldest") as tx,
    ):
        await _connected(tx, rx)
        _steady_bursts(monkeypatch, tx)
        for i in range(100):
            tx.send_nowait(pose(i))
        assert tx.statistics().sent == 100  # pending ones count as sent
        with anyio.fail_after(10):
            got = [await rx.receive() for _ in range(100)]
        assert [g.seq for g in got] == list(range(100))
        assert rx.last_header is not None and rx.last_header.sequence_id == 99
        assert rx.last_header.message_type is MessageType.DATA
        stats = rx.statistics()
        assert (stats.sent, stats.received, stats.dropped_total) == (100, 100, 0)
        with anyio.fail_after(10):
            while sum(1 for t, _, _ in tap.samples if t in (1, 6)) < (
                1 + 4 if anyio_backend_name == "asyncio" else 100  # 1 DATA + 4 DATA_BATCH
            ):
                await anyio.sleep(0.01)
    tap.close()
    data = [(t, seq, body) for t, seq, body in tap.samples if t in (1, 6)]
    if anyio_backend_name != "asyncio":  # no batching off asyncio: one sample per message
        assert [t for t, _, _ in data] == [1] * 100
        return
    assert data[0][:2] == (1, 0)  # the first message of the burst is not held back
    batches = [(seq, msgpack.unpackb(body)) for t, seq, body in data if t == 6]
    # Once open, the window holds the rest of the iteration: every other message is batched,
    # a batch leaving as soon as it is full.
    assert [t for t, _, _ in data] == [1] + [6] * len(batches)
    assert [len(b) for _, b in batches] == [BATCH_MAX_MESSAGES] * 3 + [99 - 3 * BATCH_MAX_MESSAGES]
    seqs = [seq + i for t, seq, body in data for i in range(1 if t == 1 else len(msgpack.unpackb(body)))]
    assert seqs == list(range(100))  # ids are consecutive across samples
    first_seq, bodies = batches[0]
    assert rtrun.decode(bodies[0]).seq == first_seq  # each element is a plain DATA body


async def test_sparse_sends_are_never_held_back(sessions: tuple[ZenohSession, ZenohSession, str]) -> None:
    """A message published after the task yielded (here: waiting for the previous one to come
    back) goes out at once, as a plain DATA sample: sparse traffic is never batched."""
    a, b, _ = sessions
    key = unique_key()
    tap = _RawTap(b, key)
    with (
        open_zenoh_receiver(b, key, 8, "drop_oldest", message_type=ZPose) as rx,
        open_zenoh_sender(a, key, policy="drop_oldest") as tx,
    ):
        await _connected(tx, rx)
        with anyio.fail_after(10):
            for i in range(5):
                await tx.send(pose(i))
                assert (await rx.receive()).seq == i
            while len([s for s in tap.samples if s[0] == 1]) < 5:
                await anyio.sleep(0.01)
    tap.close()
    assert [(t, seq) for t, seq, _ in tap.samples if t in (1, 6)] == [(1, i) for i in range(5)]


async def test_only_a_burst_opens_a_batching_window(
    sessions: tuple[ZenohSession, ZenohSession, str], anyio_backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sparse message is put with nothing scheduled after it (work right after a put delays
    the sample), then the CPU is yielded once; one following the previous within BURST_GAP_NS
    opens the window (asyncio) and waits for the next loop iteration; a body of
    BATCH_MAX_BYTES or more never waits."""
    import rtrun._zenoh_sender as sender_module

    a, b, _ = sessions
    key = unique_key()
    tap = _RawTap(b, key)
    monkeypatch.setattr(sender_module, "BURST_GAP_NS", 10**9)  # 1 s: a slow machine stays in a burst
    yields: list[int] = []
    monkeypatch.setattr(sender_module, "yield_to_transmit", lambda: yields.append(core.seq))
    with (
        open_zenoh_receiver(b, key, 8, "drop_oldest", message_type=ZPose) as rx,
        open_zenoh_sender(a, key, policy="drop_oldest") as tx,
    ):
        await _connected(tx, rx)
        core = tx._core  # type: ignore[attr-defined]
        core.last_publish_ns = time.monotonic_ns() - 2 * 10**9  # the previous message: 2 s ago
        await tx.send(pose(0))
        assert (core.seq, core.window_open) == (1, False)  # sparse: put, no window
        tx.send_nowait(pose(1))  # right behind it: a burst
        assert (core.seq, core.window_open) == (1, True) if anyio_backend_name == "asyncio" else (2, False)
        assert tx.statistics().sent == 2
        await anyio.lowlevel.checkpoint()  # the next iteration closes the window: published
        assert (core.seq, core.window_open) == (2, False)
        monkeypatch.setattr(sender_module, "BATCH_MAX_BYTES", 16)  # every ZPose body is "large"
        tx.send_nowait(pose(2))
        tx.send_nowait(pose(3))  # a burst, but large: published at once
        assert (core.seq, core.window_open) == (4, False)
        # the CPU is yielded after each put that published at once, never for a batch
        assert yields == ([1, 3, 4] if anyio_backend_name == "asyncio" else [1, 2, 3, 4])
        with anyio.fail_after(10):
            assert [(await rx.receive()).seq for _ in range(4)] == [0, 1, 2, 3]
            while len(tap.samples) < 4:
                await anyio.sleep(0.01)
    tap.close()
    assert [(t, seq) for t, seq, _ in tap.samples][:4] == [(1, i) for i in range(4)]


async def test_send_after_the_session_closed_is_broken(
    anyio_backend_name: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the sender's session is closed, ``send``/``send_nowait`` raise BrokenResourceError
    (zenoh's error, mapped), also right after a failed one; a batch still pending when the
    session closed is logged with its size; nothing unpublished counts as sent."""
    with session_pair() as (a, _peer, _):
        key = unique_key()
        with open_zenoh_sender(a, key, policy="drop_oldest") as tx:
            _steady_bursts(monkeypatch, tx)  # (a slow first put must not end the burst)
            tx.send_nowait(pose(0))
            tx.send_nowait(pose(1))  # a burst: batched on asyncio
            a.close()
            await anyio.lowlevel.checkpoint()  # the window closes: its put fails
            published = 1 if anyio_backend_name == "asyncio" else 2  # (no batching off asyncio)
            assert tx.statistics().sent == published
            if anyio_backend_name == "asyncio":
                assert "1 batched message(s) not published" in caplog.text
            with pytest.raises(anyio.BrokenResourceError, match="zenoh put"):
                await tx.send(pose(2))
            with pytest.raises(anyio.BrokenResourceError, match="zenoh put"):
                tx.send_nowait(pose(3))  # right behind a failed put: no burst, raised
            assert tx.statistics().sent == published


async def test_competing_receive_clones_share_the_items_once(
    sessions: tuple[ZenohSession, ZenohSession, str],
) -> None:
    """Receiving tasks on clones of one port wait their turn to park on the bridge: every item
    goes to exactly one of them, a waiter cancelled while queued disturbs nobody, and all of
    them see the end of the stream."""
    a, b, _ = sessions
    key = unique_key()
    got: dict[str, list[int]] = {"one": [], "two": []}
    with (
        open_zenoh_receiver(b, key, 64, "block", message_type=ZPose) as rx,
        open_zenoh_sender(a, key, policy="block") as tx,
    ):
        await _connected(tx, rx)

        async def consume(name: str, port: object) -> None:
            async for msg in port:  # type: ignore[attr-defined]
                got[name].append(msg.seq)
                await anyio.lowlevel.checkpoint()  # let the other clone take a turn

        async def cancelled_waiter(port: object) -> None:
            with anyio.move_on_after(0.05):
                await port.receive()  # type: ignore[attr-defined]

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                clone, spare = rx.clone(), rx.clone()
                tg.start_soon(consume, "one", rx)
                tg.start_soon(consume, "two", clone)
                tg.start_soon(cancelled_waiter, spare)
                await anyio.sleep(0.1)  # all three queued: one parked, two waiting their turn
                for i in range(200):
                    await tx.send(pose(i))
                    if i % 50 == 0:
                        await anyio.sleep(0.01)  # sparse stretches as well as bursts
                await tx.aclose()
            spare.close()
            clone.close()
    assert sorted(got["one"] + got["two"]) == list(range(200))
    assert got["one"] == sorted(got["one"]) and got["two"] == sorted(got["two"])


async def test_wrong_message_class_is_dropped_and_counted(
    sessions: tuple[ZenohSession, ZenohSession, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, _ = sessions
    key = unique_key()
    with (
        open_zenoh_receiver(b, key, 4, "drop_oldest", message_type=ZPose) as rx,
        open_zenoh_sender(a, key, policy="drop_oldest") as tx,
    ):
        await _connected(tx, rx)
        await tx.send(ZOther(text="not a pose"))
        await tx.send(pose(1))
        with anyio.fail_after(10):
            assert (await rx.receive()).seq == 1
        assert rx.statistics().dropped == {"body_wrong_type": 1}
        # Mid-stream, sparse and in a burst (a DATA_BATCH on asyncio): each undecodable body is
        # one drop, and the messages after it are not also counted as a sequence gap.
        await tx.send(ZOther(text="sparse"))
        await anyio.sleep(0.01)
        await tx.send(pose(3))
        import rtrun._zenoh_sender as sender_module

        monkeypatch.setattr(sender_module, "BURST_GAP_NS", 10**9)  # a burst however slow the put
        for item in (pose(4), ZOther(text="burst"), pose(6)):
            tx.send_nowait(item)
        with anyio.fail_after(10):
            assert [(await rx.receive()).seq for _ in range(3)] == [3, 4, 6]
            while rx.statistics().dropped_total < 3:
                await anyio.sleep(0.01)
        stats = rx.statistics()
        assert stats.dropped == {"body_wrong_type": 3}
        assert stats.sent == stats.received + stats.queued + stats.dropped_total == 7


async def test_bad_input_dropped_per_reason_and_channel_keeps_working(
    sessions: tuple[ZenohSession, ZenohSession, str],
) -> None:
    """A raw zenoh publisher sends every kind of garbage on the data key."""
    zenoh = pytest.importorskip("zenoh")
    a, b, endpoint = sessions
    key = unique_key()
    good = rtrun.encode(pose(0))
    bad = [
        (b"\x00", None),  # no attachment
        (good, b"\x01\x00"),  # short attachment
        (good, struct.pack("<HBQIqI", 2, 1, 0, 0, 0, a.epoch)),  # future schema version
        (good, struct.pack("<HBQIqI", 1, 99, 0, 0, 0, a.epoch)),  # unknown message type
        (good, pack_header_fields(MessageType.CREDIT, 0, 0, 0, a.epoch)),  # control on data key
        (b"\xc1garbage", pack_header_fields(MessageType.DATA, 0, 0, 0, 12345)),  # not msgpack
        (good.replace(b"rtrun.test.ZPose", b"rtrun.test.ZNope"), pack_header_fields(1, 0, 0, 0, 1)),
        (good, pack_header_fields(MessageType.DATA_BATCH, 0, 0, 0, a.epoch)),  # batch body not an array
        (pack_batch([]), pack_header_fields(MessageType.DATA_BATCH, 0, 0, 0, a.epoch)),  # empty batch
        (pack_batch([b"\xc1", b"\x90"]), pack_header_fields(MessageType.DATA_BATCH, 0, 0, 0, 7)),  # 2 bad
    ]
    expected = {
        "header_size": 2,
        "header_schema_version": 1,
        "header_message_type": 1,
        "header_unexpected_type": 1,
        "body_malformed": 5,
        "body_unknown_tag": 1,
    }
    with open_zenoh_receiver(b, key, 4, "block", message_type=ZPose) as rx, open_zenoh_sender(a, key) as tx:
        await _connected(tx, rx)
        conf = zenoh.Config()
        conf.insert_json5("connect/endpoints", f'["{endpoint}"]')
        conf.insert_json5("scouting/multicast/enabled", "false")
        with zenoh.open(conf) as raw:
            pub = raw.declare_publisher(key)
            await anyio.sleep(0.3)  # let the route reach the raw publisher
            for payload, attachment in bad:
                pub.put(payload, attachment=attachment)
            await tx.send(pose(5))
            with anyio.fail_after(10):
                assert (await rx.receive()).seq == 5
                while rx.statistics().dropped_total < sum(expected.values()):
                    await anyio.sleep(0.01)
        stats = rx.statistics()
        assert dict(stats.dropped) == expected
        assert stats.sent == stats.received + stats.queued + stats.dropped_total


async def test_vanished_sender_breaks_once_then_new_epoch_resumes(
    sessions: tuple[ZenohSession, ZenohSession, str],
) -> None:
    _, b, endpoint = sessions
    key = unique_key()
    with open_zenoh_receiver(b, key, 4, "drop_oldest", message_type=ZPose) as rx:
        first = connect(endpoint)
        tx = open_zenoh_sender(first, key, policy="drop_oldest")
        await _connected(tx, rx)
        await tx.send(pose(1))
        with anyio.fail_after(10):
            assert (await rx.receive()).seq == 1
        old_epoch = tx._core.epoch  # type: ignore[attr-defined]  # (the sender's incarnation)
        first.close()  # its tokens vanish without an end-of-stream: the far side is gone
        with anyio.fail_after(10), pytest.raises(anyio.BrokenResourceError):
            await rx.receive()
        with connect(endpoint) as second, open_zenoh_sender(second, key, policy="drop_oldest") as tx2:
            await _connected(tx2, rx)
            stale = rtrun.encode(pose(99))
            second.put(key, stale, pack_header_fields(1, 50, 0, 0, old_epoch), tx2._core.qos)
            await tx2.send(pose(2))
            with anyio.fail_after(10):
                assert (await rx.receive()).seq == 2  # resumed, nothing from the old epoch
                while "stale_epoch" not in rx.statistics().dropped:
                    await anyio.sleep(0.01)
        assert rx.statistics().dropped["stale_epoch"] == 1
        tx.close()  # left open to simulate a crash; its session is closed, so nothing is published


async def _following(receiver: object, sender: object) -> None:
    """Wait until ``receiver`` follows ``sender`` (adopted its epoch; ``wait_for_sender`` also
    returns for the ended sender, whose token stays declared while its session lives)."""
    with anyio.fail_after(10):
        await sender.wait_for_receiver()  # type: ignore[attr-defined]
        while receiver._core.epoch != sender._core.epoch:  # type: ignore[attr-defined]
            await anyio.sleep(0.005)


async def test_a_new_sender_after_end_of_stream_in_the_same_session_is_received(
    sessions: tuple[ZenohSession, ZenohSession, str],
) -> None:
    """An actor restarted after it terminated reopens its output: a new sender on the same key
    in the same session. Its receiver, which saw END_OF_STREAM, receives from it (issue 15)."""
    a, b, _ = sessions
    key = unique_key()
    with open_zenoh_receiver(b, key, 4, "drop_oldest", message_type=ZPose) as rx:
        tx = open_zenoh_sender(a, key, policy="drop_oldest")
        await _connected(tx, rx)
        await tx.send(pose(1))
        await tx.aclose()  # END_OF_STREAM, acknowledged
        with anyio.fail_after(10):
            assert (await rx.receive()).seq == 1
            with pytest.raises(anyio.EndOfStream):
                await rx.receive()
        async with open_zenoh_sender(a, key, policy="drop_oldest") as tx2:
            assert tx2._core.epoch != tx._core.epoch  # type: ignore[attr-defined]
            await _following(rx, tx2)
            await tx2.send(pose(2))
            with anyio.fail_after(10):
                assert (await rx.receive()).seq == 2
        with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
            await rx.receive()  # the new sender's end-of-stream, in turn
    assert rx.statistics().dropped_total == 0


async def test_items_left_by_an_ended_sender_come_before_the_next_senders(
    sessions: tuple[ZenohSession, ZenohSession, str],
) -> None:
    """``block``: a sender ends with items still buffered and a new one opens on the key (same
    session): the old items are delivered first, then the new ones, with no end-of-stream in
    between (as in-process when a closed output reopens), and they count against the new
    sender's credit (it waits for room instead of overflowing the buffer)."""
    a, b, _ = sessions
    key = unique_key()
    with open_zenoh_receiver(b, key, 2, "block", message_type=ZPose) as rx:
        tx = open_zenoh_sender(a, key, policy="block")
        await _connected(tx, rx)
        await tx.send(pose(1))
        await tx.send(pose(2))
        await tx.aclose()  # the receiver acknowledged END_OF_STREAM: both items are buffered
        async with open_zenoh_sender(a, key, policy="block") as tx2:
            await _following(rx, tx2)
            with anyio.move_on_after(0.3) as scope:
                await tx2.send(pose(3))  # no room: the two old items fill the window
            assert scope.cancelled_caught
            got: list[int] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(tx2.send, pose(3))
                with anyio.fail_after(10):
                    got += [(await rx.receive()).seq for _ in range(3)]
        assert got == [1, 2, 3]
    assert rx.statistics().dropped_total == 0


async def test_sequence_gaps_are_counted_as_drops(sessions: tuple[ZenohSession, ZenohSession, str]) -> None:
    a, b, _ = sessions
    key = unique_key()
    with (
        open_zenoh_receiver(b, key, 8, "drop_oldest", message_type=ZPose) as rx,
        open_zenoh_sender(a, key, policy="drop_oldest") as tx,
    ):
        await _connected(tx, rx)
        await tx.send(pose(0))  # seq 0
        tx._core.seq += 3  # simulate three samples lost in transit
        await tx.send(pose(4))  # seq 4
        with anyio.fail_after(10):
            assert [(await rx.receive()).seq for _ in range(2)] == [0, 4]
        stats = rx.statistics()
        assert stats.dropped == {"sequence_gap": 3}
        assert stats.sent == 5 == stats.received + stats.dropped_total


async def test_receiver_closed_on_purpose_breaks_sender(
    sessions: tuple[ZenohSession, ZenohSession, str],
) -> None:
    a, b, _ = sessions
    key = unique_key()
    rx = open_zenoh_receiver(b, key, 1, "latest", codec=MSGPACK_CODEC)
    with open_zenoh_sender(a, key, policy="latest", codec=MSGPACK_CODEC) as tx:
        await _connected(tx, rx)
        rx.close()
        with anyio.fail_after(10):
            while True:
                try:
                    await tx.send(1)
                except anyio.BrokenResourceError:
                    break
                await anyio.sleep(0.01)
        assert tx.statistics().open_receive_ports == 0


async def test_credit_key_garbage_is_counted_by_the_sender(
    sessions: tuple[ZenohSession, ZenohSession, str],
) -> None:
    a, b, _ = sessions
    key = unique_key()
    with (
        open_zenoh_receiver(b, key, 2, "block", codec=MSGPACK_CODEC) as rx,
        open_zenoh_sender(a, key, policy="block", codec=MSGPACK_CODEC) as tx,
    ):
        await _connected(tx, rx)
        b.put(credit_key(key), b"short", b"\x00" * 5, tx._core.qos)
        with anyio.fail_after(10):
            while not tx.statistics().dropped:
                await anyio.sleep(0.01)
        assert tx.statistics().dropped == {"control_size": 1}
        await tx.send("still works")
        with anyio.fail_after(10):
            assert await rx.receive() == "still works"


async def test_presence_tokens_report_hosts_and_actors(
    sessions: tuple[ZenohSession, ZenohSession, str],
) -> None:
    import threading

    from rtrun._zenoh import declare_presence, watch_presence

    a, b, _ = sessions
    events: list[tuple[str, str | None, bool]] = []
    lock = threading.Lock()

    def record(host: str, actor: str | None, alive: bool) -> None:
        with lock:
            events.append((host, actor, alive))

    graph = f"pres{time.monotonic_ns()}"  # (the tokens of an earlier run may vanish late)
    host_token = declare_presence(a, graph, "robot")
    actor_token = declare_presence(a, graph, "robot", "camera")
    watcher = watch_presence(b, graph, record)
    try:
        alive = {("robot", None, True), ("robot", "camera", True)}
        with anyio.fail_after(10):  # (liveliness history and the live feed may both report one)
            while not alive <= set(events):
                await anyio.sleep(0.01)
        actor_token.close()
        with anyio.fail_after(10):
            while ("robot", "camera", False) not in events:
                await anyio.sleep(0.01)
        assert set(events) == {*alive, ("robot", "camera", False)}
    finally:
        watcher.close()
        host_token.close()


async def test_router_mode_carries_a_channel_between_clients() -> None:
    """What ``rtrun router`` runs: clients meet through an in-process zenoh-python router."""
    import threading

    from rtrun._zenoh import open_session, run_router
    from rtrun._zenoh_config import ZenohSettings

    from .zenoh_helpers import free_port

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    stop = threading.Event()
    router = threading.Thread(target=run_router, args=((endpoint,),), kwargs={"stop": stop})
    router.start()
    try:
        await anyio.sleep(0.3)
        client = ZenohSettings(mode="client", connect=(endpoint,))
        with open_session(client) as a, open_session(client) as b:
            key = unique_key()
            with (
                open_zenoh_receiver(b, key, 2, "block", codec=MSGPACK_CODEC) as rx,
                open_zenoh_sender(a, key, codec=MSGPACK_CODEC) as tx,
            ):
                await _connected(tx, rx)
                await tx.send({"via": "router"})
                with anyio.fail_after(10):
                    assert await rx.receive() == {"via": "router"}
    finally:
        stop.set()
        router.join(timeout=10)
    assert not router.is_alive()


async def test_unclosed_ports_warn_when_collected(sessions: tuple[ZenohSession, ZenohSession, str]) -> None:
    """Like in-process ports: an open Zenoh port that is garbage-collected emits ResourceWarning."""
    a, b, _ = sessions
    key = unique_key()
    for opener in (
        functools.partial(open_zenoh_receiver, b, key, 1, "latest", codec=MSGPACK_CODEC),
        functools.partial(open_zenoh_sender, a, key, policy="latest", codec=MSGPACK_CODEC),
    ):
        port = opener()
        core = port._core  # keep the declarations reachable; only the port handle is dropped
        with pytest.warns(ResourceWarning, match="unclosed Zenoh"):
            del port
            gc.collect()
        closed = opener()
        closed.close()
        del closed  # a closed port is collected silently (warnings are errors here)
        gc.collect()
        if hasattr(core, "close_clone"):  # release the leaked declarations
            core.close_clone()
        else:
            core.clone_closed()
