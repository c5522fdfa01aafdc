"""Missing optional dependencies are reported before anything starts (``rtrun check`` / ``run``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from rtrun import compile_graph, load_graph
from rtrun._cli import EXIT_INVALID, EXIT_OK, main
from rtrun._validate import missing_requirements
from rtrun.testing import CounterSource


class NeedsNothingReal(CounterSource):
    """A source that declares a module no machine has."""

    requires: ClassVar[Mapping[str, str]] = {"rtrun_no_such_module_xyz": "pip install 'rtrun[imaginary]'"}


GRAPH = """
[graph]
name = "req"
[hosts.robot]
zenoh = {{ listen = ["tcp/127.0.0.1:7448"] }}
[hosts.gpu]
zenoh = {{ connect = ["tcp/127.0.0.1:7448"] }}
[[actor]]
id = "src"
kind = "tests.runtime.test_requirements:NeedsNothingReal"
host = "{host}"
params = {{ rate_hz = 20.0 }}
[[actor]]
id = "sink"
kind = "rtrun.testing:Collector"
host = "robot"
inputs.in = "src/out"
"""


def write(tmp_path: Path, host: str) -> str:
    path = tmp_path / "g.toml"
    path.write_text(GRAPH.format(host=host))
    return str(path)


def test_missing_module_is_reported_with_its_install_hint(tmp_path: Path) -> None:
    compiled = compile_graph(load_graph(write(tmp_path, "gpu")))
    (problem,) = missing_requirements(compiled)
    assert problem.where == "actor 'src'" and problem.line == 10  # the kind line
    assert "needs the Python module 'rtrun_no_such_module_xyz'" in problem.rule
    assert "pip install 'rtrun[imaginary]'" in problem.rule
    assert missing_requirements(compiled, hosts=["robot"]) == []  # not needed on the robot host


def test_check_warns_but_run_refuses_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "robot")
    assert main(["check", path]) == EXIT_OK
    assert "warning:" in capsys.readouterr().err
    assert main(["run", path, "--duration", "5"]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "rtrun_no_such_module_xyz" in err and "started" not in err


def test_run_on_another_host_does_not_need_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "gpu")
    assert main(["check", path, "--set", "src.rate_hz=10.0"]) == EXIT_OK
    assert missing_requirements(compile_graph(load_graph(path)), hosts=["robot"]) == []


def _kind(name: str) -> Any:
    from rtrun._kinds import resolve_kind

    return resolve_kind(name)


@pytest.mark.parametrize(
    ("kind", "params", "expected"),
    [
        ("policy_worker", None, {"torch"}),
        ("recorder", None, {"pyarrow", "av"}),
        ("camera", {"driver": "opencv"}, {"cv2"}),
        ("camera", {"driver": "opencv", "fallback": "synthetic"}, set()),
        ("camera", {"driver": "synthetic"}, set()),
        ("motor_bus", {"driver": "feetech", "port": "/dev/ttyACM0"}, {"serial"}),
        ("motor_bus", {"driver": "damiao", "port": "can0", "can_motors": {"j1": (1, 17)}}, {"can"}),
        ("motor_bus", {"driver": "sim", "sim_fallback": "none"}, {"mujoco"}),
        ("motor_bus", {"driver": "sim", "sim_fallback": "fake"}, set()),
    ],
)
def test_built_in_kinds_declare_what_they_import(
    kind: str, params: dict[str, Any] | None, expected: set[str]
) -> None:
    cls = _kind(kind)
    instance = None if params is None else cls.Params(**params)
    assert set(cls.requirements(instance)) == expected
    for module in expected:  # the hint names an extra of this package
        assert "pip install 'rtrun[" in cls.requirements(instance)[module]
