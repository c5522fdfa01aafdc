"""Zenoh channels across real processes: vanished peers, fuzzing, a third-party subscriber."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import msgpack
import pytest
import rtrun
from rtrun._zenoh import open_router, open_session
from rtrun._zenoh_channel import open_zenoh_receiver, open_zenoh_sender
from rtrun._zenoh_config import ZenohSettings

from .zenoh_helpers import REAL_TIME_BACKENDS, free_port, unique_key

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("anyio_backend", REAL_TIME_BACKENDS)]

PEER = str(Path(__file__).with_name("zenoh_peer.py"))


@rtrun.message(tag="rtrun.test.Tick", version=1)
class Tick(rtrun.Message):
    """Same tag/layout as the child's message."""

    n: int
    """Counter."""


@contextmanager
def child(*args: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``zenoh_peer.py`` with ``args``; always killed (by PID) and reaped afterwards."""
    env = {**os.environ, "RUST_LOG": "error"}
    proc = subprocess.Popen([sys.executable, PEER, *args], stdout=subprocess.PIPE, text=True, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


async def _readline(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    with anyio.fail_after(30):
        return await anyio.to_thread.run_sync(proc.stdout.readline)


async def _expect_broken_after_kill(rx: object, proc: subprocess.Popen[str], sig: int) -> float:
    """Receive until the child is killed with ``sig``; return seconds until BrokenResourceError."""
    with anyio.fail_after(10):
        first = await rx.receive()  # type: ignore[attr-defined]
    assert isinstance(first, Tick)
    os.kill(proc.pid, sig)
    killed = time.monotonic()
    with anyio.fail_after(15):
        while True:
            try:
                await rx.receive()  # type: ignore[attr-defined]
            except anyio.BrokenResourceError:
                return time.monotonic() - killed


async def test_sigkilled_sender_is_detected_quickly(record_property: pytest.RecordProperty) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    key = unique_key()
    with (
        open_session(ZenohSettings(listen=(endpoint,))) as session,
        open_zenoh_receiver(session, key, 1, "latest", message_type=Tick) as rx,
    ):
        with child("sender", endpoint, key) as proc:
            assert (await _readline(proc)).startswith("READY")
            detection = await _expect_broken_after_kill(rx, proc, signal.SIGKILL)
        record_property("sigkill_detection_s", round(detection, 4))
        print(f"SIGKILL detection: {detection * 1000:.1f} ms")
        assert detection < 1.0
        assert rx.statistics().open_send_ports == 0


async def test_hung_sender_is_detected_at_its_lease(record_property: pytest.RecordProperty) -> None:
    """SIGSTOP keeps the socket open: only the *sender's* lease (here 500 ms) reveals it."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    key = unique_key()
    with (
        open_session(ZenohSettings(listen=(endpoint,))) as session,
        open_zenoh_receiver(session, key, 1, "latest", message_type=Tick) as rx,
    ):
        with child("sender", endpoint, key, "500") as proc:
            assert (await _readline(proc)).startswith("READY")
            try:
                detection = await _expect_broken_after_kill(rx, proc, signal.SIGSTOP)
            finally:
                os.kill(proc.pid, signal.SIGCONT)
        record_property("sigstop_detection_s", round(detection, 4))
        print(f"SIGSTOP detection with a 500 ms lease: {detection * 1000:.1f} ms")
        assert 0.2 < detection < 3.0


async def test_fuzzing_publisher_cannot_disturb_a_live_channel() -> None:
    """An independent zenoh-python process sprays bad samples; every one is counted, none seen."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    key = unique_key()
    count = 40
    with (
        open_session(ZenohSettings(listen=(endpoint,))) as session,
        open_zenoh_receiver(session, key, 1, "latest", message_type=Tick) as rx,
        child("sender", endpoint, key) as sender,
    ):
        ready = await _readline(sender)
        epoch = int(ready.split()[1])
        seen: list[int] = []

        async def consume() -> None:
            while True:
                seen.append((await rx.receive()).n)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            with child("spray", endpoint, key, str(epoch), str(count)) as sprayer:
                sprayed = json.loads(await _readline(sprayer))
            await anyio.sleep(0.3)  # a few more good ticks after the storm
            tg.cancel_scope.cancel()
        stats = rx.statistics()  # before the sender child is killed
    dropped = dict(stats.dropped)
    assert sprayed == dict.fromkeys(sprayed, count)
    for reason in ("header_size", "header_schema_version", "header_message_type", "unknown_epoch"):
        assert dropped.pop(reason) == count, reason
    body = {r: n for r, n in dropped.items() if r.startswith("body_")}
    assert sum(body.values()) == 2 * count, body
    assert set(dropped) - set(body) <= {"superseded"}  # the only other drops: latest policy
    assert seen == sorted(seen) and len(seen) > 10  # the actor kept receiving, in order
    assert stats.sent == stats.received + stats.queued + stats.dropped_total


@pytest.mark.oracle
async def test_third_party_zenoh_cli_reads_rtrun_traffic() -> None:
    """zenoh-cli (PyPI), a client of an rtrun router, prints bodies any msgpack reader decodes."""
    cli = shutil.which("zenoh")
    if cli is None:
        pytest.skip("zenoh-cli not installed")
    router_endpoint = f"tcp/127.0.0.1:{free_port()}"
    key = unique_key("cli")
    with open_router((router_endpoint,)) as _router:
        client = ZenohSettings(mode="client", connect=(router_endpoint,))
        with open_session(client) as a, open_session(client) as b:
            cmd = [cli, "--mode", "client", "--connect", router_endpoint]
            cmd += ["--cfg", "scouting/multicast/enabled:false", "subscribe", "-k", "@rtrun/**"]
            cmd += ["--decoder", "base64"]
            # Popen returns as soon as the child is forked: not a blocking wait.
            proc = subprocess.Popen(  # noqa: ASYNC220
                cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            try:
                await anyio.sleep(1.5)  # the CLI process starts and declares its subscriber
                with (
                    open_zenoh_receiver(b, key, 8, "block", message_type=Tick) as rx,
                    open_zenoh_sender(a, key) as tx,
                ):
                    with anyio.fail_after(10):
                        await tx.wait_for_receiver()
                    for n in range(3):
                        await tx.send(Tick(n=n))
                    with anyio.fail_after(10):
                        assert [(await rx.receive()).n for _ in range(3)] == [0, 1, 2]
                    await anyio.sleep(0.5)
            finally:
                os.kill(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate(timeout=10)
    bodies = []
    for line in out.splitlines():
        token = line.strip().split()[-1] if line.strip() else ""
        try:
            bodies.append(msgpack.unpackb(base64.b64decode(token, validate=True)))
        except (ValueError, msgpack.UnpackException):
            continue
    ticks = [b for b in bodies if isinstance(b, dict) and b.get("@tag") == "rtrun.test.Tick"]
    assert [t["n"] for t in ticks] == [0, 1, 2], out
    assert all(t["@version"] == 1 for t in ticks)
