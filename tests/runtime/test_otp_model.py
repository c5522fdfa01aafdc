"""The OTP reference model itself (``otp_model.py``), checked against hand-traced ``supervisor.erl``.

Each expected trace below was derived by following the Erlang code path named in the test's
docstring, not by running the model; rtrun is not involved here.
"""

from __future__ import annotations

import pytest

from .otp_model import Exit, Result, Sup, Worker, as_rtrun, run_model


def root(*children: Worker | Sup, **flags: object) -> Sup:
    return Sup(id="root", children=children, **flags)  # type: ignore[arg-type]


def lines(result: Result) -> list[str]:
    return [
        f"{e.time:g} {e.supervisor}/{e.child} {e.kind}{' ' + e.reason if e.reason else ''}"
        for e in result.trace
    ]


def started(sup: str, *ids: str, at: float = 0) -> list[str]:
    return [f"{at:g} {sup}/{i} started" for i in ids]


def stopped(sup: str, *ids: str, at: float) -> list[str]:
    return [f"{at:g} {sup}/{i} stopped" for i in ids]


def restarting(sup: str, *ids: str, at: float) -> list[str]:
    return [f"{at:g} {sup}/{i} restarting" for i in ids]


def test_exit_during_group_restart_is_consumed_and_counts_no_restart() -> None:
    """one_for_all a, b, c (c stops in 2 s), intensity 1: a crashes at 1, b at 2 while c stops.

    restart/2 -> add_restart (1 of 1) -> terminate_children: shutdown(c) until 3; b's 'EXIT'
    waits in the mailbox and unlink_flush consumes it when b's turn comes; start a, b, c at 3.
    """
    spec = root(Worker(id="a"), Worker(id="b"), Worker(id="c", stop_s=2.0), strategy="one_for_all")
    result = run_model(spec, [Exit(1, "a"), Exit(2, "b")], until=4)
    assert lines(result) == [
        *started("root", "a", "b", "c"),
        "1 root/a exited abnormal",
        "3 root/c stopped",
        "3 root/b exited abnormal",
        *restarting("root", "a", "b", "c", at=3),
        *started("root", "a", "b", "c", at=3),
        *stopped("root", "c", "b", "a", at=6),
    ]
    assert result.outcome == "stopped"


@pytest.mark.parametrize(("second", "outcome"), [(6.0, "escalated"), (6.25, "stopped")])
def test_add_restart_window_is_inclusive(second: float, outcome: str) -> None:
    """add_restart/3 keeps R >= Now - Period: at 6, the restart at 1 is still in a 5 s window."""
    spec = root(Worker(id="a"), intensity=1, period=5.0)
    result = run_model(spec, [Exit(1, "a"), Exit(second, "a")], until=8)
    assert result.outcome == outcome
    assert lines(result)[-1] == (
        f"{second:g} root/a escalated" if outcome == "escalated" else "8 root/a stopped"
    )


def test_failed_restarts_are_retried_through_the_mailbox_and_counted() -> None:
    """restart(one_for_one) fails -> {try_again, a} -> cast -> restart/2 -> add_restart again."""
    spec = root(Worker(id="a", fail_starts=frozenset({2, 3})), Worker(id="b"), intensity=2)
    assert lines(run_model(spec, [Exit(1, "a")], until=2)) == [
        *started("root", "a", "b"),
        "1 root/a exited abnormal",
        "1 root/a restarting",
        "1 root/a start_failed",
        "1 root/a restarting",
        "1 root/a start_failed",
        "1 root/a escalated",  # third restart within 5 s > intensity 2
        "1 root/b stopped",
    ]


def test_retry_waits_behind_an_exit_already_queued() -> None:
    """rest_for_one a, b, c: b crashes at 1 (c stops until 3), a crashes at 2. At 3 b fails to
    start: the try_again cast queues behind a's 'EXIT', which restarts a, b, c first; the retry
    then finds b running and does nothing."""
    spec = root(
        Worker(id="a"),
        Worker(id="b", fail_starts=frozenset({2})),
        Worker(id="c", stop_s=2.0),
        strategy="rest_for_one",
        intensity=5,
    )
    assert lines(run_model(spec, [Exit(1, "b"), Exit(2, "a")], until=4))[3:15] == [
        "1 root/b exited abnormal",
        "3 root/c stopped",
        *restarting("root", "b", "c", at=3),
        "3 root/b start_failed",
        "3 root/a exited abnormal",
        *restarting("root", "a", "b", "c", at=3),  # b (restarting) and c (undefined): nothing to stop
        *started("root", "a", "b", "c", at=3),
    ]


