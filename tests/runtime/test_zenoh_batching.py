"""Zenoh channels: the sender's fast path and burst batching (DATA_BATCH samples), checked
against the raw samples on the data key; the burst rule is made independent of put timing."""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import msgpack
import numpy as np
import pytest
import rtrun
from rtrun._wire import MessageType
from rtrun._zenoh import ZenohSession
from rtrun._zenoh_channel import open_zenoh_receiver, open_zenoh_sender

from .zenoh_cases import RawTap, ZOther, ZPose, connected, pose, steady_bursts
from .zenoh_helpers import REAL_TIME_BACKENDS, session_pair, unique_key

pytestmark = [pytest.mark.parametrize("anyio_backend", REAL_TIME_BACKENDS)]


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
        await connected(tx, rx)
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


async def test_a_burst_goes_out_in_batches_and_arrives_whole_in_order(
    sessions: tuple[ZenohSession, ZenohSession, str], anyio_backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """send_nowait x100 within one loop iteration: on asyncio the first message leaves alone,
    the other 99 as DATA_BATCH samples of BATCH_MAX_MESSAGES (32, 32, 32, 3); the receiver gets
    all 100 in order with per-message sequence ids, and a batch body is a msgpack array of DATA
    bodies. The burst rule is made independent of put timing (:func:`steady_bursts`)."""
    from rtrun._zenoh_sender import BATCH_MAX_MESSAGES

    a, b, _ = sessions
    key = unique_key()
    tap = RawTap(b, key)
    with (
        open_zenoh_receiver(b, key, 128, "drop_oldest", message_type=ZPose) as rx,
        open_zenoh_sender(a, key, policy="drop_oldest") as tx,
    ):
        await connected(tx, rx)
        steady_bursts(monkeypatch, tx)
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
    tap = RawTap(b, key)
    with (
        open_zenoh_receiver(b, key, 8, "drop_oldest", message_type=ZPose) as rx,
        open_zenoh_sender(a, key, policy="drop_oldest") as tx,
    ):
        await connected(tx, rx)
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
    tap = RawTap(b, key)
    monkeypatch.setattr(sender_module, "BURST_GAP_NS", 10**9)  # 1 s: a slow machine stays in a burst
    yields: list[int] = []
    monkeypatch.setattr(sender_module, "yield_to_transmit", lambda: yields.append(core.seq))
    with (
        open_zenoh_receiver(b, key, 8, "drop_oldest", message_type=ZPose) as rx,
        open_zenoh_sender(a, key, policy="drop_oldest") as tx,
    ):
        await connected(tx, rx)
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
            steady_bursts(monkeypatch, tx)  # (a slow first put must not end the burst)
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
