"""Supervisor semantics on virtual time (OTP rules), plus a smoke run on asyncio."""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
import pytest
from rtrun import EscalationError
from rtrun._restart import Backoff, RestartWindow
from rtrun._supervisor import ChildSpec, Supervisor, SupervisorFlags

from ..conftest import VIRTUAL


class Boom(Exception):
    """An injected crash."""


class Script:
    """A family of children driven by a test: log of starts/stops, crash and finish on demand."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.crash: dict[str, anyio.Event] = {}
        self.finish: dict[str, anyio.Event] = {}
        self.fail_start: dict[str, int] = {}

    def child(self, name: str, **kw: object) -> ChildSpec:
        async def start(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            self.log.append(f"start {name}")
            if self.fail_start.get(name, 0) > 0:
                self.fail_start[name] -= 1
                raise Boom(f"{name} cannot start")
            self.crash[name], self.finish[name] = anyio.Event(), anyio.Event()
            task_status.started()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watch, self.finish[name], tg.cancel_scope)
                    await self.crash[name].wait()
                    raise Boom(name)
            finally:
                self.log.append(f"stop {name}")

        return ChildSpec(id=name, start=start, **kw)  # type: ignore[arg-type]

    @staticmethod
    async def _watch(event: anyio.Event, scope: anyio.CancelScope) -> None:
        await event.wait()
        scope.cancel()  # returning normally from the child


async def settle() -> None:
    await anyio.sleep(0.01)


async def run_sup(sup: Supervisor, body: Callable[[], object]) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await body()  # type: ignore[misc]
        tg.cancel_scope.cancel()


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    """Supervision logic runs on virtual time (see test_asyncio_smoke for the real backend)."""
    return VIRTUAL[0].values[0]  # type: ignore[no-any-return]


async def test_start_in_order_stop_in_reverse() -> None:
    s = Script()
    sup = Supervisor("root", [s.child("a"), s.child("b"), s.child("c")])

    async def body() -> None:
        assert [c.state for c in sup.tree().children] == ["running"] * 3

    await run_sup(sup, body)
    assert s.log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("one_for_one", ["stop b", "start b"]),
        ("one_for_all", ["stop b", "stop c", "stop a", "start a", "start b", "start c"]),
        ("rest_for_one", ["stop b", "stop c", "start b", "start c"]),
    ],
)
async def test_strategies(strategy: str, expected: list[str]) -> None:
    s = Script()
    sup = Supervisor("root", [s.child("a"), s.child("b"), s.child("c")], SupervisorFlags(strategy=strategy))  # type: ignore[arg-type]

    async def body() -> None:
        s.log.clear()
        s.crash["b"].set()
        await settle()
        assert s.log == expected
        assert {c.id: c.restarts for c in sup.tree().children}["b"] == 1

    await run_sup(sup, body)
    assert [e.kind for e in sup.events if e.child == "b"][:3] == ["started", "exited", "restarting"]


@pytest.mark.parametrize(
    ("restart", "crash", "restarted"),
    [
        ("permanent", True, True),
        ("permanent", False, True),
        ("transient", True, True),
        ("transient", False, False),
        ("temporary", True, False),
        ("temporary", False, False),
    ],
)
async def test_restart_types(restart: str, crash: bool, restarted: bool) -> None:
    s = Script()
    sup = Supervisor("root", [s.child("x", restart=restart), s.child("keep")])

    async def body() -> None:
        (s.crash if crash else s.finish)["x"].set()
        await settle()
        assert s.log.count("start x") == (2 if restarted else 1)
        ids = [c.id for c in sup.tree().children]
        assert ("x" in ids) == (restart != "temporary")

    await run_sup(sup, body)


async def test_temporary_sibling_not_restarted_under_one_for_all() -> None:
    s = Script()
    sup = Supervisor(
        "root", [s.child("a"), s.child("tmp", restart="temporary")], SupervisorFlags(strategy="one_for_all")
    )

    async def body() -> None:
        s.crash["a"].set()
        await settle()
        assert s.log.count("start tmp") == 1 and s.log.count("start a") == 2
        assert [c.id for c in sup.tree().children] == ["a"]

    await run_sup(sup, body)


async def test_intensity_window_escalates_exactly_when_exceeded() -> None:
    s = Script()
    sup = Supervisor("root", [s.child("a")], SupervisorFlags(intensity=2, period=10.0))

    async def crash_thrice() -> None:
        for _ in range(3):
            await settle()
            s.crash["a"].set()

    escalation = pytest.RaisesExc(EscalationError, match="more than 2 restarts within 10 s")
    with pytest.RaisesGroup(escalation):
        async with anyio.create_task_group() as tg:
            tg.start_soon(crash_thrice)
            await sup.run()
    assert s.log.count("start a") == 3 and s.log[-1] == "stop a"
    assert sup.escalations == 1


async def test_restarts_outside_the_period_are_forgotten() -> None:
    s = Script()
    sup = Supervisor("root", [s.child("a")], SupervisorFlags(intensity=1, period=5.0))

    async def body() -> None:
        for _ in range(4):
            s.crash["a"].set()
            await anyio.sleep(6.0)
        assert s.log.count("start a") == 5

    await run_sup(sup, body)
    assert sup.escalations == 0


async def test_nested_escalation_is_handled_by_parent_strategy() -> None:
    s = Script()
    inner = Supervisor("inner", [s.child("leaf")], SupervisorFlags(intensity=0))
    outer = Supervisor("outer", [s.child("sibling"), inner.child_spec()], SupervisorFlags(intensity=5))

    async def body() -> None:
        s.crash["leaf"].set()  # intensity 0: inner escalates at once; outer restarts inner
        await settle()
        assert s.log.count("start leaf") == 2 and s.log.count("start sibling") == 1
        tree = outer.tree()
        assert tree.children[1].id == "inner" and tree.children[1].restarts == 1
        assert tree.children[1].children[0].state == "running"

    await run_sup(outer, body)
    assert inner.escalations == 1 and outer.escalations == 0


async def test_initial_start_failure_stops_started_children_and_raises() -> None:
    s = Script()
    s.fail_start["b"] = 1
    sup = Supervisor("root", [s.child("a"), s.child("b"), s.child("c")])
    with pytest.raises(Boom, match="b cannot start"):
        await sup.run()
    assert s.log == ["start a", "start b", "stop a"]


async def test_start_failure_during_restart_counts_and_retries() -> None:
    s = Script()
    sup = Supervisor("root", [s.child("a")], SupervisorFlags(intensity=5, period=60))

    async def body() -> None:
        s.fail_start["a"] = 2
        s.crash["a"].set()
        await settle()
        assert s.log.count("start a") == 4  # initial, 2 failed starts, then success
        assert [c.restarts for c in sup.tree().children] == [3]

    await run_sup(sup, body)
    assert [e.kind for e in sup.events].count("start_failed") == 2


async def test_shutdown_timeout_then_hard_stop_cancels_cleanup() -> None:
    from rtrun._actor import ActorContext

    ctx = ActorContext(id="motor", params=None)
    log: list[str] = []

    async def stubborn(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            with ctx.cleanup(math.inf):
                log.append("cleanup begins")
                await anyio.sleep(100)  # a hung cleanup
                log.append("never")  # pragma: no cover

    spec = ChildSpec(id="motor", start=stubborn, shutdown_timeout=2.0, on_hard_stop=ctx._hard_cancel_cleanups)
    sup = Supervisor("root", [spec])
    t0 = anyio.current_time()
    await run_sup(sup, settle)
    assert log == ["cleanup begins"]
    assert 2.0 <= anyio.current_time() - t0 < 3.0
    assert [e.kind for e in sup.events][-2:] == ["killed", "stopped"]


async def test_hard_stop_before_the_cleanup_begins_skips_it() -> None:
    """A hard stop that lands between the actor's cancellation and its ``finally`` reaching
    ``ctx.cleanup()`` (a quick second Ctrl-C) must not let that cleanup hold the stop."""
    from rtrun._actor import ActorContext

    ctx = ActorContext(id="motor", params=None)
    log: list[str] = []
    in_finally = anyio.Event()
    hard_stopped = anyio.Event()

    async def stubborn(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            in_finally.set()
            with anyio.CancelScope(shield=True):
                await hard_stopped.wait()  # the hard stop happens right here
            with ctx.cleanup(math.inf):
                log.append("cleanup begins")
                await anyio.sleep(100)
                log.append("never")  # pragma: no cover

    spec = ChildSpec(
        id="motor", start=stubborn, shutdown_timeout=60.0, on_hard_stop=ctx._hard_cancel_cleanups
    )
    sup = Supervisor("root", [spec])
    t0 = anyio.current_time()
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        tg.cancel_scope.cancel()  # graceful stop: the child is cancelled, enters its finally
        with anyio.CancelScope(shield=True):
            await in_finally.wait()
            sup.hard_stop()  # a second Ctrl-C
            hard_stopped.set()
    assert log == ["cleanup begins"]  # entered, and cancelled at once
    assert anyio.current_time() - t0 < 1.0
    ctx._begin_run()  # a restart: cleanups work again
    with ctx.cleanup(1.0) as scope:
        assert not scope.cancel_called


async def test_start_timeout() -> None:
    async def never_ready(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        await anyio.sleep_forever()

    sup = Supervisor("root", [ChildSpec(id="cam", start=never_ready, start_timeout=3.0)])
    with pytest.raises(TimeoutError, match="not ready within start_timeout=3 s"):
        await sup.run()


async def test_supervisor_returns_when_no_child_is_left() -> None:
    s = Script()
    sup = Supervisor("root", [s.child("job", restart="transient")])
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        s.finish["job"].set()
    assert s.log == ["start job", "stop job"]


async def test_backoff_delays_restarts() -> None:
    s = Script()
    backoff = Backoff(initial=1.0, maximum=4.0, multiplier=2.0, jitter=0.0)
    sup = Supervisor("root", [s.child("a")], SupervisorFlags(intensity=10, period=100, backoff=backoff))

    async def body() -> None:
        times = []
        for _ in range(4):
            t0 = anyio.current_time()
            s.crash["a"].set()
            await settle()
            while s.log.count("start a") < len(times) + 2:
                await anyio.sleep(0.01)
            times.append(round(anyio.current_time() - t0, 1))
        assert times == [1.0, 2.0, 4.0, 4.0]

    await run_sup(sup, body)


def test_restart_window_is_otp_add_restart() -> None:
    window = RestartWindow(intensity=2, period=5.0)
    assert window.add(0.0) and window.add(1.0)
    assert not window.add(2.0)  # third within 5 s
    window = RestartWindow(intensity=2, period=5.0)
    assert window.add(0.0) and window.add(1.0) and window.add(5.5)  # 0.0 left the window
    assert RestartWindow(intensity=0, period=1.0).add(0.0) is False


def test_backoff_validation() -> None:
    with pytest.raises(ValueError, match="multiplier >= 1"):
        Backoff(multiplier=0.5)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_smoke() -> None:
    s = Script()
    sup = Supervisor("root", [s.child("a"), s.child("b")], SupervisorFlags(strategy="rest_for_one"))

    async def body() -> None:
        s.crash["a"].set()
        with anyio.fail_after(5):
            while s.log.count("start b") < 2:
                await anyio.sleep(0.005)

    await run_sup(sup, body)
    assert s.log[-2:] == ["stop b", "stop a"]


@pytest.mark.parametrize("anyio_backend", ["asyncio", VIRTUAL[0].values[0]])
async def test_cancelling_a_supervisor_while_a_child_starts_does_not_deadlock() -> None:
    """Regression: with TaskGroup.start, cancelling the caller waited forever for a shielded child."""
    log: list[str] = []

    async def slow_start(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            await anyio.sleep(1.0)
            task_status.started()
            await anyio.sleep_forever()
        finally:
            log.append("child stopped")

    sup = Supervisor("root", [ChildSpec(id="slow", start=slow_start)])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await anyio.sleep(0.5)
            tg.cancel_scope.cancel()
    assert log == ["child stopped"]
