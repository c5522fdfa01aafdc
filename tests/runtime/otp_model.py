"""An executable reference model of OTP supervision, to compare rtrun's supervisor against.

Origin
------
The restart logic is a port of Erlang/OTP ``lib/stdlib/src/supervisor.erl`` (repository
erlang/otp; Copyright Ericsson AB 1996-2024; Apache License 2.0). Ported, by their names there:

* ``handle_info({'EXIT', Pid, Reason}, _)`` and ``restart_child/3``: an exit of a pid the
  supervisor does not know (any more) is ignored (:meth:`_Sup._handle`);
* ``do_restart/3``: ``permanent`` always restarts; reasons ``normal``/``shutdown`` delete the
  child (``del_child/2``: a temporary child is removed, the others keep their spec with pid
  ``undefined``); ``transient`` after another reason restarts; ``temporary`` is removed;
* ``do_auto_shutdown/2`` (``never``, ``any_significant``, ``all_significant``);
* ``restart/2``: ``add_restart`` first; ``{terminate, _}`` reports
  ``reached_max_restart_intensity``, deletes the child and stops the supervisor with reason
  ``shutdown`` (its parent sees exit reason ``shutdown``: it restarts a ``permanent``
  supervisor, and only deletes a ``transient`` or ``temporary`` one, counting no restart);
* ``restart/3`` for ``one_for_one``, ``rest_for_one`` (``split_child/2``) and ``one_for_all``;
* ``restart_multiple_children/3`` and ``terminate_children/2``: terminate in reverse start
  order; temporary children are dropped; every other child gets pid ``undefined`` and is then
  started by ``start_children/2`` -- also a transient child that had exited normally;
* ``do_terminate/2``, ``shutdown/1`` (``exit(Pid, shutdown)``, wait up to ``Shutdown``, then
  ``exit(Pid, kill)``) and ``unlink_flush/2``: a child that died before its turn has its queued
  ``'EXIT'`` consumed there (reported as a shutdown error), so it never causes a second restart;
* ``try_again_restart/1`` and ``handle_cast({try_again_restart, Id}, _)``: a failed (re)start is
  retried through the supervisor's own mailbox, and every retry goes through ``add_restart``;
* ``add_restart/1,3``: ``R1 = [Now | takewhile(fun(R) -> R >= Now - Period end, R)]``, the
  supervisor gives up when ``length(R1) > MaxR``;
* ``init_children/2``: start in order; if a child fails, terminate the started ones (reverse
  order) and fail the supervisor's own start.

How it runs
-----------
A small discrete-event simulation, pure and deterministic. Each supervisor is a process with a
FIFO mailbox (``'EXIT'`` messages of its children, its own ``try_again`` casts, its parent's
shutdown), written as a generator that yields when it must wait for a message: idle in its
receive loop, or inside ``shutdown/1`` waiting for one child's ``'DOWN'`` (a selective receive:
other messages stay queued, exactly as in a real supervisor that is busy stopping a slow child).
Workers are scripted: an incarnation started at ``s`` ends at the first :class:`Exit` of its id
with ``at > s`` (unless it is being stopped by then), and takes ``stop_s`` seconds to stop.

The trace uses rtrun's :class:`SupervisorEvent` vocabulary, emitted where OTP logs or acts:
``started`` (``report_progress``), ``start_failed`` (``start_error``), ``exited`` (an ``'EXIT'``
handled by ``restart_child`` -- or consumed by ``unlink_flush`` in ``do_terminate``),
``terminated`` (``del_child`` of a child that stays down; a temporary child dropped by
``terminate_children``), ``restarting`` (each child a restart is about to start),
``escalated`` (``reached_max_restart_intensity``), ``killed`` (``exit(Pid, kill)`` after the
shutdown timeout) and ``stopped`` (``shutdown/1`` returned).

Deliberate differences from the Erlang original
------------------------------------------------
* Time is the runtime clock in float seconds, not ``erlang:monotonic_time(1)`` (whole seconds);
  the window keeps OTP's inclusive boundary ``R >= Now - Period``.
* Exits at the same instant enter the mailbox in start order (OTP: in arrival order).
* Starting takes no time; nested supervisors always have ``shutdown => infinity``.
* ``terminated`` events of the temporary children a group restart drops are reported after the
  whole termination pass, in start order (OTP logs nothing there; this is rtrun's order).
* Not modelled: ``simple_one_for_one``, dynamic children, ``ignore``, code change, and
  ``check_childspec`` validation (so :func:`as_rtrun` may mark permanent children significant).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal, TypeAlias, TypeVar

__all__ = ["Event", "Exit", "Result", "Sup", "Worker", "as_rtrun", "exit_class", "run_model"]

RestartType = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
AutoShutdown = Literal["never", "any_significant", "all_significant"]
Outcome = Literal["stopped", "escalated", "shutdown", "start_failed"]
"""How the root ended: stopped at ``until``, gave up, shut itself down, or never started."""

NORMAL_REASONS = frozenset({"normal", "shutdown"})
"""Exit reasons ``do_restart/3`` treats as normal (with ``{shutdown, Term}``)."""
MAX_STEPS = 200_000
"""Bound on simulation steps (a runaway model is a bug in the model)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Worker:
    """A scripted worker child."""

    id: str
    """Child id, unique in the whole tree (script events name it)."""
    restart: RestartType = "permanent"
    """OTP restart type."""
    stop_s: float = 0.0
    """Seconds between the shutdown request and the exit."""
    shutdown_timeout: float = 5.0
    """OTP ``shutdown``: seconds before ``exit(Pid, kill)``."""
    fail_starts: frozenset[int] = frozenset()
    """Start attempts (1 = the first start) that fail before the child is ready."""
    significant: bool = False
    """OTP ``significant`` (for ``auto_shutdown``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sup:
    """A supervisor: flags, children in start order, and how its parent restarts it."""

    id: str
    """Supervisor id (its child id in the parent)."""
    children: tuple[Worker | Sup, ...]
    """Children in start order."""
    strategy: Strategy = "one_for_one"
    """OTP restart strategy."""
    intensity: int = 1
    """OTP ``intensity`` (MaxR)."""
    period: float = 5.0
    """OTP ``period`` (MaxT), seconds."""
    restart: RestartType = "permanent"
    """Restart type of this supervisor as a child of its parent."""
    auto_shutdown: AutoShutdown = "never"
    """OTP ``auto_shutdown``."""
    significant: bool = False
    """OTP ``significant`` as a child of its parent."""


@dataclass(frozen=True, slots=True)
class Exit:
    """Script: worker ``child`` ends by itself at ``at`` (if an incarnation is running then)."""

    at: float
    child: str
    reason: Literal["crash", "normal"] = "crash"


@dataclass(frozen=True, slots=True)
class Event:
    """One trace entry."""

    time: float
    supervisor: str
    kind: str
    child: str | None
    reason: str = ""
    """For ``exited``: :func:`exit_class` of the reason; else empty."""

    def __str__(self) -> str:
        tail = f" {self.reason}" if self.reason else ""
        return f"{self.time:7.2f} {self.supervisor}/{self.child or '-'} {self.kind}{tail}"


@dataclass(frozen=True, slots=True)
class Result:
    """The model's prediction."""

    trace: tuple[Event, ...]
    outcome: Outcome


