"""The supervisor's restart decision (:func:`rtrun._restart_plan.plan_exit`), checked directly.

Two kinds of tests:

* a Hypothesis property: for random supervisors (strategy, intensity, period, children with
  restart types and states, a restart window) and a random exit, the pure function's plan equals
  the decision the reference port of ``supervisor.erl`` (``otp_model.py``) takes in the same
  state. The model is driven one step: its supervisor handles exactly that one ``'EXIT'`` (or
  ``try_again_restart`` cast), every child it shuts down exits at once, and the plan is read off
  the trace it emits (:func:`otp_step`);
* unit tests, one per strategy × restart type × exit kind, with the expected plan written out.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Sequence
from dataclasses import dataclass
from typing import Literal

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from rtrun._restart_plan import (
    ChildView,
    Escalate,
    ExitKind,
    GiveUp,
    Ignore,
    Plan,
    Restart,
    RestartType,
    Strategy,
    Terminate,
    plan_exit,
)

from .otp_model import _RESTARTING, Sup, Worker, _ExitMsg, _Model, _Recv, _Sup, _TryAgain, _WorkerProc

STRATEGIES: tuple[Strategy, ...] = ("one_for_one", "one_for_all", "rest_for_one")
RESTART_TYPES: tuple[RestartType, ...] = ("permanent", "transient", "temporary")
ModelState = Literal["running", "dead", "down", "restarting"]
"""A child in the model: ``dead`` runs for the planner but its ``'EXIT'`` is already queued."""

# ---------------------------------------------------------------------------- one model step


@dataclass(frozen=True, slots=True)
class Step:
    """What the model's supervisor did about one message."""

    verdict: str
    """``ok``, ``escalated`` or ``shutdown`` (``do_auto_shutdown``)."""
    events: tuple[tuple[str, str | None], ...]
    """``(kind, child)`` of every event emitted, in order."""
    restarts: tuple[float, ...]
    """The restart window afterwards, oldest first."""
    children: tuple[str, ...]
    """Children still in the list afterwards."""


def otp_step(
    spec: Sup,
    states: Sequence[ModelState],
    restarts: Sequence[float],
    now: float,
    child: str,
    reason: Literal["normal", "shutdown", "crash"] | None,
) -> Step:
    """``spec``'s supervisor, its children in ``states``, handles ``child``'s exit with ``reason``
    at ``now`` (``None``: its ``try_again_restart`` cast). Children it shuts down exit at once."""
    model = _Model(spec, ())
    model.now = now
    sup = _Sup(model, spec, None, model.new_pid())
    sup.restarts = sorted(restarts, reverse=True)  # OTP keeps them newest first
    for c, state in zip(sup.children, states, strict=True):
        assert isinstance(c.spec, Worker)
        if state in ("running", "dead") or (c.id == child and reason is not None):
            c.pid = model.new_pid()
            c.proc = proc = _WorkerProc(model, c.spec, sup, c.pid)
            if state == "dead" and c.id != child:
                proc.alive = False
                sup.mailbox.append(_ExitMsg(c.pid, "crash"))
        elif state == "restarting":
            c.pid = _RESTARTING
    target = next(c for c in sup.children if c.id == child)
    if reason is None:
        msg: _ExitMsg | _TryAgain = _TryAgain(child)
    else:
        assert isinstance(target.pid, int) and isinstance(target.proc, _WorkerProc)
        target.proc.alive = False
        msg = _ExitMsg(target.pid, reason)
    verdict = _drive(sup._handle(msg))
    return Step(
        verdict=verdict,
        events=tuple((e.kind, e.child) for e in model.trace),
        restarts=tuple(reversed(sup.restarts)),
        children=tuple(c.id for c in sup.children),
    )


def _drive(gen: Generator[_Recv, object, str]) -> str:
    """Run a supervisor callback; its only waits are ``shutdown/1``'s for one child's exit."""
    value: object = None
    while True:
        try:
            command = gen.send(value)
        except StopIteration as stop:
            return str(stop.value)
        assert isinstance(command, _Recv) and command.pid is not None
        value = _ExitMsg(command.pid, "shutdown")


def plan_from_step(step: Step, child: str, kind: ExitKind) -> Plan:
    """The model's decision as a :data:`Plan` (``stop`` only lists children that were running)."""
    events = list(step.events)
    if kind != "try_again":
        assert events.pop(0) == ("exited", child)
    kinds = [k for k, _ in events]
    if step.verdict == "escalated":
        assert events == [("escalated", child)]
        return Escalate(child, step.restarts)
    if "restarting" in kinds:
        stopped = tuple(c for k, c in events if k in ("stopped", "exited") and c != child)
        dropped = tuple(c for k, c in events if k == "terminated")
        started = tuple(c for k, c in events if k == "restarting")
        assert tuple(c for k, c in events if k == "started") == started
        return Restart(child, stop=stopped, drop=dropped, start=started, restarts=step.restarts)  # type: ignore[arg-type]
    if events == [("terminated", child)]:
        return Terminate(child, remove=child not in step.children)
    assert events == [], events
    return Ignore()


