"""Test-only actor kinds referenced by import path from test graphs."""

from __future__ import annotations

from typing import Any

import rtrun
from anyio.abc import TaskStatus


@rtrun.message(tag="test.runtime.Text", version=1)
class Text(rtrun.Message):
    """A line of text."""

    text: str
    """The text."""


class StrSource(rtrun.Actor):
    """Emits one Text and waits."""

    outputs = {"out": rtrun.Output(Text)}

    async def run(self, ctx: rtrun.ActorContext[Any], *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        await ctx.output("out").send(Text(text="hello"))
