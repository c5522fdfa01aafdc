"""Deterministic mismatches in actors are ``rtrun.ConfigurationError`` (issue 16).

Their supervisor does not restart them (a restart could only fail the same way) and the graph
stops with one report; transient faults stay ordinary exceptions and are restarted.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import rtrun
from rtrun.actors._dataset_layout import FeatureMismatchError, VideoOptionsMismatchError
from rtrun.actors.policy_worker import PolicyWorkerActor
from rtrun.actors.rtc_merger import PolicyContractError, PolicyPathError

from .test_rtc_merger import _merger, _reply, _request, virtual


@pytest.mark.parametrize(
    "error", [rtrun.ParamsError, FeatureMismatchError, VideoOptionsMismatchError, PolicyContractError]
)
def test_deterministic_mismatches_are_configuration_errors(error: type[Exception]) -> None:
    assert issubclass(error, rtrun.ConfigurationError)


def test_an_offline_policy_path_is_not_a_configuration_error() -> None:
    assert not issubclass(PolicyPathError, rtrun.ConfigurationError)  # offline: may recover


@virtual
async def test_policy_contract_violation_raises_a_configuration_error() -> None:
    h = _merger()
    h.last_episode, h.last_seq = 0, -1  # type: ignore[attr-defined]
    with pytest.raises(BaseExceptionGroup) as info:
        async with h.running():
            req = await _request(h)
            await h.send["replies"].send(_reply(req, kind="action_dim", error="7 != 6"))
            await anyio.sleep(1.0)
    assert info.group_contains(rtrun.ConfigurationError, match="action_dim")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # loads in a worker thread: real time
async def test_a_checkpoint_that_cannot_load_is_a_configuration_error(tmp_path: Path) -> None:
    spec = rtrun.GraphSpec(
        name="pw",
        actors=(
            rtrun.ActorSpec(
                id="w",
                kind=PolicyWorkerActor,
                params={"checkpoint": str(tmp_path / "missing")},
                inputs={"requests": rtrun.InputSpec(name="requests", source=None, external=True)},
            ),
        ),
    )
    with pytest.raises(rtrun.ConfigurationError, match="does not exist") as info:
        async with rtrun.open_graph(spec):
            pytest.fail("the body must not run")  # pragma: no cover
    assert info.value.actor == "w"
