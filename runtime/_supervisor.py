"""OTP supervision on anyio task groups.

Theory of operation
-------------------
A :class:`Supervisor` owns one task group. Each child runs in its own task inside a
**shielded** cancel scope, so cancelling the supervisor does not hit every child at once:
instead the supervisor's ``finally`` stops its children one by one in **reverse start order**
(OTP shutdown order), each through :meth:`_stop_child`: cancel the child's scope (graceful: the
child's ``finally`` blocks and shielded cleanups run), wait up to the child's
``shutdown_timeout``, then hard-stop it (OTP ``brutal_kill``: the ``on_hard_stop`` hook cancels
the child's shielded cleanup scopes) and wait for it to finish.

Children start in order: a child is RUNNING only once it called ``task_status.started()``, and
the next child starts only then (a readiness handshake of our own, not ``TaskGroup.start``,
whose cancellation would wait forever for a shielded child). A child that fails before being
ready makes ``start`` raise; at the supervisor's own start this aborts the start (already started
children are stopped in reverse order and the error propagates to the parent, as in OTP); during a
restart it is retried (one more restart) after the exits already pending, unless one of them
restarts it first (OTP ``try_again_restart``). A supervisor cancelled while a child starts (Ctrl-C
during start-up) starts no further child: the starting one is stopped like the started ones.

When a running child exits, its task records the outcome in the child's single ``pending`` slot
(bounded by construction: one slot per child) and wakes the supervisor task, which asks the pure
:func:`rtrun._restart_plan.plan_exit` what to do (restart types, groups, intensity: the rules are
there) and carries the plan out, with optional backoff before a restart. A group member that
already ended is stopped by consuming its pending exit (OTP ``unlink_flush``): it decides nothing.

Pending exits are handled one at a time in the order they happened (OTP's mailbox order); exits
of the same instant (virtual time stands still within a tick) in start order, so runs are
deterministic. Outcomes carry the child's *incarnation*, so an exit recorded by an incarnation
that was since stopped or replaced is ignored. When no child is left running or restarting,
``run`` returns normally (OTP ``auto_shutdown`` with every child significant).

A child that raises :class:`ConfigurationError` (at start or later, whatever its restart type)
is not restarted: the supervisor reports it (``gave_up``), stops every child and raises the
error to its parent, which does the same: the error stops the whole graph. A nested supervisor
restarted by its parent starts all its children afresh, ``temporary`` ones too (OTP ``init/1``).

Every decision is a structured :class:`SupervisorEvent` (kept in a bounded ring, passed to
``on_event`` and logged): ``started``, ``exited``, ``restarting``, ``start_failed``, ``killed``,
``escalated``, ``gave_up``, ``stopped``, and ``terminated`` (the child ended and its own exit
restarts nothing: the launcher closes its outputs, reopened if a group restart brings it back).
How events reach the log (a failure's traceback once, identical repeats summarised) is
:mod:`rtrun._supervisor_reports`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, final

import anyio
from anyio import CancelScope, Event
from anyio.abc import TaskGroup, TaskStatus

from ._actor import ActorState, Lifecycle
from ._errors import ConfigurationError, EscalationError
from ._restart import Backoff, BackoffDelays, RestartWindow
from ._restart_plan import (
    ChildState,
    ChildView,
    Escalate,
    ExitKind,
    GiveUp,
    Restart,
    RestartType,
    Strategy,
    Terminate,
    plan_exit,
)
from ._supervisor_reports import FailureLog, SupervisorEvent, describe, format_tb, leaf

__all__ = [
    "ChildSpec",
    "ChildStatus",
    "RestartType",
    "Strategy",
    "Supervisor",
    "SupervisorEvent",
    "SupervisorFlags",
]

EVENT_HISTORY: Final = 1000
"""Supervisor events kept for telemetry (a bounded ring; older events are forgotten)."""
STUCK_WAIT_S: Final = 5.0
"""After a hard stop, how long to wait before reporting a child as stuck (then wait on)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """How to start and stop one supervised child (OTP ``child_spec``)."""

    id: str
    """Child id, unique within its supervisor."""
    start: Callable[..., Awaitable[None]]
    """Coroutine function called as ``start(task_status=...)``; must call ``task_status.started()``."""
    restart: RestartType = "permanent"
    """``permanent`` | ``transient`` | ``temporary``."""
    shutdown_timeout: float = 5.0
    """Seconds between the graceful stop (cancellation) and the hard stop."""
    start_timeout: float = math.inf
    """Seconds the child may take to become ready before its start counts as failed."""
    on_hard_stop: Callable[[], None] | None = None
    """Called at the hard stop (e.g. cancel the actor's shielded cleanup scopes)."""
    supervisor: Supervisor | None = None
    """Set when the child is a nested supervisor (for :meth:`Supervisor.tree`)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorFlags:
    """Supervisor configuration (OTP ``sup_flags``)."""

    strategy: Strategy = "one_for_one"
    """Which children restart when one fails."""
    intensity: int = 3
    """Maximum restarts within ``period`` before escalating (OTP default is 1; 3 tolerates a flaky USB)."""
    period: float = 5.0
    """Sliding window for ``intensity``, seconds."""
    backoff: Backoff | None = None
    """Optional delay between restarts (None: restart at once, as OTP)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ChildStatus:
    """A node of the supervision tree as reported by :meth:`Supervisor.tree`."""

    id: str
    """Child id."""
    state: str
    """Lifecycle state (``running``, ``stopped``...)."""
    restart: str
    """Restart type."""
    restarts: int
    """How many times it was restarted."""
    last_exit: str | None
    """Reason of the last exit, if any."""
    children: tuple[ChildStatus, ...] = ()
    """For a nested supervisor: its children."""
    strategy: str | None = None
    """For a nested supervisor: its strategy."""


