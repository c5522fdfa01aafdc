"""The launcher: run a validated graph inside any anyio/asyncio application.

Theory of operation
-------------------
``open_graph(source)`` validates the graph, then builds, for the hosts this process runs:

1. one channel per actor input (capacity/policy from the graph); the actor's context gets its
   receive port;
2. one :class:`OutputPort` per actor output, fanning out to a clone of the send port of every
   input it feeds (the launcher then closes its template send ports, so end-of-stream flows
   once every producer is gone). An input left unconnected keeps the launcher's send port open
   until the graph stops, so ``graph.sender("actor/input")`` can feed it and the actor simply
   waits;
3. one :class:`ActorContext` per actor (reused across restarts) and the supervision tree:
   the root supervisor from ``[graph]``, nested ``[[supervisor]]`` groups, actors as children
   in file order; each child start instantiates a fresh actor object.

It starts the root supervisor with ``TaskGroup.start`` (so every actor reported readiness in
order before the ``async with`` body runs), yields a :class:`Graph` handle, and on exit cancels
the root, which stops actors in reverse order with their shutdown timeouts. Cancelled during
start-up (``rtrun run`` holds the handle from the start, :meth:`Graph._running`, so a first
Ctrl-C cancels the start and a second one hard-stops it), no further actor starts, the starting
one is cancelled and the started ones stop in reverse order. If the root escalates (or an actor
raises ``ConfigurationError``) while the body runs, the body is cancelled and the error is raised
out of ``open_graph``. An actor that terminates (its supervisor reports ``terminated``: a
``temporary`` actor that ended, a ``transient`` one after a normal exit, or every actor of a
nested supervisor that ended so, e.g. a ``transient`` group that escalated) has its outputs
closed, so downstream inputs see end-of-stream. Outputs follow the actor's lifetime in its
supervisor, not its first exit: they reopen (each closed branch is replaced by a new send port
into the same input) when the supervisor decides to restart the actor or the nested supervisor
holding it (the ``restarting`` event, before any child of the group starts, so a consumer
restarted ahead of its producer waits instead of seeing a stale end-of-stream) and, in any
case, when the actor starts. A group restart may bring a terminated actor back (OTP restarts
a ``transient`` child that ended normally with its ``one_for_all``/``rest_for_one`` group, and
a restarted nested supervisor starts all its children, ``temporary`` ones included). A
consumer that saw end-of-stream then receives again from the new incarnation, across hosts too
(each Zenoh sender has an epoch of its own, which the remote receiver adopts).

Everything a dashboard needs — actor states, restart counts, status fields, channel
statistics, supervision events — is reachable from :meth:`Graph.status`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, final

import anyio
from anyio.abc import TaskStatus

from . import abc
from ._actor import Actor, ActorContext
from ._channel import ChannelStatistics, ReceivePort, SendPort, open_channel
from ._errors import RtrunError
from ._graph import GraphSpec, InputSpec, SupervisorSpec, load_graph
from ._placement import Transport
from ._ports import OutputPort, OutputStatistics
from ._realtime import RealtimeReport, current_report
from ._supervisor import ChildSpec, ChildStatus, Supervisor, SupervisorEvent, SupervisorFlags
from ._validate import CompiledActor, CompiledGraph, compile_graph

__all__ = ["ActorStatus", "Graph", "GraphStatus", "open_graph"]

log = logging.getLogger("rtrun.launch")

TAP_CAPACITY = 16
"""Default buffer of a ``graph.receiver()`` tap (drop_oldest: a slow tap never slows the graph)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ActorStatus:
    """One actor as seen by ``rtrun ps`` / dashboards."""

    id: str
    """Actor id."""
    kind: str
    """Kind name."""
    host: str
    """Placement."""
    state: str
    """Lifecycle state."""
    restarts: int
    """Restart count."""
    last_exit: str | None
    """Reason of the last exit."""
    status: Mapping[str, Any]
    """Fields the actor published with ``ctx.set_status``."""
    inputs: Mapping[str, ChannelStatistics]
    """Statistics of each input channel."""
    outputs: Mapping[str, OutputStatistics]
    """Statistics of each output port."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class GraphStatus:
    """A snapshot of a running graph."""

    name: str
    """Graph name."""
    uptime_s: float
    """Seconds since the graph started."""
    state: str
    """``starting``, ``running``, ``stopped`` or ``failed``."""
    actors: tuple[ActorStatus, ...]
    """Every local actor."""
    tree: ChildStatus
    """Supervision tree."""
    events: tuple[SupervisorEvent, ...]
    """Recent supervision events, oldest first."""
    realtime: RealtimeReport | None = None
    """Scheduling that took effect in this process (``rtrun run`` applies the graph's realtime
    table); None when rtrun applied none (a graph embedded with ``open_graph``)."""

    @property
    def restarts(self) -> int:
        """Total restarts over every actor."""
        return sum(a.restarts for a in self.actors)

    @property
    def messages(self) -> int:
        """Total messages sent on every output."""
        return sum(o.sent for a in self.actors for o in a.outputs.values())

    def _drops(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for a in self.actors:
            for counters in [s.dropped for s in a.inputs.values()] + [o.dropped for o in a.outputs.values()]:
                for reason, n in counters.items():
                    totals[reason] = totals.get(reason, 0) + n
        return totals

    @property
    def dropped(self) -> int:
        """Messages lost: overflow, closed receivers, transport losses (not ``superseded``/``unconnected``)."""
        return sum(n for r, n in self._drops().items() if r not in ("superseded", "unconnected"))

    @property
    def superseded(self) -> int:
        """Values replaced unread in ``latest`` mailboxes (by design: the consumer only wants the newest)."""
        return self._drops().get("superseded", 0)

    @property
    def unconnected(self) -> int:
        """Messages sent on outputs that feed nothing (by design, e.g. an unused camera)."""
        return sum(o.dropped.get("unconnected", 0) for a in self.actors for o in a.outputs.values())


def _kind_name(actor: CompiledActor) -> str:
    kind = actor.spec.kind
    return kind if isinstance(kind, str) else f"{kind.__module__}:{kind.__qualname__}"


@final
class Graph:
    """Handle of a running graph (obtained from :func:`open_graph`)."""

    def __init__(self, compiled: CompiledGraph, hosts: frozenset[str] | None) -> None:
        self.compiled = compiled
        """The validated graph."""
        self.name = compiled.spec.name
        """Graph name."""
        self._local = {i: a for i, a in compiled.actors.items() if hosts is None or a.host in hosts}
        self.hosts = (
            frozenset(hosts) if hosts is not None else frozenset(a.host for a in compiled.actors.values())
        )
        """The hosts this process runs."""
        self._transport = Transport(compiled, self.hosts)
        self._contexts: dict[str, ActorContext[Any]] = {}
        self._input_senders: dict[str, SendPort[Any]] = {}
        self._held_senders: list[SendPort[Any]] = []
        self._taps: list[ReceivePort[Any]] = []
        self._events: list[SupervisorEvent] = []
        self._actor_children: set[tuple[str, str]] = set()  # (supervisor, actor) of every actor child
        self._members: dict[tuple[str, str], tuple[str, ...]] = {}  # (supervisor, child) -> its actors
        self._root: Supervisor | None = None
        self._state = "starting"
        self._started_at = 0.0
        self._done = anyio.Event()
        self._cancel: anyio.CancelScope | None = None
        self.failure: BaseException | None = None
        """The exception that stopped the graph (escalation), if any."""

    # ---------------------------------------------------------------- building

    def _build(self) -> Supervisor:
        for actor in self._local.values():
            self._contexts[actor.spec.id] = self._make_context(actor)
        for edge in self.compiled.edges:
            if edge.source_actor in self._local and edge.target_actor in self._local:
                sender = self._input_senders[f"{edge.target_actor}/{edge.input.name}"].clone()
                target = self._contexts[edge.target_actor].input(edge.input.name)
                assert isinstance(target, ReceivePort)  # a local edge: an in-process channel
                output = self._contexts[edge.source_actor].output(edge.output)
                output._add_branch(sender, partial(_new_sender, target))
        for edge in self._transport.outgoing:
            output = self._contexts[edge.source_actor].output(edge.output)
            output._add_branch(self._transport.sender(edge), partial(self._transport.sender, edge))
        for key, sender in self._input_senders.items():
            actor_id, _, name = key.partition("/")
            connected = self._local[actor_id].spec.inputs.get(name)
            if connected is not None and connected.source is not None:
                sender.close()  # fed in-process by producer clones, or it is not in _input_senders  # producers hold clones; EOS once they are all closed
            else:
                self._held_senders.append(sender)
        return self._make_supervisor(self.compiled.spec.root)

    def _make_context(self, actor: CompiledActor) -> ActorContext[Any]:
        inputs: dict[str, abc.ReceivePort[Any]] = {}
        remote = {e.input.name: e for e in self._transport.incoming if e.target_actor == actor.spec.id}
        for name in actor.cls.inputs:
            if name in remote:
                inputs[name] = self._transport.receiver(remote[name])
                continue
            spec = actor.spec.inputs.get(name) or InputSpec(name=name, source=None)
            send, receive = open_channel(spec.capacity, spec.policy)  # type: ignore[arg-type]
            self._input_senders[f"{actor.spec.id}/{name}"] = send
            inputs[name] = receive
        outputs = {name: OutputPort[Any](name, []) for name in actor.cls.outputs}
        connected = frozenset(
            name for name, spec in actor.spec.inputs.items() if spec.source is not None or spec.external
        )
        return ActorContext(
            id=actor.spec.id, params=actor.params, inputs=inputs, outputs=outputs, connected=connected
        )

    def _make_supervisor(self, spec: SupervisorSpec) -> Supervisor:
        actors, subs = self.compiled.supervisor_children(spec.id)
        children = [self._actor_child(a) for a in actors if a.spec.id in self._local]
        for child in children:
            self._actor_children.add((spec.id, child.id))
            self._members[(spec.id, child.id)] = (child.id,)
        for sub in subs:
            if self._has_local_actors(sub.id):
                self._members[(spec.id, sub.id)] = self._local_actors_under(sub.id)
                nested = self._make_supervisor(sub)
                children.append(
                    nested.child_spec(restart=sub.restart, shutdown_timeout=sub.shutdown_timeout_s)  # type: ignore[arg-type]
                )
        flags = SupervisorFlags(
            strategy=spec.strategy,  # type: ignore[arg-type]
            intensity=spec.intensity,
            period=spec.period_s,
            backoff=spec.backoff,
        )
        return Supervisor(spec.id, children, flags, on_event=self._on_event)

    def _has_local_actors(self, supervisor_id: str) -> bool:
        actors, subs = self.compiled.supervisor_children(supervisor_id)
        return any(a.spec.id in self._local for a in actors) or any(
            self._has_local_actors(s.id) for s in subs
        )

    def _local_actors_under(self, supervisor_id: str) -> tuple[str, ...]:
        actors, subs = self.compiled.supervisor_children(supervisor_id)
        local = tuple(a.spec.id for a in actors if a.spec.id in self._local)
        return local + tuple(i for s in subs for i in self._local_actors_under(s.id))

    def _actor_child(self, actor: CompiledActor) -> ChildSpec:
        ctx = self._contexts[actor.spec.id]
        cls: type[Actor] = actor.cls

        async def start(*, task_status: TaskStatus[None]) -> None:
            ctx._begin_run()
            await cls().run(ctx, task_status=task_status)

        return ChildSpec(
            id=actor.spec.id,
            start=start,
            restart=actor.spec.restart,  # type: ignore[arg-type]
            shutdown_timeout=actor.spec.shutdown_timeout_s,
            start_timeout=actor.spec.start_timeout_s,
            on_hard_stop=ctx._hard_cancel_cleanups,
        )

    def _on_event(self, event: SupervisorEvent) -> None:
        self._events.append(event)
        del self._events[:-200]
        key = (event.supervisor, event.child or "")
        if event.kind == "restarting":  # before any child of the group starts: a consumer
            if key in self._actor_children:  # restarted ahead of its producer must not see EOS
                self._contexts[key[1]].restarts = event.restarts
            for actor_id in self._members.get(key, ()):
                self._contexts[actor_id]._reopen_outputs()
        elif event.kind == "terminated":  # an actor, or a nested supervisor with all its actors
            for actor_id in self._members.get(key, ()):
                for port in self._contexts[actor_id].outputs.values():
                    port.close()

    # ---------------------------------------------------------------- running

    async def _run(self, *, task_status: TaskStatus[None]) -> None:
        if self._transport.needed:
            await self._transport.open()
        self._root = root = self._build()
        self._started_at = anyio.current_time()
        try:
            await root.run(task_status=task_status)
        except RtrunError as exc:
            self.failure = exc
            self._state = "failed"
            if self._cancel is not None:
                self._cancel.cancel()
        finally:
            if self._state != "failed":
                self._state = "stopped"
            self._done.set()

    def _close_ports(self) -> None:
        for sender in self._held_senders:
            sender.close()
        for ctx in self._contexts.values():
            for port in ctx.outputs.values():
                port.close()
            for receive in ctx.inputs.values():
                receive.close()
        for tap in self._taps:
            tap.close()

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        """Start the graph, run the body, stop the graph (the body of :func:`open_graph`).

        Separate from :func:`open_graph` so that ``rtrun run`` holds the handle *during*
        start-up: a signal then cancels the start (an enclosing cancel scope) or hard-stops it.
        Cancelled during start-up, the actor that is starting is cancelled, no later actor
        starts, and the started ones stop in reverse order (the supervisor's shutdown).
        """
        error: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._cancel = tg.cancel_scope
                try:
                    await tg.start(self._run)
                    self._state = "running"
                    yield
                except Exception as exc:  # re-raised below, outside the task group
                    error = exc
                tg.cancel_scope.cancel()
        finally:
            await self._transport.aclose()
            self._close_ports()
        if error is not None:
            raise error
        if self.failure is not None:
            raise self.failure

    # ---------------------------------------------------------------- public API

    async def wait(self) -> None:
        """Wait until the graph stops by itself (every actor ended, or an escalation)."""
        await self._done.wait()

    def stop(self) -> None:
        """Request a graceful stop: actors stop in reverse start order with their shutdown timeouts."""
        if self._cancel is not None:
            self._cancel.cancel()

    def hard_stop(self) -> None:
        """Stop now: cancel every actor, including shielded cleanups (a second Ctrl-C)."""
        if self._root is not None:
            self._root.hard_stop()
        self.stop()

    def sender(self, path: str) -> SendPort[Any]:
        """A new send port into ``"actor/input"`` (fan-in beside the graph's sources). Close it when done."""
        actor_id, name = self._split(path, "input")
        ctx = self._contexts[actor_id]
        if name not in ctx.inputs:
            raise KeyError(f"actor {actor_id!r} has no input {name!r} (inputs: {sorted(ctx.inputs)})")
        held = self._input_senders.get(f"{actor_id}/{name}")
        if held is None:
            raise RtrunError(
                f"input {path!r} is fed over Zenoh by another host; inject messages on that host"
            )
        if held.closed:
            raise RtrunError(f"input {path!r} is fed by the graph and its producers are gone (end-of-stream)")
        return held.clone()

    def receiver(
        self, path: str, *, capacity: int = TAP_CAPACITY, policy: str = "drop_oldest"
    ) -> ReceivePort[Any]:
        """Tap ``"actor/output"``: a new receive port getting every message sent from now on."""
        actor_id, name = self._split(path, "output")
        ctx = self._contexts[actor_id]
        if name not in ctx.outputs:
            raise KeyError(f"actor {actor_id!r} has no output {name!r} (outputs: {sorted(ctx.outputs)})")
        send, receive = open_channel(capacity, policy)  # type: ignore[arg-type]
        ctx.output(name)._add_branch(send, partial(_new_sender, receive))
        self._taps.append(receive)
        return receive

    def context(self, actor_id: str) -> ActorContext[Any]:
        """The context of a local actor (params, ports, status)."""
        return self._contexts[actor_id]

    def _split(self, path: str, what: str) -> tuple[str, str]:
        actor_id, sep, name = path.partition("/")
        if not sep or actor_id not in self._contexts:
            raise KeyError(
                f"expected 'actor/{what}' naming a local actor, got {path!r} (actors: {sorted(self._contexts)})"
            )
        return actor_id, name

    def status(self) -> GraphStatus:
        """A snapshot of every local actor, channel and supervision event."""
        tree = (
            self._root.tree()
            if self._root
            else ChildStatus(id="root", state="stopped", restart="permanent", restarts=0, last_exit=None)
        )
        nodes = {n.id: n for n in _walk(tree)}
        actors = tuple(self._actor_status(a, nodes.get(a.spec.id)) for a in self._local.values())
        return GraphStatus(
            name=self.name,
            uptime_s=anyio.current_time() - self._started_at if self._started_at else 0.0,
            state=self._state,
            actors=actors,
            tree=tree,
            events=tuple(self._events),
            realtime=current_report(),
        )

    def _actor_status(self, actor: CompiledActor, node: ChildStatus | None) -> ActorStatus:
        ctx = self._contexts[actor.spec.id]
        return ActorStatus(
            id=actor.spec.id,
            kind=_kind_name(actor),
            host=actor.host,
            state=node.state if node else "stopped",
            restarts=node.restarts if node else ctx.restarts,
            last_exit=node.last_exit if node else None,
            status=ctx.status,
            inputs={name: port.statistics() for name, port in ctx.inputs.items()},
            outputs={name: port.statistics() for name, port in ctx.outputs.items()},
        )


def _new_sender(receive: ReceivePort[Any]) -> SendPort[Any]:
    """A new send port into ``receive``'s channel, even after end-of-stream (a producer came back).

    ``SendPort.clone()`` refuses once every sender closed, which is the anyio contract for user
    code; reopening an output after its actor restarts is the launcher's privilege.
    """
    return SendPort._create(receive._state)


def _walk(node: ChildStatus) -> list[ChildStatus]:
    out = [node]
    for child in node.children:
        out.extend(_walk(child))
    return out


def compile_source(
    source: str | Path | GraphSpec | CompiledGraph,
    *,
    kinds: Mapping[str, type[Actor]] | None = None,
    overrides: Sequence[tuple[str, str, Any]] = (),
) -> CompiledGraph:
    """Load (if a path) and validate a graph; raise GraphError with every problem."""
    if isinstance(source, CompiledGraph):
        return source
    spec = source if isinstance(source, GraphSpec) else load_graph(source)
    return compile_graph(spec, kinds=kinds, overrides=overrides)


@asynccontextmanager
async def open_graph(
    source: str | Path | GraphSpec | CompiledGraph,
    *,
    kinds: Mapping[str, type[Actor]] | None = None,
    overrides: Sequence[tuple[str, str, Any]] = (),
    hosts: Sequence[str] | None = None,
) -> AsyncIterator[Graph]:
    """Run a graph for the duration of the ``async with`` block.

    Args:
        source: a ``graph.toml`` path, a :class:`GraphSpec` built in Python, or a compiled graph.
        kinds: extra kinds by name (for embedding apps that define actors inline).
        overrides: ``(actor, param, value)`` triples (``rtrun run --set``).
        hosts: run only the actors placed on these hosts (default: every host).

    Cancelling the ``async with`` during start-up aborts the start where it stands: the actor
    that is starting is cancelled (its shielded cleanup runs, bounded by its shutdown timeout),
    no later actor starts, and the started ones stop in reverse order.

    Raises:
        GraphError: the graph is invalid (nothing was started).
        EscalationError: the root supervisor gave up (the body was cancelled, actors stopped).
        ConfigurationError: an actor raised it (not restarted; the graph stopped).
        Exception: an actor failed to start (already started actors were stopped).
    """
    graph = Graph(
        compile_source(source, kinds=kinds, overrides=overrides), frozenset(hosts) if hosts else None
    )
    async with graph._running():
        yield graph
