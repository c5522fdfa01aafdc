"""The channel conformance suite with every sample crossing another process.

Both ends are client sessions of this test process connected only to a ``rtrun router`` running
as a subprocess, so every data, credit, end-of-stream and liveliness sample travels through a
second process (and two TCP hops) — the same path as two robot processes meeting at a router.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import anyio
import pytest
from rtrun._zenoh import ZenohSession, open_session
from rtrun._zenoh_config import ZenohSettings
from rtrun.testing import SCENARIOS, ConformanceOptions

from .zenoh_helpers import REAL_TIME_BACKENDS, free_port, zenoh_pair

pytestmark = [pytest.mark.parametrize("anyio_backend", REAL_TIME_BACKENDS), pytest.mark.slow]


@pytest.fixture(scope="module")
def routed_sessions() -> Iterator[tuple[ZenohSession, ZenohSession]]:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    router = subprocess.Popen(
        [sys.executable, "-m", "rtrun", "router", "--listen", endpoint],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert router.stderr is not None
        assert "listening" in router.stderr.readline()
        client = ZenohSettings(mode="client", connect=(endpoint,))
        with open_session(client) as a, open_session(client) as b:
            yield a, b
    finally:
        router.send_signal(signal.SIGTERM)
        try:
            router.wait(timeout=10)
        finally:
            if router.poll() is None:
                router.kill()
                router.wait()
            if router.stderr is not None:
                router.stderr.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_zenoh_channel_conforms_through_a_router_process(
    routed_sessions: tuple[ZenohSession, ZenohSession],
    scenario,
) -> None:
    a, b = routed_sessions
    with anyio.fail_after(60):
        await scenario(functools.partial(zenoh_pair, a, b), ConformanceOptions())
