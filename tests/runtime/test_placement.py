"""Placement: the same graph split across hosts, each host with its own Zenoh session."""

from __future__ import annotations

import textwrap
from pathlib import Path

import anyio
import pytest
from rtrun import GraphError, compile_graph, load_graph, open_graph

from .zenoh_helpers import free_port


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Zenoh delivers on real threads: no virtual time here


def split_graph(tmp_path: Path, policy: str = "block") -> Path:
    port = free_port()
    text = f"""
    [graph]
    name = "split"

    [zenoh]
    lease_ms = 1000

    [hosts.robot]
    zenoh = {{ mode = "peer", listen = ["tcp/127.0.0.1:{port}"] }}

    [hosts.gpu]
    zenoh = {{ mode = "peer", connect = ["tcp/127.0.0.1:{port}"] }}

    [[actor]]
    id = "src"
    kind = "rtrun.testing:CounterSource"
    host = "robot"
    params = {{ rate_hz = 200.0 }}

    [[actor]]
    id = "relay"
    kind = "rtrun.testing:Relay"
    host = "gpu"
    params = {{ add = 1000 }}
    inputs.in = {{ source = "src/out", capacity = 4, policy = "{policy}", qos = {{ reliability = "reliable" }} }}

    [[actor]]
    id = "sink"
    kind = "rtrun.testing:Collector"
    host = "robot"
    inputs.in = {{ source = "relay/out", capacity = 64, policy = "drop_oldest" }}
    """
    path = tmp_path / "split.toml"
    path.write_text(textwrap.dedent(text))
    return path


def collected(graph, actor_id: str) -> dict:
    return next(a for a in graph.status().actors if a.id == actor_id).status


async def test_split_graph_runs_across_two_sessions(tmp_path: Path) -> None:
    path = split_graph(tmp_path)
    async with open_graph(path, hosts=["robot"]) as robot, open_graph(path, hosts=["gpu"]) as gpu:
        assert [a.id for a in robot.status().actors] == ["src", "sink"]
        assert [a.id for a in gpu.status().actors] == ["relay"]
        with anyio.fail_after(15):
            while collected(robot, "sink").get("received", 0) < 20:
                await anyio.sleep(0.05)
        values = collected(robot, "sink")["values"]
        assert values == list(range(values[0], values[0] + len(values)))  # in order, none lost
        assert values[0] >= 1000
        relay = gpu.status().actors[0]
        assert relay.inputs["in"].policy == "block" and relay.inputs["in"].capacity == 4


async def test_same_file_runs_in_one_process_without_zenoh(tmp_path: Path) -> None:
    async with open_graph(split_graph(tmp_path)) as graph:  # every host here: in-process channels
        assert graph._transport.needed is False
        with anyio.fail_after(10):
            while collected(graph, "sink").get("received", 0) < 5:
                await anyio.sleep(0.02)


def test_invalid_zenoh_settings_are_graph_errors(tmp_path: Path) -> None:
    path = split_graph(tmp_path)
    path.write_text(
        path.read_text().replace(
            'mode = "peer", connect', 'mode = "client", listen = ["tcp/127.0.0.1:1"], connect'
        )
    )
    with pytest.raises(
        GraphError, match=r"\[hosts.gpu\] / zenoh: invalid zenoh settings: zenoh mode 'client' cannot listen"
    ):
        compile_graph(load_graph(path))
