"""Runs the vendored anyio suite once per transport (see ``_adapter``).

Every test gets the ``transport`` parameter (``memory``, ``zenoh``). Async tests run on trio and
asyncio; trio runs on virtual time for ``memory`` and real time for ``zenoh`` (its ports are
fed by Zenoh's threads, which a mock clock would race). On ``zenoh`` a test named in
``ZENOH_DIFFERENCES`` is skipped and one named in ``ZENOH_DEFECTS`` is a strict xfail.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio.testing
from rtrun._zenoh import ZenohSession

from ..zenoh_helpers import session_pair
from ._adapter import (
    TRANSPORTS,
    ZENOH_DEFECTS,
    ZENOH_DIFFERENCES,
    MemoryTransport,
    ZenohTransport,
    use_transport,
)


@pytest.fixture(scope="module")
def zenoh_sessions() -> Iterator[tuple[ZenohSession, ZenohSession]]:
    """Two loopback peer sessions (sender side, receiver side), opened on first use."""
    with session_pair() as (a, b, _):
        yield a, b


@pytest.fixture(params=TRANSPORTS, autouse=True)
def transport(request: pytest.FixtureRequest) -> Iterator[str]:
    """The transport the vendored test's streams use, with its per-transport expectations."""
    name: str = request.param
    if name == "memory":
        current = MemoryTransport()
    else:
        _apply_zenoh_expectations(request)
        current = ZenohTransport(*request.getfixturevalue("zenoh_sessions"))
    with use_transport(current):
        yield name


def _apply_zenoh_expectations(request: pytest.FixtureRequest) -> None:
    test = request.node.originalname
    if test in ZENOH_DIFFERENCES:
        pytest.skip(f"inherent cross-host difference: {ZENOH_DIFFERENCES[test]}")
    if test in ZENOH_DEFECTS:
        request.applymarker(pytest.mark.xfail(strict=True, reason=ZENOH_DEFECTS[test]))


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest, transport: str) -> tuple[str, dict[str, object]]:
    """trio (virtual time on ``memory``, real time on ``zenoh``) and asyncio."""
    if request.param == "asyncio":
        return "asyncio", {}
    if transport == "memory":
        return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}
    return "trio", {}
