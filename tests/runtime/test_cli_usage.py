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


def test_kinds_shows_each_parameters_type_default_and_doc(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kinds", "camera"]) == 0
    out = capsys.readouterr().out
    assert "camera  (rtrun.actors.camera:" in out
    assert "    fps: float = 30.0\n        Frame rate" in out


def test_kinds_takes_user_kinds_by_import_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kinds", "rtrun.testing:Collector"]) == 0
    out = capsys.readouterr().out
    assert "inputs:  in: Message?" in out
    assert "    keep: int = 100\n        How many recent values" in out


def test_kinds_lists_every_built_in_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kinds"]) == 0
    out = capsys.readouterr().out
    for kind in ("action_queue", "camera", "motor_bus", "policy_worker", "recorder", "rtc_merger"):
        assert f"\n{kind}  (" in f"\n{out}"


def test_kinds_with_an_unknown_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kinds", "nosuch"]) == EXIT_USAGE
    assert "unknown kind 'nosuch'" in capsys.readouterr().err
