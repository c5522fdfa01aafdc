"""rtrun._lowlevel: ``checkpoint`` is anyio's checkpoint -- it raises a pending cancellation and
lets other tasks run -- on both backends, and under a bridge naming another library."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
import sniffio
from rtrun import _lowlevel
from rtrun._lowlevel import checkpoint

pytestmark = pytest.mark.anyio


async def test_a_cancelled_scope_is_raised_at_the_checkpoint() -> None:
    reached = False
    with anyio.CancelScope() as scope:
        scope.cancel()
        await checkpoint()
        reached = True  # pragma: no cover - failure path
    assert scope.cancelled_caught and not reached


async def test_an_outer_cancel_reaches_through_unshielded_scopes_only() -> None:
    shielded_passed = False
    with anyio.CancelScope() as outer:
        outer.cancel()
        with anyio.CancelScope(shield=True):
            await checkpoint()  # shielded: no cancellation here
            shielded_passed = True
        await checkpoint()
        raise AssertionError("not reached")  # pragma: no cover
    assert shielded_passed and outer.cancelled_caught


async def test_a_cancel_from_another_task_is_raised() -> None:
    scope = anyio.CancelScope()
    started = anyio.Event()
    reached = False

    async def victim() -> None:
        nonlocal reached
        with scope:
            started.set()
            while not scope.cancel_called:  # runs on, not yet at a cancellation point
                await anyio.lowlevel.cancel_shielded_checkpoint()
            await checkpoint()
            reached = True  # pragma: no cover - failure path

    async def canceller() -> None:
        await started.wait()
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(victim)
        tg.start_soon(canceller)
    assert scope.cancelled_caught and not reached


async def test_every_checkpoint_lets_another_task_run() -> None:
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        await checkpoint()
        await checkpoint()
        before = turns
        for _ in range(10):
            await checkpoint()
        assert turns - before >= 9  # trio: one turn per batch, random order within a batch
        tg.cancel_scope.cancel()


async def test_a_bridge_naming_another_library_gets_anyios_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    called: list[bool] = []

    async def anyio_checkpoint() -> None:
        called.append(True)

    monkeypatch.setattr(_lowlevel.anyio.lowlevel, "checkpoint", anyio_checkpoint)
    monkeypatch.setattr(_lowlevel, "_thread", None)  # (trio names itself in the thread-local)
    token = sniffio.current_async_library_cvar.set("curio")
    try:
        await checkpoint()
    finally:
        sniffio.current_async_library_cvar.reset(token)
    assert called == [True]


def test_outside_any_event_loop_it_is_anyios() -> None:
    coro = checkpoint()
    assert getattr(coro, "__qualname__", "") == "checkpoint"  # anyio's coroutine, not awaited here
    coro.close()  # type: ignore[attr-defined]
