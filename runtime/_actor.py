"""Actors: the ``Actor`` base class, its context, and the lifecycle state table.

Theory of operation
-------------------
An actor is an object with ``async def run(self, ctx, *, task_status)``. The supervisor creates
a **fresh instance for every (re)start** (OTP: a restarted child starts from its initial state),
while the :class:`ActorContext` — ports, parameters, the per-actor thread limiter, status — is
owned by the launcher and survives restarts, so channels keep flowing across a restart and the
restart is invisible to the other actors except for the gap in messages.

Readiness is signalled with ``task_status.started()`` (a camera after its first frame, a motor
bus after its first read); the supervisor starts the next child only then. ``run`` must never
hide exceptions: failures propagate to the supervisor, which decides about restarts.

The lifecycle is a table (h11 style). States are owned by the supervisor, which performs the
transitions; an illegal transition raises :class:`ActorStateError` (a runtime bug)::

    STOPPED ──start──▶ STARTING ──started()──▶ RUNNING ──stop──▶ STOPPING ──▶ STOPPED
                          │                       │                  │
                          └──────── crash ────────┴──────────────────┴──▶ FAILED ──▶ RESTARTING ──▶ STARTING

    (a permanent child that returned normally goes STOPPED ──▶ RESTARTING)
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Generic, TypeVar, final

import anyio
from anyio import CancelScope, CapacityLimiter

from ._errors import ActorError, ActorStateError
from ._ports import Input, Output, OutputPort
from .abc import ReceivePort

__all__ = [
    "TRANSITIONS",
    "Actor",
    "ActorContext",
    "ActorState",
    "Lifecycle",
    "NoParams",
]

P = TypeVar("P")
R = TypeVar("R")


class ActorState(enum.Enum):
    """Where an actor is in its life (see the table in the module docstring)."""

    STARTING = "starting"
    """``run`` was called; readiness (``task_status.started()``) not yet signalled."""
    RUNNING = "running"
    """Ready and working."""
    STOPPING = "stopping"
    """Asked to stop (cancelled); cleanup in progress."""
    STOPPED = "stopped"
    """Not running: never started, finished normally, or stopped on request."""
    FAILED = "failed"
    """``run`` raised; the supervisor is deciding what to do."""
    RESTARTING = "restarting"
    """Waiting (backoff) to be started again."""


S = ActorState
TRANSITIONS: Final[Mapping[ActorState, frozenset[ActorState]]] = {
    S.STOPPED: frozenset({S.STARTING, S.RESTARTING}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.STOPPED, S.FAILED}),
    S.RUNNING: frozenset({S.STOPPING, S.STOPPED, S.FAILED}),
    S.STOPPING: frozenset({S.STOPPED, S.FAILED}),
    S.FAILED: frozenset({S.RESTARTING, S.STOPPED}),
    S.RESTARTING: frozenset({S.STARTING, S.STOPPED}),
}
"""Allowed lifecycle transitions: ``TRANSITIONS[current]`` is the set of legal next states."""


@final
class Lifecycle:
    """The state of one supervised child, changed only through :meth:`to`."""

    __slots__ = ("name", "state")

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = ActorState.STOPPED

    def to(self, new: ActorState) -> None:
        """Move to ``new``; raise :class:`ActorStateError` if the table forbids it."""
        if new is self.state:
            return
        if new not in TRANSITIONS[self.state]:
            raise ActorStateError(self.name, self.state.value, new.value)
        self.state = new


@dataclass(frozen=True, slots=True, kw_only=True)
class NoParams:
    """Parameters of an actor kind that takes none."""


class Actor:
    """Base class of every actor.

    Subclasses declare ``inputs``/``outputs`` (name -> :class:`Input`/:class:`Output`) and a
    ``Params`` frozen dataclass (kw-only, defaults, a docstring per field), and implement
    :meth:`run`. A graph instantiates the class with no arguments for every (re)start.
    """

    inputs: ClassVar[Mapping[str, Input]] = {}
    """Declared inputs of this kind."""
    outputs: ClassVar[Mapping[str, Output]] = {}
    """Declared outputs of this kind."""
    Params: ClassVar[type[Any]] = NoParams
    """Parameter schema: a frozen, keyword-only dataclass."""
    requires: ClassVar[Mapping[str, str]] = {}
    """Python modules this kind imports when it runs, each with its install hint, e.g.
    ``{"torch": "pip install 'rtrun[torch]'"}``; ``rtrun check`` and ``rtrun run`` report the
    missing ones before anything starts."""

    @classmethod
    def requirements(cls, params: Any) -> Mapping[str, str]:
        """The modules needed with these ``params`` (default: :attr:`requires`); a kind whose
        needs depend on a parameter (a driver choice) overrides this."""
        return cls.requires

    async def run(self, ctx: ActorContext[Any], *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """The actor's body. Call ``task_status.started()`` once ready; return or raise to end."""
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")


