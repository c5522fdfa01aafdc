"""Small generic actors for tests, examples and demos (no robot knowledge).

Use them in a graph by import path, e.g. ``kind = "rtrun.testing:CounterSource"``. They record
what they do in ``ctx.set_status`` so tests can assert on ``graph.status()``, and
:data:`JOURNAL` lists start/stop events in order (for ordering tests).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskStatus

from .._actor import Actor, ActorContext
from .._clock import Ticker
from .._errors import ConfigurationError
from .._message import Message, message
from .._ports import Input, Output

__all__ = ["JOURNAL", "Collector", "Count", "CounterSource", "Crasher", "Relay", "SlowStart"]

JOURNAL: deque[str] = deque(maxlen=10_000)
"""``"start <id>"`` / ``"stop <id>"`` entries appended by every test actor (bounded)."""


@message(tag="rtrun.testing.Count", version=1)
class Count(Message):
    """A counter value."""

    value: int
    """The count."""
    t_sent: float = 0.0
    """Runtime clock when sent (seconds)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterParams:
    """Parameters of :class:`CounterSource`."""

    rate_hz: float = 10.0
    """Send rate."""
    count: int = 0
    """How many values to send before returning normally (0: forever)."""
    start: int = 0
    """First value."""


class _Journaled(Actor):
    async def run(self, ctx: ActorContext[Any], *, task_status: TaskStatus[None]) -> None:
        JOURNAL.append(f"start {ctx.id}")
        try:
            await self.body(ctx, task_status)
        finally:
            JOURNAL.append(f"stop {ctx.id}")

    async def body(self, ctx: ActorContext[Any], task_status: TaskStatus[None]) -> None:
        raise NotImplementedError


class CounterSource(_Journaled):
    """Sends ``start, start+1, ...`` at ``rate_hz`` on ``out``."""

    outputs = {"out": Output(Count, "counter values")}
    Params = CounterParams

    async def body(self, ctx: ActorContext[CounterParams], task_status: TaskStatus[None]) -> None:
        out = ctx.output("out")
        task_status.started()
        n = 0
        async with Ticker(ctx.params.rate_hz, mode="portable") as ticker:
            async for _ in ticker:
                if ctx.params.count and n >= ctx.params.count:
                    return
                await out.send(Count(value=ctx.params.start + n, t_sent=anyio.current_time()))
                n += 1
                ctx.set_status(sent=n)


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayParams:
    """Parameters of :class:`Relay`."""

    add: int = 0
    """Added to every value."""


class Relay(_Journaled):
    """Forwards ``in`` to ``out``, adding ``add``; ends when ``in`` ends."""

    inputs = {"in": Input(Count, required=True, doc="values to forward")}
    outputs = {"out": Output(Count, "forwarded values")}
    Params = RelayParams

    async def body(self, ctx: ActorContext[RelayParams], task_status: TaskStatus[None]) -> None:
        task_status.started()
        out = ctx.output("out")
        async for item in ctx.input("in"):
            await out.send(Count(value=item.value + ctx.params.add, t_sent=item.t_sent))


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectorParams:
    """Parameters of :class:`Collector`."""

    keep: int = 100
    """How many recent values to keep in the status."""
    log_every: int = 0
    """Log ``received N, last V`` every N messages (0: never); lets other processes watch progress."""


class Collector(_Journaled):
    """Receives ``in`` (any message type) and publishes ``received``/``last``/``values`` in its status."""

    inputs = {"in": Input(Message, required=False, doc="anything")}
    Params = CollectorParams

    async def body(self, ctx: ActorContext[CollectorParams], task_status: TaskStatus[None]) -> None:
        task_status.started()
        values: deque[Any] = deque(maxlen=ctx.params.keep)
        received = 0
        async for item in ctx.input("in"):
            received += 1
            values.append(getattr(item, "value", item))
            ctx.set_status(received=received, last=values[-1], values=list(values))
            if ctx.params.log_every and received % ctx.params.log_every == 0:
                ctx.log.info("received %d, last %s", received, values[-1])
        ctx.set_status(ended=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class CrasherParams:
    """Parameters of :class:`Crasher`."""

    crash_after_s: float = math.inf
    """Raise ``RuntimeError`` this long after becoming ready."""
    fail_start: bool = False
    """Raise before becoming ready."""
    ignore_cancel_s: float = 0.0
    """Keep running this long (shielded) after being cancelled, to test shutdown timeouts."""
    configuration_error: bool = False
    """Raise :class:`rtrun.ConfigurationError` (a failure no restart can fix) instead."""


class Crasher(_Journaled):
    """Fails on purpose, for supervision tests."""

    Params = CrasherParams

    async def body(self, ctx: ActorContext[CrasherParams], task_status: TaskStatus[None]) -> None:
        error = ConfigurationError if ctx.params.configuration_error else RuntimeError
        if ctx.params.fail_start:
            raise error(f"{ctx.id}: failing before ready (fail_start)")
        task_status.started()
        try:
            await anyio.sleep(ctx.params.crash_after_s)
        finally:
            if ctx.params.ignore_cancel_s:
                with ctx.cleanup(math.inf):
                    await anyio.sleep(ctx.params.ignore_cancel_s)
        raise error(f"{ctx.id}: crashing after {ctx.params.crash_after_s} s")


@dataclass(frozen=True, slots=True, kw_only=True)
class SlowStartParams:
    """Parameters of :class:`SlowStart`."""

    start_delay_s: float = 1.0
    """How long the start takes before ``task_status.started()`` (``inf``: a hung start)."""
    cleanup_s: float = 0.0
    """How long the shielded cleanup takes (like a motor bus reaching its safe state)."""
    cleanup_timeout_s: float = 2.0
    """Bound of the shielded cleanup (``ctx.cleanup``)."""


class SlowStart(_Journaled):
    """Takes ``start_delay_s`` to become ready, then idles; its shielded cleanup logs each step.

    Stands in for hardware with a slow start (a motor bus connecting, a policy loading): the
    cleanup logs ``cleanup begins`` and then ``safe state reached`` once ``cleanup_s`` elapsed.
    """

    Params = SlowStartParams

    async def body(self, ctx: ActorContext[SlowStartParams], task_status: TaskStatus[None]) -> None:
        try:
            ctx.log.info("starting (ready in %g s)", ctx.params.start_delay_s)
            await anyio.sleep(ctx.params.start_delay_s)
            task_status.started()
            await anyio.sleep(math.inf)
        finally:
            with ctx.cleanup(ctx.params.cleanup_timeout_s):
                ctx.log.info("cleanup begins")
                JOURNAL.append(f"cleanup {ctx.id}")
                await anyio.sleep(ctx.params.cleanup_s)
                ctx.log.info("safe state reached")
