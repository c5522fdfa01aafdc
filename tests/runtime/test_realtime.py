"""Real-time hosts: the ``[realtime]`` tables are parsed, validated, applied and reported.

Applying is tested in child processes only (``rtrun run`` subprocesses): a real-time policy or an
affinity set in the pytest process would outlive the test. The effective scheduling is read
twice: from outside (``os.sched_getscheduler(pid)``, ``os.sched_getaffinity(tid)``) and from
inside, by a probe actor that reports its loop thread and an anyio worker thread.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from rtrun._errors import GraphError
from rtrun._graph import parse_graph
from rtrun._realtime import RealtimeSettings, machine_problems
from rtrun._toml_lines import locate
from rtrun._validate import compile_graph, host_realtime, process_realtime

PROBE = '''
"""Reports the scheduling of its loop thread and of an anyio worker thread."""
import json, os, sys, threading
import anyio
from rtrun import Actor


def sched():
    return {
        "policy": os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK,
        "priority": os.sched_getparam(0).sched_priority,
        "cpus": sorted(os.sched_getaffinity(0)),
        "tid": threading.get_native_id(),
    }


class Probe(Actor):
    async def run(self, ctx, *, task_status):
        report = {"loop": sched(), "worker": await anyio.to_thread.run_sync(sched)}
        print("PROBE " + json.dumps(report), file=sys.stderr, flush=True)
        task_status.started()
        await anyio.sleep_forever()
'''

GRAPH = """
[graph]
name = "rt"
{tables}
[[actor]]
id = "probe"
kind = "probe:Probe"
{actor}
"""


def graph_text(tables: str, actor: str = "") -> str:
    return GRAPH.format(tables=tables, actor=actor)


def compiled(text: str) -> object:
    text = text.replace("probe:Probe", "rtrun.testing:Collector")  # no probe module here
    spec = parse_graph(tomllib.loads(text), "g.toml", lines=locate(text), collect=True)
    return compile_graph(spec)


def problems(text: str) -> list[tuple[str, str, int | None]]:
    with pytest.raises(GraphError) as info:
        compiled(text)
    return [(p.where, p.rule, p.line) for p in info.value.problems]


# ------------------------------------------------------------------ parsing and validation


def test_host_table_overrides_graph_wide_key_by_key() -> None:
    text = graph_text(
        """
[realtime]
policy = "fifo"
priority = 70
lock_memory = true
[hosts.robot.realtime]
priority = 85
loop_cpus = [1]
[hosts.gpu]
""",
        'host = "robot"',
    )
    graph = compiled(text)
    robot = host_realtime(graph.spec, "robot")  # type: ignore[attr-defined]
    assert robot == RealtimeSettings(policy="fifo", priority=85, loop_cpus=(1,), lock_memory=True)
    gpu = host_realtime(graph.spec, "gpu")  # type: ignore[attr-defined]
    assert gpu == RealtimeSettings(policy="fifo", priority=70, lock_memory=True)
    # several hosts in one process: one loop thread, so the graph-wide table only
    assert process_realtime(graph.spec, {"robot", "gpu"})[0] == gpu  # type: ignore[attr-defined]
    assert process_realtime(graph.spec, {"robot"}) == (robot, "[hosts.robot.realtime]")  # type: ignore[attr-defined]


def test_no_table_means_nothing_requested() -> None:
    graph = compiled(graph_text(""))
    settings, where = process_realtime(graph.spec, {"local"})  # type: ignore[attr-defined]
    assert not settings.requested and where == "[realtime]"


def test_invalid_values_are_reported_with_lines() -> None:
    text = graph_text(
        """
