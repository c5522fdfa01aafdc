"""Real-time scheduling of a host process: the ``[realtime]`` and ``[hosts.<name>.realtime]`` tables.

Keys (every one optional; a host table overrides the graph-wide ``[realtime]`` key by key, the
same merge as ``[zenoh]``)::

    policy         = "fifo"   # other (default) | fifo | rr: the event-loop thread's policy
    priority       = 80       # 1..99 for fifo/rr (absent or 0 for other)
    loop_cpus      = [3]      # CPUs of the event-loop thread
    worker_cpus    = [0, 1]   # CPUs of every other thread (drivers, encoders, torch, Zenoh)
    worker_policy  = "other"  # other (default): workers never run real-time | inherit
    lock_memory    = true     # mlockall: no page fault stalls the loop
    timer_slack_us = 1        # the loop thread's timer slack (kernel default 50 us)

Theory of operation
-------------------
Linux schedules *threads*: policy, priority, affinity and timer slack belong to each thread and
a new thread copies them from the thread that creates it. The event loop runs in the main
thread, which also creates almost every other thread of the process (anyio's and trio's worker
threads, asyncio's executor, Zenoh's runtime, actors' writer threads). :func:`apply` runs once,
in the main thread, before the event loop starts (``rtrun run`` calls it, in-process, in every
``--host`` process and so in every ``--isolate`` child), and then:

* **policy** -- ``sched_setscheduler`` with ``SCHED_RESET_ON_FORK`` (unless ``worker_policy =
  "inherit"``): the kernel starts every thread and process the loop thread creates as
  ``SCHED_OTHER`` at nice 0, whoever creates it, Python or native code, at no cost. This is the
  guarantee that worker threads never inherit the loop's real-time priority unless asked.
* **affinity** -- the loop thread is pinned to ``loop_cpus``. Affinity has no reset-on-fork flag,
  so threads get ``worker_cpus`` (default: the CPUs this process may use minus ``loop_cpus``)
  in two ways: every ``threading.Thread`` started from then on (anyio/trio workers included) sets
  its own affinity before running its target, through a one-shot :func:`threading.setprofile`
  hook that then restores the previous profile function; and :func:`sweep_threads` moves every
  other thread of the process (native ones included: Zenoh's runtime, OpenMP pools) once the
  graph is running. Creating the worker pool before raising the loop's priority was rejected:
  anyio creates workers lazily and retires idle ones, so the pool is never complete. A native
  thread the loop thread creates *after* the sweep keeps the loop's CPUs (but not its priority).
* **memory** -- ``mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)``, only when the process may
  lock without limit (``CAP_IPC_LOCK`` or ``RLIMIT_MEMLOCK`` unlimited): with a finite limit
  ``MCL_FUTURE`` makes later allocations fail (a ``MemoryError`` in torch), which is worse than
  a page fault. ``MCL_ONFAULT`` locks pages as they are touched instead of faulting in every
  reservation (CUDA reserves gigabytes of address space it never touches).
* **timer slack** -- ``prctl(PR_SET_TIMERSLACK)`` on the loop thread (real-time threads get no
  slack from the kernel anyway; this is for ``policy = "other"``).

Nothing here makes a process fail to start for lack of permission: what cannot be applied is
collected and :func:`apply` returns a :class:`RealtimeReport` whose ``warning()`` is one message
naming the fix (the ``limits.conf`` lines, ``setcap``, or a systemd service). The report is kept
for :meth:`rtrun.Graph.status` (``GraphStatus.realtime``). An application embedding a graph with
``open_graph`` owns its process and its scheduling: nothing is applied there.
"""

from __future__ import annotations

import ctypes
import errno
import getpass
import os
import resource
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

__all__ = [
    "POLICIES",
    "REALTIME_KEYS",
    "RealtimeReport",
    "RealtimeSettings",
    "apply",
    "current_report",
    "machine_problems",
    "parse_realtime",
    "sweep_threads",
]

