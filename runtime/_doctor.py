"""``rtrun doctor``: check this machine for robot work and print actionable fixes.

Each check returns a :class:`Check` (name, status, detail, fix). Statuses:

* ``ok``   -- nothing to do;
* ``warn`` -- works, but a control loop will do worse than it could (no real-time permission, a
  power-saving CPU governor, no uvloop); ``fix`` says what to change;
* ``fail`` -- blocks robot work here (a motor bus port this user cannot open, no usable
  ``/dev/shm``); ``rtrun doctor`` exits 1 when any check fails, else 0;
* ``skip`` -- does not apply (no serial device plugged in, MuJoCo or PyAV not installed).

Design decisions: every check reads files under ``/proc`` and ``/sys``, limits and capabilities,
or tries the thing itself in the cheapest way (a ``SCHED_FIFO`` switch in a throw-away thread, a
64 KiB Zenoh shared-memory pool); none starts a process except ``ctypes.util.find_library`` (one
``ldconfig -p``). The checks run concurrently in daemon threads under one deadline
(:data:`DEADLINE_S`), so a check stuck on a hung device or a slow import is reported as
``warn: timed out`` instead of holding the command: ``rtrun doctor`` never hangs.
"""

from __future__ import annotations

import glob
import grp
import importlib.util
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from ._realtime import (
    CAP_IPC_LOCK,
    CAP_SYS_NICE,
    PR_GET_TIMERSLACK,
    SUGGESTED_RTPRIO,
    _prctl,
    _user,
    has_capability,
    online_cpus,
)

__all__ = ["CHECKS", "STATUSES", "Check", "main", "run_checks"]

STATUSES: Final = ("ok", "warn", "fail", "skip")
DEADLINE_S: Final = 2.5
"""Budget for every check together: the command answers within ~3 s even if one hangs."""
SHM_MIN_BYTES: Final = 1 << 30
"""Below 1 GiB (Docker's default is 64 MiB) a few camera frames in flight exhaust ``/dev/shm``."""
DEFAULT_SLACK_NS: Final = 50_000
"""The kernel's default timer slack."""
LIMITS_FILE: Final = "/etc/security/limits.d/99-rtrun.conf"


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """The result of one check."""

    name: str
    """Stable identifier (``realtime``, ``dev_shm``, ...)."""
    status: str
    """``ok``, ``warn``, ``fail`` or ``skip``."""
    detail: str
    """What was found."""
    fix: str = ""
    """What to do about it (empty when nothing needs doing)."""


# ------------------------------------------------------------------------- real time


def check_realtime() -> Check:
    """May this process run its loop thread SCHED_FIFO? (Tried in a throw-away thread.)"""
    soft = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
    limit = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    cap = has_capability(CAP_SYS_NICE)
    detail = f"RLIMIT_RTPRIO {limit}, CAP_SYS_NICE {'yes' if cap else 'no'}"
    error = _try_in_thread(lambda: os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1)))
    if error is None:
        return Check(name="realtime", status="ok", detail=f"SCHED_FIFO permitted ({detail})")
    if cap or soft == resource.RLIM_INFINITY or soft >= 1:  # permitted on paper: the cgroup refuses
        fix = (
            "the cgroup has no real-time budget: in a container run with --cap-add=SYS_NICE "
            "--ulimit rtprio=99 --cpu-rt-runtime=950000; otherwise run rtrun as a system service"
        )
    else:
        fix = (
            f"add '{_user()} - rtprio {SUGGESTED_RTPRIO}' to {LIMITS_FILE} and log in again; or "
            f"sudo setcap cap_sys_nice,cap_ipc_lock+ep {os.path.realpath(sys.executable)}; or run as a "
            f"systemd service with LimitRTPRIO={SUGGESTED_RTPRIO}"
        )
    return Check(
        name="realtime", status="warn", detail=f"SCHED_FIFO not permitted: {error} ({detail})", fix=fix
    )


def _try_in_thread(action: Callable[[], object]) -> str | None:
    """Run ``action`` in a new thread (so the caller's scheduling never changes); its error."""
    errors: list[str] = []

    def target() -> None:
        try:
            action()
        except OSError as exc:
            errors.append(exc.strerror or str(exc))

    thread = threading.Thread(target=target, name="rtrun-doctor-probe", daemon=True)
    thread.start()
    thread.join()
    return errors[0] if errors else None


