"""The recorder says "episode N saved" only once episode N is committed on disk (issue 16).

Before, the line was logged when the episode was handed to the writer thread, so a SIGKILL
right after it lost the episode. Now the line, ``episodes``, ``last_episode`` and
``pending_saves`` in the status all follow the writer's commit.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import rtrun

pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("av")

from rtrun.actors._dataset_check import check_dataset  # noqa: E402
from rtrun.actors._dataset_writer import DatasetWriter  # noqa: E402

from .test_recorder import command, recorder_graph, wait_for  # noqa: E402
from .test_recorder_crash import GRAPH, REPO, saved_episodes  # noqa: E402

SAVED = re.compile(r"episode (\d+) saved")

ASYNCIO = [pytest.param(("asyncio", {}), id="asyncio")]


class DiskAtEmit(logging.Handler):
    """Keeps each recorder log line with the number of episodes on disk when it was emitted."""

    def __init__(self, root: Path) -> None:
        super().__init__(logging.INFO)
        self.root = root
        self.lines: list[tuple[str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.getMessage(), saved_episodes(self.root)))

    def saved(self) -> list[tuple[str, int]]:
        return [(msg, disk) for msg, disk in self.lines if SAVED.search(msg)]


@pytest.fixture
def slow_commit(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """``save_episode`` blocks (in the writer thread) until the test sets ``release``."""
    entered, release = threading.Event(), threading.Event()
    original = DatasetWriter.save_episode

    def gated(self: DatasetWriter, *args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(30), "the test never released the save"
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DatasetWriter, "save_episode", gated)
    yield entered, release
    release.set()


@pytest.mark.parametrize("anyio_backend", ASYNCIO)
async def test_saved_line_and_status_follow_the_commit(
    tmp_path: Path, slow_commit: tuple[threading.Event, threading.Event]
) -> None:
    entered, release = slow_commit
    root = tmp_path / "ds"
    handler = DiskAtEmit(root)
    log = logging.getLogger("rtrun.actor.rec")
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.INFO)
    try:
        async with rtrun.open_graph(recorder_graph(root, cams=1)) as graph:
            await command(graph, "start", "pick")
            await wait_for(graph, lambda s: s["rows"] >= 5)
            await command(graph, "save")
            deadline = time.monotonic() + 30
            while not entered.is_set():  # the writer thread is now inside save_episode
                assert time.monotonic() < deadline, "the save never reached the writer"
                await anyio.sleep(0.01)
            await anyio.sleep(0.3)  # several recorder ticks while the commit is held
            status = dict(graph.context("rec").status)
            assert handler.saved() == [], handler.lines
            assert status["episodes"] == 0 and status["pending_saves"] == 1, status
            assert status["last_episode"] is None, status
            release.set()
            status = await wait_for(graph, lambda s: s["episodes"] == 1 and s["pending_saves"] == 0)
            assert status["last_episode"]["saved"] is True and status["last_episode"]["index"] == 0
            deadline = time.monotonic() + 10
            while not handler.saved():
                assert time.monotonic() < deadline, handler.lines
                await anyio.sleep(0.02)
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    assert [disk for _, disk in handler.saved()] == [1]  # on disk when the line was written
    assert check_dataset(root) == []


def _lines(stream: Any, out: queue.Queue[str | None]) -> None:
    for line in iter(stream.readline, ""):
        out.put(line)
    out.put(None)


@pytest.mark.slow
def test_sigkill_right_after_the_saved_line_keeps_the_episode(tmp_path: Path) -> None:
    """Kill the process the moment it logs "episode N saved": episode N loads."""
    root = tmp_path / "ds"
    graph = tmp_path / "graph.toml"
    graph.write_text(GRAPH.format(root=root))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "rtrun", "run", str(graph), "--log-level", "info", "--loop", "asyncio"]
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []
    with subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        reader = threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 60
            while True:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                assert line is not None, "".join(seen[-30:])
                seen.append(line)
                if match := SAVED.search(line):
                    os.kill(proc.pid, signal.SIGKILL)
                    episode = int(match.group(1))
                    break
                assert time.monotonic() < deadline, "no 'saved' line: " + "".join(seen[-30:])
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    assert saved_episodes(root) >= episode + 1, "".join(seen[-30:])
    assert {p.rule for p in check_dataset(root)} <= {"uncommitted"}
    rows = pq.read_table(sorted(root.glob("data/*/*.parquet"))).to_pydict()
    assert episode in set(rows["episode_index"])
