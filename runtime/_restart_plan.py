"""The supervisor's restart decision as a pure function: :func:`plan_exit`.

Theory of operation
-------------------
When a child of a :class:`rtrun.Supervisor` exits, what happens next depends only on data: the
strategy, the children in start order with their restart types and whether each is running, the
exiting child and how it exited, the restart intensity window and the time. :func:`plan_exit`
maps exactly that to a :data:`Plan`; the supervisor (:mod:`rtrun._supervisor`) carries the plan
out with anyio (stopping, starting, waiting) and owns no decision of its own. No ``await``, no
clock, no I/O (h11's sans-io rule), so the decision is tested synchronously and compared, input
by input, with the reference port of ``supervisor.erl`` (``tests/runtime/otp_model.py``).

The rules, by their names in ``supervisor.erl``:

========================  ==================================================================
exit kind                 plan
========================  ==================================================================
``configuration_error``   :class:`GiveUp` whatever the restart type (rtrun's own rule: the
                          failure is deterministic, no restart can help; OTP has no such
                          reason and would burn its intensity on identical crashes)
``normal``, ``shutdown``  ``do_restart/3``: ``permanent`` restarts; ``transient`` and
                          ``temporary`` stop for good (:class:`Terminate`; ``del_child/2``: a
                          temporary child is forgotten, a transient one stays, down)
``abnormal``              ``permanent`` and ``transient`` restart; ``temporary`` terminates
``try_again``             a (re)start that failed is retried (``try_again_restart/1``) if the
                          child is still waiting for it, else nothing (:class:`Ignore`)
========================  ==================================================================

A restart first goes through ``add_restart/1`` (:func:`rtrun._restart.add_restart`): more than
``intensity`` restarts within ``period`` is :class:`Escalate`. Otherwise ``restart/3`` picks the
group: ``one_for_one`` the child alone; ``one_for_all`` every child; ``rest_for_one`` the child
and those started after it (``split_child/2``). A group restart (``restart_multiple_children/3``)
stops the other members in reverse start order (``terminate_children/2``: a running member is
shut down, one already down only has its state forgotten), drops the ``temporary`` members, and
starts the rest in start order -- also ``transient`` members that had ended normally.

``shutdown`` is the exit reason of a child stopped on request and of a nested supervisor that
escalated (OTP: a supervisor giving up exits ``shutdown``); it decides like ``normal`` and is
kept apart only so reports can say which it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from ._restart import add_restart

__all__ = [
    "ChildState",
    "ChildView",
    "Escalate",
    "ExitKind",
    "GiveUp",
    "Ignore",
    "Plan",
    "Restart",
    "RestartType",
    "Strategy",
    "Terminate",
    "plan_exit",
]

RestartType = Literal["permanent", "transient", "temporary"]
"""OTP child restart types."""
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
"""OTP restart strategies."""
ExitKind = Literal["normal", "shutdown", "abnormal", "configuration_error", "try_again"]
"""How a child's exit counts (see the table in the module docstring)."""
ChildState = Literal["running", "down", "restarting"]
"""``running``: has a live incarnation (or its exit is not handled yet: OTP still knows its
pid); ``down``: not running, kept in the list (OTP pid ``undefined``); ``restarting``: its
(re)start failed and a retry is pending (OTP's ``{restarting, Pid}`` marker)."""


@dataclass(frozen=True, slots=True)
class ChildView:
    """What the decision needs to know about one child."""

    id: str
    """Child id."""
    restart: RestartType
    """Its restart type."""
    state: ChildState
    """Whether it runs (see :data:`ChildState`)."""


@dataclass(frozen=True, slots=True)
class Ignore:
    """Do nothing: the exit concerns no known child, or a retry no longer pending."""


@dataclass(frozen=True, slots=True)
class Terminate:
    """The child stays down; no restart is counted."""

    child: str
    """The exiting child."""
    remove: bool
    """True for a ``temporary`` child: forget it (it never comes back, not even with its group)."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """A configuration error: stop every child (reverse order) and raise it to the parent."""

    child: str
    """The child that reported the configuration error."""


@dataclass(frozen=True, slots=True)
class Escalate:
    """Restart intensity exceeded: stop every child and escalate to the parent."""

    child: str
    """The child whose restart exceeded the intensity."""
    restarts: tuple[float, ...]
    """The restart window including this restart (its length exceeds the intensity)."""


@dataclass(frozen=True, slots=True)
class Restart:
    """Restart a group of children."""

    child: str
    """The child whose exit causes the restart."""
    stop: tuple[str, ...]
    """The other members of the group, in reverse start order: a running one is shut down, one
    already down only has its pending state forgotten (OTP ``terminate_children/2``)."""
    drop: tuple[str, ...]
    """``temporary`` members removed instead of restarted, in start order."""
    start: tuple[str, ...]
    """The members to start, in start order."""
    restarts: tuple[float, ...]
    """The restart window including this restart (oldest first)."""


Plan: TypeAlias = Ignore | Terminate | GiveUp | Escalate | Restart
"""What the supervisor does about one exit."""


def plan_exit(
    children: Sequence[ChildView],
    child: str,
    kind: ExitKind,
    *,
    strategy: Strategy,
    intensity: int,
    period: float,
    restarts: Sequence[float],
    now: float,
) -> Plan:
    """Decide what a supervisor does when ``child`` exits with ``kind`` at ``now``.

    Args:
        children: every child of the supervisor, in start order.
        child: id of the exiting child (or of the child whose retry is due).
        kind: how it exited (module docstring).
        strategy: the supervisor's restart strategy.
        intensity: maximum restarts within ``period`` (OTP ``MaxR``).
        period: the intensity window, seconds (OTP ``MaxT``).
        restarts: times of the restarts still in the window, oldest first.
        now: the runtime clock now, seconds.
    """
    index = next((i for i, c in enumerate(children) if c.id == child), None)
    if index is None:
        return Ignore()
    view = children[index]
    if kind == "configuration_error":
        return GiveUp(child)
    if kind == "try_again":
        if view.state != "restarting":
            return Ignore()
    elif not _restarts(view.restart, kind):
        return Terminate(child, remove=view.restart == "temporary")
    window = add_restart(tuple(restarts), now, period)
    if len(window) > intensity:
        return Escalate(child, window)
    return _group_restart(children, index, strategy, window)


def _restarts(restart: RestartType, kind: ExitKind) -> bool:
    """``do_restart/3``: whether an exit of ``kind`` restarts a child of type ``restart``."""
    return restart == "permanent" or (restart == "transient" and kind == "abnormal")


def _group_restart(
    children: Sequence[ChildView], index: int, strategy: Strategy, window: tuple[float, ...]
) -> Restart:
    """``restart/3``: the group the strategy picks, stopped, pruned and started again."""
    cause = children[index]
    if strategy == "one_for_one":
        return Restart(cause.id, stop=(), drop=(), start=(cause.id,), restarts=window)
    group = children[index:] if strategy == "rest_for_one" else children
    return Restart(
        cause.id,
        stop=tuple(c.id for c in reversed(group) if c is not cause),
        drop=tuple(c.id for c in group if c.restart == "temporary"),
        start=tuple(c.id for c in group if c.restart != "temporary"),
        restarts=window,
    )
