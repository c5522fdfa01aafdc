"""The launcher and the embedding API."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import anyio
import pytest
import rtrun
from rtrun import ActorSpec, EscalationError, GraphSpec, InputSpec, SupervisorSpec, open_graph
from rtrun.testing import JOURNAL, Collector, Count, CounterSource, Crasher, Relay

from ..conftest import VIRTUAL

CHAIN = GraphSpec(
    name="chain",
    actors=(
        ActorSpec(id="src", kind=CounterSource, params={"rate_hz": 100.0}, restart="transient"),
        ActorSpec(
            id="relay",
            kind=Relay,
            params={"add": 1000},
            inputs={"in": InputSpec(name="in", source="src/out", capacity=8, policy="block")},
        ),
        ActorSpec(
            id="sink",
            kind=Collector,
            inputs={"in": InputSpec(name="in", source="relay/out", capacity=8, policy="block")},
        ),
    ),
)


async def wait_for(predicate, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


def actor(graph: rtrun.Graph, actor_id: str) -> rtrun.ActorStatus:
    return next(a for a in graph.status().actors if a.id == actor_id)


async def test_python_spec_runs_in_order_and_stops_in_reverse() -> None:
    JOURNAL.clear()
    async with open_graph(CHAIN) as graph:
        assert [a.state for a in graph.status().actors] == ["running"] * 3
        await wait_for(lambda: actor(graph, "sink").status.get("received", 0) >= 5)
        values = actor(graph, "sink").status["values"]
        assert values[:5] == [1000, 1001, 1002, 1003, 1004]
    assert list(JOURNAL) == ["start src", "start relay", "start sink", "stop sink", "stop relay", "stop src"]
    assert graph.status().state == "stopped"


async def test_end_of_stream_flows_and_graph_ends_by_itself() -> None:
    spec = GraphSpec(
        name="finite",
        actors=(
            ActorSpec(
                id="src", kind=CounterSource, params={"rate_hz": 50.0, "count": 5}, restart="transient"
            ),
            ActorSpec(
                id="relay",
                kind=Relay,
                restart="transient",
                inputs={"in": InputSpec(name="in", source="src/out", policy="block", capacity=2)},
            ),
            ActorSpec(
                id="sink",
                kind=Collector,
                restart="transient",
                inputs={"in": InputSpec(name="in", source="relay/out", policy="block", capacity=2)},
            ),
        ),
    )
    async with open_graph(spec) as graph:
        with anyio.fail_after(5):
            await graph.wait()
        sink = actor(graph, "sink")
        assert sink.status["values"] == [0, 1, 2, 3, 4] and sink.status["ended"] is True


async def test_sender_and_receiver_handles() -> None:
    spec = GraphSpec(
        name="io",
        actors=(
            ActorSpec(
                id="relay",
                kind=Relay,
                params={"add": 1},
                inputs={"in": InputSpec(name="in", source=None, external=True, capacity=4, policy="block")},
            ),
        ),
    )
    async with open_graph(spec, kinds=None) as graph:
        tap = graph.receiver("relay/out")
        async with graph.sender("relay/in") as send:
            for i in range(3):
                await send.send(Count(value=i))
            assert [(await tap.receive()).value for _ in range(3)] == [1, 2, 3]
        with pytest.raises(KeyError, match="has no input 'nope'"):
            graph.sender("relay/nope")


async def test_status_has_channel_statistics_and_tree() -> None:
    async with open_graph(CHAIN) as graph:
        await wait_for(lambda: actor(graph, "sink").status.get("received", 0) >= 3)
        status = graph.status()
        relay = actor(graph, "relay")
        assert relay.inputs["in"].policy == "block" and relay.inputs["in"].received >= 3
        assert relay.outputs["out"].sent >= 3
        assert [c.id for c in status.tree.children] == ["src", "relay", "sink"]
        assert status.messages >= 6 and status.restarts == 0


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_escalation_cancels_the_body_and_raises() -> None:
    spec = GraphSpec(
        name="crashy",
        root=SupervisorSpec(id="root", parent=None, intensity=2, period_s=10.0),
        actors=(ActorSpec(id="c", kind=Crasher, params={"crash_after_s": 1.0}),),
    )
    body_cancelled = False
    with pytest.raises(EscalationError, match="supervisor 'root' gave up"):
        async with open_graph(spec) as graph:
            try:
                await anyio.sleep(100)
            except anyio.get_cancelled_exc_class():
                body_cancelled = True
                raise
    assert body_cancelled
    assert graph.status().state == "failed" and actor(graph, "c").restarts == 2


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_nested_supervisor_rest_for_one() -> None:
    JOURNAL.clear()
    spec = GraphSpec(
        name="nested",
        supervisors=(SupervisorSpec(id="pipeline", strategy="rest_for_one", intensity=5, period_s=60.0),),
        actors=(
            ActorSpec(id="keep", kind=Collector),
            ActorSpec(id="first", kind=Crasher, params={"crash_after_s": 3.0}, supervisor="pipeline"),
            ActorSpec(id="second", kind=Collector, supervisor="pipeline"),
        ),
    )
    async with open_graph(spec) as graph:
        await anyio.sleep(3.5)
        assert [a.restarts for a in graph.status().actors] == [0, 1, 1]
    assert JOURNAL.count("start keep") == 1 and JOURNAL.count("start second") == 2


async def test_start_failure_surfaces_from_open_graph() -> None:
    spec = GraphSpec(name="bad", actors=(ActorSpec(id="c", kind=Crasher, params={"fail_start": True}),))
    with pytest.raises(RuntimeError, match="failing before ready"):
        async with open_graph(spec):
            pytest.fail("the body must not run")  # pragma: no cover


def test_embedding_in_a_plain_asyncio_app_keeps_its_timer_rate(tmp_path: Path) -> None:
    """A foreign asyncio app runs a graph beside its own 100 Hz timer, which keeps its rate."""
    graph_file = tmp_path / "g.toml"
    graph_file.write_text(
        '[graph]\nname = "embedded"\n'
        '[[actor]]\nid = "src"\nkind = "rtrun.testing:CounterSource"\nparams = { rate_hz = 200.0 }\n'
        '[[actor]]\nid = "sink"\nkind = "rtrun.testing:Collector"\ninputs.in = "src/out"\n'
    )

    async def app() -> tuple[list[float], int]:
        loop = asyncio.get_running_loop()
        gaps: list[float] = []

        async def own_timer() -> None:
            last = loop.time()
            for _ in range(100):
                await asyncio.sleep(0.01)
                now = loop.time()
                gaps.append(now - last)
                last = now

        async with rtrun.open_graph(graph_file) as graph:
            await asyncio.gather(own_timer(), asyncio.sleep(0.2))
            received = next(a for a in graph.status().actors if a.id == "sink").status["received"]
        return gaps, received

    gaps, received = asyncio.run(app())
    assert received >= 100  # the graph did its work (200 Hz for >= 1 s)
    assert 0.009 < statistics.median(gaps) < 0.02  # the app's own timer kept its 100 Hz rate
