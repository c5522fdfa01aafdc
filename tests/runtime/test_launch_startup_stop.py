"""``open_graph`` cancelled during start-up (issue 16), on virtual time.

The start is aborted where it stands: the actor that is starting is cancelled (its shielded
cleanup runs), no later actor starts, and the actors already started stop in reverse order.
"""

from __future__ import annotations

import anyio
import pytest
from rtrun import ActorSpec, GraphSpec, InputSpec, open_graph
from rtrun._launch import Graph, compile_source
from rtrun.testing import JOURNAL, Collector, CounterSource, Relay, SlowStart

from ..conftest import VIRTUAL

pytestmark = pytest.mark.parametrize("anyio_backend", VIRTUAL)

SPEC = GraphSpec(
    name="startup",
    actors=(
        ActorSpec(id="src", kind=CounterSource),
        ActorSpec(id="relay", kind=Relay, inputs={"in": InputSpec(name="in", source="src/out")}),
        ActorSpec(id="slow", kind=SlowStart, params={"start_delay_s": 100.0, "cleanup_s": 0.5}),
        ActorSpec(id="later", kind=Collector, inputs={"in": InputSpec(name="in", source="relay/out")}),
    ),
)
STOPPED_IN_REVERSE = [
    "start src",
    "start relay",
    "start slow",
    "cleanup slow",
    "stop slow",
    "stop relay",
    "stop src",
]


async def test_cancelling_open_graph_during_start_stops_started_actors_in_reverse() -> None:
    JOURNAL.clear()
    t0 = anyio.current_time()
    with anyio.move_on_after(1.0) as scope:
        async with open_graph(SPEC):
            pytest.fail("the body must not run")  # pragma: no cover
    assert scope.cancelled_caught
    assert list(JOURNAL) == STOPPED_IN_REVERSE
    assert anyio.current_time() - t0 == pytest.approx(1.5)  # the cleanup ran, nothing waited for the start


async def test_hard_stop_after_cancelling_the_start_cuts_the_cleanup_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What ``rtrun run`` does on a second Ctrl-C during start-up (it holds the handle early)."""
    JOURNAL.clear()
    spec = GraphSpec(
        name="stubborn",
        actors=(
            ActorSpec(id="src", kind=CounterSource),
            ActorSpec(
                id="slow",
                kind=SlowStart,
                shutdown_timeout_s=1000.0,
                params={"start_delay_s": 100.0, "cleanup_s": 500.0, "cleanup_timeout_s": 600.0},
            ),
            ActorSpec(id="later", kind=Collector),
        ),
    )
    graph = Graph(compile_source(spec), None)
    t0 = anyio.current_time()
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as startup:
            tg.start_soon(_stop_then_force, graph, startup)
            async with graph._running():
                pytest.fail("the body must not run")  # pragma: no cover
    assert anyio.current_time() - t0 == pytest.approx(2.0)
    assert list(JOURNAL)[:3] == ["start src", "start slow", "cleanup slow"]  # a hard stop cancels
    assert sorted(list(JOURNAL)[3:]) == ["stop slow", "stop src"]  # every actor at once
    assert "cleanup cut short by the hard stop: safe state NOT confirmed" in caplog.text
    assert graph.status().state == "stopped"


async def _stop_then_force(graph: Graph, startup: anyio.CancelScope) -> None:
    await anyio.sleep(1.0)
    startup.cancel()  # first Ctrl-C
    await anyio.sleep(1.0)
    graph.hard_stop()  # second Ctrl-C
