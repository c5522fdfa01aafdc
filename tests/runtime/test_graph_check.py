"""Graph validation: one test per error class, every message naming file, table and rule."""

from __future__ import annotations

import re
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
    assert re.match(re.escape(str(tmp_path / "g.toml")) + r"(:\d+)?: ", found[0])
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
    assert (
        "actor 'src' / params: unknown parameter 'rate_hzz'; did you mean 'rate_hz'? (known: count, rate_hz, start)"
        in msg
    )


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
    assert main(["check", str(good), "--set", "src.count=oops"]) == 2  # a bad --set is a usage error
    assert main(["check", str(good), "--set", "nonsense"]) == 2


ISSUE_EXAMPLE = """
[graph]
name = "t"
intensity = "lots"

[[actor]]
id = "cam"
kind = "camra"

[[actor]]
id = "src"
kind = "rtrun.testing:CounterSource"
params = { rate_hz = "fast" }

[[actor]]
id = "sink"
kind = "rtrun.testing:Collector"
params = { kep = 3 }
inputs.in = "srcc/out"
"""


def test_check_reports_structural_and_semantic_problems_at_once_with_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad [graph] value, a kind typo, a wrong parameter type, a near-miss parameter and a
    missing source: every problem in one run, each with its line and a suggestion where one fits;
    the actor with invalid params still has its input checked."""
    path = tmp_path / "g.toml"
    path.write_text(ISSUE_EXAMPLE)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "invalid graph (5 problem(s))" in err
    f = str(path)
    assert f"{f}:4: [graph]: 'intensity' must be int, got str 'lots'" in err
    assert f"{f}:8: actor 'cam': unknown kind 'camra'; did you mean 'camera'?" in err
    assert f"{f}:13: actor 'src' / params: parameter 'rate_hz' must be float" in err
    assert f"{f}:18: actor 'sink' / params: unknown parameter 'kep'; did you mean 'keep'?" in err
    assert (
        f"{f}:19: actor 'sink' / input 'in': source actor 'srcc' does not exist; did you mean 'src'?" in err
    )


def test_load_graph_still_raises_on_structure_unless_collecting(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(ISSUE_EXAMPLE)
    with pytest.raises(GraphError) as info:
        load_graph(path)
    assert [p.line for p in info.value.problems] == [4]
    spec = load_graph(path, collect=True)
    assert [str(p.rule) for p in spec.problems] == ["'intensity' must be int, got str 'lots'"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (SRC + '[[actor]]\nid = "sink"\nkind = "rtrun.testing:Collector"\ninputs.inn = "src/out"\n',
         "has no input 'inn'; did you mean 'in'?"),
        (SRC + '[[actor]]\nid = "sink"\nkind = "rtrun.testing:Collector"\ninputs.in = "src/outt"\n',
         "has no output 'outt'; did you mean 'out'?"),
        (SRC + 'supervisor = "arm"\n[[supervisor]]\nid = "arms"\n',
         "supervisor 'arm' is not declared; did you mean 'arms'?"),
        (SRC + "colr = 3\n", "unknown key 'colr'"),
    ],
)  # fmt: skip
def test_near_miss_names_get_a_suggestion(tmp_path: Path, body: str, expected: str) -> None:
    assert any(expected in p for p in problems(tmp_path, body))


def test_set_on_a_near_miss_actor_gets_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "g.toml"
    path.write_text(HEADER + SRC)
    assert main(["check", str(path), "--set", "scr.rate_hz=3.0"]) == 2
    assert "no actor 'scr'; did you mean 'src'?" in capsys.readouterr().err
