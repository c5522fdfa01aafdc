"""``rtrun run`` reports failures once, at the right level, with the right exit code (issue 16).

A crashing actor's traceback is shown exactly once; identical repeats are summarised; "failed
to start" is only said when the graph did not start; a ``ConfigurationError`` is reported once,
never restarted, and stops the graph with exit 3.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_cli_run import finish, start

pytestmark = pytest.mark.slow

TRACEBACK = "Traceback (most recent call last)"


def crasher(params: str, *, intensity: int = 3) -> str:
    return (
        f'[graph]\nname = "f"\nintensity = {intensity}\nperiod_s = 60.0\n'
        '[[actor]]\nid = "ok"\nkind = "rtrun.testing:CounterSource"\n'
        f'[[actor]]\nid = "c"\nkind = "rtrun.testing:Crasher"\nparams = {{ {params} }}\n'
    )


def test_crash_loop_shows_the_traceback_once_and_summarises_repeats(tmp_path: Path) -> None:
    code, err = finish(start(tmp_path, crasher("crash_after_s = 0.05")))
    assert code == 3, err
    assert err.count(TRACEBACK) == 1, err
    assert "root/c crashed: RuntimeError: c: crashing after 0.05 s" in err
    assert "root/c failed again the same way (3x in " in err
    assert err.count("c: crashing after") == 3  # first report (+ its traceback's last line), summary
    assert "graph 'f' failed: supervisor 'root' gave up" in err
    assert "failed to start" not in err and "ExceptionGroup" not in err and "RuntimeError('" not in err


def test_configuration_error_is_reported_once_and_never_restarted(tmp_path: Path) -> None:
    code, err = finish(start(tmp_path, crasher("crash_after_s = 0.05, configuration_error = true")))
    assert code == 3, err
    assert err.count(TRACEBACK) == 1, err
    assert "root/c restarting" not in err and "gave up: more than" not in err
    assert "root/c gave_up: configuration error in 'c': not restarted" in err
    assert "graph 'f' stopped: configuration error in actor 'c', not retried" in err
    assert "failed to start" not in err
    assert "root/ok stopped" in err


def test_configuration_error_at_start_fails_the_start_once(tmp_path: Path) -> None:
    code, err = finish(start(tmp_path, crasher("fail_start = true, configuration_error = true")))
    assert code == 3, err
    assert err.count(TRACEBACK) == 1, err
    assert "root/c failed to start: ConfigurationError: c: failing before ready" in err
    assert "graph 'f' failed to start: configuration error in actor 'c', not retried" in err
    assert "root/ok stopped" in err and "running (" not in err


def test_start_failure_says_failed_to_start_once(tmp_path: Path) -> None:
    code, err = finish(start(tmp_path, crasher("fail_start = true")))
    assert code == 3, err
    assert err.count(TRACEBACK) == 1, err
    assert "graph 'f' failed to start: RuntimeError: c: failing before ready (fail_start)" in err
