"""One QoS type for the graph and the Zenoh transport (issue 15: types at the seams)."""

from __future__ import annotations

import pytest
import rtrun
from rtrun import _zenoh
from rtrun._qos import PRIORITIES, QoS


def test_the_graph_and_the_transport_share_one_type() -> None:
    assert rtrun.QoS is QoS is _zenoh.QoS
    for qos in (_zenoh.QOS_OBSERVATION, _zenoh.QOS_ACTION, _zenoh.QOS_CONTROL):
        assert isinstance(qos, QoS) and qos.problems() == []


def test_problems_state_the_rules() -> None:
    assert QoS().problems() == []
    bad = QoS(reliability="maybe", congestion="block", priority="urgent")
    found = bad.problems()
    assert len(found) == 3
    assert "qos.reliability must be one of best_effort, reliable" in found[0]
    assert "qos.congestion must be 'drop'" in found[1]
    assert f"qos.priority must be one of {', '.join(PRIORITIES)}" in found[2]
    assert QoS(congestion="block").problems(data=False) == []  # rtrun's own control puts
    assert QoS(congestion="sometimes").problems(data=False) != []


def test_the_transport_refuses_block_on_a_data_key() -> None:
    with pytest.raises(rtrun.TransportError, match="never blocks a publisher"):
        _zenoh._qos_kwargs(QoS(congestion="block"), data=True)


def test_an_input_spec_carries_the_same_type() -> None:
    spec = rtrun.InputSpec(name="x", source="a/out", qos=QoS(priority="urgent"))
    assert spec.qos.problems() == [f"qos.priority must be one of {', '.join(PRIORITIES)}, got 'urgent'"]
