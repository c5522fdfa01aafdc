"""The README's "write your own actor" example runs exactly as printed."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from rtrun import compile_graph, load_graph, open_graph

README = Path(__file__).resolve().parents[1] / "README.md"


def block_after(marker: str) -> str:
    text = README.read_text()
    match = re.search(re.escape(f"<!-- example:{marker} -->") + r"\s*```\w*\n(.*?)```", text, re.S)
    assert match, f"README has no fenced block after <!-- example:{marker} -->"
    return match.group(1)


@pytest.fixture
def example_package(tmp_path: Path) -> Iterator[Path]:
    package = tmp_path / "my_robot"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "scale.py").write_text(block_after("actor"))
    (tmp_path / "graph.toml").write_text(block_after("graph"))
    sys.path.insert(0, str(tmp_path))
    yield tmp_path / "graph.toml"
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("my_robot")]:
        del sys.modules[name]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_readme_actor_example_runs(example_package: Path) -> None:
    assert len(block_after("actor").strip().splitlines()) <= 30
    compiled = compile_graph(load_graph(example_package))
    assert [e.name for e in compiled.edges] == ["script/command->scale/command", "scale/command->arm/command"]
    async with open_graph(example_package) as graph:
        with anyio.fail_after(10):
            while graph.status().actors[1].outputs["command"].sent < 5:
                await anyio.sleep(0.05)
        arm = next(a for a in graph.status().actors if a.id == "arm")
        assert arm.inputs["command"].received >= 1