def check_memlock() -> Check:
    """May this process lock its memory without a limit (``lock_memory = true``)?"""
    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    if soft == resource.RLIM_INFINITY or has_capability(CAP_IPC_LOCK):
        how = "RLIMIT_MEMLOCK unlimited" if soft == resource.RLIM_INFINITY else "CAP_IPC_LOCK"
        return Check(name="memlock", status="ok", detail=f"memory can be locked ({how})")
    return Check(
        name="memlock",
        status="warn",
        detail=f"RLIMIT_MEMLOCK is {soft // 1024} KiB and there is no CAP_IPC_LOCK: lock_memory will not apply",
        fix=f"add '{_user()} - memlock unlimited' to {LIMITS_FILE} and log in again",
    )


def _cpu_list(path: str) -> list[int]:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return []
    cpus: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


def check_cpus() -> Check:
    """How many CPUs, and is one isolated for the control loop (isolcpus, nohz_full)?"""
    cpus = sorted(online_cpus())
    isolated = _cpu_list("/sys/devices/system/cpu/isolated")
    nohz = _cpu_list("/sys/devices/system/cpu/nohz_full")
    detail = f"{len(cpus)} CPUs online, isolated: {isolated or 'none'}, nohz_full: {nohz or 'none'}"
    if len(cpus) < 2:
        fix = "one CPU: the control loop competes with every driver and the policy; use a machine with 4+"
        return Check(name="cpus", status="warn", detail=detail, fix=fix)
    if isolated:
        return Check(name="cpus", status="ok", detail=detail + f" (set loop_cpus = {isolated[-1:]})")
    if len(cpus) < 4:
        return Check(name="cpus", status="ok", detail=detail + " (too few CPUs to isolate one)")
    last = cpus[-1]
    fix = (
        f"for the lowest jitter give the loop a CPU of its own: boot with isolcpus={last} "
        f"nohz_full={last} rcu_nocbs={last} and set loop_cpus = [{last}] in [realtime]"
    )
    return Check(name="cpus", status="warn", detail=detail, fix=fix)


def check_governor() -> Check:
    """Is the CPU frequency governor ``performance`` (no ramp-up latency)?"""
    governors: dict[str, list[int]] = {}
    for path in sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor")):
        try:
            name = Path(path).read_text().strip()
        except OSError:
            continue
        governors.setdefault(name, []).append(int(path.split("/cpu")[2].split("/")[0]))
    if not governors:
        return Check(name="cpu_governor", status="skip", detail="no cpufreq (a VM or a fixed-frequency CPU)")
    detail = ", ".join(f"{g} on CPUs {cpus}" for g, cpus in governors.items())
    if set(governors) == {"performance"}:
        return Check(name="cpu_governor", status="ok", detail=detail)
    fix = "sudo cpupower frequency-set -g performance (or the 'performance' power profile)"
    return Check(name="cpu_governor", status="warn", detail=detail, fix=fix)


def check_timer_slack() -> Check:
    """The process's timer slack: how late a sleeping non-real-time thread may be woken."""
    slack = _prctl(PR_GET_TIMERSLACK, 0)
    detail = f"{slack / 1000:g} us"
    if slack > DEFAULT_SLACK_NS:
        fix = "set timer_slack_us = 1 (or a real-time policy) in [realtime]; check what raised it (systemd TimerSlackNSec)"
        return Check(
            name="timer_slack", status="warn", detail=detail + " (above the kernel's 50 us)", fix=fix
        )
    return Check(name="timer_slack", status="ok", detail=detail)


# ------------------------------------------------------------------------- software


def check_uvloop() -> Check:
    """Is uvloop installed (``rtrun run`` uses it by default when present)?"""
    if importlib.util.find_spec("uvloop") is None:
        return Check(
            name="uvloop",
            status="warn",
            detail="not installed: rtrun runs on the stock asyncio loop",
            fix="pip install 'rtrun[fast]' (uvloop: lower and steadier wake-up latency)",
        )
    from importlib.metadata import version

    return Check(name="uvloop", status="ok", detail=f"uvloop {version('uvloop')}")


