"""Graph validation: one test per error class, every message naming file, table and rule."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from rtrun import GraphError, compile_graph, load_graph
from rtrun._cli import main

HEADER = """
[graph]
name = "t"
"""

SRC = """
[[actor]]
id = "src"
kind = "rtrun.testing:CounterSource"
"""


def problems(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "g.toml"
    path.write_text(textwrap.dedent(HEADER + body))
    with pytest.raises(GraphError) as info:
        compile_graph(load_graph(path))
    return [str(p) for p in info.value.problems]


def only(tmp_path: Path, body: str) -> str:
    found = problems(tmp_path, body)
    assert len(found) == 1, found
    assert found[0].startswith(str(tmp_path / "g.toml") + ": ")
    return found[0]


def test_valid_graph_compiles(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(
        HEADER + SRC + '[[actor]]\nid = "sink"\nkind = "rtrun.testing:Collector"\ninputs.in = "src/out"\n'
    )
    compiled = compile_graph(load_graph(path))
    assert [e.name for e in compiled.edges] == ["src/out->sink/in"]


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    msg = only(tmp_path, "[[actor]\nid = 1\n")
    assert "TOML syntax" in msg and "line 4" in msg and "column" in msg


def test_unknown_kind(tmp_path: Path) -> None:
    msg = only(tmp_path, '[[actor]]\nid = "a"\nkind = "warp_drive"\n')
    assert "actor 'a': unknown kind 'warp_drive'" in msg and "package.module:Class" in msg


def test_unknown_import_path(tmp_path: Path) -> None:
    msg = only(tmp_path, '[[actor]]\nid = "a"\nkind = "rtrun.testing:Nope"\n')
    assert "has no attribute 'Nope'" in msg


def test_unknown_param(tmp_path: Path) -> None:
    msg = only(tmp_path, SRC + "params = { rate_hzz = 3 }\n")
    assert "actor 'src' / params: unknown parameter 'rate_hzz' (known: count, rate_hz, start)" in msg


def test_wrong_param_type(tmp_path: Path) -> None:
    msg = only(tmp_path, SRC + 'params = { count = "ten" }\n')
    assert "parameter 'count' must be int, got str 'ten'" in msg


def test_unknown_port(tmp_path: Path) -> None:
    msg = only(
        tmp_path, SRC + '[[actor]]\nid = "sink"\nkind = "rtrun.testing:Collector"\ninputs.nope = "src/out"\n'
    )
    assert (
        "actor 'sink' / input 'nope': kind 'rtrun.testing:Collector' has no input 'nope' (inputs: in)" in msg
    )


def test_unknown_output(tmp_path: Path) -> None:
    msg = only(
        tmp_path, SRC + '[[actor]]\nid = "sink"\nkind = "rtrun.testing:Collector"\ninputs.in = "src/frames"\n'
    )
    assert "has no output 'frames' (outputs: out)" in msg


def test_unknown_source_actor(tmp_path: Path) -> None:
    msg = only(
        tmp_path, '[[actor]]\nid = "sink"\nkind = "rtrun.testing:Collector"\ninputs.in = "ghost/out"\n'
    )
    assert "source actor 'ghost' does not exist" in msg


def test_type_mismatch(tmp_path: Path) -> None:
    body = (
        '[[actor]]\nid = "sink"\nkind = "rtrun.testing:Collector"\n'
        '[[actor]]\nid = "relay"\nkind = "rtrun.testing:Relay"\ninputs.in = "anything/out"\n'
        '[[actor]]\nid = "anything"\nkind = "tests.runtime.kinds:StrSource"\n'
    )
    msg = only(tmp_path, body)
    assert (
        "actor 'relay' / input 'in': type mismatch: anything/out carries Text but the input accepts Count"
        in msg
    )


def test_duplicate_ids(tmp_path: Path) -> None:
    msg = only(tmp_path, SRC + SRC)
    assert "duplicate actor id 'src'" in msg


def test_supervisor_cycle(tmp_path: Path) -> None:
    body = '[[supervisor]]\nid = "a"\nparent = "b"\n[[supervisor]]\nid = "b"\nparent = "a"\n'
    msg = only(tmp_path, body)
    assert "supervisor cycle: a -> b -> a" in msg


def test_required_input_unconnected(tmp_path: Path) -> None:
    msg = only(tmp_path, '[[actor]]\nid = "relay"\nkind = "rtrun.testing:Relay"\n')
    assert "actor 'relay' / input 'in': required input is not connected" in msg


def test_host_not_declared(tmp_path: Path) -> None:
    msg = only(tmp_path, SRC + 'host = "gpu"\n')
    assert "actor 'src': host 'gpu' is not declared (declare [hosts.gpu]" in msg


def test_block_cycle(tmp_path: Path) -> None:
    body = (
        '[[actor]]\nid = "a"\nkind = "rtrun.testing:Relay"\ninputs.in = { source = "b/out", policy = "block" }\n'
        '[[actor]]\nid = "b"\nkind = "rtrun.testing:Relay"\ninputs.in = { source = "a/out", policy = "block", capacity = 2 }\n'
    )
    msg = only(tmp_path, body)
    assert "cycle of 'block' channels can deadlock" in msg
    ok = body.replace('policy = "block" }', 'policy = "latest" }', 1)
    path = tmp_path / "ok.toml"
    path.write_text(HEADER + ok)
    compile_graph(load_graph(path))  # one latest edge breaks the cycle


def test_bad_channel_and_qos(tmp_path: Path) -> None:
    body = SRC + (
        '[[actor]]\nid = "sink"\nkind = "rtrun.testing:Collector"\n'
        'inputs.in = { source = "src/out", policy = "latest", capacity = 3, qos = { congestion = "block" } }\n'
    )
    found = problems(tmp_path, body)
    assert any("one-slot mailbox" in p for p in found)
    assert any("qos.congestion must be 'drop'" in p for p in found)


def test_unknown_keys_and_structure(tmp_path: Path) -> None:
    found = problems(tmp_path, SRC + "colour = 3\n[graph2]\n")
    assert any("actor 'src': unknown key 'colour'" in p for p in found)
    assert any("top level: unknown key 'graph2'" in p for p in found)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    body = (
        '[[actor]]\nid = "a"\nkind = "warp"\n'
        '[[actor]]\nid = "relay"\nkind = "rtrun.testing:Relay"\n'
        + SRC
        + 'params = { count = "x" }\nhost = "mars"\n'
    )
    assert len(problems(tmp_path, body)) == 4


def test_rtrun_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(HEADER + SRC)
    bad.write_text(
        HEADER + '[[actor]]\nid = "a"\nkind = "warp"\n[[actor]]\nid = "r"\nkind = "rtrun.testing:Relay"\n'
    )
    assert main(["check", str(good)]) == 0
    assert "ok (1 actors" in capsys.readouterr().out
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "unknown kind 'warp'" in err and "required input" in err
    assert main(["check", str(good), "--set", "src.count=oops"]) == 1
    assert main(["check", str(good), "--set", "nonsense"]) == 2
