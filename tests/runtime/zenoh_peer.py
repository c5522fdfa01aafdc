"""A separate-process Zenoh peer for the multi-process tests (run as a script, never imported).

``python zenoh_peer.py sender <endpoint> <key> [lease_ms]``
    opens an rtrun sender on ``key`` (kernel codec, message ``rtrun.test.Tick``) and sends one
    message every 10 ms until killed; prints ``READY <epoch>`` once a receiver is live.
``python zenoh_peer.py spray <endpoint> <key> <epoch> <count>``
    an *independent* zenoh-python publisher (no rtrun import): sprays ``count`` bad samples of
    each category on ``key`` and prints the per-category counts as JSON.
"""

from __future__ import annotations

import json
import random
import struct
import sys
import time


def sender(endpoint: str, key: str, lease_ms: int | None) -> None:
    import anyio
    import rtrun
    from rtrun._zenoh import open_session
    from rtrun._zenoh_channel import open_zenoh_sender
    from rtrun._zenoh_config import ZenohSettings

    @rtrun.message(tag="rtrun.test.Tick", version=1)
    class Tick(rtrun.Message):
        n: int
        """Counter."""

    async def main() -> None:
        settings = ZenohSettings(connect=(endpoint,), lease_ms=lease_ms)
        with open_session(settings) as session, open_zenoh_sender(session, key, policy="latest") as tx:
            await tx.wait_for_receiver()
            print("READY", session.epoch, flush=True)
            n = 0
            while True:
                await tx.send(Tick(n=n))
                n += 1
                await anyio.sleep(0.01)

    anyio.run(main)


def _msgpack_tick(n: int, tag: str = "rtrun.test.Tick") -> bytes:
    """A valid body written by hand from the documented layout (independent of rtrun's codec)."""
    import msgpack

    return msgpack.packb({"@tag": tag, "@version": 1, "n": n})


def spray(endpoint: str, key: str, epoch: int, count: int) -> None:
    import zenoh

    rng = random.Random(1234)
    header = struct.Struct("<HBQIqI")
    conf = zenoh.Config()
    conf.insert_json5("connect/endpoints", json.dumps([endpoint]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    sent: dict[str, int] = {}

    def mutate(body: bytes) -> bytes:
        data = bytearray(body)
        start = body.index(b"rtrun.test.Tick")  # corrupt the tag: never a registered class
        data[start + rng.randrange(15)] ^= 0x80
        return bytes(data)

    categories = {
        "header_size": lambda i: (_msgpack_tick(i), rng.randbytes(rng.choice([0, 1, 26, 28, 64]))),
        "header_schema_version": lambda i: (
            _msgpack_tick(i),
            header.pack(rng.randint(2, 65535), 1, i, 0, 0, epoch),
        ),
        "header_message_type": lambda i: (
            _msgpack_tick(i),
            header.pack(1, rng.randint(5, 255), i, 0, 0, epoch),
        ),
        "body_random": lambda i: (rng.randbytes(rng.randint(0, 200)), header.pack(1, 1, i, 0, 0, epoch)),
        "body_mutated": lambda i: (mutate(_msgpack_tick(i)), header.pack(1, 1, i, 0, 0, epoch)),
        "unknown_epoch": lambda i: (_msgpack_tick(i), header.pack(1, 1, i, 0, 0, epoch ^ 0x5A5A5A5A)),
    }
    with zenoh.open(conf) as session:
        pub = session.declare_publisher(key, congestion_control=zenoh.CongestionControl.BLOCK)
        deadline = time.monotonic() + 10
        while not pub.matching_status.matching and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        for i in range(count):
            for name, make in categories.items():
                payload, attachment = make(i)
                pub.put(payload, attachment=attachment)
                sent[name] = sent.get(name, 0) + 1
        time.sleep(0.5)
    print(json.dumps(sent), flush=True)


if __name__ == "__main__":
    role, endpoint, key, *rest = sys.argv[1:]
    if role == "sender":
        sender(endpoint, key, int(rest[0]) if rest else None)
    else:
        spray(endpoint, key, int(rest[0]), int(rest[1]))