[realtime]
policy = "deadline"
priority = 120
loop_cpus = [-1]
lock_memory = "yes"
timer_slak_us = 1
[hosts.robot.realtime]
worker_cpus = []
worker_policy = "fifo"
""",
        'host = "robot"',
    )
    found = problems(text)
    lines = text.splitlines()
    assert any("'policy' must be one of other, fifo, rr" in r for _, r, _ in found)
    assert any("'priority' must be an integer in 1..99, got 120" in r for _, r, _ in found)
    assert any("'loop_cpus' must be a non-empty list" in r for _, r, _ in found)
    assert any("'lock_memory' must be true or false" in r for _, r, _ in found)
    assert any("unknown key 'timer_slak_us'; did you mean 'timer_slack_us'?" in r for _, r, _ in found)
    assert any(w == "[hosts.robot.realtime]" and "'worker_cpus'" in r for w, r, _ in found)
    assert any(w == "[hosts.robot.realtime]" and "'worker_policy' must be" in r for w, r, _ in found)
    for where, rule, line in found:  # every problem points at its key's line
        key = rule.split("'")[1]
        assert line is not None and key in lines[line - 1], (where, rule, line)


@pytest.mark.parametrize(
    ("table", "rule"),
    [
        ('policy = "fifo"', "policy 'fifo' needs a 'priority' in 1..99 (e.g. 80)"),
        ('policy = "other"\npriority = 10', "'priority' needs policy 'fifo' or 'rr' (policy is 'other')"),
    ],
)
def test_priority_and_policy_go_together(table: str, rule: str) -> None:
    found = problems(graph_text(f"[realtime]\n{table}"))
    assert [(w, r) for w, r, _ in found] == [("[realtime]", rule)]


def test_inline_host_table_is_validated() -> None:
    text = graph_text('[hosts.robot]\nrealtime = { policy = "rr", priority = 0 }', 'host = "robot"')
    found = problems(text)
    assert [(w, r) for w, r, _ in found] == [
        ("[hosts.robot] / realtime", "policy 'rr' needs a 'priority' in 1..99 (e.g. 80)")
    ]


def test_machine_problems() -> None:
    cpus = frozenset({0, 1, 2, 3})
    errors, warnings = machine_problems(RealtimeSettings(loop_cpus=(7,), worker_cpus=(0, 9)), cpus)
    assert errors == [
        "loop_cpus [7]: no such CPU on this machine (CPUs: [0,1,2,3])",
        "worker_cpus [9]: no such CPU on this machine (CPUs: [0,1,2,3])",
    ]
    errors, warnings = machine_problems(RealtimeSettings(loop_cpus=(3,), worker_cpus=(2, 3)), cpus)
    assert errors == [] and len(warnings) == 1 and "shares CPU [3] with the worker threads" in warnings[0]
    assert machine_problems(RealtimeSettings(loop_cpus=(3,)), cpus) == ([], [])  # workers get 0-2
    _, warnings = machine_problems(RealtimeSettings(loop_cpus=(0, 1, 2, 3)), cpus)
    assert "leave no other CPU for the worker threads" in warnings[0]


# ------------------------------------------------------------------ rtrun check / run


def rtrun(*args: str, timeout: float = 25.0, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rtrun", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        **kwargs,  # type: ignore[call-overload]
    )


def write_graph(tmp_path: Path, text: str) -> Path:
    (tmp_path / "probe.py").write_text(PROBE)
    path = tmp_path / "g.toml"
    path.write_text(text)
    return path


def test_check_warns_about_cpus_and_shared_loop_cpu(tmp_path: Path) -> None:
    missing = max(os.sched_getaffinity(0)) + 64
    path = write_graph(tmp_path, graph_text(f"[realtime]\nloop_cpus = [0]\nworker_cpus = [0, {missing}]"))
    result = rtrun("check", str(path))
    assert result.returncode == 0, result.stderr
    assert f"worker_cpus [{missing}]: no such CPU on this machine" in result.stderr
    assert "fine if that host runs on another machine" in result.stderr
    assert "shares CPU [0] with the worker threads" in result.stderr
    # `rtrun run` runs the host here: a CPU this machine lacks refuses the graph
    result = rtrun("run", str(path), "--duration", "0.1")
    assert result.returncode == 1 and f"worker_cpus [{missing}]" in result.stderr
    assert "probe" not in result.stderr.split("worker_cpus")[0]  # nothing started


def test_check_reports_an_invalid_table(tmp_path: Path) -> None:
    path = write_graph(tmp_path, graph_text('[realtime]\npolicy = "fifo"\npriority = 100'))
    result = rtrun("check", str(path))
    assert result.returncode == 1
    assert "'priority' must be an integer in 1..99, got 100" in result.stderr
    assert "line 6" in result.stderr or ":6" in result.stderr, result.stderr


def can_use_fifo() -> bool:
    """Whether this process may use SCHED_FIFO (tried in a short-lived thread)."""
    ok: list[bool] = []

    def attempt() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            ok.append(True)
        except OSError:
            ok.append(False)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    return ok[0]


needs_fifo = pytest.mark.skipif(not can_use_fifo(), reason="SCHED_FIFO is not permitted on this machine")
needs_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to pin")


def run_until_probe(
    path: Path, *args: str, preexec: object = None, prefix: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[str], dict[str, dict[str, object]], list[str]]:
    env = {**os.environ, "COLUMNS": "400", "PYTHONUNBUFFERED": "1"}
    cmd = [*prefix, sys.executable, "-m", "rtrun", "run", str(path), "--log-format", "json", *args]
    proc = subprocess.Popen(
        cmd,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        preexec_fn=preexec,  # type: ignore[arg-type]
    )
    lines: list[str] = []
    deadline = time.monotonic() + 20
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "PROBE " in line:
            return proc, json.loads(line.split("PROBE ", 1)[1]), lines
    proc.kill()
    proc.wait()
    raise AssertionError("no probe report:\n" + "".join(lines))


def messages(lines: list[str], level: str | None = None) -> list[str]:
    """The messages of the JSON log records among ``lines`` (at ``level``)."""
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return [r["msg"] for r in records if level is None or r["level"].lower() == level]


def finish(proc: subprocess.Popen[str], lines: list[str]) -> tuple[int, list[str]]:
    try:
        _, rest = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, lines + rest.splitlines(keepends=True)


@needs_fifo
@needs_two_cpus
def test_run_applies_the_table(tmp_path: Path) -> None:
    loop_cpu, *others = sorted(os.sched_getaffinity(0))[::-1]
    text = graph_text(
        f"[realtime]\npolicy = 'fifo'\npriority = 20\nloop_cpus = [{loop_cpu}]\n"
        "lock_memory = true\ntimer_slack_us = 1"
    )
    proc, probe, lines = run_until_probe(write_graph(tmp_path, text), "--duration", "2")
    try:
        # from outside: the main thread (pid == tid) is the loop thread
        assert os.sched_getscheduler(proc.pid) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
        assert os.sched_getparam(proc.pid).sched_priority == 20
        assert os.sched_getaffinity(proc.pid) == {loop_cpu}
        assert proc.stderr is not None
        while not any("running (" in m for m in messages(lines)):  # the sweep runs right then
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        for tid in map(int, os.listdir(f"/proc/{proc.pid}/task")):
            if tid != proc.pid:  # every other thread, native ones included: worker CPUs, not RT
                assert os.sched_getaffinity(tid) == set(others), tid
                assert os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK == os.SCHED_OTHER
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert "VmLck:" in status and int(status.split("VmLck:")[1].split()[0]) > 0
    finally:
        code, lines = finish(proc, lines)
    assert code == 0, "".join(lines)
    assert probe["loop"] == {**probe["loop"], "policy": os.SCHED_FIFO, "priority": 20, "cpus": [loop_cpu]}
    assert probe["worker"] == {**probe["worker"], "policy": os.SCHED_OTHER, "priority": 0, "cpus": others}
    summary = [m for m in messages(lines) if m.startswith("realtime [realtime]:")]
    assert len(summary) == 1 and "loop thread SCHED_FIFO priority 20" in summary[0]
    assert f"worker CPUs [{','.join(map(str, others))}], workers SCHED_OTHER" in summary[0]
    assert "memory locked" in summary[0] and messages(lines, "warning") == []


@needs_fifo
def test_workers_inherit_only_when_asked(tmp_path: Path) -> None:
    text = graph_text("[realtime]\npolicy = 'rr'\npriority = 5\nworker_policy = 'inherit'")
    proc, probe, lines = run_until_probe(write_graph(tmp_path, text), "--duration", "0.5")
    code, lines = finish(proc, lines)
    assert code == 0, "".join(lines)
    assert probe["loop"]["policy"] == probe["worker"]["policy"] == os.SCHED_RR
    assert probe["worker"]["priority"] == 5


def no_rt_limits() -> None:
    """In the child: RLIMIT_RTPRIO 0 (the capabilities are dropped by setpriv)."""
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (8 << 20, 8 << 20))


@pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0,
    reason="simulating an unprivileged user needs setpriv and root (to drop CAP_SYS_NICE/CAP_IPC_LOCK)",
)
def test_without_permission_warns_once_and_runs(tmp_path: Path) -> None:
    text = graph_text("[realtime]\npolicy = 'fifo'\npriority = 80\nlock_memory = true")
    drop = ("setpriv", "--inh-caps=-sys_nice,-ipc_lock", "--bounding-set=-sys_nice,-ipc_lock")
    proc, probe, lines = run_until_probe(
        write_graph(tmp_path, text), "--duration", "0.5", preexec=no_rt_limits, prefix=drop
    )
    code, lines = finish(proc, lines)
    assert code == 0, "".join(lines)
    assert probe["loop"]["policy"] == os.SCHED_OTHER
    warnings = messages(lines, "warning")
    assert len(warnings) == 1, "".join(lines)
    text = warnings[0]
    assert "real-time settings NOT applied (running anyway)" in text
    assert "no CAP_SYS_NICE and RLIMIT_RTPRIO is 0" in text
    assert " - rtprio 95' and '" in text and " - memlock unlimited' to /etc/security/limits.d/" in text
    assert "sudo setcap cap_sys_nice,cap_ipc_lock+ep" in text and "LimitRTPRIO=95" in text
    assert any("graph 'rt' running" in m for m in messages(lines))


@needs_fifo
@pytest.mark.slow
def test_isolate_children_apply_their_host_table(tmp_path: Path) -> None:
    text = f"""
