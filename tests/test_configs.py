"""Every configs/*.toml is validated and run for a few virtual seconds.

Graphs that need hardware declare the driver swaps their test run uses in comment lines::

    # rtrun-test: --set follower.driver=fake --set wrist.driver=synthetic

Those overrides are exactly what a user without the hardware would pass to ``rtrun run``.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from pathlib import Path

import anyio
import pytest
from rtrun import GraphSpec, compile_graph, load_graph, open_graph
from rtrun._params import parse_override

from .conftest import THREAD_FRIENDLY_VIRTUAL

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
RUN_SECONDS = 3.0


def without_start_timeouts(spec: GraphSpec) -> GraphSpec:
    return dataclasses.replace(
        spec, actors=tuple(dataclasses.replace(a, start_timeout_s=math.inf) for a in spec.actors)
    )


def test_configs_exist() -> None:
    assert CONFIGS, "configs/ must hold example graphs"


def overrides_for(path: Path) -> list[tuple[str, str, object]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("# rtrun-test:"):
            words = shlex.split(line.removeprefix("# rtrun-test:"))
            out += [
                parse_override(w) for flag, w in zip(words[::2], words[1::2], strict=True) if flag == "--set"
            ]
    return out


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates_as_written(path: Path) -> None:
    compile_graph(load_graph(path))


def scratch_dataset_roots(spec: GraphSpec, folder: Path) -> list[tuple[str, str, object]]:
    """Overrides sending every recorder's dataset into ``folder`` (never into the repository)."""
    return [(a.id, "root", str(folder / a.id)) for a in spec.actors if a.kind == "recorder"]


@pytest.mark.parametrize("anyio_backend", THREAD_FRIENDLY_VIRTUAL)
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
async def test_config_runs_for_a_few_virtual_seconds(path: Path, tmp_path: Path) -> None:
    spec = without_start_timeouts(load_graph(path))
    overrides = overrides_for(path) + scratch_dataset_roots(spec, tmp_path)
    async with open_graph(spec, overrides=overrides) as graph:
        await anyio.sleep(RUN_SECONDS)
        status = graph.status()
        assert status.state == "running"
        assert all(a.state == "running" for a in status.actors), [
            (a.id, a.state, a.last_exit) for a in status.actors
        ]
        assert status.messages > 0, "the graph should move messages"


def test_paths_in_configs_are_relative_to_the_config_file() -> None:
    path = CONFIGS[0].parent / "sim_record.toml"
    compiled = compile_graph(load_graph(path))
    assert compiled.actors["recorder"].params.root == str(path.parents[1] / "recordings" / "sim_so101")
