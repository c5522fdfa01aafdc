"""The checkpoint of the channel hot paths: anyio's semantics, minus its per-call dispatch.

Every ``send`` and ``receive`` of every transport is a checkpoint -- a cancellation point *and*
a scheduling point -- as anyio's memory object streams and rtrun's in-process channels are
(``rtrun.testing`` checks both on every transport). :func:`anyio.lowlevel.checkpoint` asks
sniffio which library runs the current task and dispatches to that backend's class method on
every call: a few µs with the cold cache a sparse control message meets. :func:`checkpoint`
identifies the library as sniffio does (its thread-local name -- trio sets it -- then its
context variable, set by bridges between libraries, else "asyncio" if an asyncio loop runs in
this thread) and awaits what anyio's backend would:

- asyncio: one bare yield of the task to the loop (anyio's asyncio ``checkpoint`` is
  ``await asyncio.sleep(0)``, which is exactly that yield). The task is rescheduled behind every
  ready callback, so other tasks run; a cancellation anyio delivers (``task.cancel()``) is raised
  at the yield.
- trio: ``trio.lowlevel.checkpoint()`` (what anyio's trio backend awaits).
- anything else: anyio's own :func:`anyio.lowlevel.checkpoint`.

Measured with ``benchmarks/channels.py`` and ``benchmarks/zenoh_hop.py`` (README, "Performance").
"""

from __future__ import annotations

import types
from asyncio import _get_running_loop
from collections.abc import Awaitable, Generator

import anyio.lowlevel

try:
    import sniffio
except ImportError:  # pragma: no cover - optional for anyio; trio (tests) brings it
    sniffio = None  # type: ignore[assignment]

__all__ = ["checkpoint"]

_thread = None if sniffio is None else sniffio.thread_local
_cvar = None if sniffio is None else sniffio.current_async_library_cvar


@types.coroutine
def _yield_to_loop() -> Generator[None, None, None]:
    """One bare yield to the asyncio task awaiting it (what ``asyncio.sleep(0)`` does)."""
    yield


def _library() -> str | None:
    """The running async library as sniffio names it (thread-local, then context variable);
    ``None`` when neither says (asyncio then, if a loop runs in this thread)."""
    name = None if _thread is None else _thread.name
    if name is None and _cvar is not None:
        name = _cvar.get()
    return name


def checkpoint() -> Awaitable[None]:
    """``await checkpoint()``: a cancellation point and a scheduling point, exactly as
    :func:`anyio.lowlevel.checkpoint` (which it is, minus the dispatch)."""
    name = _library()
    if name == "trio":
        import trio.lowlevel  # (already imported: trio runs this task)

        return trio.lowlevel.checkpoint()  # noqa: ASYNC105 - the caller awaits it
    if (name is None or name == "asyncio") and _get_running_loop() is not None:
        return _yield_to_loop()
    return anyio.lowlevel.checkpoint()