def test_queued_exits_are_handled_in_arrival_order() -> None:
    """rest_for_one a, b, c, d (d stops in 2 s): c at 1, b at 1.5, a at 2: b's restart comes
    before a's (mailbox order), so there are three restarts, not two."""
    spec = root(
        *(Worker(id=i) for i in "abc"), Worker(id="d", stop_s=2.0), strategy="rest_for_one", intensity=3
    )
    trace = lines(run_model(spec, [Exit(1, "c"), Exit(1.5, "b"), Exit(2, "a")], until=8))
    assert [x for x in trace if "restarting" in x] == [
        *restarting("root", "c", "d", at=3),
        *restarting("root", "b", "c", "d", at=5),
        *restarting("root", "a", "b", "c", "d", at=7),
    ]


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
def test_transient_that_ended_is_started_again_by_its_group(strategy: str) -> None:
    """do_restart(normal, transient) -> del_child: pid undefined, spec kept; terminate_children
    skips it (not a pid) and start_children starts it with the others."""
    spec = root(Worker(id="a"), Worker(id="t", restart="transient"), strategy=strategy)
    assert lines(run_model(spec, [Exit(1, "t", "normal"), Exit(2, "a")], until=3))[2:] == [
        "1 root/t exited normal",
        "1 root/t terminated",
        "2 root/a exited abnormal",
        *restarting("root", "a", "t", at=2),
        *started("root", "a", "t", at=2),
        *stopped("root", "t", "a", at=3),
    ]


def test_temporary_sibling_is_dropped_by_a_group_restart() -> None:
    """terminate_children: a temporary child is shut down and removed, never restarted."""
    spec = root(Worker(id="a"), Worker(id="tmp", restart="temporary"), Worker(id="c"), strategy="one_for_all")
    assert lines(run_model(spec, [Exit(1, "a")], until=2))[3:] == [
        "1 root/a exited abnormal",
        *stopped("root", "c", "tmp", at=1),
        "1 root/tmp terminated",
        *restarting("root", "a", "c", at=1),
        *started("root", "a", "c", at=1),
        *stopped("root", "c", "a", at=2),
    ]


def test_shutdown_timeout_then_kill() -> None:
    """shutdown/1: exit(Pid, shutdown), no 'DOWN' within Shutdown ms -> exit(Pid, kill)."""
    spec = root(Worker(id="a"), Worker(id="b", stop_s=3.0, shutdown_timeout=1.0), strategy="one_for_all")
    assert lines(run_model(spec, [Exit(1, "a")], until=4))[2:5] == [
        "1 root/a exited abnormal",
        "2 root/b killed",
        "2 root/b stopped",
    ]


@pytest.mark.parametrize(
    ("restart", "expected"),
    [
        ("permanent", ["1 root/inner restarting", "1 inner/leaf started", "1 root/inner started"]),
        ("transient", ["1 root/inner terminated"]),
        ("temporary", ["1 root/inner terminated"]),
    ],
)
def test_nested_escalation_is_exit_shutdown(restart: str, expected: list[str]) -> None:
    """A supervisor that gives up stops with reason shutdown: do_restart restarts a permanent one
    (restart/2, counted: the parent has intensity 1 here) and deletes the others (no restart)."""
    nested = Sup(id="inner", children=(Worker(id="leaf"),), intensity=0, restart=restart)  # type: ignore[arg-type]
    result = run_model(root(Worker(id="s"), nested, intensity=1), [Exit(1, "leaf")], until=2)
    assert lines(result)[3:6] == [
        "1 inner/leaf exited abnormal",
        "1 inner/leaf escalated",
        "1 root/inner exited normal",
    ]
    assert lines(result)[6 : 6 + len(expected)] == expected
    assert result.outcome == "stopped"


def test_initial_start_failure_stops_started_children() -> None:
    """init_children: start_children aborts at b; terminate_children stops a; {stop, shutdown}."""
    spec = root(Worker(id="a"), Worker(id="b", fail_starts=frozenset({1})), Worker(id="c"))
    result = run_model(spec, [], until=1)
    assert lines(result) == ["0 root/a started", "0 root/b start_failed", "0 root/a stopped"]
    assert result.outcome == "start_failed"


@pytest.mark.parametrize(
    ("auto_shutdown", "outcome"),
    [("never", "stopped"), ("any_significant", "shutdown"), ("all_significant", "stopped")],
)
def test_auto_shutdown(auto_shutdown: str, outcome: str) -> None:
    """do_auto_shutdown/2 after a significant transient child ended normally (b still runs)."""
    spec = root(
        Worker(id="t", restart="transient", significant=True),
        Worker(id="b", restart="transient", significant=True),
        auto_shutdown=auto_shutdown,
    )
    assert run_model(spec, [Exit(1, "t", "normal")], until=2).outcome == outcome


def test_as_rtrun_returns_when_no_child_is_left() -> None:
    """rtrun's rule: with every child significant, all_significant shuts down when none is left."""
    spec = root(Worker(id="t", restart="transient"), Worker(id="p"))
    script = [Exit(1, "t", "normal"), Exit(2, "p", "normal")]
    assert run_model(as_rtrun(spec), script, until=3).outcome == "stopped"  # p is permanent: back
    spec = root(Worker(id="t", restart="transient"), Worker(id="tmp", restart="temporary"))
    script = [Exit(1, "t", "normal"), Exit(2, "tmp")]
    assert run_model(as_rtrun(spec), script, until=3).outcome == "shutdown"
    assert run_model(spec, script, until=3).outcome == "stopped"  # OTP's default: never


def test_script_must_name_known_unique_workers() -> None:
    with pytest.raises(ValueError, match="unknown workers"):
        run_model(root(Worker(id="a")), [Exit(1, "zz")], until=2)
    with pytest.raises(ValueError, match="unique"):
        run_model(root(Worker(id="a"), Sup(id="s", children=(Worker(id="a"),))), [], until=2)
