"""``rtrun run --isolate`` stopped while a host starts (issue 16): no further host starts."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from .test_cli_run import finish, start, wait_line

pytestmark = pytest.mark.slow

GRAPH = """
[graph]
name = "iso-startup"
[hosts.a]
[hosts.b]
[[actor]]
id = "slow"
kind = "rtrun.testing:SlowStart"
host = "a"
params = { start_delay_s = inf, cleanup_s = 0.2 }
[[actor]]
id = "later"
kind = "rtrun.testing:Collector"
host = "b"
"""


def test_signal_while_a_host_starts_stops_it_and_starts_no_other(tmp_path: Path) -> None:
    proc = start(tmp_path, GRAPH, "--isolate")
    seen = wait_line(proc, "starting (ready in", timeout=30.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, rest = finish(proc)
    err = "".join(seen) + rest
    assert code == 0, err
    assert time.monotonic() - t0 < 10.0, err
    assert "host 'b' started" not in err and "[b]" not in err
    assert "[a]" in err and "safe state reached" in err and "start-up aborted" in err


def test_second_signal_forces_every_host_and_keeps_their_last_lines(tmp_path: Path) -> None:
    text = GRAPH.replace("cleanup_s = 0.2", "cleanup_s = 60.0, cleanup_timeout_s = 61.0")
    proc = start(
        tmp_path, text.replace('host = "a"\n', 'host = "a"\nshutdown_timeout_s = 60.0\n'), "--isolate"
    )
    seen = wait_line(proc, "starting (ready in", timeout=30.0)
    proc.send_signal(signal.SIGINT)
    seen += wait_line(proc, "cleanup begins")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, rest = finish(proc)
    err = "".join(seen) + rest
    assert code == 130, err
    assert time.monotonic() - t0 < 5.0, err
    assert "host 'b' started" not in err
    assert "[a]" in err and "cleanup cut short by the hard stop: safe state NOT confirmed" in err
