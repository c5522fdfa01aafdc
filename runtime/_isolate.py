"""``rtrun run --isolate``: every host of a graph as a supervised child process.

Theory of operation
-------------------
The launcher process runs no actor. It supervises one child process per declared host,
``python -m rtrun run <graph> --host <name>`` (same ``--set`` overrides and log level), with the
graph's root supervisor flags (strategy, intensity, period, backoff). A host process is a
``transient`` child: one that exits non-zero (crash, SIGKILL, escalation inside it) is restarted
per the graph's policy; one that exits 0 (its graph ended) is not. Exceeding the intensity stops
every host and exits with the failure code.

A host is *ready* once its process logs that its graph is running, so hosts start in order like
actors do, in :func:`host_order`:

1. **network first** -- a host whose Zenoh ``connect`` names another host's ``listen`` endpoint
   starts after that host: started first, its connect attempt fails and Zenoh retries only
   after its connect backoff (1 s, then 2 s ...), which measured up to ~3 s of extra delay;
2. **then data dependency** -- a host starts after the hosts whose actors feed its actors, so
   consumers find their producers running;
3. a cycle (a robot's merger and its policy worker feed each other) is broken by the actors'
   file order, the order the same graph starts in one process, then by declaration order.

Start order is an optimisation, not a guarantee: a consumer still has to cope with a producer
that is not there yet or comes back (``rtc_merger`` waits for the worker's presence before
its first request). Every line a host writes to stderr is forwarded tagged with its host
(``[<host>] line``, or a ``"host"`` field with ``--log-format json``) to the launcher's stderr and log file; the parent
logs each host's PID so a test (or an operator) can signal it. Stopping sends SIGTERM (the host
stops its actors gracefully), waits the host's budget, then SIGKILL — always by PID, and always
awaited, so no child outlives the launcher. A host's stderr is forwarded until it ends, so the
last lines of a stopping host (its actors' cleanup, whether each safe state was reached) are
never lost. A second Ctrl-C in the launcher signals every host again (:meth:`HostProcesses.force_all`):
each forces its fast stop.

Stopping the whole graph sends SIGTERM to *every* host at once (:meth:`HostProcesses.terminate_all`)
before the supervisor awaits them in reverse order. Stopped one after the other, the first host to
leave looked like a vanished peer to the others, still running, whose supervisors restarted the
consumers of its channels just before being stopped themselves. Each process gets one SIGTERM
only: a second one would mean "force" to the host.

Cross-host edges use each host's Zenoh settings from the graph: give every host explicit
``listen``/``connect`` endpoints (multicast scouting is off by default).

Real-time scheduling is per host process: each child applies its own ``[hosts.<name>.realtime]``
table over ``[realtime]`` when it starts (:mod:`rtrun._realtime`), and warns itself when it lacks
the permission. The launcher applies none and stays an ordinary process, so the children it
spawns start with normal scheduling; ``rtrun run --isolate`` refuses a table naming a CPU this
machine lacks before starting any host (every host runs here).
"""

from __future__ import annotations

import logging
import math
import signal
import subprocess
import sys
from collections.abc import Sequence

import anyio
from anyio.abc import Process, TaskStatus
from anyio.streams.text import TextReceiveStream

from ._errors import RtrunError
from ._logs import forward_host_line
from ._supervisor import ChildSpec, Supervisor, SupervisorFlags
from ._validate import CompiledGraph

__all__ = ["HostProcessError", "HostProcesses", "host_order", "host_supervisor"]

READY_MARKER = "running ("
"""Substring of the line a host logs once its graph runs (see ``rtrun._cli``)."""
HOST_SHUTDOWN_S = 20.0
"""SIGTERM → SIGKILL budget per host: actors stop in reverse order within their own timeouts."""
FORWARD_GRACE_S = 1.0
"""After a host ended, how long its last stderr lines may take to arrive (a grandchild holding
the pipe open must not hold the launcher)."""

log = logging.getLogger("rtrun.isolate")


class HostProcessError(RtrunError):
    """A host process exited with a non-zero code."""

    def __init__(self, host: str, code: int) -> None:
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        super().__init__(f"host {host!r} process ended ({how})")
        self.host = host
        self.code = code


class HostProcesses:
    """The live host processes of an isolated run, so that a stop reaches all of them at once."""

    def __init__(self) -> None:
        self._procs: dict[str, Process] = {}
        self._terminated: set[int] = set()

    def add(self, host: str, proc: Process) -> None:
        """Track ``host``'s (new) process."""
        self._procs[host] = proc

    def discard(self, host: str, proc: Process) -> None:
        """Forget ``host``'s process (once it is awaited)."""
        if self._procs.get(host) is proc:
            del self._procs[host]

    def terminate(self, proc: Process) -> None:
        """SIGTERM ``proc`` unless it ended or already got one (a second one means "force")."""
        if proc.returncode is None and proc.pid not in self._terminated:
            self._terminated.add(proc.pid)
            proc.send_signal(signal.SIGTERM)

    def terminate_all(self) -> None:
        """Ask every live host to stop gracefully, all at once."""
        for proc in list(self._procs.values()):
            self.terminate(proc)

    def force_all(self) -> None:
        """A second Ctrl-C: signal every live host again, which it takes as "force" (exit 130)."""
        for proc in list(self._procs.values()):
            if proc.returncode is None:
                self._terminated.add(proc.pid)
                proc.send_signal(signal.SIGTERM)


def _command(graph_file: str, host: str, passthrough: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "rtrun", "run", graph_file, "--host", host, *passthrough]