def exit_class(reason: str) -> str:
    """``normal`` for the reasons OTP does not restart a transient child for, else ``abnormal``."""
    return "normal" if reason in NORMAL_REASONS else "abnormal"


def as_rtrun(spec: Sup) -> Sup:
    """``spec`` with rtrun's shutdown rule: a supervisor returns when no child is left.

    That is OTP ``auto_shutdown => all_significant`` with every child significant (OTP's
    ``check_childspec`` refuses significant permanent children; a permanent child never reaches
    ``do_auto_shutdown``, it only keeps the supervisor alive, which is rtrun's rule too).
    """
    children = tuple(
        as_rtrun(c) if isinstance(c, Sup) else replace(c, significant=True) for c in spec.children
    )
    return replace(spec, children=children, auto_shutdown="all_significant", significant=True)


def run_model(spec: Sup, script: Iterable[Exit], until: float) -> Result:
    """Run ``spec`` from time 0, apply ``script``, stop the root at ``until``; return the trace."""
    model = _Model(spec, script)
    return model.run(until)


# ---------------------------------------------------------------------------- simulation kernel


@dataclass(slots=True)
class _ExitMsg:
    pid: int
    reason: str


@dataclass(slots=True)
class _TryAgain:
    id: str


@dataclass(slots=True)
class _ParentExit:
    pass


_Msg: TypeAlias = _ExitMsg | _TryAgain | _ParentExit


@dataclass(slots=True)
class _Recv:
    """Wait for a message of ``proc``: the next one, or the ``'EXIT'`` of ``pid`` (selective)."""

    proc: _Sup
    pid: int | None = None
    deadline: float = math.inf


