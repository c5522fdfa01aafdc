"""rtrun._lowlevel.checkpoint_if_cancelled behaves as anyio's on both backends."""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest
import sniffio
from rtrun import _lowlevel
from rtrun._lowlevel import checkpoint_if_cancelled

pytestmark = pytest.mark.anyio


async def test_raises_the_pending_cancellation_of_its_own_scope() -> None:
    reached = False
    with anyio.CancelScope() as scope:
        scope.cancel()  # cancelled by the task itself: nothing delivered yet
        await checkpoint_if_cancelled()
        reached = True
    assert scope.cancelled_caught and not reached


async def test_an_outer_cancel_reaches_through_unshielded_scopes_only() -> None:
    with anyio.CancelScope() as outer:
        outer.cancel()
        with anyio.CancelScope(shield=True):
            await checkpoint_if_cancelled()  # shielded: no cancellation here
            shielded_passed = True
        with anyio.CancelScope():
            await checkpoint_if_cancelled()
        raise AssertionError("not reached")  # pragma: no cover
    assert shielded_passed and outer.cancelled_caught


async def test_does_not_yield_when_not_cancelled() -> None:
    ran = False

    async def other() -> None:
        nonlocal ran
        ran = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        for _ in range(5):
            await checkpoint_if_cancelled()
        assert not ran  # the other task never got the loop: no scheduling point


async def test_takes_the_asyncio_backend_shortcut_only_on_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = anyio.lowlevel.checkpoint_if_cancelled

    async def nothing() -> None:
        pass

    def generic() -> object:
        calls.append("generic")
        return real() if sniffio.current_async_library_cvar.get() is None else nothing()

    monkeypatch.setattr(anyio.lowlevel, "checkpoint_if_cancelled", generic)
    await checkpoint_if_cancelled()
    on_asyncio = sniffio.current_async_library() == "asyncio"
    assert calls == ([] if on_asyncio else ["generic"])
    if on_asyncio:  # a bridge naming another library in the context variable wins, as in sniffio
        token = sniffio.current_async_library_cvar.set("curio")
        try:
            await checkpoint_if_cancelled()
        finally:
            sniffio.current_async_library_cvar.reset(token)
        assert calls == ["generic"]
        assert asyncio.get_running_loop() is not None and _lowlevel._asyncio_check is not None
