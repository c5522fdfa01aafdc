"""Zenoh channels between two sessions of this process: conformance, codec, faults, bad input."""

from __future__ import annotations

import functools
import gc
import struct
import time

import anyio
import anyio.lowlevel
import pytest
import rtrun
from rtrun._wire import MessageType, credit_key, pack_batch, pack_header_fields
from rtrun._zenoh import ZenohSession
from rtrun._zenoh_channel import open_zenoh_receiver, open_zenoh_sender
from rtrun.testing import SCENARIOS, ConformanceOptions

from .zenoh_cases import ZOther, ZPose, connected, pose
from .zenoh_helpers import MSGPACK_CODEC, REAL_TIME_BACKENDS, connect, unique_key, zenoh_pair

pytestmark = [pytest.mark.parametrize("anyio_backend", REAL_TIME_BACKENDS)]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_zenoh_channel_conforms(sessions: tuple[ZenohSession, ZenohSession, str], scenario) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = sessions
    factory = functools.partial(zenoh_pair, a, b)
    with anyio.fail_after(60):
        await scenario(factory, ConformanceOptions())


async def test_messages_roundtrip_with_header(sessions: tuple[ZenohSession, ZenohSession, str]) -> None:
    a, b, _ = sessions
    key = unique_key()
    with open_zenoh_receiver(b, key, 32, "block", message_type=ZPose) as rx, open_zenoh_sender(a, key) as tx:
        await connected(tx, rx)
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
        await connected(tx, rx)

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
        await connected(tx, rx)
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
        await connected(tx, rx)
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
        await connected(tx, rx)
        await tx.send(pose(1))
        with anyio.fail_after(10):
            assert (await rx.receive()).seq == 1
        old_epoch = tx._core.epoch  # type: ignore[attr-defined]  # (the sender's incarnation)
        first.close()  # its tokens vanish without an end-of-stream: the far side is gone
        with anyio.fail_after(10), pytest.raises(anyio.BrokenResourceError):
            await rx.receive()
        with connect(endpoint) as second, open_zenoh_sender(second, key, policy="drop_oldest") as tx2:
            await connected(tx2, rx)
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
        await connected(tx, rx)
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
        await connected(tx, rx)
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
        await connected(tx, rx)
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
        await connected(tx, rx)
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
        await connected(tx, rx)
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
                await connected(tx, rx)
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
