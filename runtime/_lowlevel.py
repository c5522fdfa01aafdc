"""Cancellation checks for hot paths: anyio's semantics, minus its per-call overhead.

anyio's :func:`anyio.lowlevel.checkpoint_if_cancelled` asks sniffio which library runs the
current task, dispatches to that backend, and walks the task's cancel scopes inside a
coroutine, on every call. A Zenoh ``send`` checks for cancellation on every call (a cancelled
task never publishes); with the cold cache a sparse control message meets, that cost 20 µs.

:func:`cancel_maybe_pending` answers the same question with a plain function call: ``False``
only when the current task is certainly not inside a cancelled (unshielded) scope, which is
the common case; callers then skip the check, else they await anyio's
:func:`~anyio.lowlevel.checkpoint_if_cancelled`, which raises the cancellation as always. The
library is identified as sniffio does
(its thread-local name -- trio sets it -- then its context variable, set by bridges between
libraries, else "asyncio" if an asyncio loop runs in this thread; without sniffio installed,
anyio assumes the same). On asyncio the scope walk reads anyio's task state directly: the
same data anyio's own check reads (``_task_states``, each scope's cancel/shield flags and
parent). Those are anyio internals, so they are verified at import; if this anyio lays them
out differently -- and on every other library -- the answer is always "maybe" and anyio's own
check runs, which is always correct, merely slower. The tests run both paths on both backends.
"""

from __future__ import annotations

import asyncio.tasks
import types
import weakref
from asyncio import _get_running_loop, current_task
from collections.abc import Callable
from typing import Any

try:
    import sniffio
except ImportError:  # pragma: no cover - optional for anyio; trio (tests) brings it
    sniffio = None  # type: ignore[assignment]

__all__ = ["cancel_maybe_pending"]

_thread = None if sniffio is None else sniffio.thread_local
_cvar = None if sniffio is None else sniffio.current_async_library_cvar
_ref = weakref.ref


def _anyio_task_states() -> dict[Any, Any] | None:
    """anyio's asyncio task-state table (weakref(task) -> state), if laid out as expected."""
    try:
        from anyio._backends import _asyncio as backend

        table = backend._task_states.data
        scope_slots = backend.CancelScope.__slots__
        state_slots = backend.TaskState.__slots__
    except (ImportError, AttributeError):  # pragma: no cover - another anyio
        return None
    wanted = {"_cancel_called", "_shield", "_parent_scope"}
    if not isinstance(table, dict) or not wanted <= set(scope_slots) or "cancel_scope" not in state_slots:
        return None  # pragma: no cover - another anyio
    return table


_STATES = _anyio_task_states()


def _current_task_getter() -> Callable[[Any], Any]:
    """``loop -> its running task``: on Python 3.11 ``asyncio.current_task`` is a Python
    function around a dict lookup (one frame, ~1.5 µs cold); its table is read directly then.
    Where it is implemented in C (3.12+) or laid out otherwise, ``current_task`` itself."""
    table = getattr(asyncio.tasks, "_current_tasks", None)
    if type(current_task) is types.FunctionType and type(table) is dict:
        return table.get
    return current_task  # pragma: no cover - Python >= 3.12


_task_of = _current_task_getter()


def _no_task() -> None:
    return None


_last: tuple[Callable[[], Any], Any] = (_no_task, None)
"""(weak reference to the last task looked up, its anyio state): a task sending in a loop skips
the table lookup (a weak-reference compare, ~4 µs cold). Sound because anyio keeps one state
object per task while the task runs (created once, mutated as scopes enter and exit, deleted
when the task ends) and a dead task's reference no longer matches. One tuple, swapped whole:
safe with event loops in several threads."""


def cancel_maybe_pending() -> bool:
    """``False`` only if the current task is certainly not in a cancelled, unshielded scope."""
    global _last
    name = None if _thread is None else _thread.name  # the library, as sniffio names it
    if name is None and _cvar is not None:
        name = _cvar.get()
    loop = _get_running_loop() if (name is None or name == "asyncio") and _STATES is not None else None
    if loop is None:  # not asyncio, or anyio's internals not recognized
        return True
    task = _task_of(loop)  # (given the loop: one lookup of it, not two)
    if task is None:
        return True
    last_task, state = _last
    if last_task() is not task:
        state = _STATES.get(_ref(task))
        if state is None:  # not an anyio task (anyio's check then does nothing either)
            return False
        _last = (_ref(task), state)
    scope = state.cancel_scope
    while scope is not None:  # as anyio: the innermost cancelled scope, unless shielded first
        if scope._cancel_called:
            return True
        if scope._shield:
            return False
        scope = scope._parent_scope
    return False
