"""Paths in a graph file are relative to the file: user kinds and path parameters (issue 16)."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path
from typing import Annotated

import pytest
import rtrun
from rtrun import ActorSpec, GraphSpec, PathParam, compile_graph, load_graph
from rtrun._params import describe_params, resolve_path_params

ACTOR_MODULE = '''
from dataclasses import dataclass
from typing import Annotated

import rtrun


@dataclass(frozen=True, slots=True, kw_only=True)
class P:
    data: Annotated[str, rtrun.PathParam()] = ""
    """A file."""


class Reader(rtrun.Actor):
    """Reads a file."""

    Params = P

    async def run(self, ctx, *, task_status):
        task_status.started()
'''


@pytest.fixture
def graph_dir(tmp_path: Path) -> Path:
    """``<tmp>/robots/graph.toml`` with a user kind ``paths_kind_mod:Reader`` next to it."""
    folder = tmp_path / "robots"
    folder.mkdir()
    (folder / "paths_kind_mod.py").write_text(textwrap.dedent(ACTOR_MODULE))
    yield folder
    sys.modules.pop("paths_kind_mod", None)


def _write_graph(folder: Path, params: str) -> Path:
    path = folder / "graph.toml"
    path.write_text(f'[[actor]]\nid = "r"\nkind = "paths_kind_mod:Reader"\nparams = {params}\n')
    return path


def test_user_kind_is_imported_from_the_graph_folder_without_changing_sys_path(
    graph_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_graph(graph_dir, "{}")
    monkeypatch.chdir(graph_dir.parent)  # not the graph's folder, and not on sys.path
    before = list(sys.path)
    compiled = compile_graph(load_graph(Path("robots/graph.toml")))
    assert compiled.actors["r"].cls.__name__ == "Reader"
    assert sys.path == before


def test_relative_path_params_resolve_against_the_graph_file(
    graph_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(graph_dir.parent)
    compiled = compile_graph(load_graph(_write_graph(graph_dir, '{ data = "calib/arm.json" }')))
    assert compiled.actors["r"].params.data == str(graph_dir / "calib" / "arm.json")
    overridden = compile_graph(load_graph(graph_dir / "graph.toml"), overrides=[("r", "data", "x.json")])
    assert overridden.actors["r"].params.data == str(graph_dir / "x.json")


@pytest.mark.parametrize("value", ["", "/abs/file.json", "~/file.json"])
def test_absolute_home_and_empty_paths_are_kept(graph_dir: Path, value: str) -> None:
    compiled = compile_graph(load_graph(_write_graph(graph_dir, f'{{ data = "{value}" }}')))
    assert compiled.actors["r"].params.data == value


def test_a_spec_built_in_python_keeps_relative_paths(graph_dir: Path) -> None:
    spec = load_graph(_write_graph(graph_dir, '{ data = "a.json" }'))
    in_python = GraphSpec(
        name="g", actors=(ActorSpec(id="r", kind=spec.actors[0].kind, params={"data": "a.json"}),)
    )
    sys.path.insert(0, str(graph_dir))
    try:
        assert compile_graph(in_python).actors["r"].params.data == "a.json"
    finally:
        sys.path.remove(str(graph_dir))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Params:
    source: Annotated[str, PathParam(keep=str.isdigit)] = "0"
    """Device index or video file."""
    name: str = "x"
    """Not a path."""


@pytest.mark.parametrize(
    ("source", "expected"), [("0", "0"), ("clip.mp4", "/g/clip.mp4"), ("/dev/video0", "/dev/video0")]
)
def test_keep_predicate_and_unmarked_fields(source: str, expected: str) -> None:
    resolved = resolve_path_params(_Params(source=source, name="rel/name"), "/g")
    assert (resolved.source, resolved.name) == (expected, "rel/name")
    assert resolve_path_params(_Params(source=source), None).source == source


def test_marker_does_not_change_the_described_type() -> None:
    assert [(p.name, p.annotation) for p in describe_params(_Params)] == [("source", "str"), ("name", "str")]


@pytest.mark.parametrize(
    ("kind", "param", "value", "resolved"),
    [
        ("recorder", "root", "data/set", True),
        ("policy_worker", "checkpoint", "models/act", True),
        ("policy_worker", "checkpoint", "demo:act", False),
        ("policy_worker", "checkpoint", "sleep:0.1", False),
        ("policy_worker", "cache_dir", "cache", True),
        ("motor_bus", "calibration", "calib/arm.json", True),
        ("teleop", "calibration", "calib/leader.json", True),
        ("camera", "source", "videos/clip.mp4", True),
        ("camera", "source", "0", False),
        ("camera", "source", "rtsp://cam/stream", False),
    ],
)
def test_builtin_path_params(kind: str, param: str, value: str, resolved: bool) -> None:
    from rtrun._kinds import resolve_kind

    cls = resolve_kind(kind)
    required = {"root": "r"} if kind == "recorder" and param != "root" else {}
    params = cls.Params(**{**required, param: value})
    out = getattr(resolve_path_params(params, "/g"), param)
    assert out == (f"/g/{value}" if resolved else value)
    assert isinstance(rtrun.PathParam(), PathParam)
