"""Line numbers for graph problems: tables, inline keys, sub-tables, blocks named by their id."""

from __future__ import annotations

from rtrun._toml_lines import line_of, locate

TEXT = """\
[graph]
name = "t"   # comment
strategy = "x"

[hosts.robot]
zenoh = { listen = ["tcp/127.0.0.1:7448"] }

[[actor]]
kind = "camera"
id = "cam"
params.fps = 30

[[actor]]
id = "sink"
kind = "rtrun.testing:Collector"
[actor.params]
keep = 3
[actor.inputs]
frames = "cam/frames"

[[supervisor]]
id = "arms"
"""


def test_locate_maps_tables_keys_and_named_blocks() -> None:
    lines = locate(TEXT)
    assert lines["[graph]"] == 1 and lines["[graph].strategy"] == 3
    assert lines["[hosts.robot]"] == 5
    assert lines["actor #1"] == lines["actor 'cam'"] == 8
    assert lines["actor 'cam'.kind"] == 9  # written before the id: renamed once the id is seen
    assert lines["actor 'cam'.params.fps"] == 11
    assert lines["actor 'sink'.params"] == 16 and lines["actor 'sink'.params.keep"] == 17
    assert lines["actor 'sink'.inputs.frames"] == 19
    assert lines["supervisor 'arms'"] == 21


def test_line_of_picks_the_most_specific_location() -> None:
    lines = locate(TEXT)
    assert line_of(lines, "[graph]", "strategy must be one of ...") == 3
    assert line_of(lines, "actor 'cam'", "unknown kind 'camra'") == 9
    assert line_of(lines, "actor 'cam' / params", "parameter 'fps' must be float") == 11
    assert line_of(lines, "actor 'sink' / params", "unknown parameter 'kep'") == 16
    assert line_of(lines, "actor 'sink' / input 'frames'", "source actor 'x' does not exist") == 19
    assert line_of(lines, "actor 'nobody'", "whatever") is None
