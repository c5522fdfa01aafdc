"""Placement: turn the edges that cross hosts into Zenoh channels (one session per process).

Theory of operation
-------------------
A host is a placement unit: one rtrun process. The launcher runs a set of *local* hosts
(``rtrun run`` without ``--host``: every host, so every edge stays in-process; ``--host robot``:
only the robot's actors). An edge whose two actors are local is an in-process channel. An edge
with exactly one local end becomes a Zenoh channel on the key
``@rtrun/<graph>/<source actor>/<output>/<target actor>/<input>`` (see ``rtrun._wire``):

* the producing process adds a Zenoh sender as one more branch of the actor's output port, with
  the input's policy (``block`` waits for end-to-end credits; other policies never wait) and its
  QoS (reliability, priority, express; congestion is always ``drop``);
* the consuming process gives the actor a Zenoh receive port enforcing the input's capacity and
  policy, counting drops, raising ``BrokenResourceError`` once when the producing host vanishes
  and then resuming with the producer's next epoch. An actor that lets that error propagate is
  restarted by its supervisor; the built-in robot actors read through
  ``rtrun.actors._source.WatchedInput`` and treat it as an expected event (README, "What
  restarts an actor, and what does not").

User code cannot tell the difference except through latency. The process opens its single
session from the graph's ``[zenoh]`` table overridden by the first local host's
``[hosts.<name>].zenoh`` table, declares a liveliness token per local host and per local actor
(``@rtrun/<graph>/@host/<host>[/<actor>]``), and leaves the network on shutdown by detaching its
senders (no end-of-stream: a host leaving looks like a vanished peer, which its peers wait for),
then closing receivers, tokens and the session.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from ._graph import GraphSpec
from ._validate import CompiledGraph, Edge

__all__ = ["Transport", "edge_key"]

log = logging.getLogger("rtrun.transport")


def edge_key(graph: str, edge: Edge) -> str:
    """The Zenoh key of one cross-host edge."""
    from ._wire import channel_key

    return channel_key(graph, [edge.source_actor, edge.output, edge.target_actor, edge.input.name])


class Transport:
    """The Zenoh side of one process: its session, presence tokens and cross-host ports."""

    def __init__(self, compiled: CompiledGraph, local_hosts: frozenset[str]) -> None:
        self.compiled = compiled
        self.local_hosts = local_hosts
        self._local = {i for i, a in compiled.actors.items() if a.host in local_hosts}
        self.incoming = [
            e for e in compiled.edges if e.target_actor in self._local and e.source_actor not in self._local
        ]
        """Edges whose consumer is local and producer remote."""
        self.outgoing = [
            e for e in compiled.edges if e.source_actor in self._local and e.target_actor not in self._local
        ]
        """Edges whose producer is local and consumer remote."""
        self.session: Any = None
        self._ports: list[Any] = []
        self._tokens: list[Any] = []

    @property
    def needed(self) -> bool:
        """Whether any edge crosses the process boundary."""
        return bool(self.incoming or self.outgoing)

    def _settings(self) -> Any:
        from ._zenoh_config import ZenohSettings

        spec: GraphSpec = self.compiled.spec
        host = next((h for h in spec.hosts if h in self.local_hosts), next(iter(self.local_hosts)))
        return ZenohSettings.from_mapping(spec.zenoh_settings(host))

    async def open(self) -> None:
        """Open the session (off the event loop) and declare presence tokens."""
        from ._zenoh import declare_presence, open_session

        settings = self._settings()
        self.session = await anyio.to_thread.run_sync(open_session, settings)
        graph = self.compiled.spec.name
        for host in sorted(self.local_hosts):
            self._tokens.append(declare_presence(self.session, graph, host))
        for actor_id in sorted(self._local):
            self._tokens.append(
                declare_presence(self.session, graph, self.compiled.actors[actor_id].host, actor_id)
            )
        log.info(
            "zenoh session open (%s, epoch %08x): %d incoming, %d outgoing channels",
            settings.mode, self.session.epoch, len(self.incoming), len(self.outgoing),
        )  # fmt: skip

    def receiver(self, edge: Edge) -> Any:
        """The receive port a local actor reads a remote edge from."""
        from ._zenoh_channel import open_zenoh_receiver

        port = open_zenoh_receiver(
            self.session,
            edge_key(self.compiled.spec.name, edge),
            edge.input.capacity,
            edge.input.policy,  # type: ignore[arg-type]
            message_type=edge.type,
        )
        return self._track(port)

    def sender(self, edge: Edge) -> Any:
        """The send port a local output feeds a remote edge through."""
        from ._zenoh_channel import open_zenoh_sender

        port = open_zenoh_sender(
            self.session,
            edge_key(self.compiled.spec.name, edge),
            policy=edge.input.policy,  # type: ignore[arg-type]
            qos=edge.input.qos,  # the graph's QoS is the transport's (validated with the graph)
        )
        return self._track(port)

    def _track(self, port: Any) -> Any:
        """Remember ``port`` for :meth:`aclose`. Closed ones are forgotten here: an output
        closed when its actor terminated and reopened when it restarts adds a port each time,
        so the list holds the open ports only, however often outputs reopen. A closed sender
        whose END_OF_STREAM every receiver acknowledged also undeclares its Zenoh resources
        now (otherwise they stay until the session closes)."""
        for old in self._ports:
            if old.closed and hasattr(old, "release"):
                old.release()
        self._ports = [p for p in self._ports if not p.closed]
        self._ports.append(port)
        return port

    async def aclose(self) -> None:
        """Leave the network: detach open senders, close receivers, tokens and the session.

        A *host* shutting down is not an actor terminating for good: its open senders are
        detached without END_OF_STREAM, so peers see the host vanish (``BrokenResourceError``
        once, then their ports wait for its next epoch, e.g. after a restart). Senders of
        actors that ended for good were already closed by the launcher, which published
        END_OF_STREAM. Safe to call twice.
        """
        with anyio.CancelScope(shield=True):
            for port in self._ports:
                _detach(port)
                port.close()
            self._ports.clear()
            for token in self._tokens:
                token.close()
            self._tokens.clear()
            if self.session is not None:
                session, self.session = self.session, None
                await anyio.to_thread.run_sync(session.close)


def _detach(port: Any) -> None:
    """Close a Zenoh sender clone without publishing END_OF_STREAM (receivers are untouched)."""
    detach = getattr(port, "detach", None)
    if detach is not None:
        detach()