async def _pump(proc: Process, host: str, task_status: TaskStatus[None]) -> None:
    assert proc.stderr is not None
    ready = False
    buffer = ""
    async for chunk in TextReceiveStream(proc.stderr, errors="replace"):
        buffer += chunk
        *lines, buffer = buffer.split("\n")
        for line in lines:
            forward_host_line(host, line)
            if not ready and READY_MARKER in line:
                ready = True
                task_status.started()


async def _forward_rest(proc: Process, host: str) -> None:
    """Forward what ``host`` still writes to stderr until it closes."""
    assert proc.stderr is not None
    buffer = ""
    async for chunk in TextReceiveStream(proc.stderr, errors="replace"):
        buffer += chunk
        *lines, buffer = buffer.split("\n")
        for line in lines:
            forward_host_line(host, line)
    if buffer:
        forward_host_line(host, buffer)


async def _stop(proc: Process, host: str, hosts: HostProcesses) -> None:
    """SIGTERM, wait the host's budget, SIGKILL; meanwhile its last lines (the actors' cleanup and
    safe-state reports) are still forwarded, for at most :data:`FORWARD_GRACE_S` after it ends."""
    with anyio.CancelScope(shield=True):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_forward_rest, proc, host)
            await _terminate(proc, host, hosts)
            tg.cancel_scope.deadline = anyio.current_time() + FORWARD_GRACE_S


async def _terminate(proc: Process, host: str, hosts: HostProcesses) -> None:
    if proc.returncode is None:
        hosts.terminate(proc)
        with anyio.move_on_after(HOST_SHUTDOWN_S):
            await proc.wait()
    if proc.returncode is None:
        log.warning("host %r (pid %d) did not stop within %g s: SIGKILL", host, proc.pid, HOST_SHUTDOWN_S)
        proc.kill()
        await proc.wait()


def _host_child(graph_file: str, host: str, passthrough: Sequence[str], hosts: HostProcesses) -> ChildSpec:
    async def start(*, task_status: TaskStatus[None]) -> None:
        proc = await anyio.open_process(
            _command(graph_file, host, passthrough), stdin=subprocess.DEVNULL, stdout=None
        )
        hosts.add(host, proc)
        log.info("host %r started (pid %d)", host, proc.pid)
        try:
            await _pump(proc, host, task_status)
            code = await proc.wait()
        finally:
            await _stop(proc, host, hosts)
            hosts.discard(host, proc)
        if code != 0:
            raise HostProcessError(host, code)

    return ChildSpec(
        id=host,
        start=start,
        restart="transient",
        shutdown_timeout=HOST_SHUTDOWN_S + 5,
        start_timeout=math.inf,
    )


def _endpoint_port(endpoint: str) -> tuple[str, str] | None:
    """``(protocol, port)`` of a ``proto/address:port`` endpoint listening on a wildcard address."""
    proto, _, rest = endpoint.partition("/")
    address, _, port = rest.rpartition(":")
    return (proto, port) if address in ("0.0.0.0", "[::]", "") else None


def _network_needs(compiled: CompiledGraph, names: Sequence[str]) -> dict[str, set[str]]:
    """For each host, the hosts whose ``listen`` endpoints its ``connect`` endpoints name."""
    spec = compiled.spec
    listens = {h: set(spec.zenoh_settings(h).get("listen") or ()) for h in names}
    wildcard = {h: {w for e in listens[h] if (w := _endpoint_port(e))} for h in names}
    needs: dict[str, set[str]] = {h: set() for h in names}
    for host in names:
        for endpoint in spec.zenoh_settings(host).get("connect") or ():
            proto, _, rest = endpoint.partition("/")
            key = (proto, rest.rpartition(":")[2])
            needs[host] |= {h for h in names if h != host and (endpoint in listens[h] or key in wildcard[h])}
    return needs


def _data_needs(compiled: CompiledGraph, names: Sequence[str]) -> dict[str, set[str]]:
    """For each host, the hosts whose actors feed its actors."""
    needs: dict[str, set[str]] = {h: set() for h in names}
    for edge in compiled.edges:
        src, dst = compiled.actors[edge.source_actor].host, compiled.actors[edge.target_actor].host
        if src != dst and dst in needs:
            needs[dst].add(src)
    return needs


def host_order(compiled: CompiledGraph) -> list[str]:
    """The start order of the hosts (module docstring): listeners before the hosts connecting
    to them, then producers' hosts before consumers', a cycle in the actors' file order."""
    names = list(compiled.spec.hosts) or sorted({a.host for a in compiled.actors.values()})
    first: dict[str, int] = {}
    for index, actor in enumerate(compiled.actors.values()):
        first.setdefault(actor.host, index)
    rank = {h: (first.get(h, len(first)), i) for i, h in enumerate(names)}
    network, data = _network_needs(compiled, names), _data_needs(compiled, names)
    order: list[str] = []
    left = list(names)
    while left:
        free = [h for h in left if not network[h] & set(left)] or left
        ready = [h for h in free if not data[h] & set(left)] or free
        nxt = min(ready, key=rank.__getitem__)
        order.append(nxt)
        left.remove(nxt)
    return order


def host_supervisor(
    compiled: CompiledGraph, passthrough: Sequence[str], hosts: HostProcesses | None = None
) -> Supervisor:
    """The supervisor of every host process of ``compiled`` (hosts in :func:`host_order`);
    ``hosts`` collects the live processes (for :meth:`HostProcesses.terminate_all`)."""
    hosts = hosts if hosts is not None else HostProcesses()
    spec = compiled.spec
    names = host_order(compiled)
    root = spec.root
    flags = SupervisorFlags(
        strategy=root.strategy,  # type: ignore[arg-type]
        intensity=root.intensity,
        period=root.period_s,
        backoff=root.backoff,
    )
    children = [_host_child(spec.file, name, passthrough, hosts) for name in names]
    return Supervisor(f"{spec.name}:hosts", children, flags)
