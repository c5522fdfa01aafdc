"""Randomized fault injection: 1,200 crashes across a 3-level tree, checked against a pure OTP model.

The model replays the same crash sequence (same virtual times) through OTP's rules — restart
groups per strategy, intensity windows, escalation to the parent, fresh windows for restarted
supervisors — and predicts every child's restart count and every supervisor's escalations. The
real tree must match exactly, and no task may be left behind.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
import pytest
import trio.testing
from rtrun import EscalationError
from rtrun._restart import RestartWindow
from rtrun._supervisor import ChildSpec, ChildStatus, Supervisor, SupervisorFlags

CRASHES = 1200

# (id, strategy, intensity, period, children); a child is a leaf id (str) or a nested tuple.
TREE = (
    "root", "one_for_one", 6, 5.0, [
        "r1",
        ("A", "rest_for_one", 3, 3.0, ["a1", ("C", "one_for_all", 2, 2.0, ["c1", "c2"]), "a2"]),
        ("B", "one_for_all", 3, 4.0, ["b1", "b2", "b3"]),
    ],
)  # fmt: skip


@dataclass
class Node:
    id: str
    strategy: str
    window: RestartWindow
    children: list[str | Node]
    parent: Node | None = None
    escalations: int = 0
    restarts: dict[str, int] = field(default_factory=dict)


def build_model(spec: tuple, parent: Node | None = None) -> Node:  # type: ignore[type-arg]
    sid, strategy, intensity, period, kids = spec
    node = Node(sid, strategy, RestartWindow(intensity, period), [], parent)
    node.children = [build_model(k, node) if isinstance(k, tuple) else k for k in kids]
    return node


def name(child: str | Node) -> str:
    return child if isinstance(child, str) else child.id


def reset_subtree(node: Node) -> None:
    node.window.reset()
    for child in node.children:
        if isinstance(child, Node):
            reset_subtree(child)


def model_fail(node: Node, failed: str, t: float) -> bool:
    """Child ``failed`` of ``node`` crashed at ``t``; return False if the root escalated."""
    if not node.window.add(t):
        node.escalations += 1
        if node.parent is None:
            reset_subtree(node)  # the test restarts the root: a fresh tree
            return False
        return model_fail(node.parent, node.id, t)
    ids = [name(c) for c in node.children]
    index = ids.index(failed)
    group = {"one_for_one": [index], "one_for_all": range(len(ids)), "rest_for_one": range(index, len(ids))}[
        node.strategy
    ]
    for i in group:
        child = node.children[i]
        node.restarts[name(child)] = node.restarts.get(name(child), 0) + 1
        if isinstance(child, Node):
            reset_subtree(child)
    return True


def leaf_parent(node: Node, leaf: str) -> Node | None:
    for child in node.children:
        if child == leaf:
            return node
        if isinstance(child, Node) and (found := leaf_parent(child, leaf)):
            return found
    return None


def all_supervisors(node: Node) -> list[Node]:
    return [node] + [s for c in node.children if isinstance(c, Node) for s in all_supervisors(c)]


class Leaves:
    """Leaf children that crash on demand."""

    def __init__(self) -> None:
        self.crash: dict[str, anyio.Event] = {}

    def spec(self, leaf: str) -> ChildSpec:
        async def start(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            event = self.crash[leaf] = anyio.Event()
            task_status.started()
            await event.wait()
            raise RuntimeError(f"injected crash in {leaf}")

        return ChildSpec(id=leaf, start=start, shutdown_timeout=1.0)


def build_real(spec: tuple, leaves: Leaves, sups: dict[str, Supervisor]) -> Supervisor:  # type: ignore[type-arg]
    sid, strategy, intensity, period, kids = spec
    children = [
        build_real(k, leaves, sups).child_spec() if isinstance(k, tuple) else leaves.spec(k) for k in kids
    ]
    sups[sid] = Supervisor(
        sid, children, SupervisorFlags(strategy=strategy, intensity=intensity, period=period)
    )
    return sups[sid]


def real_restarts(status: ChildStatus, into: dict[str, dict[str, int]]) -> None:
    into[status.id] = {c.id: c.restarts for c in status.children if c.restarts}
    for child in status.children:
        if child.strategy is not None:
            real_restarts(child, into)


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


async def test_randomized_fault_injection_matches_otp_model() -> None:
    rng = random.Random(20261121)
    model = build_model(TREE)
    leaves, sups = Leaves(), {}
    root = build_real(TREE, leaves, sups)
    leaf_ids = sorted(leaves_of(TREE))
    tasks_before = len(anyio.get_running_tasks())
    injected = root_escalations = 0

    while injected < CRASHES:
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                while injected < CRASHES:
                    await anyio.sleep(rng.expovariate(1 / 0.4))
                    leaf = rng.choice(leaf_ids)
                    now = anyio.current_time()
                    leaves.crash[leaf].set()
                    injected += 1
                    parent = leaf_parent(model, leaf)
                    assert parent is not None
                    alive = model_fail(parent, leaf, now)
                    await anyio.lowlevel.checkpoint()  # let the supervisors react (virtual time stands still)
                    await trio.testing.wait_all_tasks_blocked()
                    if not alive:
                        pytest.fail("the root should have escalated")  # pragma: no cover
                tg.cancel_scope.cancel()
        except* EscalationError:
            root_escalations += 1

    expected = {n.id: n.escalations for n in all_supervisors(model)}
    actual = {sid: sup.escalations for sid, sup in sups.items()}
    assert actual == expected
    assert root_escalations == expected["root"] > 0
    assert sum(expected.values()) > 20  # the run exercised escalation paths, not only restarts
    got: dict[str, dict[str, int]] = {}
    real_restarts(root.tree(), got)
    assert got == {n.id: {k: v for k, v in n.restarts.items() if v} for n in all_supervisors(model)}
    await trio.testing.wait_all_tasks_blocked()
    assert len(anyio.get_running_tasks()) == tasks_before  # 0 leaked tasks


def leaves_of(spec: tuple) -> list[str]:  # type: ignore[type-arg]
    return [x for k in spec[4] for x in (leaves_of(k) if isinstance(k, tuple) else [k])]