@dataclass(slots=True)
class _Outcome:
    incarnation: int
    kind: ExitKind
    reason: str
    exc: BaseException | None = None
    time: float = field(default_factory=anyio.current_time)


@dataclass(eq=False, slots=True)
class _Child:
    spec: ChildSpec
    lifecycle: Lifecycle
    incarnation: int = 0
    restarts: int = 0
    scope: CancelScope | None = None
    done: Event | None = None
    pending: _Outcome | None = None
    last_exit: str | None = None
    stopping: bool = False

    @property
    def active(self) -> bool:
        return self.done is not None and not self.done.is_set()


@dataclass(eq=False, slots=True)
class _StartSignal:
    """Readiness handshake between a starting child and its supervisor."""

    event: Event
    error: Exception | None = None


class _ChildTaskStatus(TaskStatus[None]):
    """The ``task_status`` a child receives: ``started()`` marks it RUNNING and wakes the supervisor."""

    def __init__(self, child: _Child, signal: _StartSignal) -> None:
        self._child = child
        self._signal = signal
        self.ready = False

    def started(self, value: None = None) -> None:
        if self.ready:
            raise RuntimeError(f"child {self._child.spec.id!r} called task_status.started() twice")
        self.ready = True
        self._child.lifecycle.to(ActorState.RUNNING)
        self._signal.event.set()


class _StartFailed(Exception):
    def __init__(self, child: _Child, exc: BaseException) -> None:
        super().__init__(f"child {child.spec.id!r} failed to start: {exc!r}")
        self.child = child
        self.exc = exc


