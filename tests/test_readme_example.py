"""The README's examples run exactly as printed, from a scratch directory outside the repository.

Marker convention in README.md (the comment sits right above a fenced block):

* ``<!-- example:NAME file=PATH -->`` — the block is the file ``PATH`` of example ``NAME``;
* ``<!-- example:NAME run -->`` — each line of the block is a shell command a reader types in
  the example's folder.

A test writes an example's files into a fresh temporary folder, byte for byte, and runs its
commands there with a bounded time: nothing is added to ``PYTHONPATH``, and the working
directory is not the repository.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from rtrun import compile_graph, load_graph, open_graph

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = re.compile(r"<!-- example:([\w-]+) (file=(\S+)|run) -->\s*```\w*\n(.*?)```", re.S)
COMMAND_TIMEOUT_S = 120.0
"""Per command: interpreter start-up and imports take a few seconds on a loaded 2-core box."""


def example(name: str) -> tuple[dict[str, str], list[str]]:
    """``({path: text}, [commands])`` of the README example ``name``."""
    files: dict[str, str] = {}
    commands: list[str] = []
    for match in MARKER.finditer(README.read_text(encoding="utf-8")):
        if match.group(1) != name:
            continue
        if match.group(3):
            files[match.group(3)] = match.group(4)
        else:
            commands += [line for line in match.group(4).splitlines() if line.strip()]
    assert files and commands, f"README has no files and commands for example {name!r}"
    return files, commands


def write_example(name: str, folder: Path) -> list[str]:
    """Write the example's files under ``folder``; return its commands."""
    assert not folder.resolve().is_relative_to(REPO), "the example must run outside the repository"
    files, commands = example(name)
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return commands


def run_printed(command: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """Run one printed command in ``folder`` (``python`` is this interpreter, as in a venv)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        command, shell=True, cwd=folder, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["own-actor", "embed"])
def test_readme_example_runs_as_printed_from_a_scratch_folder(name: str, tmp_path: Path) -> None:
    for command in write_example(name, tmp_path):
        done = run_printed(command, tmp_path)
        assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
        if name == "embed":
            assert done.stdout.count("[") >= 10, done.stdout  # ten joint positions printed


def test_own_actor_is_short() -> None:
    files, _ = example("own-actor")
    assert len(files["my_robot/scale.py"].strip().splitlines()) <= 30


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_own_actor_imports_from_the_graph_folder_in_process(tmp_path: Path) -> None:
    write_example("own-actor", tmp_path)
    path_before = list(sys.path)
    try:
        compiled = compile_graph(load_graph(tmp_path / "graph.toml"))
        assert sys.path == path_before, "importing a user kind must not change sys.path"
        assert [e.name for e in compiled.edges] == [
            "script/command->scale/command",
            "scale/command->arm/command",
        ]
        async with open_graph(tmp_path / "graph.toml") as graph:
            with anyio.fail_after(10):
                while graph.status().actors[1].outputs["command"].sent < 5:
                    await anyio.sleep(0.05)
            arm = next(a for a in graph.status().actors if a.id == "arm")
            assert arm.inputs["command"].received >= 1
    finally:
        for name in [m for m in sys.modules if m == "my_robot" or m.startswith("my_robot.")]:
            del sys.modules[name]