POLICIES: Final = ("other", "fifo", "rr")
WORKER_POLICIES: Final = ("other", "inherit")
REALTIME_KEYS: Final = frozenset(
    {"policy", "priority", "loop_cpus", "worker_cpus", "worker_policy", "lock_memory", "timer_slack_us"}
)
PRIORITY_RANGE: Final = (1, 99)
"""Linux ``sched_get_priority_min/max`` for SCHED_FIFO and SCHED_RR (fixed by the kernel ABI)."""
SUGGESTED_RTPRIO: Final = 95
"""The ``rtprio`` limit the fix suggests: room for a loop at 80-90 under the kernel's own threads
at 99 (migration, watchdog), as the PREEMPT_RT and JACK guides recommend."""
CAP_IPC_LOCK: Final = 14
CAP_SYS_NICE: Final = 23
PR_SET_TIMERSLACK: Final = 29
PR_GET_TIMERSLACK: Final = 30
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
_POLICY_CONST: Final = {"other": os.SCHED_OTHER, "fifo": os.SCHED_FIFO, "rr": os.SCHED_RR}
_POLICY_NAME: Final = {v: k for k, v in _POLICY_CONST.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeSettings:
    """The merged realtime table of one host (every field at its default: nothing is changed)."""

    policy: str = "other"
    """Scheduling policy of the event-loop thread: ``other``, ``fifo`` or ``rr``."""
    priority: int = 0
    """Real-time priority of the loop thread (1..99 with fifo/rr)."""
    loop_cpus: tuple[int, ...] | None = None
    """CPUs of the loop thread; None leaves its affinity alone."""
    worker_cpus: tuple[int, ...] | None = None
    """CPUs of every other thread; None: the process's CPUs minus ``loop_cpus`` when those are set."""
    worker_policy: str = "other"
    """``other``: threads the loop creates start SCHED_OTHER; ``inherit``: they copy the loop's policy."""
    lock_memory: bool = False
    """Lock the process's memory (``mlockall``)."""
    timer_slack_us: float | None = None
    """Timer slack of the loop thread in microseconds; None leaves the kernel's (50 us)."""

    @property
    def requested(self) -> bool:
        """Whether the table asks for anything at all."""
        return self != RealtimeSettings()


@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeReport:
    """What :func:`apply` asked for and what took effect (``GraphStatus.realtime``)."""

    requested: RealtimeSettings
    """The settings asked for."""
    policy: str
    """Effective policy of the loop thread (``other``, ``fifo``, ``rr``)."""
    priority: int
    """Effective real-time priority of the loop thread (0 for ``other``)."""
    loop_cpus: tuple[int, ...]
    """Effective CPUs of the loop thread."""
    worker_cpus: tuple[int, ...] | None
    """CPUs given to worker threads (None: untouched, they share the loop's)."""
    reset_on_fork: bool
    """Threads and processes the loop thread creates start SCHED_OTHER."""
    memory_locked: bool
    """``mlockall`` succeeded."""
    timer_slack_ns: int
    """Effective timer slack of the loop thread."""
    not_applied: tuple[str, ...] = ()
    """One sentence per setting that did not take effect, with the reason."""
    fixes: tuple[str, ...] = ()
    """How to make them take effect."""

    def summary(self) -> str:
        """One line: the effective settings."""
        rt = f"SCHED_{self.policy.upper()}" + (f" priority {self.priority}" if self.priority else "")
        workers = "workers SCHED_OTHER" if self.reset_on_fork else "workers inherit the loop's policy"
        parts = [
            f"loop thread {rt}",
            f"loop CPUs {_cpus(self.loop_cpus)}",
            f"worker CPUs {_cpus(self.worker_cpus) if self.worker_cpus is not None else 'unchanged'}",
            workers,
            "memory locked" if self.memory_locked else "memory not locked",
            f"timer slack {self.timer_slack_ns} ns",
        ]
        return ", ".join(parts)

    def warning(self) -> str | None:
        """The one warning naming what did not take effect and the fix, or None."""
        if not self.not_applied:
            return None
        lines = ["real-time settings NOT applied (running anyway): " + "; ".join(self.not_applied)]
        lines += [f"  fix: {fix}" for fix in self.fixes]
        lines.append("  check the machine with: rtrun doctor")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (telemetry, ``--log-format json`` consumers)."""
        return {
            "policy": self.policy,
            "priority": self.priority,
            "loop_cpus": list(self.loop_cpus),
            "worker_cpus": None if self.worker_cpus is None else list(self.worker_cpus),
            "reset_on_fork": self.reset_on_fork,
            "memory_locked": self.memory_locked,
            "timer_slack_ns": self.timer_slack_ns,
            "not_applied": list(self.not_applied),
        }


def _cpus(cpus: Iterable[int]) -> str:
    return "[" + ",".join(str(c) for c in sorted(cpus)) + "]"


# ------------------------------------------------------------------------- parsing (pure)


def parse_realtime(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Check one raw table's keys and values: ``(clean values, [(key, rule), ...])``.

    Per-key rules only (types, names, ranges); :func:`settings_from` combines merged tables and
    checks the rules that involve several keys.
    """
    clean: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, value in raw.items():
        rule = _key_rule(key, value)
        if rule is None:
            clean[key] = tuple(value) if key.endswith("_cpus") else value
        else:
            problems.append((key, rule))
    return clean, problems


def _key_rule(key: str, value: Any) -> str | None:
    """Why ``key = value`` is invalid, or None."""
    if key not in REALTIME_KEYS:
        from ._suggest import did_you_mean

        return f"unknown key {key!r}{did_you_mean(key, REALTIME_KEYS)} (allowed: {', '.join(sorted(REALTIME_KEYS))})"
    if key in ("policy", "worker_policy"):
        allowed = POLICIES if key == "policy" else WORKER_POLICIES
        return None if value in allowed else f"{key!r} must be one of {', '.join(allowed)}, got {value!r}"
    if key == "priority":
        low, high = PRIORITY_RANGE
        ok = isinstance(value, int) and not isinstance(value, bool) and (value == 0 or low <= value <= high)
        return None if ok else f"'priority' must be an integer in {low}..{high}, got {value!r}"
    if key.endswith("_cpus"):
        ints = isinstance(value, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in value)
        if not ints or not value or min(value) < 0 or len(set(value)) != len(value):
            return f"{key!r} must be a non-empty list of distinct CPU numbers >= 0, e.g. [3], got {value!r}"
        return None
    if key == "lock_memory":
        return None if isinstance(value, bool) else f"'lock_memory' must be true or false, got {value!r}"
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return None if number and 0 <= value <= 1e6 else f"'timer_slack_us' must be 0..1000000, got {value!r}"


def settings_from(clean: Mapping[str, Any]) -> tuple[RealtimeSettings, list[tuple[str, str]]]:
    """Build the settings of merged, per-key-valid values; report the rules spanning keys."""
    settings = RealtimeSettings(**clean)
    problems = []
    if settings.policy == "other" and settings.priority:
        problems.append(("priority", "'priority' needs policy 'fifo' or 'rr' (policy is 'other')"))
    if settings.policy != "other" and not settings.priority:
        problems.append(("priority", f"policy {settings.policy!r} needs a 'priority' in 1..99 (e.g. 80)"))
    return settings, problems


def online_cpus() -> frozenset[int]:
    """The CPUs of this machine that are online (``/sys/devices/system/cpu/online``)."""
    try:
        text = Path("/sys/devices/system/cpu/online").read_text().strip()
    except OSError:
        return frozenset(range(os.cpu_count() or 1))
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return frozenset(cpus)


def machine_problems(
    settings: RealtimeSettings, cpus: frozenset[int] | None = None
) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` of ``settings`` on this machine: CPUs that do not exist are errors
    (the host cannot run here as written); a loop sharing a CPU with the workers is a warning."""
    cpus = online_cpus() if cpus is None else cpus
    errors = []
    for key in ("loop_cpus", "worker_cpus"):
        missing = sorted(set(getattr(settings, key) or ()) - cpus)
        if missing:
            errors.append(f"{key} {_cpus(missing)}: no such CPU on this machine (CPUs: {_cpus(cpus)})")
    warnings = []
    loop, workers = settings.loop_cpus, settings.worker_cpus
    if loop is not None and workers is not None and set(loop) & set(workers):
        shared = _cpus(set(loop) & set(workers))
        warnings.append(
            f"the loop shares CPU {shared} with the worker threads: a busy driver, encoder or "
            "torch thread there delays the control loop; give worker_cpus other CPUs"
        )
    elif loop is not None and workers is None and not cpus - set(loop):
        warnings.append(
            f"loop_cpus {_cpus(loop)} leave no other CPU for the worker threads: they share the loop's CPUs"
        )
    return errors, warnings


# ------------------------------------------------------------------------- applying


_report: RealtimeReport | None = None


def current_report() -> RealtimeReport | None:
    """The report of the last :func:`apply` in this process (None: rtrun applied nothing)."""
    return _report


@dataclass
class _Applying:
    """What :func:`apply` collects while it goes."""

    settings: RealtimeSettings
    not_applied: list[str] = field(default_factory=list)
    other_fixes: dict[str, None] = field(default_factory=dict)  # ordered sets
    limits: dict[str, str] = field(default_factory=dict)  # limits.conf item -> value
    service: dict[str, str] = field(default_factory=dict)  # systemd directive -> value
    caps: dict[str, None] = field(default_factory=dict)

    def fail(self, what: str, fixes: Iterable[str] = ()) -> None:
        self.not_applied.append(what)
        self.other_fixes.update(dict.fromkeys(fixes))

    def missing(self, what: str, item: str, value: str, directive: str, cap: str) -> None:
        """A setting that needs a limit or a capability this process lacks."""
        self.fail(what)
        self.limits[item] = value
        self.service[directive] = "infinity" if value == "unlimited" else value
        self.caps[cap] = None

    def fixes(self) -> tuple[str, ...]:
        """The fixes, permissions first: the ``limits.conf`` lines, ``setcap``, a service."""
        out = []
        if self.limits:
            lines = " and ".join(f"'{_user()} - {item} {value}'" for item, value in self.limits.items())
            out.append(f"add {lines} to /etc/security/limits.d/99-rtrun.conf, then log in again")
            python = os.path.realpath(sys.executable)
            out.append(f"or grant the interpreter: sudo setcap {','.join(self.caps)}+ep {python}")
            unit = " ".join(f"{d}={v}" for d, v in self.service.items())
            out.append(f"or run rtrun as a systemd service with {unit}")
        return (*out, *self.other_fixes)


def apply(settings: RealtimeSettings) -> RealtimeReport:
    """Apply ``settings`` to the calling thread (the future event-loop thread) and the process.

    Never raises for lack of permission: see :meth:`RealtimeReport.warning`. With the default
    settings nothing is changed and the report describes the process as it is.
    """
    global _report
    state = _Applying(settings)
    allowed = frozenset(os.sched_getaffinity(0))
    applied = settings.policy != "other" and _apply_policy(state)
    reset = settings.requested and settings.worker_policy == "other" and (applied or _set_reset_on_fork())
    if settings.loop_cpus is not None:
        _apply_affinity(state, "loop_cpus", settings.loop_cpus)
    if settings.worker_cpus is not None and not set(settings.worker_cpus) <= allowed:
        state.fail(
            f"worker_cpus {_cpus(set(settings.worker_cpus) - allowed)}: not among the CPUs this "
            f"process may use (allowed: {_cpus(allowed)})",
            ["check taskset / the cgroup cpuset"],
        )
    workers = _worker_cpus(settings, allowed)
    if workers is not None:
        _install_worker_hook(workers)
        sweep_threads(workers)
    locked = settings.lock_memory and _lock_memory(state)
    if settings.timer_slack_us is not None:
        _set_timer_slack(state, settings.timer_slack_us)
    policy = os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK
    _report = RealtimeReport(
        requested=settings,
        policy=_POLICY_NAME.get(policy, str(policy)),
        priority=os.sched_getparam(0).sched_priority,
        loop_cpus=tuple(sorted(os.sched_getaffinity(0))),
        worker_cpus=workers,
        reset_on_fork=reset,
        memory_locked=locked,
        timer_slack_ns=_timer_slack_ns(),
        not_applied=tuple(state.not_applied),
        fixes=state.fixes(),
    )
    return _report


def _worker_cpus(settings: RealtimeSettings, allowed: frozenset[int]) -> tuple[int, ...] | None:
    if settings.worker_cpus is not None:
        return tuple(sorted(set(settings.worker_cpus) & allowed)) or None
    if settings.loop_cpus is None:
        return None
    rest = allowed - set(settings.loop_cpus)
    return tuple(sorted(rest or allowed))


def _set_reset_on_fork() -> bool:
    """Add SCHED_RESET_ON_FORK to the loop thread's current (non-real-time) policy."""
    try:
        policy = os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK
        os.sched_setscheduler(0, policy | os.SCHED_RESET_ON_FORK, os.sched_getparam(0))
    except OSError:
        return False
    return True


def _apply_policy(state: _Applying) -> bool:
    """Set the loop thread's real-time policy; whether it (and reset-on-fork) took effect."""
    s = state.settings
    flags = os.SCHED_RESET_ON_FORK if s.worker_policy == "other" else 0
    _raise_rtprio_soft_limit(s.priority)
    try:
        os.sched_setscheduler(0, _POLICY_CONST[s.policy] | flags, os.sched_param(s.priority))
    except OSError as exc:
        what = f"loop thread SCHED_{s.policy.upper()} priority {s.priority}: {_rt_reason(exc, s.priority)}"
        if _lacks_rt_permission(exc):
            state.missing(what, "rtprio", str(SUGGESTED_RTPRIO), "LimitRTPRIO", "cap_sys_nice")
        else:
            state.fail(what, _rt_fixes(exc))
        return False
    return True


def _raise_rtprio_soft_limit(priority: int) -> None:
    """An unprivileged process may raise its soft ``RLIMIT_RTPRIO`` up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_RTPRIO)
    if soft != resource.RLIM_INFINITY and soft < priority and (hard == resource.RLIM_INFINITY or hard > soft):
        target = priority if hard == resource.RLIM_INFINITY else min(priority, hard)
        try:
            resource.setrlimit(resource.RLIMIT_RTPRIO, (target, hard))
        except (OSError, ValueError):
            pass


def has_capability(bit: int) -> bool:
    """Whether the calling thread's effective capabilities include ``bit``."""
    try:
        for line in Path("/proc/thread-self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def _rt_reason(exc: OSError, priority: int) -> str:
    if exc.errno != errno.EPERM:
        return os.strerror(exc.errno or 0)
    soft = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
    if not has_capability(CAP_SYS_NICE) and (soft != resource.RLIM_INFINITY and soft < priority):
        return f"not permitted (no CAP_SYS_NICE and RLIMIT_RTPRIO is {soft})"
    return (
        "not permitted although the limits allow it: the cgroup has no real-time budget (cpu.rt_runtime_us)"
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container running an unknown uid)
        return str(os.getuid())


def _lacks_rt_permission(exc: OSError) -> bool:
    """EPERM with neither CAP_SYS_NICE nor an unlimited ``RLIMIT_RTPRIO`` (else: a cgroup budget)."""
    unlimited = resource.getrlimit(resource.RLIMIT_RTPRIO)[0] == resource.RLIM_INFINITY
    return exc.errno == errno.EPERM and not has_capability(CAP_SYS_NICE) and not unlimited


def _rt_fixes(exc: OSError) -> list[str]:
    if exc.errno != errno.EPERM:
        return []
    return [
        "in a container: docker run --cap-add=SYS_NICE --ulimit rtprio=99 --cpu-rt-runtime=950000; "
        "otherwise give the process's cgroup a real-time budget (cpu.rt_runtime_us) or run rtrun "
        "as a system service"
    ]


def _apply_affinity(state: _Applying, key: str, cpus: tuple[int, ...]) -> None:
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:
        reason = "not among the CPUs this process may use" if exc.errno == errno.EINVAL else exc.strerror
        allowed = _cpus(os.sched_getaffinity(0))
        state.fail(
            f"{key} {_cpus(cpus)}: {reason} (allowed: {allowed})", ["check taskset / the cgroup cpuset"]
        )


def _lock_memory(state: _Applying) -> bool:
    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    if soft != resource.RLIM_INFINITY and not has_capability(CAP_IPC_LOCK):
        what = (
            f"memory lock: RLIMIT_MEMLOCK is {soft // 1024} KiB and there is no CAP_IPC_LOCK "
            "(a finite limit would make later allocations fail)"
        )
        state.missing(what, "memlock", "unlimited", "LimitMEMLOCK", "cap_ipc_lock")
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0:
        return True
    if ctypes.get_errno() == errno.EINVAL and libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0:
        return True  # a kernel older than 4.4 has no MCL_ONFAULT
    state.fail(f"memory lock: mlockall failed: {os.strerror(ctypes.get_errno())}")
    return False


def _prctl(option: int, value: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), 0, 0, 0))


def _timer_slack_ns() -> int:
    return max(_prctl(PR_GET_TIMERSLACK, 0), 0)


def _set_timer_slack(state: _Applying, slack_us: float) -> None:
    # 0 would mean "reset to the default" to the kernel: the smallest slack is 1 ns.
    if _prctl(PR_SET_TIMERSLACK, max(round(slack_us * 1000), 1)) != 0:
        state.fail(f"timer slack: prctl failed: {os.strerror(ctypes.get_errno())}")


# ------------------------------------------------------------------------- worker threads


class _WorkerHook:
    """A one-shot profile function: the new thread sets its CPUs, then restores the previous hook."""

    def __init__(self, cpus: tuple[int, ...], previous: Callable[..., Any] | None) -> None:
        self.cpus = cpus
        self.previous = previous

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        sys.setprofile(self.previous)
        try:
            os.sched_setaffinity(0, self.cpus)
        except OSError:  # the cpuset shrank since: the thread keeps what it inherited
            pass
        if self.previous is not None:
            self.previous(frame, event, arg)


def _install_worker_hook(cpus: tuple[int, ...]) -> None:
    previous = threading.getprofile()
    if isinstance(previous, _WorkerHook):
        previous = previous.previous
    threading.setprofile(_WorkerHook(cpus, previous))


def sweep_threads(cpus: tuple[int, ...] | None = None) -> int:
    """Give every thread of the process except the calling one ``cpus`` (default: the applied
    worker CPUs); returns how many moved. Catches native threads (Zenoh, OpenMP) that started
    before the hook or outside :mod:`threading`."""
    if cpus is None:
        if _report is None or _report.worker_cpus is None:
            return 0
        cpus = _report.worker_cpus
    me, moved = threading.get_native_id(), 0
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return 0
    for tid in tids:
        if tid == me:
            continue
        try:
            if os.sched_getaffinity(tid) != set(cpus):
                os.sched_setaffinity(tid, cpus)
                moved += 1
        except OSError:  # the thread ended meanwhile
            continue
    return moved