class _Timeout:
    """What a ``_Recv`` whose deadline passed returns."""


_TIMEOUT: Final = _Timeout()
_T = TypeVar("_T")
_Gen: TypeAlias = Generator[_Recv, object, _T]
_RESTARTING: Final = "restarting"  # OTP's ?restarting(_) pid marker
_Pid: TypeAlias = int | str | None  # a pid, the restarting marker, or undefined


class _Thread:
    """One flow of control (a supervisor's loop, or the root's start)."""

    def __init__(self, model: _Model, gen: Generator[_Recv, object, None]) -> None:
        self.model, self.gen = model, gen

    def step(self, value: object) -> None:
        try:
            command = self.gen.send(value)
        except StopIteration:
            return
        self.model.wait(self, command)


class _Model:
    def __init__(self, spec: Sup, script: Iterable[Exit]) -> None:
        self.spec = spec
        self.now = 0.0
        self.trace: list[Event] = []
        self.outcome: Outcome | None = None
        self.attempts: Counter[str] = Counter()
        self.order = {w.id: i for i, w in enumerate(_workers(spec))}
        if len(self.order) != len(list(_workers(spec))):
            raise ValueError("worker ids must be unique in the whole tree")
        self.script = sorted(script, key=lambda e: e.at)
        unknown = {e.child for e in self.script} - set(self.order)
        if unknown:
            raise ValueError(f"script names unknown workers {sorted(unknown)}")
        self._agenda: list[tuple[float, tuple[int, int], int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._pids = itertools.count(1)

    # ---- scheduling

    def call_at(self, t: float, prio: tuple[int, int], fn: Callable[[], None]) -> None:
        """Run ``fn`` at ``t``; at one instant, deaths (prio 0) come before supervisors (prio 1)."""
        heapq.heappush(self._agenda, (t, prio, next(self._seq), fn))

    def soon(self, fn: Callable[[], None]) -> None:
        self.call_at(self.now, (1, next(self._seq)), fn)

    def spawn(self, gen: Generator[_Recv, object, None]) -> None:
        thread = _Thread(self, gen)
        self.soon(lambda: thread.step(None))

    def wait(self, thread: _Thread, command: _Recv) -> None:
        proc = command.proc
        proc.waiter = (thread, command)
        self.poke(proc)
        if proc.waiter is not None and math.isfinite(command.deadline):
            waiter = proc.waiter

            def timeout() -> None:
                if proc.waiter is waiter:
                    proc.waiter = None
                    thread.step(_TIMEOUT)

            self.call_at(command.deadline, (1, next(self._seq)), timeout)

    def poke(self, proc: _Sup) -> None:
        """Resume the thread waiting on ``proc``'s mailbox if a matching message is there."""
        if proc.waiter is None:
            return
        thread, command = proc.waiter
        msg = proc.take(command.pid)
        if msg is not None:
            proc.waiter = None
            self.soon(lambda: thread.step(msg))

    def new_pid(self) -> int:
        return next(self._pids)

    def emit(self, sup: str, kind: str, child: str | None, reason: str = "") -> None:
        self.trace.append(Event(self.now, sup, kind, child, reason))

    def next_exit(self, worker: str, after: float) -> Exit | None:
        return next((e for e in self.script if e.child == worker and e.at > after), None)

    # ---- running

    def run(self, until: float) -> Result:
        root = _Sup(self, self.spec, None, self.new_pid())
        self.spawn(root.main())
        self.call_at(until, (1, next(self._seq)), lambda: root.deliver(_ParentExit()))
        for _ in range(MAX_STEPS):
            if self.outcome is not None or not self._agenda:
                break
            self.now, _, _, fn = heapq.heappop(self._agenda)
            fn()
        else:  # pragma: no cover - a bug in the model
            raise RuntimeError("model did not settle")
        assert self.outcome is not None, "the root neither stopped nor failed"
        return Result(tuple(self.trace), self.outcome)


def _workers(spec: Sup) -> Iterable[Worker]:
    for child in spec.children:
        if isinstance(child, Sup):
            yield from _workers(child)
        else:
            yield child


# ---------------------------------------------------------------------------- processes


class _WorkerProc:
    """One incarnation of a scripted worker."""

    def __init__(self, model: _Model, spec: Worker, owner: _Sup, pid: int) -> None:
        self.model, self.spec, self.owner, self.pid = model, spec, owner, pid
        self.alive, self.stopping = True, False
        self._prio = (0, model.order[spec.id])
        script = model.next_exit(spec.id, model.now)
        if script is not None:
            reason = "normal" if script.reason == "normal" else "crash"
            model.call_at(script.at, self._prio, lambda: self._scripted(reason))

    def _scripted(self, reason: str) -> None:
        if not self.stopping:
            self._die(reason)

    def shutdown(self) -> None:
        self.stopping = True
        self.model.call_at(self.model.now + self.spec.stop_s, self._prio, lambda: self._die("shutdown"))

    def kill(self) -> None:
        self._die("killed")

    def _die(self, reason: str) -> None:
        if self.alive:
            self.alive = False
            self.owner.deliver(_ExitMsg(self.pid, reason))


@dataclass(eq=False, slots=True)
class _Child:
    spec: Worker | Sup
    pid: _Pid = None
    proc: _WorkerProc | _Sup | None = None

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(eq=False)
class _Sup:
    """A supervisor process: ``supervisor.erl``'s state and callbacks."""

    model: _Model
    spec: Sup
    parent: _Sup | None
    pid: int
    children: list[_Child] = field(init=False)
    restarts: list[float] = field(default_factory=list)  # newest first, as OTP's #state.restarts
    mailbox: deque[_Msg] = field(default_factory=deque)
    waiter: tuple[_Thread, _Recv] | None = None

    def __post_init__(self) -> None:
        self.children = [_Child(c) for c in self.spec.children]

    # ---- mailbox

    def deliver(self, msg: _Msg) -> None:
        self.mailbox.append(msg)
        self.model.poke(self)

    def take(self, pid: int | None) -> _Msg | None:
        """Remove and return the next message, or the ``'EXIT'`` of ``pid``."""
        for msg in self.mailbox:
            if pid is None or (isinstance(msg, _ExitMsg) and msg.pid == pid):
                self.mailbox.remove(msg)
                return msg
        return None

    def emit(self, kind: str, child: _Child, reason: str = "") -> None:
        self.model.emit(self.spec.id, kind, child.id, reason)

    # ---- gen_server loop

    def main(self) -> Generator[_Recv, object, None]:
        """The root: ``init/1`` then the loop."""
        if not (yield from self.init()):
            self.model.outcome = "start_failed"
            return
        yield from self.serve()

    def init(self) -> _Gen[bool]:
        """``init_children/2``."""
        failed = yield from self._start_children(self.children)
        if failed is None:
            return True
        yield from self._terminate_all()
        return False

    def serve(self) -> Generator[_Recv, object, None]:
        while True:
            msg = yield _Recv(self)
            verdict = "stopped" if isinstance(msg, _ParentExit) else (yield from self._handle(msg))
            if verdict != "ok":
                yield from self._terminate_all()  # terminate/2
                self._exit(verdict)
                return

    def _exit(self, verdict: str) -> None:
        if self.parent is None:
            self.model.outcome = verdict  # type: ignore[assignment]
        else:
            self.parent.deliver(_ExitMsg(self.pid, "shutdown"))

    def _handle(self, msg: _Msg) -> _Gen[str]:
        """``handle_info({'EXIT', ...})`` / ``handle_cast({try_again_restart, Id})``."""
        if isinstance(msg, _ExitMsg):
            child = next((c for c in self.children if c.pid == msg.pid), None)
            if child is None:
                return "ok"
            self.emit("exited", child, exit_class(msg.reason))
            return (yield from self._do_restart(child, msg.reason))
        assert isinstance(msg, _TryAgain)
        child = next((c for c in self.children if c.id == msg.id), None)
        if child is None or child.pid != _RESTARTING:
            return "ok"
        return (yield from self._restart(child))

    # ---- restarting

    def _do_restart(self, child: _Child, reason: str) -> _Gen[str]:
        restart = child.spec.restart
        if restart == "permanent" or (restart == "transient" and reason not in NORMAL_REASONS):
            return (yield from self._restart(child))
        self._del_child(child)
        self.emit("terminated", child)
        return self._auto_shutdown(child)

    def _auto_shutdown(self, child: _Child) -> str:
        """``do_auto_shutdown/2``."""
        mode = self.spec.auto_shutdown
        if mode == "never" or not child.spec.significant:
            return "ok"
        if mode == "any_significant":
            return "shutdown"
        alive = any(c.pid is not None and c.spec.significant for c in self.children)
        return "ok" if alive else "shutdown"

    def _restart(self, child: _Child) -> _Gen[str]:
        """``restart/2``."""
        if not self._add_restart(self.model.now):
            self.emit("escalated", child)
            self._del_child(child)
            return "escalated"
        if self.spec.strategy == "one_for_one":
            again = yield from self._one_for_one(child)
        else:
            first = self.children.index(child) if self.spec.strategy == "rest_for_one" else 0
            child.pid, child.proc = None, None  # split_child/2, del_child/2
            again = yield from self._restart_multiple(self.children[first:])
        if again is not None:
            self.deliver(again)  # try_again_restart/1: a cast to ourselves
        return "ok"

    def _add_restart(self, now: float) -> bool:
        """``add_restart/1``: ``length([Now | R >= Now - Period]) =< MaxR``."""
        threshold = now - self.spec.period
        kept = list(itertools.takewhile(lambda r: r >= threshold, self.restarts))
        self.restarts = [now, *kept]
        return len(self.restarts) <= self.spec.intensity

    def _one_for_one(self, child: _Child) -> _Gen[_TryAgain | None]:
        self.emit("restarting", child)
        if (yield from self._start(child)):
            return None
        child.pid = _RESTARTING
        return _TryAgain(child.id)

    def _restart_multiple(self, group: Sequence[_Child]) -> _Gen[_TryAgain | None]:
        """``restart_multiple_children/3``."""
        survivors = yield from self._terminate_children(group)
        for child in survivors:
            self.emit("restarting", child)
        failed = yield from self._start_children(survivors)
        if failed is None:
            return None
        failed.pid = _RESTARTING
        return _TryAgain(failed.id)

    def _del_child(self, child: _Child) -> None:
        """``del_child/2``: a temporary child is forgotten, any other keeps pid ``undefined``."""
        if child.spec.restart == "temporary":
            self.children.remove(child)
        else:
            child.pid, child.proc = None, None

    # ---- starting

    def _start_children(self, children: Sequence[_Child]) -> _Gen[_Child | None]:
        """``start_children/2``: in order; return the child that failed to start, if any."""
        for child in children:
            if not (yield from self._start(child)):
                return child
        return None

    def _start(self, child: _Child) -> _Gen[bool]:
        """``do_start_child/2``."""
        model, spec, pid = self.model, child.spec, self.model.new_pid()
        if isinstance(spec, Worker):
            model.attempts[spec.id] += 1
            ok = model.attempts[spec.id] not in spec.fail_starts
            proc: _WorkerProc | _Sup | None = _WorkerProc(model, spec, self, pid) if ok else None
        else:
            inner = _Sup(model, spec, self, pid)
            ok = yield from inner.init()  # start_link runs init/1 before returning
            proc = inner if ok else None
            if ok:
                model.spawn(inner.serve())
        if proc is None:
            self.emit("start_failed", child)
            return False
        child.pid, child.proc = pid, proc
        self.emit("started", child)
        return True

    # ---- terminating

    def _terminate_children(self, group: Sequence[_Child]) -> _Gen[list[_Child]]:
        """``terminate_children/2`` for a restart: reverse order; drop temporary children."""
        dropped = []
        for child in reversed(group):
            yield from self._do_terminate(child)
            if child.spec.restart == "temporary":
                self.children.remove(child)
                dropped.append(child)
            else:
                child.pid, child.proc = None, None
        for child in reversed(dropped):
            self.emit("terminated", child)
        return [c for c in group if c not in dropped]

    def _terminate_all(self) -> _Gen[None]:
        """``terminate/2`` (and the cleanup of a failed ``init_children/2``)."""
        for child in reversed(self.children):
            yield from self._do_terminate(child)

    def _do_terminate(self, child: _Child) -> _Gen[None]:
        """``do_terminate/2`` + ``shutdown/1`` + ``unlink_flush/2``."""
        pid, proc = child.pid, child.proc
        if not isinstance(pid, int) or proc is None:
            return
        child.pid, child.proc = None, None
        dead = self.take(pid)  # died before its turn: its 'EXIT' is consumed here
        if isinstance(dead, _ExitMsg):
            self.emit("exited", child, exit_class(dead.reason))
            return
        if isinstance(proc, _Sup):
            proc.deliver(_ParentExit())
            yield _Recv(self, pid)
        else:
            proc.shutdown()
            got = yield _Recv(self, pid, self.model.now + proc.spec.shutdown_timeout)
            if got is _TIMEOUT:
                self.emit("killed", child)
                proc.kill()
                yield _Recv(self, pid)
        self.emit("stopped", child)
