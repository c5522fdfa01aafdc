"""``rtrun run`` stopped during start-up (issue 16): Ctrl-C/SIGTERM abort the start at once.

A graph ``fast → slow → later`` where ``slow`` takes long (or forever) to become ready, like a
policy worker loading a checkpoint or a motor bus connecting. A signal during its start must
cancel it (its shielded cleanup still runs), never start ``later``, stop ``fast`` after it, and
exit promptly; a second signal forces the fast stop (exit 130) and the log still says whether
the cleanup reached its safe state.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from .test_cli_run import finish, start, wait_line

pytestmark = pytest.mark.slow


def graph(*, start_delay: str, cleanup_s: float = 0.2, shutdown_s: float = 5.0) -> str:
    """``fast → slow → later``; ``slow`` becomes ready after ``start_delay`` (TOML float)."""
    return f"""
[graph]
name = "startup"
[[actor]]
id = "fast"
kind = "rtrun.testing:CounterSource"
[[actor]]
id = "slow"
kind = "rtrun.testing:SlowStart"
start_timeout_s = 180.0
shutdown_timeout_s = {shutdown_s}
params = {{ start_delay_s = {start_delay}, cleanup_s = {cleanup_s}, cleanup_timeout_s = {cleanup_s + 1} }}
[[actor]]
id = "later"
kind = "rtrun.testing:Collector"
inputs.in = "fast/out"
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("delay", ["30.0", "inf"], ids=["slow", "hung"])
def test_signal_during_start_aborts_the_start(tmp_path: Path, signum: int, delay: str) -> None:
    proc = start(tmp_path, graph(start_delay=delay))
    seen = wait_line(proc, "starting (ready in")
    t0 = time.monotonic()
    proc.send_signal(signum)
    code, rest = finish(proc)
    err = "".join(seen) + rest
    elapsed = time.monotonic() - t0
    assert code == 0, err
    assert elapsed < 5.0, err
    assert "root/later started" not in err and "start later" not in err
    assert "root/slow started" not in err
    assert err.index("[slow] cleanup begins") < err.index("[slow] safe state reached")
    assert err.index("root/slow stopped") < err.index("root/fast stopped")
    assert "start-up aborted" in err
    assert "failed to start" not in err and "Traceback" not in err


def test_second_signal_during_start_forces_a_fast_stop(tmp_path: Path) -> None:
    proc = start(tmp_path, graph(start_delay="inf", cleanup_s=60.0, shutdown_s=60.0))
    seen = wait_line(proc, "starting (ready in")
    proc.send_signal(signal.SIGINT)
    seen += wait_line(proc, "[slow] cleanup begins")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, rest = finish(proc)
    err = "".join(seen) + rest
    assert code == 130, err
    assert time.monotonic() - t0 < 5.0, err
    assert "root/later started" not in err and "safe state reached" not in err
    assert "[slow] cleanup cut short by the hard stop: safe state NOT confirmed" in err
    assert "stopped (forced)" in err
