"""Log output for unattended robots: millisecond timestamps, ``--log-file``, ``--log-format json``."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rtrun._cli import EXIT_OK, EXIT_USAGE, main
from rtrun._logs import forward_host_line, setup_logging

GRAPH = """
[graph]
name = "logs"
[[actor]]
id = "src"
kind = "rtrun.testing:CounterSource"
params = { rate_hz = 20.0 }
[[actor]]
id = "sink"
kind = "rtrun.testing:Collector"
inputs.in = "src/out"
"""
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def graph(tmp_path: Path) -> str:
    path = tmp_path / "g.toml"
    path.write_text(GRAPH)
    return str(path)


def test_json_log_file_has_one_object_per_record(graph: str, tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    args = ["run", graph, "--duration", "0.3", "--log-format", "json", "--log-file", str(log_file)]
    assert main(args) == EXIT_OK
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert entries, "nothing was logged to the file"
    assert all(ISO_MS.match(e["ts"]) and e["level"] and e["logger"] and "msg" in e for e in entries)
    started = [e for e in entries if e["logger"] == "rtrun.supervisor" and "started" in e["msg"]]
    assert {e["msg"].split()[0] for e in started} >= {"root/src", "root/sink"}


def test_text_log_file_lines_carry_millisecond_timestamps(graph: str, tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    assert main(["run", graph, "--duration", "0.3", "--log-file", str(log_file)]) == EXIT_OK
    lines = log_file.read_text().splitlines()
    assert lines and all(ISO_MS.match(line.split(" ", 1)[0]) for line in lines)
    assert any(" INFO rtrun.supervisor: root/src started" in line for line in lines)


def test_terminal_view_shows_milliseconds_on_every_line() -> None:
    stream = io.StringIO()
    setup_logging("info", stream)
    for i in range(3):
        logging.getLogger("rtrun.actor.cam").info("frame %d", i)
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    assert len(lines) == 3
    assert all(re.match(r"^\d\d:\d\d:\d\d\.\d{3} INFO +\[cam\] frame \d", line) for line in lines)


def test_an_unwritable_log_file_is_a_usage_error(graph: str, tmp_path: Path) -> None:
    assert main(["run", graph, "--log-file", str(tmp_path / "no" / "such" / "dir.log")]) == EXIT_USAGE


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_forwarded_host_lines_are_tagged_with_their_host(fmt: str, tmp_path: Path) -> None:
    stream, log_file = io.StringIO(), tmp_path / "launcher.log"
    setup_logging("info", stream, fmt=fmt, file=str(log_file))  # type: ignore[arg-type]
    child = json.dumps({"ts": "t", "level": "INFO", "logger": "rtrun.cli", "msg": "graph running"})
    forward_host_line("robot", child if fmt == "json" else "12:00:00.000 INFO graph running")
    forward_host_line("robot", "Traceback (most recent call last):")  # not JSON even in json mode
    for text in (stream.getvalue(), log_file.read_text()):
        lines = text.splitlines()
        if fmt == "text":
            assert lines == [
                "[robot] 12:00:00.000 INFO graph running",
                "[robot] Traceback (most recent call last):",
            ]
        else:
            first, second = (json.loads(line) for line in lines)
            assert first == {
                "host": "robot",
                "ts": "t",
                "level": "INFO",
                "logger": "rtrun.cli",
                "msg": "graph running",
            }
            assert second == {"host": "robot", "msg": "Traceback (most recent call last):"}


def test_a_closed_sink_never_raises_into_the_launcher() -> None:
    stream = io.StringIO()
    setup_logging("info", stream)
    stream.close()
    forward_host_line("robot", "still alive")  # must not raise
    logging.getLogger("rtrun.cli").info("still alive")  # must not raise either
