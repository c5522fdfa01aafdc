"""Shared test configuration.

Async tests run on both backends: trio on *virtual time* (``MockClock(autojump_threshold=0)``:
sleeps complete instantly once every task is blocked) and asyncio on real time (the production
backend). A test that needs virtual time selects ``trio-virtual`` with the ``virtual_time``
marker-free idiom: ``pytestmark = pytest.mark.parametrize("anyio_backend", VIRTUAL, indirect=False)``.
"""

from __future__ import annotations

import pytest
import trio.testing

VIRTUAL = [pytest.param(("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}), id="trio-virtual")]
"""Parametrization selecting only the virtual-time backend."""

THREAD_FRIENDLY_VIRTUAL = [
    pytest.param(("trio", {"clock": trio.testing.MockClock(autojump_threshold=0.05)}), id="trio-virtual")
]
"""Virtual time for graphs whose actors work in threads (drivers, writers), which see real time:
the clock autojumps only after 50 ms of real quiescence, so virtual time advances with the
actors' own deadlines rather than leaping over a thread's work."""


@pytest.fixture(
    params=[
        pytest.param(("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}), id="trio-virtual"),
        pytest.param(("asyncio", {}), id="asyncio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """Run every async test on trio (virtual time) and on asyncio (real time)."""
    backend, options = request.param
    if backend == "trio":  # a fresh clock per test: MockClock is stateful
        options = {"clock": trio.testing.MockClock(autojump_threshold=0)}
    return backend, options
