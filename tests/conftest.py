"""Shared test configuration.

Async tests run on both backends: trio on *virtual time* (``MockClock(autojump_threshold=0)``:
sleeps complete instantly once every task is blocked) and asyncio on real time (the production
backend). A test that needs virtual time selects ``trio-virtual`` with the ``virtual_time``
marker-free idiom: ``pytestmark = pytest.mark.parametrize("anyio_backend", VIRTUAL, indirect=False)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

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


@pytest.fixture(autouse=True)
def isolated_logging() -> Iterator[None]:
    """Undo what a test's in-process ``rtrun`` command did to logging (``setup_logging``
    replaces the root handlers with a rich terminal handler, sets the level and
    ``logging.raiseExceptions``), so later tests log through pytest's capture only."""
    root = logging.getLogger()
    handlers, level, raise_exceptions = root.handlers[:], root.level, logging.raiseExceptions
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.raiseExceptions = raise_exceptions


REAL_TIME_FIRST = ("tests.runtime.test_supervisor_otp", "tests.runtime.test_supervisor_regressions")
"""Modules whose asyncio variants compare supervision traces with real-time deadlines (100 ms
tolerance): they run first. Late in a full run (after ~1,500 tests, Zenoh sessions included)
their asyncio timers fired ~100 ms late, although each passes alone, after either half of the
kernel's other tests, and on an idle machine; the cause is not found yet (see the session note)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run :data:`REAL_TIME_FIRST` before everything else (order inside them unchanged)."""
    first = [item for item in items if getattr(item.module, "__name__", "") in REAL_TIME_FIRST]
    if first:
        chosen = set(first)
        items[:] = first + [item for item in items if item not in chosen]