def running_only(plan: Plan, states: dict[str, ModelState]) -> Plan:
    """``plan`` with ``stop`` reduced to the members that run (those the model reports)."""
    if not isinstance(plan, Restart):
        return plan
    stop = tuple(c for c in plan.stop if states[c] in ("running", "dead"))
    return Restart(plan.child, stop=stop, drop=plan.drop, start=plan.start, restarts=plan.restarts)


# ---------------------------------------------------------------------------- the property

_KIND_TO_REASON: dict[ExitKind, Literal["normal", "shutdown", "crash"] | None] = {
    "normal": "normal",
    "shutdown": "shutdown",
    "abnormal": "crash",
    "try_again": None,
}


KINDS: tuple[ExitKind, ...] = (
    "abnormal",
    "abnormal",
    "abnormal",
    "normal",
    "shutdown",
    "try_again",
    "try_again",
)
"""Weighted towards the exits that restart something (Hypothesis draws uniformly)."""


@dataclass(frozen=True, slots=True)
class Case:
    """One random supervisor state and exit."""

    strategy: Strategy
    intensity: int
    period: float
    restart_types: tuple[RestartType, ...]
    states: tuple[ModelState, ...]
    """The model's view; the planner's follows (``dead`` counts as running)."""
    cause: int
    kind: ExitKind
    restarts: tuple[float, ...]
    now: float


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, 5))
    cause = draw(st.integers(0, n - 1))
    kind = draw(st.sampled_from(KINDS))
    restart_types = tuple(draw(st.lists(st.sampled_from(RESTART_TYPES), min_size=n, max_size=n)))
    states: list[ModelState] = []
    for i, restart in enumerate(restart_types):
        if i == cause and kind != "try_again":
            allowed: list[ModelState] = ["running"]  # it runs until its exit is handled
        elif restart == "temporary":  # removed when it ends: never down, never retried
            allowed = ["running", "dead"]
        else:
            allowed = ["running", "dead", "down", "restarting"]
        states.append(draw(st.sampled_from(allowed)))
    now = draw(st.floats(0.0, 100.0, allow_nan=False))
    return Case(
        strategy=draw(st.sampled_from(STRATEGIES)),
        intensity=draw(st.integers(0, 8)),
        period=draw(st.sampled_from([0.0, 0.5, 1.0, 5.0, 1e9])),
        restart_types=restart_types,
        states=tuple(states),
        cause=cause,
        kind=kind,
        restarts=tuple(sorted(draw(st.lists(st.floats(0.0, now, allow_nan=False), max_size=4)))),
        now=now,
    )


@settings(max_examples=1000, deadline=None)
@given(cases())
def test_plan_matches_the_otp_model(case: Case) -> None:
    ids = [f"c{i}" for i in range(len(case.restart_types))]
    cause = ids[case.cause]
    views = [
        ChildView(i, r, _planner_state(s))
        for i, r, s in zip(ids, case.restart_types, case.states, strict=True)
    ]
    plan = plan_exit(
        views,
        cause,
        case.kind,
        strategy=case.strategy,
        intensity=case.intensity,
        period=case.period,
        restarts=case.restarts,
        now=case.now,
    )
    spec = Sup(
        id="sup",
        children=tuple(Worker(id=i, restart=r) for i, r in zip(ids, case.restart_types, strict=True)),
        strategy=case.strategy,
        intensity=case.intensity,
        period=case.period,
    )
    step = otp_step(spec, case.states, case.restarts, case.now, cause, _KIND_TO_REASON[case.kind])
    reported = running_only(plan, dict(zip(ids, case.states, strict=True)))
    event(f"Restart stopping {len(reported.stop)}" if isinstance(reported, Restart) else type(plan).__name__)
    assert reported == plan_from_step(step, cause, case.kind)


def _planner_state(state: ModelState) -> Literal["running", "down", "restarting"]:
    return "running" if state == "dead" else state


# ---------------------------------------------------------------------------- unit tests


def three(restart: RestartType, middle: str = "running") -> list[ChildView]:
    """``a`` (permanent), ``b`` (``restart``, the cause), ``t`` (temporary), all running."""
    return [
        ChildView("a", "permanent", "running"),
        ChildView("b", restart, middle),  # type: ignore[arg-type]
        ChildView("t", "temporary", "running"),
    ]


