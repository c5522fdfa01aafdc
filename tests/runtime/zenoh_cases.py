"""Shared pieces of the Zenoh channel tests: test messages, a raw tap
on a data key, and a deterministic burst rule for the sender."""

from __future__ import annotations

import struct
import time

import anyio
import anyio.lowlevel
import numpy as np
import pytest
import rtrun
from rtrun._zenoh import ZenohSession


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


def pose(i: int) -> ZPose:
    joints = np.arange(6, dtype=np.float32) + i
    joints.flags.writeable = False
    return ZPose(seq=i, joints=joints)


async def connected(sender: object, receiver: object) -> None:
    with anyio.fail_after(10):
        await sender.wait_for_receiver()  # type: ignore[attr-defined]
        await receiver.wait_for_sender()  # type: ignore[attr-defined]


class RawTap:
    """A plain zenoh subscriber on a data key: records (message type, sequence id, body)."""

    def __init__(self, session: ZenohSession, key: str) -> None:
        self.samples: list[tuple[int, int, bytes]] = []

        def on_sample(sample: object) -> None:
            header = struct.unpack("<HBQIqI", sample.attachment.to_bytes())  # type: ignore[attr-defined]
            self.samples.append((header[1], header[2], sample.payload.to_bytes()))  # type: ignore[attr-defined]

        self._sub = session._session.declare_subscriber(key, on_sample)

    def close(self) -> None:
        self._sub.undeclare()


def steady_bursts(monkeypatch: pytest.MonkeyPatch, sender: object) -> None:
    """Make the sender's burst rule independent of how long each ``put`` takes: the burst gap
    becomes 1 s (back-to-back sends are a burst even on a loaded machine, where one put can take
    longer than the real 250 µs) and the previous publish lies 2 s back (the next message is
    sparse). Which messages batch is then decided by the code alone, not by the wall clock."""
    import rtrun._zenoh_sender as sender_module

    monkeypatch.setattr(sender_module, "BURST_GAP_NS", 10**9)
    sender._core.last_publish_ns = time.monotonic_ns() - 2 * 10**9  # type: ignore[attr-defined]