@final
class ActorContext(Generic[P]):
    """What a running actor gets from the runtime: identity, params, ports, logger, status.

    The launcher builds one context per actor and reuses it across restarts. Input ports are
    :class:`rtrun.abc.ReceivePort` (in-process or Zenoh: the actor cannot tell), outputs are
    :class:`OutputPort` (a :class:`rtrun.abc.Sender`). Ports belong to the launcher: actors must
    not close them. Outputs follow the actor's lifetime in its supervisor:
    the launcher closes them when the actor terminates (end-of-stream downstream) and every
    (re)start reopens them, so an actor brought back by a group restart can send again.
    """

    def __init__(
        self,
        *,
        id: str,
        params: P,
        inputs: Mapping[str, ReceivePort[Any]] | None = None,
        outputs: Mapping[str, OutputPort[Any]] | None = None,
        logger: logging.Logger | None = None,
        connected: frozenset[str] | None = None,
    ) -> None:
        self.id = id
        """The actor id from the graph."""
        self.params = params
        """The validated ``Params`` instance."""
        self.log = logger or logging.getLogger(f"rtrun.actor.{id}")
        """Logger named ``rtrun.actor.<id>``."""
        self._inputs = dict(inputs or {})
        self._connected = frozenset(self._inputs) if connected is None else connected
        self._outputs = dict(outputs or {})
        self._status: dict[str, Any] = {}
        self._limiter = CapacityLimiter(1)
        self._cleanup_scopes: set[CancelScope] = set()
        self._hard_stopped = False  # set by a hard stop, cleared when the actor (re)starts
        self.restarts = 0
        """How many times the supervisor restarted this actor."""

    def input(self, name: str) -> ReceivePort[Any]:
        """The receive port of input ``name`` (every declared input has one).

        An optional input left unconnected yields a port that never receives anything (unless
        the embedding app feeds it with ``graph.sender``) until the graph stops; use
        :meth:`has_input` to tell it from a connected one.
        """
        try:
            return self._inputs[name]
        except KeyError:
            raise ActorError(
                f"actor {self.id!r} has no input {name!r}; inputs: {sorted(self._inputs)}"
            ) from None

    def has_input(self, name: str) -> bool:
        """Whether input ``name`` is connected: fed by a source in the graph (in-process or
        across Zenoh) or declared ``external`` (fed by the embedding app).

        False for an optional input the graph leaves unconnected, although :meth:`input` returns
        a port for it too: this is how an actor tells connected inputs from unconnected ones
        (e.g. skips a camera nobody feeds). A context built without ``connected`` (tests) treats
        every input it was given as connected.
        """
        return name in self._connected

    def output(self, name: str) -> OutputPort[Any]:
        """The send port of output ``name`` (fans out to every connected input)."""
        try:
            return self._outputs[name]
        except KeyError:
            raise ActorError(
                f"actor {self.id!r} has no output {name!r}; outputs: {sorted(self._outputs)}"
            ) from None

    @property
    def inputs(self) -> Mapping[str, ReceivePort[Any]]:
        """Every input port by name."""
        return self._inputs

    @property
    def outputs(self) -> Mapping[str, OutputPort[Any]]:
        """Every output port by name."""
        return self._outputs

    def set_status(self, **fields: Any) -> None:
        """Publish small JSON-able values (fps, temperature, mode...) for dashboards and ``rtrun attach``."""
        self._status.update(fields)

    @property
    def status(self) -> Mapping[str, Any]:
        """The latest values published with :meth:`set_status`."""
        return dict(self._status)

    async def run_sync(self, func: Callable[..., R], *args: Any) -> R:
        """Run a blocking call in a worker thread, one at a time per actor (``CapacityLimiter(1)``).

        Cancellation abandons the thread's result (the thread finishes on its own), so a stuck
        driver call can never prevent the actor from being stopped.
        """
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter, abandon_on_cancel=True)

    @contextmanager
    def cleanup(self, timeout: float) -> Any:
        """A shielded, time-bounded scope for hardware cleanup in ``finally`` blocks.

        ``with ctx.cleanup(2.0): await ...`` runs even while the actor is being cancelled, for at
        most ``timeout`` seconds; the supervisor's hard stop (after the shutdown timeout) cancels
        it too, so a cleanup can never hang a shutdown. A cleanup cut short (hard stop, timeout)
        or skipped is logged as a warning on the actor's logger, so after a forced stop the log
        still says, per actor, that its safe state was *not* confirmed.
        """
        deadline = anyio.current_time() + timeout if math.isfinite(timeout) else math.inf
        skipped = self._hard_stopped  # the hard stop came before this cleanup began: skip it
        with CancelScope(shield=True, deadline=deadline) as scope:
            if skipped:
                scope.cancel()
            self._cleanup_scopes.add(scope)
            try:
                yield scope
            finally:
                self._cleanup_scopes.discard(scope)
        if scope.cancelled_caught:
            self._report_cut_cleanup(skipped, timeout)

    def _report_cut_cleanup(self, skipped: bool, timeout: float) -> None:
        if skipped:
            how = "skipped: the hard stop came before it began"
        elif self._hard_stopped:
            how = "cut short by the hard stop"
        else:
            how = f"cut short by its {timeout:g} s timeout"
        self.log.warning("cleanup %s: safe state NOT confirmed", how)

    def _begin_run(self) -> None:
        """The actor (re)starts: cleanups may run again, and outputs closed when it terminated reopen."""
        self._hard_stopped = False
        self._reopen_outputs()

    def _reopen_outputs(self) -> None:
        """Reopen the outputs closed when the actor terminated (it is about to start again)."""
        for port in self._outputs.values():
            port._reopen()

    def _hard_cancel_cleanups(self) -> None:
        # Also cleanups entered *later*: a second Ctrl-C can land between the cancellation of the
        # actor and its ``finally`` reaching ``cleanup()``, which must not then hold the stop.
        self._hard_stopped = True
        for scope in list(self._cleanup_scopes):
            scope.cancel()