def check_zenoh_shm() -> Check:
    """Can Zenoh allocate shared memory (zero-copy frames between processes on one machine)?"""
    try:
        import zenoh
    except ImportError as exc:
        return Check(
            name="zenoh_shm", status="fail", detail=f"zenoh not importable: {exc}", fix="pip install rtrun"
        )
    try:
        provider = zenoh.shm.ShmProvider.default_backend(64 * 1024)
        provider.alloc(1024)
    except Exception as exc:  # any failure of the probe is the finding
        fix = "check that /dev/shm is a writable tmpfs (see dev_shm); meanwhile Zenoh copies over the network stack"
        return Check(name="zenoh_shm", status="warn", detail=f"shared memory unusable: {exc}", fix=fix)
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("eclipse-zenoh")
    except PackageNotFoundError:
        release = "?"
    return Check(name="zenoh_shm", status="ok", detail=f"zenoh {release}: a 64 KiB pool allocated")


def check_dev_shm() -> Check:
    """Is ``/dev/shm`` present, writable and large enough?"""
    try:
        st = os.statvfs("/dev/shm")
    except OSError as exc:
        return Check(
            name="dev_shm", status="fail", detail=f"/dev/shm: {exc.strerror}", fix="mount a tmpfs on /dev/shm"
        )
    size = st.f_blocks * st.f_frsize
    detail = f"{size / (1 << 30):.1f} GiB, {st.f_bavail * st.f_frsize / (1 << 30):.1f} GiB free"
    if not os.access("/dev/shm", os.W_OK):
        return Check(
            name="dev_shm", status="fail", detail=detail + ", not writable", fix="sudo chmod 1777 /dev/shm"
        )
    if size < SHM_MIN_BYTES:
        fix = "docker run --shm-size=2g ... (or sudo mount -o remount,size=2G /dev/shm)"
        return Check(name="dev_shm", status="warn", detail=detail, fix=fix)
    return Check(name="dev_shm", status="ok", detail=detail)


# ------------------------------------------------------------------------- devices


def check_serial() -> Check:
    """Can this user open the serial ports motor buses use (the ``dialout`` group)?"""
    devices = sorted(glob.glob("/dev/ttyUSB*") + glob.glob("/dev/ttyACM*"))
    if not devices:
        return Check(name="serial", status="skip", detail="no /dev/ttyUSB* or /dev/ttyACM* plugged in")
    denied = [d for d in devices if not os.access(d, os.R_OK | os.W_OK)]
    if not denied:
        return Check(name="serial", status="ok", detail=f"read/write: {', '.join(devices)}")
    group = _group_of(denied[0])
    member = _user() in grp.getgrnam(group).gr_mem if group != "?" else False
    fix = (
        "log out and in again (you are in the group, this session is not)"
        if member
        else f"sudo usermod -aG {group} {_user()}, then log out and in again"
    )
    return Check(
        name="serial",
        status="fail",
        detail=f"no read/write access to {', '.join(denied)} (group {group})",
        fix=fix,
    )


def _group_of(path: str) -> str:
    try:
        return grp.getgrgid(os.stat(path).st_gid).gr_name
    except (KeyError, OSError):
        return "?"


ARPHRD_CAN: Final = 280


def check_can() -> Check:
    """Are the CAN interfaces (Damiao/RobStride motors) up?"""
    interfaces = []
    for path in glob.glob("/sys/class/net/*/type"):
        try:
            if int(Path(path).read_text()) == ARPHRD_CAN:
                name = path.split("/")[4]
                interfaces.append((name, Path(f"/sys/class/net/{name}/operstate").read_text().strip()))
        except (OSError, ValueError):
            continue
    if not interfaces:
        return Check(name="can", status="skip", detail="no CAN interface")
    down = [n for n, state in interfaces if state not in ("up", "unknown")]
    detail = ", ".join(f"{n} {s}" for n, s in sorted(interfaces))
    if down:
        fix = f"sudo ip link set {down[0]} up type can bitrate 1000000"
        return Check(name="can", status="warn", detail=detail, fix=fix)
    return Check(name="can", status="ok", detail=detail)


# ------------------------------------------------------------------------- simulation, video