class Supervisor:
    """A supervisor of children with OTP semantics (see the module docstring)."""

    def __init__(
        self,
        id: str,
        children: Sequence[ChildSpec],
        flags: SupervisorFlags | None = None,
        *,
        on_event: Callable[[SupervisorEvent], None] | None = None,
    ) -> None:
        ids = [c.id for c in children]
        if len(set(ids)) != len(ids):
            raise ValueError(f"supervisor {id!r}: duplicate child ids in {ids}")
        self.id = id
        self.flags = flags or SupervisorFlags()
        self._specs = tuple(children)
        self._children: list[_Child] = []
        self._on_event = on_event
        self.events: deque[SupervisorEvent] = deque(maxlen=EVENT_HISTORY)
        """Recent supervision events, oldest first."""
        self.escalations = 0
        """How many times this supervisor gave up (over all its runs)."""
        self._window = RestartWindow(self.flags.intensity, self.flags.period)
        self._delays: BackoffDelays | None = None
        self._tg: TaskGroup | None = None
        self._wakeup = Event()
        self._hard = False
        self._failures = FailureLog()

    # ------------------------------------------------------------------ public API

    def child_spec(
        self, *, restart: RestartType = "permanent", shutdown_timeout: float = math.inf
    ) -> ChildSpec:
        """This supervisor as a child of another supervisor (nesting)."""
        return ChildSpec(
            id=self.id,
            start=self.run,
            restart=restart,
            shutdown_timeout=shutdown_timeout,
            on_hard_stop=self.hard_stop,
            supervisor=self,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start every child in order, report ready, supervise; return when no child is left.

        Raises:
            EscalationError: restart intensity exceeded (children already stopped).
            Exception: a child failed to start initially (started children already stopped).
        """
        self._reset()
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                await self._start_initial()
                task_status.started()
                await self._supervise()
            except Exception as exc:  # re-raised below, unwrapped by the task group
                error = exc
            finally:
                with CancelScope(shield=True):
                    await self._stop_all()
                self._failures.flush_all(anyio.current_time())
                self._tg = None
        if error is not None:
            raise error

    def hard_stop(self) -> None:
        """Stop everything now: cancel every child and its shielded cleanups (second Ctrl-C)."""
        self._hard = True
        for child in self._children:
            child.stopping = True
            if child.spec.on_hard_stop is not None:
                child.spec.on_hard_stop()
            if child.scope is not None:
                child.scope.cancel()

    def tree(self) -> ChildStatus:
        """The supervision tree below (and including) this supervisor."""
        return ChildStatus(
            id=self.id,
            state="running" if self._tg is not None else "stopped",
            restart="permanent",
            restarts=0,
            last_exit=None,
            children=tuple(self._child_status(c) for c in self._children or self._fresh_children()),
            strategy=self.flags.strategy,
        )

    # ------------------------------------------------------------------ state

    def _fresh_children(self) -> list[_Child]:
        return [_Child(spec, Lifecycle(spec.id)) for spec in self._specs]

    def _reset(self) -> None:
        previous = {c.spec.id: c.restarts for c in self._children}
        self._children = self._fresh_children()
        for child in self._children:  # restart counts survive a restart of the supervisor
            child.restarts = previous.get(child.spec.id, 0)
        self._window.reset()
        self._delays = self.flags.backoff.delays() if self.flags.backoff else None
        self._hard = False

    @staticmethod
    def _child_status(child: _Child) -> ChildStatus:
        nested = child.spec.supervisor.tree() if child.spec.supervisor is not None else None
        return ChildStatus(
            id=child.spec.id,
            state=child.lifecycle.state.value,
            restart=child.spec.restart,
            restarts=child.restarts,
            last_exit=child.last_exit,
            children=nested.children if nested else (),
            strategy=nested.strategy if nested else None,
        )

    def _emit(self, kind: str, child: _Child | None, reason: str, exc: BaseException | None = None) -> None:
        event = SupervisorEvent(
            kind=kind,
            supervisor=self.id,
            child=child.spec.id if child else None,
            reason=reason,
            traceback=format_tb(exc) if exc is not None else None,
            restarts=child.restarts if child else 0,
            time=anyio.current_time(),
        )
        self.events.append(event)
        self._failures.report(event, exc)
        if self._on_event is not None:
            self._on_event(event)

    # ------------------------------------------------------------------ starting

    async def _start_initial(self) -> None:
        for child in self._children:
            try:
                await self._start_child(child)
            except _StartFailed as failed:
                if (fatal := _fatal(failed.exc)) is not None:
                    self._give_up(child, fatal)
                raise failed.exc from None

    async def _start_child(self, child: _Child) -> None:
        """Start one child and wait for its readiness; raise _StartFailed if it fails first.

        Not ``TaskGroup.start``: when a ``start()`` caller is cancelled, anyio waits (shielded)
        for the new task to exit, but a child runs in a shielded scope and would never exit on
        its own: cancelling a supervisor mid-restart would deadlock. Our handshake is a plain
        event, so a cancelled supervisor simply moves on to its ordered shutdown.
        """
        assert self._tg is not None
        child.incarnation += 1
        child.scope, child.done, child.pending, child.stopping = (
            CancelScope(shield=True),
            Event(),
            None,
            False,
        )
        child.lifecycle.to(ActorState.STARTING)
        signal = _StartSignal(Event())
        self._tg.start_soon(self._child_main, child, child.incarnation, signal, name=f"rtrun:{child.spec.id}")
        async with anyio.create_task_group() as watchdog:
            if math.isfinite(child.spec.start_timeout):
                watchdog.start_soon(self._start_watchdog, child)
            await signal.event.wait()
            watchdog.cancel_scope.cancel()
        if signal.error is not None:
            child.lifecycle.to(ActorState.FAILED)
            child.last_exit = describe(signal.error)
            self._emit("start_failed", child, child.last_exit, signal.error)
            raise _StartFailed(child, signal.error) from signal.error
        self._emit("started", child, "ready")

    async def _start_watchdog(self, child: _Child) -> None:
        await anyio.sleep(child.spec.start_timeout)
        if child.lifecycle.state is ActorState.STARTING and child.scope is not None:
            child.last_exit = f"not ready within start_timeout={child.spec.start_timeout:g} s"
            child.scope.cancel()

    async def _child_main(self, child: _Child, incarnation: int, signal: _StartSignal) -> None:
        scope, done = child.scope, child.done
        assert scope is not None and done is not None
        status = _ChildTaskStatus(child, signal)
        try:
            with scope:
                await child.spec.start(task_status=status)
            if not status.ready:
                if scope.cancel_called:
                    raise TimeoutError(child.last_exit or "cancelled before it was ready")
                status.started()  # returned normally before signalling readiness
            kind: ExitKind = "shutdown" if scope.cancel_called else "normal"
            outcome = _Outcome(incarnation, kind, kind)
        except Exception as exc:
            if not status.ready:
                signal.error = exc
                signal.event.set()
                return
            outcome = _exit_outcome(child, incarnation, exc)
        finally:
            done.set()
        if not child.stopping and child.incarnation == incarnation:
            child.pending = outcome
            self._wakeup.set()

    # ------------------------------------------------------------------ supervising

    async def _supervise(self) -> None:
        while any(c.active or c.pending for c in self._children):
            await self._wakeup.wait()
            self._wakeup = Event()
            while (child := self._next_exit()) is not None:
                outcome, child.pending = child.pending, None
                if outcome is not None and outcome.incarnation == child.incarnation:
                    await self._handle_exit(child, outcome)

    def _next_exit(self) -> _Child | None:
        """The child whose pending exit happened first (OTP mailbox order); same instant: start
        order, retries of failed restarts last."""
        pending = [
            (c.pending.time, c.pending.kind == "try_again", i)
            for i, c in enumerate(self._children)
            if c.pending is not None
        ]
        return self._children[min(pending)[2]] if pending else None

    async def _handle_exit(self, child: _Child, outcome: _Outcome) -> None:
        """Report the exit, ask :func:`plan_exit` what to do, and do it."""
        if outcome.kind != "try_again":
            self._record_exit(child, outcome)
        flags = self.flags
        plan = plan_exit(
            self._views(child, outcome.kind),
            child.spec.id,
            outcome.kind,
            strategy=flags.strategy,
            intensity=flags.intensity,
            period=flags.period,
            restarts=self._window.times,
            now=anyio.current_time(),
        )
        if isinstance(plan, GiveUp):
            fatal = _fatal(outcome.exc)
            assert fatal is not None, "a configuration_error outcome carries its error"
            await self._stop_and_raise(child, fatal)
        elif isinstance(plan, Terminate):
            if plan.remove:
                self._remove(child)
            else:
                self._emit("terminated", child, outcome.reason)
        elif isinstance(plan, Escalate):
            self._window.times = plan.restarts
            await self._escalate(child)
        elif isinstance(plan, Restart):
            self._window.times = plan.restarts
            await self._restart(plan)
        # else Ignore: nothing to do

    def _views(self, cause: _Child, kind: ExitKind) -> list[ChildView]:
        """The children as :func:`plan_exit` sees them; the exiting one is still ``running`` (OTP
        knows its pid until the exit is handled), or ``restarting`` when its retry is due."""
        own: ChildState = "restarting" if kind == "try_again" else "running"
        return [
            ChildView(c.spec.id, c.spec.restart, own if c is cause else _state(c)) for c in self._children
        ]

    def _record_exit(self, child: _Child, outcome: _Outcome) -> None:
        child.last_exit = outcome.reason
        failed = outcome.kind in ("abnormal", "configuration_error")
        child.lifecycle.to(ActorState.FAILED if failed else ActorState.STOPPED)
        self._emit("exited", child, outcome.reason, outcome.exc)

    async def _restart(self, plan: Restart) -> None:
        """Carry out a restart plan; a child that fails to start is retried after the exits
        already pending (OTP ``try_again_restart``: a message to itself)."""
        by_id = {c.spec.id: c for c in self._children}
        await self._stop_children(by_id[i] for i in plan.stop)
        for dropped in plan.drop:
            self._remove(by_id[dropped])
        group = [by_id[i] for i in plan.start]
        await self._backoff(group)
        for child in group:
            child.restarts += 1
            child.lifecycle.to(ActorState.RESTARTING)
            self._emit("restarting", child, "strategy " + self.flags.strategy)
        try:
            for child in group:
                await self._start_child(child)
        except _StartFailed as failed:
            if (fatal := _fatal(failed.exc)) is not None:
                await self._stop_and_raise(failed.child, fatal)
            failed.child.pending = _Outcome(failed.child.incarnation, "try_again", "try again")
            self._wakeup.set()

    async def _backoff(self, group: list[_Child]) -> None:
        if self._delays is None:
            return
        await anyio.sleep(self._delays.delay(len(self._window) - 1))

    def _give_up(self, cause: _Child, exc: ConfigurationError) -> None:
        """Report a ``ConfigurationError`` once: no restart, this supervisor stops."""
        if exc.actor is None:
            exc.actor = cause.spec.id
        self._emit("gave_up", cause, f"configuration error in {exc.actor!r}: not restarted")

    async def _stop_and_raise(self, cause: _Child, exc: ConfigurationError) -> None:
        self._give_up(cause, exc)
        with CancelScope(shield=True):
            await self._stop_all()
        raise exc

    async def _escalate(self, cause: _Child) -> None:
        self.escalations += 1
        self._failures.flush_all(anyio.current_time())
        self._emit(
            "escalated", cause, f"more than {self.flags.intensity} restarts in {self.flags.period:g} s"
        )
        with CancelScope(shield=True):
            await self._stop_all()
        raise EscalationError(self.id, self.flags.intensity + 1, self.flags.period, cause.spec.id)

    def _remove(self, child: _Child) -> None:
        child.lifecycle.to(ActorState.STOPPED)
        self._children.remove(child)
        self._emit("terminated", child, "temporary child is not restarted")

    # ------------------------------------------------------------------ stopping

    async def _stop_all(self) -> None:
        await self._stop_children(reversed(list(self._children)))

    async def _stop_children(self, children: Iterable[_Child]) -> None:
        for child in children:
            await self._stop_child(child)

    def _flush(self, child: _Child) -> None:
        """Stop a child whose task already ended: consume its pending exit (OTP ``unlink_flush``).

        The exit is reported but decides nothing: the caller is stopping this child anyway (a
        group restart, an escalation, the supervisor's shutdown).
        """
        outcome, child.pending = child.pending, None
        if outcome is not None and outcome.kind != "try_again" and outcome.incarnation == child.incarnation:
            self._record_exit(child, outcome)
        if child.lifecycle.state is not ActorState.STOPPED:
            child.lifecycle.to(ActorState.STOPPED)

    async def _stop_child(self, child: _Child) -> None:
        if not child.active:
            self._flush(child)
            return
        assert child.scope is not None and child.done is not None
        child.stopping = True
        child.lifecycle.to(ActorState.STOPPING)
        child.scope.cancel()
        timeout = 0.0 if self._hard else child.spec.shutdown_timeout
        with anyio.move_on_after(timeout):
            await child.done.wait()
        if not child.done.is_set():
            self._emit("killed", child, f"still running {timeout:g} s after shutdown; hard stop")
            if child.spec.on_hard_stop is not None:
                child.spec.on_hard_stop()
            with anyio.move_on_after(STUCK_WAIT_S):
                await child.done.wait()
            if not child.done.is_set():
                self._emit("killed", child, "stuck after hard stop (a shielded call without timeout?)")
                await child.done.wait()
        child.lifecycle.to(ActorState.STOPPED)
        self._emit("stopped", child, "shutdown")


def _exit_outcome(child: _Child, incarnation: int, exc: Exception) -> _Outcome:
    """How a ready child's exception counts: a nested supervisor giving up exits ``shutdown`` (OTP)."""
    nested = child.spec.supervisor
    if nested is not None and isinstance(exc, EscalationError) and exc.supervisor == nested.id:
        return _Outcome(incarnation, "shutdown", "shutdown")
    kind: ExitKind = "configuration_error" if _fatal(exc) is not None else "abnormal"
    return _Outcome(incarnation, kind, describe(exc), exc)


def _state(child: _Child) -> ChildState:
    """A child other than the exiting one as :func:`plan_exit` sees it (an unhandled exit still
    counts as running, as in OTP until its ``'EXIT'`` is received)."""
    if child.pending is not None and child.pending.kind == "try_again":
        return "restarting"
    return "running" if child.active or child.pending is not None else "down"


def _fatal(exc: BaseException | None) -> ConfigurationError | None:
    """The ``ConfigurationError`` a failure carries (no restart can help), else None."""
    exc = leaf(exc) if exc is not None else None
    return exc if isinstance(exc, ConfigurationError) else None
