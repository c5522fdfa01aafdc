"""``rtrun doctor``: the JSON schema, the exit code, the deadline, and the real-time advice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
from rtrun import _doctor
from rtrun._doctor import CHECKS, STATUSES, Check, run_checks

NAMES = [
    "realtime",
    "memlock",
    "cpus",
    "cpu_governor",
    "timer_slack",
    "uvloop",
    "zenoh_shm",
    "dev_shm",
    "serial",
    "can",
    "mujoco_gl",
    "video_codecs",
]


def doctor(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "rtrun", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=25,
    )


def test_json_schema_and_exit_code() -> None:
    start = time.monotonic()
    result = doctor("--json")
    elapsed = time.monotonic() - start
    report = json.loads(result.stdout)
    assert set(report) == {"ok", "checks"}
    assert [c["name"] for c in report["checks"]] == NAMES
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail", "fix"}
        assert check["status"] in STATUSES and isinstance(check["detail"], str) and check["detail"]
        assert isinstance(check["fix"], str)
        if check["status"] == "warn" and "timed out" not in check["detail"]:
            assert check["fix"], check  # every warning says what to do
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert report["ok"] is (not failed)
    assert result.returncode == (1 if failed else 0), result.stderr
    assert elapsed < 10  # interpreter start-up included; the checks themselves have a 2.5 s deadline


def test_text_output_lists_every_check() -> None:
    result = doctor()
    assert result.returncode in (0, 1)
    for name in NAMES:
        assert f"  {name} " in result.stdout
    assert "blocking" in result.stdout.splitlines()[-1]


def test_a_hanging_check_times_out_and_a_broken_one_warns() -> None:
    release = threading.Event()

    def check_hangs() -> Check:
        release.wait(10)
        return Check(name="hangs", status="ok", detail="late")

    def check_breaks() -> Check:
        raise RuntimeError("boom")

    start = time.monotonic()
    try:
        results = run_checks([check_hangs, check_breaks, CHECKS[0]], deadline_s=0.3)
    finally:
        release.set()
    assert time.monotonic() - start < 1.0
    assert results[0] == Check(name="hangs", status="warn", detail="timed out after 0.3 s")
    assert results[1] == Check(name="breaks", status="warn", detail="check failed: RuntimeError: boom")
    assert results[2].name == "realtime"


def test_exit_code_is_1_when_a_check_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def check_blocked() -> Check:
        return Check(
            name="serial",
            status="fail",
            detail="no access to /dev/ttyACM0",
            fix="sudo usermod -aG dialout me",
        )

    monkeypatch.setattr(_doctor, "CHECKS", (check_blocked,))
    assert _doctor.main(as_json=False) == 1
    out = capsys.readouterr().out
    assert "FAIL  serial  no access to /dev/ttyACM0" in out and "fix: sudo usermod -aG dialout me" in out
    assert _doctor.main(as_json=True) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_the_doctor_never_changes_its_own_scheduling() -> None:
    before = os.sched_getscheduler(0), os.sched_getaffinity(0)
    run_checks()
    assert (os.sched_getscheduler(0), os.sched_getaffinity(0)) == before


@pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0,
    reason="simulating an unprivileged user needs setpriv and root (to drop CAP_SYS_NICE/CAP_IPC_LOCK)",
)
def test_without_permission_the_fix_is_named() -> None:
    drop = ("setpriv", "--inh-caps=-sys_nice,-ipc_lock", "--bounding-set=-sys_nice,-ipc_lock")
    # RLIMIT_RTPRIO 0 and a finite RLIMIT_MEMLOCK: like a fresh user account
    result = subprocess.run(
        [*drop, "sh", "-c", f"ulimit -r 0; ulimit -l 8192; exec {sys.executable} -m rtrun doctor --json"],
        capture_output=True,
        text=True,
        timeout=25,
    )
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["realtime"]["status"] == "warn"
    assert "no CAP_SYS_NICE" not in checks["realtime"]["detail"]  # the detail states facts
    assert (
        "CAP_SYS_NICE no" in checks["realtime"]["detail"]
        and "RLIMIT_RTPRIO 0" in checks["realtime"]["detail"]
    )
    assert " - rtprio 95' to /etc/security/limits.d/99-rtrun.conf" in checks["realtime"]["fix"]
    assert "setcap cap_sys_nice" in checks["realtime"]["fix"]
    assert checks["memlock"]["status"] == "warn" and " - memlock unlimited'" in checks["memlock"]["fix"]
    assert result.returncode == 0  # a warning never blocks
