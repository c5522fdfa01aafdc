"""Fixtures shared by the kernel's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rtrun._zenoh import ZenohSession

from .zenoh_helpers import session_pair


@pytest.fixture(scope="module")
def sessions() -> Iterator[tuple[ZenohSession, ZenohSession, str]]:
    """Two loopback peer sessions (multicast off, explicit tcp/127.0.0.1 endpoints) shared by the
    tests of one module; a module may define its own ``sessions`` instead."""
    with session_pair() as pair:
        yield pair