def check_mujoco_gl() -> Check:
    """Can MuJoCo render offscreen (a robot computer or a server has no display)?"""
    if importlib.util.find_spec("mujoco") is None:
        return Check(name="mujoco_gl", status="skip", detail="mujoco not installed (the 'sim' extra)")
    from ctypes.util import find_library

    backend = os.environ.get("MUJOCO_GL", "")
    libraries = {"egl": "EGL", "osmesa": "OSMesa"}
    found = {name: find_library(lib) for name, lib in libraries.items()}
    available = [name for name, path in found.items() if path]
    if backend in libraries:
        if found[backend]:
            return Check(name="mujoco_gl", status="ok", detail=f"MUJOCO_GL={backend} ({found[backend]})")
        package = "libegl1" if backend == "egl" else "libosmesa6"
        return Check(
            name="mujoco_gl",
            status="fail",
            detail=f"MUJOCO_GL={backend} but lib{libraries[backend]} is missing",
            fix=f"sudo apt install {package}",
        )
    if backend or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return Check(name="mujoco_gl", status="ok", detail=f"MUJOCO_GL={backend or 'glfw'} with a display")
    if available:
        gl = available[0]
        where = "GPU" if gl == "egl" else "CPU"
        fix = f"export MUJOCO_GL={gl} PYOPENGL_PLATFORM={gl} ({where} offscreen rendering)"
        return Check(
            name="mujoco_gl",
            status="warn",
            detail=f"no display and MUJOCO_GL unset; found {', '.join(available)}",
            fix=fix,
        )
    return Check(
        name="mujoco_gl",
        status="warn",
        detail="no display, no EGL, no OSMesa",
        fix="sudo apt install libosmesa6 (or libegl1 with a GPU), then export MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa",
    )


VIDEO_CODECS: Final = ("libx264", "libsvtav1")
"""The recorder's default encoder (``libx264``) and LeRobot's (``libsvtav1``)."""


def check_video() -> Check:
    """Are PyAV and the recorder's video encoders available?"""
    if importlib.util.find_spec("av") is None:
        return Check(name="video_codecs", status="skip", detail="PyAV not installed (the 'record' extra)")
    import av

    missing = [c for c in VIDEO_CODECS if c not in av.codecs_available]
    detail = f"PyAV {av.__version__}, encoders: " + ", ".join(
        f"{c} {'yes' if c not in missing else 'no'}" for c in VIDEO_CODECS
    )
    if VIDEO_CODECS[0] in missing:
        return Check(
            name="video_codecs",
            status="warn",
            detail=detail,
            fix="pip install --force-reinstall av (its wheels ship libx264)",
        )
    return Check(name="video_codecs", status="ok", detail=detail)


CHECKS: Final[tuple[Callable[[], Check], ...]] = (
    check_realtime,
    check_memlock,
    check_cpus,
    check_governor,
    check_timer_slack,
    check_uvloop,
    check_zenoh_shm,
    check_dev_shm,
    check_serial,
    check_can,
    check_mujoco_gl,
    check_video,
)
"""Every check, in the order they are printed."""


def run_checks(checks: Sequence[Callable[[], Check]] = CHECKS, deadline_s: float = DEADLINE_S) -> list[Check]:
    """Run ``checks`` concurrently; one that raises is a ``warn``, one still running at the deadline
    is reported as timed out (its daemon thread is abandoned)."""
    results: list[Check | None] = [None] * len(checks)

    def run(index: int, check: Callable[[], Check]) -> None:
        try:
            results[index] = check()
        except Exception as exc:  # a broken check must not hide the others
            name = check.__name__.removeprefix("check_")
            results[index] = Check(
                name=name, status="warn", detail=f"check failed: {type(exc).__name__}: {exc}"
            )

    threads = [
        threading.Thread(target=run, args=(i, c), name=f"rtrun-doctor-{i}", daemon=True)
        for i, c in enumerate(checks)
    ]
    end = time.monotonic() + deadline_s
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(end - time.monotonic(), 0))
    return [
        r
        if r is not None
        else Check(
            name=c.__name__.removeprefix("check_"), status="warn", detail=f"timed out after {deadline_s:g} s"
        )
        for r, c in zip(results, checks, strict=True)
    ]


_MARK: Final = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def main(as_json: bool = False) -> int:
    """``rtrun doctor [--json]``: print every check; exit 1 if any fails, else 0."""
    checks = run_checks(CHECKS)
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{_MARK[c.status]}  {c.name:<{width}}  {c.detail}")
            if c.fix:
                print(f"      {'':<{width}}  fix: {c.fix}")
        warned = sum(c.status == "warn" for c in checks)
        print(f"\n{len(failed)} blocking, {warned} to improve" + ("" if failed else ": ready for robot work"))
    return 1 if failed else 0
