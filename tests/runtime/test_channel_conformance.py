"""The conformance suite against in-process channels (the reference implementation)."""

from __future__ import annotations

import pytest
from rtrun.testing import SCENARIOS, ConformanceOptions, memory_channel_factory


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_memory_channel_conforms(scenario) -> None:
    await scenario(memory_channel_factory, ConformanceOptions(block_window=0.05))