[graph]
name = "rt_iso"
[realtime]
policy = "fifo"
priority = 10
[hosts.robot]
zenoh = {{ listen = ["tcp/127.0.0.1:{17450 + os.getpid() % 1000}"] }}
[hosts.robot.realtime]
priority = 30
[hosts.other]
zenoh = {{ connect = ["tcp/127.0.0.1:{17450 + os.getpid() % 1000}"] }}
[[actor]]
id = "probe"
kind = "probe:Probe"
host = "robot"
[[actor]]
id = "probe2"
kind = "probe:Probe"
host = "other"
"""
    path = write_graph(tmp_path, text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtrun", "run", str(path), "--isolate"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "400", "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    seen: dict[str, dict[str, object]] = {}
    lines: list[str] = []
    deadline = time.monotonic() + 25
    try:
        while len(seen) < 2 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "PROBE " in line:
                host = line.split("[", 1)[1].split("]", 1)[0]
                seen[host] = json.loads(line.split("PROBE ", 1)[1])
        # the launcher runs no actor and applies nothing: it stays an ordinary process
        assert os.sched_getscheduler(proc.pid) == os.SCHED_OTHER
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=25)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert set(seen) == {"robot", "other"}, "".join(lines)
    assert seen["robot"]["loop"]["priority"] == 30  # type: ignore[index]
    assert seen["other"]["loop"]["priority"] == 10  # type: ignore[index]


def test_status_shows_the_effective_settings(tmp_path: Path) -> None:
    script = tmp_path / "embed.py"
    script.write_text(
        """
import json, anyio
from rtrun import open_graph
from rtrun._realtime import RealtimeSettings, apply

apply(RealtimeSettings(timer_slack_us=100))


async def main():
    async with open_graph("g.toml") as graph:
        print(json.dumps(graph.status().realtime.as_dict()))

anyio.run(main)
"""
    )
    (tmp_path / "g.toml").write_text('[[actor]]\nid = "c"\nkind = "rtrun.testing:Collector"\n')
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=25
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["timer_slack_ns"] == 100_000 and report["policy"] == "other"
    assert report["not_applied"] == [] and report["memory_locked"] is False


def test_readme_snippet_is_a_valid_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```toml\n[hosts.robot.realtime]", 1)[1].split("```", 1)[0]
    text = f'[hosts.robot.realtime]{block}\n[[actor]]\nid = "probe"\nkind = "probe:Probe"\nhost = "robot"\n'
    graph = compiled(text)
    settings = host_realtime(graph.spec, "robot")  # type: ignore[attr-defined]
    assert settings == RealtimeSettings(
        policy="fifo", priority=80, loop_cpus=(3,), worker_cpus=(0, 1, 2), lock_memory=True
    )
    assert machine_problems(settings, frozenset(range(4))) == ([], [])