def plan(
    children: Sequence[ChildView],
    kind: ExitKind,
    strategy: Strategy = "one_for_one",
    *,
    restarts: Collection[float] = (),
    intensity: int = 3,
) -> Plan:
    return plan_exit(
        children,
        "b",
        kind,
        strategy=strategy,
        intensity=intensity,
        period=5.0,
        restarts=tuple(restarts),
        now=10.0,
    )


GROUP = {
    "one_for_one": Restart("b", stop=(), drop=(), start=("b",), restarts=(10.0,)),
    "one_for_all": Restart("b", stop=("t", "a"), drop=("t",), start=("a", "b"), restarts=(10.0,)),
    "rest_for_one": Restart("b", stop=("t",), drop=("t",), start=("b",), restarts=(10.0,)),
}
"""What each strategy restarts when ``b`` restarts."""

EXPECTED: dict[tuple[RestartType, ExitKind], str] = {
    ("permanent", "normal"): "restart",
    ("permanent", "shutdown"): "restart",
    ("permanent", "abnormal"): "restart",
    ("transient", "normal"): "terminate",
    ("transient", "shutdown"): "terminate",
    ("transient", "abnormal"): "restart",
    ("temporary", "normal"): "remove",
    ("temporary", "shutdown"): "remove",
    ("temporary", "abnormal"): "remove",
}
"""OTP ``do_restart/3`` as a table."""


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("restart", "kind"), list(EXPECTED))
def test_strategy_by_restart_type(strategy: Strategy, restart: RestartType, kind: ExitKind) -> None:
    expected = {
        "restart": GROUP[strategy],
        "terminate": Terminate("b", remove=False),
        "remove": Terminate("b", remove=True),
    }[EXPECTED[(restart, kind)]]
    assert plan(three(restart), kind, strategy) == expected


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("restart", RESTART_TYPES)
def test_configuration_error_gives_up_whatever_the_restart_type(
    strategy: Strategy, restart: RestartType
) -> None:
    assert plan(three(restart), "configuration_error", strategy) == GiveUp("b")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_try_again_restarts_only_a_child_waiting_for_it(strategy: Strategy) -> None:
    assert plan(three("permanent", "restarting"), "try_again", strategy) == GROUP[strategy]
    assert plan(three("permanent", "running"), "try_again", strategy) == Ignore()
    assert plan(three("permanent", "down"), "try_again", strategy) == Ignore()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_intensity_exceeded_escalates(strategy: Strategy) -> None:
    # Three restarts in the window (5.0 ..10.0, inclusive boundary) plus this one: 4 > 3.
    assert plan(three("permanent"), "abnormal", strategy, restarts=(5.0, 6.0, 9.0)) == Escalate(
        "b", (5.0, 6.0, 9.0, 10.0)
    )
    # The oldest one left the window (4.9 < 10 - 5): 3 restarts, allowed.
    restarted = plan(three("permanent"), "abnormal", strategy, restarts=(4.9, 6.0, 9.0))
    assert isinstance(restarted, Restart) and restarted.restarts == (6.0, 9.0, 10.0)


def test_intensity_zero_escalates_at_the_first_restart_but_not_at_a_normal_end() -> None:
    assert plan(three("permanent"), "abnormal", intensity=0) == Escalate("b", (10.0,))
    assert plan(three("transient"), "normal", intensity=0) == Terminate("b", remove=False)


def test_group_restart_starts_children_that_are_down_and_stops_every_other_member() -> None:
    children = [
        ChildView("a", "transient", "down"),  # ended normally: a group restart brings it back
        ChildView("b", "permanent", "running"),
        ChildView("c", "permanent", "restarting"),  # its retry is superseded by the group restart
        ChildView("t", "temporary", "running"),
    ]
    assert plan(children, "abnormal", "one_for_all") == Restart(
        "b", stop=("t", "c", "a"), drop=("t",), start=("a", "b", "c"), restarts=(10.0,)
    )


def test_rest_for_one_of_the_last_child_restarts_it_alone() -> None:
    children = [ChildView("a", "permanent", "running"), ChildView("b", "permanent", "running")]
    assert plan(children, "abnormal", "rest_for_one") == Restart(
        "b", stop=(), drop=(), start=("b",), restarts=(10.0,)
    )


def test_unknown_child_is_ignored() -> None:
    assert plan([ChildView("a", "permanent", "running")], "abnormal") == Ignore()


def test_plan_is_pure() -> None:
    children = three("permanent")
    restarts = [1.0]
    first = plan_exit(
        children, "b", "abnormal", strategy="one_for_all", intensity=3, period=5.0, restarts=restarts, now=2.0
    )
    again = plan_exit(
        children, "b", "abnormal", strategy="one_for_all", intensity=3, period=5.0, restarts=restarts, now=2.0
    )
    assert first == again and restarts == [1.0] and children == three("permanent")
