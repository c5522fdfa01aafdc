"""``rtrun`` usage errors: exit 2 and a message that blames the argument, not the graph file."""

from __future__ import annotations

from pathlib import Path

import pytest
from rtrun._cli import EXIT_INVALID, EXIT_USAGE, main

GRAPH = """
[graph]
name = "usage"
[hosts.robot]
zenoh = { listen = ["tcp/127.0.0.1:7448"] }
[hosts.gpu]
zenoh = { connect = ["tcp/127.0.0.1:7448"] }
[[actor]]
id = "src"
kind = "rtrun.testing:CounterSource"
params = { rate_hz = 50.0 }
host = "robot"
[[actor]]
id = "sink"
kind = "rtrun.testing:Collector"
inputs.in = "src/out"
host = "gpu"
"""


@pytest.fixture
def graph(tmp_path: Path) -> str:
    path = tmp_path / "g.toml"
    path.write_text(GRAPH)
    return str(path)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("rtrun 0.")


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_bad_set_value_is_a_usage_error_that_blames_set(
    graph: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, graph, "--set", "src.rate_hz=fast"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "bad --set (src.rate_hz='fast')" in err
    assert "rate_hz" in err and "invalid graph" not in err


def test_set_naming_an_unknown_actor_is_a_usage_error(graph: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", graph, "--set", "nosuch.rate_hz=1.0"]) == EXIT_USAGE
    assert "no actor 'nosuch'" in capsys.readouterr().err


def test_a_broken_file_stays_an_invalid_graph_even_with_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GRAPH.replace('kind = "rtrun.testing:Collector"', 'kind = "nosuch_kind"'))
    assert main(["check", str(path), "--set", "src.rate_hz=fast"]) == EXIT_INVALID
    assert "invalid graph" in capsys.readouterr().err


@pytest.mark.parametrize("duration", ["0", "-1", "inf", "nan", "soon"])
def test_duration_must_be_positive_and_finite(
    graph: str, duration: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", graph, "--duration", duration])
    assert exit_.value.code == EXIT_USAGE
    assert "--duration" in capsys.readouterr().err


def test_unknown_host_lists_the_graphs_hosts(graph: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", graph, "--host", "nosuch"]) == EXIT_USAGE
    assert "its hosts: gpu, robot" in capsys.readouterr().err
