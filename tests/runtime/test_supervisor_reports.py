"""Failure reports and ``ConfigurationError`` supervision (issue 16), on virtual time.

A failure's traceback is logged once per distinct failure, identical repeats are summarised,
and a ``ConfigurationError`` is never restarted: reported once, it stops the supervisor (and,
through nested supervisors, the graph) without spending restart intensity.
"""

from __future__ import annotations

import logging

import anyio
import pytest
from rtrun import ActorSpec, ConfigurationError, EscalationError, GraphSpec, SupervisorSpec, open_graph
from rtrun._supervisor import ChildSpec, Supervisor, SupervisorFlags
from rtrun._supervisor_reports import REPEAT_SUMMARY_S, FailureLog, SupervisorEvent
from rtrun.testing import Crasher

from ..conftest import VIRTUAL

virtual_time = pytest.mark.parametrize("anyio_backend", VIRTUAL)


def _raise(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def _event(time: float, child: str = "c") -> SupervisorEvent:
    return SupervisorEvent(
        kind="exited", supervisor="root", child=child, reason="", traceback=None, restarts=0, time=time
    )


def _messages(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, bool]]:
    return [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]


def test_failure_log_reports_once_and_summarises_repeats(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "rtrun.supervisor")
    failures = FailureLog()
    for t in (0.0, 1.0, 2.0):  # the same crash (one raise site) three times
        failures.failure(_event(t), _raise(RuntimeError("boom")))
    failures.failure(_event(REPEAT_SUMMARY_S), _raise(RuntimeError("boom")))  # a period later
    failures.failure(_event(11.0), _raise(ValueError("other")))  # a different failure
    failures.failure(_event(12.0), _raise(ValueError("other")))
    failures.flush_all(13.0)
    assert _messages(caplog) == [
        ("ERROR", "root/c crashed: RuntimeError: boom", True),
        (
            "WARNING",
            f"root/c failed again the same way (3x in {REPEAT_SUMMARY_S:g} s): RuntimeError: boom",
            False,
        ),
        ("ERROR", "root/c crashed: ValueError: other", True),
        ("WARNING", "root/c failed again the same way (1x in 2 s): ValueError: other", False),
    ]


@virtual_time
async def test_crash_loop_logs_one_traceback_and_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "rtrun.supervisor")
    spec = GraphSpec(
        name="loop",
        root=SupervisorSpec(id="root", parent=None, intensity=3, period_s=60.0),
        actors=(ActorSpec(id="c", kind=Crasher, params={"crash_after_s": 1.0}),),
    )
    with pytest.raises(EscalationError):
        async with open_graph(spec):
            await anyio.sleep(100)
    errors = [m for m in _messages(caplog) if m[2]]
    assert errors == [("ERROR", "root/c crashed: RuntimeError: c: crashing after 1.0 s", True)]
    assert (
        "WARNING",
        "root/c failed again the same way (3x in 3 s): RuntimeError: c: crashing after 1.0 s",
        False,
    ) in (_messages(caplog))


@virtual_time
async def test_configuration_error_in_a_nested_supervisor_stops_the_graph_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "rtrun.supervisor")
    spec = GraphSpec(
        name="cfg",
        supervisors=(SupervisorSpec(id="inner", intensity=10, period_s=60.0),),
        actors=(
            ActorSpec(id="ok", kind=Crasher),
            ActorSpec(
                id="c",
                kind=Crasher,
                supervisor="inner",
                params={"crash_after_s": 1.0, "configuration_error": True},
            ),
        ),
    )
    t0 = anyio.current_time()
    with pytest.raises(ConfigurationError, match=r"c: crashing after 1\.0 s") as info:
        async with open_graph(spec) as graph:
            await anyio.sleep(100)
    assert info.value.actor == "c"
    assert anyio.current_time() - t0 == pytest.approx(1.0)  # no restart, no backoff, no timeout
    assert graph.status().state == "failed" and graph.status().restarts == 0
    kinds = [(e.supervisor, e.child, e.kind) for e in graph.status().events if e.kind not in ("started",)]
    assert kinds == [
        ("inner", "c", "exited"),
        ("inner", "c", "gave_up"),
        ("root", "inner", "exited"),
        ("root", "inner", "gave_up"),
        ("root", "ok", "stopped"),
    ]
    assert [m for m in _messages(caplog) if m[2]] == [
        ("ERROR", "inner/c crashed: ConfigurationError: c: crashing after 1.0 s", True)
    ]


@virtual_time
async def test_configuration_error_when_restarting_is_not_retried() -> None:
    starts: list[int] = []

    async def start(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        starts.append(1)
        if len(starts) > 1:
            raise ConfigurationError("the hardware does not match")
        task_status.started()
        await anyio.sleep(1.0)
        raise RuntimeError("transient fault")

    sup = Supervisor("root", [ChildSpec(id="c", start=start)], SupervisorFlags(intensity=10, period=60.0))
    with pytest.raises(ConfigurationError, match="does not match") as info:
        await sup.run()
    assert len(starts) == 2 and info.value.actor == "c" and sup.escalations == 0
    assert [e.kind for e in sup.events] == ["started", "exited", "restarting", "start_failed", "gave_up"]
