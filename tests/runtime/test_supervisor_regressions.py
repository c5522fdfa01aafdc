"""Regressions: supervision defects that killed whole graphs, each checked against OTP ``supervisor.erl``.

1. A child that exits while its supervisor is restarting the group (or in the same event-loop
   tick as the child that triggered the restart) is consumed by the group restart, as OTP's
   ``terminate_children`` -> ``shutdown/1`` -> ``unlink_flush`` does: one restart, not an
   ``ActorStateError`` out of ``open_graph``.
2. An actor brought back after it terminated (a transient child restarted by its group, a
   temporary child restarted with its nested supervisor) has working outputs.
3. A transient nested supervisor that escalates exited with reason ``shutdown``: its parent does
   not restart it and counts no restart (a permanent one is still restarted).

Plus the two ordering rules the fix for 1 relies on: pending exits are handled in the order they
happened (OTP mailbox order), and a failed restart is retried after them (``try_again_restart``).

Every test runs on trio with virtual time and on asyncio (real time, shorter time unit).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus
from rtrun import ActorSpec, EscalationError, GraphSpec, InputSpec, SupervisorSpec, open_graph
from rtrun._actor import Actor, ActorContext
from rtrun._ports import Input, Output
from rtrun._supervisor import ChildSpec, Supervisor, SupervisorFlags
from rtrun.testing import Count, CounterSource, Crasher


class Boom(Exception):
    """An injected crash."""


@pytest.fixture
def unit(anyio_backend: tuple[str, dict[str, object]]) -> float:
    """Seconds per scenario time step: 1 s of virtual time on trio, 200 ms of real time on asyncio
    (wide enough that a loaded 2-core CI machine keeps the half-unit rounding of :meth:`Kids.now`)."""
    return 1.0 if anyio_backend[0] == "trio" else 0.2


# ---------------------------------------------------------------------------- supervisor level


class Kids:
    """Children that crash on demand and may take a while to stop; a timed log of their starts."""

    def __init__(self, unit: float) -> None:
        self.unit = unit
        self.t0 = anyio.current_time()
        self.log: list[tuple[str, float]] = []
        self.crash: dict[str, anyio.Event] = {}
        self.refuse: set[str] = set()  # children whose next start fails (once)

    def now(self) -> float:
        """Scenario time, to the nearest half unit (asyncio runs on real time)."""
        return round(2 * (anyio.current_time() - self.t0) / self.unit) / 2

    def starts(self, name: str) -> list[float]:
        return [t for what, t in self.log if what == f"start {name}"]

    def spec(self, name: str, *, stop_units: float = 0.0, **kw: Any) -> ChildSpec:
        async def start(*, task_status: TaskStatus[None]) -> None:
            self.log.append((f"start {name}", self.now()))
            if name in self.refuse:
                self.refuse.discard(name)
                raise Boom(f"{name} refuses to start")
            crash = self.crash[name] = anyio.Event()
            task_status.started()
            try:
                await crash.wait()
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(stop_units * self.unit)  # a slow, graceful stop
                raise
            raise Boom(name)

        return ChildSpec(id=name, start=start, **kw)

    async def crash_at(self, name: str, units: float) -> None:
        await anyio.sleep_until(self.t0 + units * self.unit)  # never a negative sleep when late
        self.crash[name].set()


async def test_child_exiting_while_group_restarts_is_consumed(unit: float) -> None:
    """Defect 1: a crashes at 1, b crashes at 2 while c (2 to stop) is still stopping -> one restart at 3."""
    kids = Kids(unit)
    sup = Supervisor(
        "root",
        [kids.spec("a"), kids.spec("b"), kids.spec("c", stop_units=2.0)],
        SupervisorFlags(strategy="one_for_all", intensity=1, period=60 * unit),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        tg.start_soon(kids.crash_at, "a", 1.0)
        tg.start_soon(kids.crash_at, "b", 2.0)
        await anyio.sleep(4.0 * unit)
        assert {name: kids.starts(name) for name in "abc"} == {n: [0.0, 3.0] for n in "abc"}
        assert [c.state for c in sup.tree().children] == ["running"] * 3
        assert [c.restarts for c in sup.tree().children] == [1, 1, 1]
        tg.cancel_scope.cancel()
    assert sup.escalations == 0
    b_exits = [e.reason for e in sup.events if e.child == "b" and e.kind == "exited"]
    assert b_exits == ["Boom('b')"]  # reported (OTP shutdown_error), not counted as a restart


@pytest.mark.parametrize(
    ("strategy", "crashing", "restarted"),
    [("one_for_all", "ab", "abc"), ("rest_for_one", "bc", "bc"), ("rest_for_one", "ac", "abc")],
)
async def test_two_children_crashing_in_one_tick_restart_the_group_once(
    unit: float, strategy: str, crashing: str, restarted: str
) -> None:
    """Defect 1, same tick: the second exit is flushed by the first one's group restart."""
    kids = Kids(unit)
    sup = Supervisor(
        "root",
        [kids.spec(n) for n in "abc"],
        SupervisorFlags(strategy=strategy, intensity=1, period=60 * unit),  # type: ignore[arg-type]
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await anyio.sleep(unit)
        for name in crashing:
            kids.crash[name].set()  # same tick: neither child ran yet
        await anyio.sleep(unit)
        assert {c.id: c.restarts for c in sup.tree().children} == {n: int(n in restarted) for n in "abc"}
        assert [c.state for c in sup.tree().children] == ["running"] * 3
        tg.cancel_scope.cancel()
    assert sup.escalations == 0


async def test_exits_during_a_restart_are_handled_in_the_order_they_happened(unit: float) -> None:
    """OTP mailbox order: rest_for_one a, b, c, d (d takes 2 to stop); c crashes at 1, then b at
    1.5 and a at 2 while d stops. b's restart comes before a's: three restarts, at 3, 5 and 7."""
    kids = Kids(unit)
    sup = Supervisor(
        "root",
        [kids.spec("a"), kids.spec("b"), kids.spec("c"), kids.spec("d", stop_units=2.0)],
        SupervisorFlags(strategy="rest_for_one", intensity=5, period=60 * unit),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        for name, at in (("c", 1.0), ("b", 1.5), ("a", 2.0)):
            tg.start_soon(kids.crash_at, name, at)
        await anyio.sleep(8.0 * unit)
        assert {n: kids.starts(n) for n in "abcd"} == {
            "a": [0.0, 7.0],
            "b": [0.0, 5.0, 7.0],
            "c": [0.0, 3.0, 5.0, 7.0],
            "d": [0.0, 3.0, 5.0, 7.0],
        }
        tg.cancel_scope.cancel()
    assert sup.escalations == 0


async def test_a_failed_restart_is_retried_after_the_exits_already_pending(unit: float) -> None:
    """OTP ``try_again_restart``: rest_for_one a, b, c (c takes 2 to stop); b crashes at 1, a at 2
    while c stops; b refuses its restart at 3. a's queued exit comes first and restarts all at 3,
    which also restarts b: the retry is dropped. Two restarts, not three."""
    kids = Kids(unit)
    sup = Supervisor(
        "root",
        [kids.spec("a"), kids.spec("b"), kids.spec("c", stop_units=2.0)],
        SupervisorFlags(strategy="rest_for_one", intensity=5, period=60 * unit),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        kids.refuse.add("b")
        for name, at in (("b", 1.0), ("a", 2.0)):
            tg.start_soon(kids.crash_at, name, at)
        await anyio.sleep(6.0 * unit)
        assert {n: kids.starts(n) for n in "abc"} == {"a": [0.0, 3.0], "b": [0.0, 3.0, 3.0], "c": [0.0, 3.0]}
        assert [c.restarts for c in sup.tree().children] == [1, 2, 2]
        tg.cancel_scope.cancel()
    assert [e.kind for e in sup.events].count("start_failed") == 1


async def test_transient_nested_supervisor_that_escalates_is_not_restarted(unit: float) -> None:
    """Defect 3: OTP exit reason ``shutdown``; a transient child is not restarted and no restart is counted."""
    kids = Kids(unit)
    inner = Supervisor("inner", [kids.spec("leaf")], SupervisorFlags(intensity=0))
    outer = Supervisor(
        "outer",
        [kids.spec("sibling"), inner.child_spec(restart="transient")],
        SupervisorFlags(strategy="one_for_all", intensity=0),  # any restart would escalate
    )
    async with anyio.create_task_group() as tg:
        await tg.start(outer.run)
        await kids.crash_at("leaf", 1.0)
        await anyio.sleep(unit)
        nested = outer.tree().children[1]
        assert (nested.state, nested.restarts, nested.last_exit) == ("stopped", 0, "shutdown")
        assert outer.tree().children[0].state == "running"
        assert kids.starts("sibling") == [0.0] and kids.starts("leaf") == [0.0]
        tg.cancel_scope.cancel()
    assert (inner.escalations, outer.escalations) == (1, 0)
    assert [e.kind for e in outer.events if e.child == "inner"][-2:] == ["exited", "terminated"]


async def test_permanent_nested_supervisor_that_escalates_is_restarted_with_its_group(unit: float) -> None:
    """Defect 3's counterpart: a permanent child restarts whatever its exit reason (OTP ``do_restart``)."""
    kids = Kids(unit)
    inner = Supervisor("inner", [kids.spec("leaf")], SupervisorFlags(intensity=0))
    outer = Supervisor(
        "outer",
        [kids.spec("sibling"), inner.child_spec()],
        SupervisorFlags(strategy="one_for_all", intensity=1, period=60 * unit),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(outer.run)
        await kids.crash_at("leaf", 1.0)
        await anyio.sleep(unit)
        assert kids.starts("sibling") == [0.0, 1.0] and kids.starts("leaf") == [0.0, 1.0]
        assert [c.restarts for c in outer.tree().children] == [1, 1]
        tg.cancel_scope.cancel()
    assert (inner.escalations, outer.escalations) == (1, 0)


# ---------------------------------------------------------------------------- graph level

GOT: list[object] = []
"""What :class:`Reader` actors received (values, and ``"eos"`` at each end-of-stream)."""
SHOTS: dict[str, int] = {}
"""Starts of each :class:`OneShot` actor."""


@pytest.fixture(autouse=True)
def _clear_journals() -> None:
    GOT.clear()
    SHOTS.clear()


class OneShot(Actor):
    """Sends its start count once, as soon as it is ready, then returns normally."""

    outputs = {"out": Output(Count, "one value per start")}

    async def run(self, ctx: ActorContext[Any], *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        SHOTS[ctx.id] = SHOTS.get(ctx.id, 0) + 1
        await ctx.output("out").send(Count(value=SHOTS[ctx.id]))


class Reader(Actor):
    """Records every value of ``in`` in :data:`GOT`, then ``"eos"``, then stays running."""

    inputs = {"in": Input(Count, doc="values")}

    async def run(self, ctx: ActorContext[Any], *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        async for item in ctx.input("in"):
            GOT.append(item.value)
        GOT.append("eos")
        await anyio.sleep_forever()


def reads(source: str) -> dict[str, InputSpec]:
    return {"in": InputSpec(name="in", source=source, capacity=1, policy="block")}


def restarts(graph: Any) -> dict[str, int]:
    return {a.id: a.restarts for a in graph.status().actors}


async def test_graph_survives_a_child_exiting_while_its_group_restarts(unit: float) -> None:
    """Defect 1 as reported: ``ActorStateError: illegal transition running -> restarting`` out of open_graph."""
    spec = GraphSpec(
        name="stopping",
        root=SupervisorSpec(id="root", parent=None, strategy="one_for_all", intensity=1, period_s=60 * unit),
        actors=(
            ActorSpec(id="a", kind=Crasher, params={"crash_after_s": 1.0 * unit}),
            ActorSpec(id="b", kind=Crasher, params={"crash_after_s": 2.0 * unit}),
            ActorSpec(id="c", kind=Crasher, params={"ignore_cancel_s": 2.0 * unit}),
        ),
    )
    async with open_graph(spec) as graph:
        await anyio.sleep(3.5 * unit)  # restarted once at 3; a crashes again only at 4
        assert [a.state for a in graph.status().actors] == ["running"] * 3
        assert restarts(graph) == {"a": 1, "b": 1, "c": 1}


@pytest.mark.parametrize("order", ["axk", "akx"], ids=["producer-first", "consumer-first"])
async def test_transient_actor_restarted_by_its_group_can_send_again(unit: float, order: str) -> None:
    """Defect 2: x ended normally (outputs closed), then a's crash restarts a, x, k; x's send works.

    Consumer first: k restarts before x and must wait for x, not see x's old end-of-stream.
    """
    actors = {
        "a": ActorSpec(id="a", kind=Crasher, params={"crash_after_s": 2.0 * unit}),
        "x": ActorSpec(id="x", kind=OneShot, restart="transient"),
        "k": ActorSpec(id="k", kind=Reader, inputs=reads("x/out")),
    }
    spec = GraphSpec(
        name="reopen",
        root=SupervisorSpec(id="root", parent=None, strategy="one_for_all", intensity=1, period_s=60 * unit),
        actors=tuple(actors[name] for name in order),
    )
    async with open_graph(spec) as graph:
        await anyio.sleep(unit)
        assert GOT == [1, "eos"]  # x ended for now: end-of-stream flowed
        await anyio.sleep(2.0 * unit)
        assert GOT == [1, "eos", 2, "eos"]
        assert restarts(graph) == {"a": 1, "x": 1, "k": 1}
        assert next(a for a in graph.status().actors if a.id == "x").last_exit == "normal"


async def test_temporary_actor_restarted_with_its_supervisor_can_send_again(unit: float) -> None:
    """Defect 2, temporary: a nested supervisor restarted by its parent starts every child afresh."""
    spec = GraphSpec(
        name="reopen_tmp",
        supervisors=(SupervisorSpec(id="grp", intensity=0),),
        actors=(
            ActorSpec(id="x", kind=OneShot, restart="temporary", supervisor="grp"),
            ActorSpec(id="k", kind=Reader, supervisor="grp", inputs=reads("x/out")),
            ActorSpec(id="c", kind=Crasher, params={"crash_after_s": 2.0 * unit}, supervisor="grp"),
        ),
    )
    async with open_graph(spec) as graph:
        await anyio.sleep(3.0 * unit)
        assert GOT == [1, "eos", 2, "eos"]
        assert SHOTS == {"x": 2}
        assert [e.reason for e in graph.status().events if e.child == "x" and e.kind == "exited"] == [
            "normal",
            "normal",
        ]


async def test_escalated_transient_group_ends_its_outputs(unit: float) -> None:
    """Defect 3 in a graph: the group is gone for good, so its consumers see end-of-stream."""
    spec = GraphSpec(
        name="gone",
        root=SupervisorSpec(id="root", parent=None, intensity=0),
        supervisors=(SupervisorSpec(id="grp", intensity=0, restart="transient"),),
        actors=(
            ActorSpec(id="k", kind=Reader, inputs=reads("src/out")),
            ActorSpec(id="src", kind=CounterSource, params={"rate_hz": 1 / unit}, supervisor="grp"),
            ActorSpec(id="c", kind=Crasher, params={"crash_after_s": 2.5 * unit}, supervisor="grp"),
        ),
    )
    async with open_graph(spec) as graph:
        await anyio.sleep(4.0 * unit)
        assert GOT[-1] == "eos" and 1 <= len(GOT) - 1 <= 4
        assert graph.status().state == "running"
        assert restarts(graph) == {"k": 0, "src": 0, "c": 0}


async def test_escalation_of_a_graph_still_raises(unit: float) -> None:
    """Guard: the root's own escalation still stops the graph (permanent children, intensity 0)."""
    spec = GraphSpec(
        name="fatal",
        root=SupervisorSpec(id="root", parent=None, intensity=0),
        actors=(ActorSpec(id="c", kind=Crasher, params={"crash_after_s": unit}),),
    )
    with pytest.raises(EscalationError, match="supervisor 'root' gave up"):
        async with open_graph(spec):
            await anyio.sleep(3.0 * unit)
