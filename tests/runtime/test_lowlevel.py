"""rtrun._lowlevel: ``cancel_maybe_pending`` never says "no" when anyio's check would raise, and
says "no" on asyncio's common path (that is its point); on both backends."""

from __future__ import annotations

import anyio
import pytest
import sniffio
from anyio.lowlevel import checkpoint_if_cancelled
from rtrun import _lowlevel
from rtrun._lowlevel import cancel_maybe_pending

pytestmark = pytest.mark.anyio


def on_asyncio() -> bool:
    return sniffio.current_async_library() == "asyncio"


async def guarded_check() -> None:
    """What a hot path does: the cheap answer first, anyio's check only on "maybe"."""
    if cancel_maybe_pending():
        await checkpoint_if_cancelled()


async def test_not_cancelled_is_a_certain_no_on_asyncio() -> None:
    assert _lowlevel._STATES is not None  # this anyio's layout was recognized
    with anyio.CancelScope(), anyio.CancelScope():
        assert cancel_maybe_pending() is not on_asyncio()  # trio: always "maybe"
        await guarded_check()  # (and nothing raised)


async def test_own_scope_cancelled_is_raised() -> None:
    reached = False
    with anyio.CancelScope() as scope:
        scope.cancel()  # cancelled by the task itself: nothing delivered yet
        assert cancel_maybe_pending()
        await guarded_check()
        reached = True
    assert scope.cancelled_caught and not reached


async def test_an_outer_cancel_reaches_through_unshielded_scopes_only() -> None:
    shielded_passed = False
    with anyio.CancelScope() as outer:
        outer.cancel()
        with anyio.CancelScope(shield=True):
            assert cancel_maybe_pending() is not on_asyncio()
            await guarded_check()  # shielded: no cancellation here
            shielded_passed = True
        with anyio.CancelScope():
            assert cancel_maybe_pending()
            await guarded_check()
        raise AssertionError("not reached")  # pragma: no cover
    assert shielded_passed and outer.cancelled_caught


async def test_a_bridge_naming_another_library_gets_maybe() -> None:
    token = sniffio.current_async_library_cvar.set("curio")
    try:
        assert cancel_maybe_pending()
    finally:
        sniffio.current_async_library_cvar.reset(token)


async def test_does_not_yield_when_not_cancelled() -> None:
    ran = False

    async def other() -> None:
        nonlocal ran
        ran = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        for _ in range(5):
            await guarded_check()
        assert not ran  # the other task never got the loop: no scheduling point


def test_outside_any_event_loop_the_answer_is_maybe() -> None:
    assert cancel_maybe_pending()


async def test_the_per_task_cache_follows_tasks_and_later_cancels() -> None:
    """The last task's anyio state is cached: another task, a later cancel of a scope the cached
    task is in, and a task whose state anyio creates after a first call are all seen."""
    flags: dict[str, bool] = {}

    async def probe(name: str, cancel_first: bool) -> None:
        with anyio.CancelScope() as scope:
            flags[f"{name}-before"] = cancel_maybe_pending()
            await anyio.lowlevel.checkpoint()  # (the other task looks up in between)
            if cancel_first:
                scope.cancel()
            flags[f"{name}-after"] = cancel_maybe_pending()
            await guarded_check()

    async with anyio.create_task_group() as tg:
        tg.start_soon(probe, "a", False)
        tg.start_soon(probe, "b", True)
    if on_asyncio():
        assert flags == {"a-before": False, "b-before": False, "a-after": False, "b-after": True}
    else:
        assert all(flags.values())  # trio: always "maybe"


def test_a_task_without_anyio_state_then_with_it() -> None:
    import asyncio

    async def main() -> list[bool]:
        answers = [cancel_maybe_pending()]  # a plain asyncio task: no anyio state (yet)
        with anyio.CancelScope() as scope:  # anyio creates this task's state here
            scope.cancel()
            answers.append(cancel_maybe_pending())
            await checkpoint_if_cancelled()
        return answers

    assert asyncio.run(main()) == [False, True]


def test_the_task_lookup_agrees_with_asyncio() -> None:
    """The direct task lookup returns what asyncio.current_task does, in and between tasks."""
    import asyncio

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert _lowlevel._task_of(loop) is asyncio.current_task() is not None

        async def lookup() -> object:
            return _lowlevel._task_of(loop)

        other = asyncio.ensure_future(lookup())
        assert await other is other  # inside the other task: that task

    asyncio.run(main())
    loop = asyncio.new_event_loop()
    try:
        assert _lowlevel._task_of(loop) is None  # no task running on it
    finally:
        loop.close()
