"""Actor kinds: resolve a graph's ``kind = "..."`` to an :class:`Actor` subclass.

Two sources, no import magic:

* built-in and third-party kinds registered under the ``rtrun.actors`` entry-point group
  (``camera = "rtrun.actors.camera:CameraActor"``) — so the kernel never imports
  ``rtrun.actors`` itself and installed packages can add kinds;
* user actors by import path, ``kind = "mypkg.mod:MyActor"``.

Embedding code may also pass ``kinds={"name": ActorClass}`` or put the class itself in a spec.
Resolution imports the actor's module (that is the only I/O of graph validation).

*Where user modules are found.* A graph read from a file imports ``"module:Class"`` kinds with
the file's directory first on ``sys.path`` (``search_path``), so ``my_robot/scale.py`` next to
``graph.toml`` works without ``PYTHONPATH``, from any working directory. The insertion is
scoped to the import and undone afterwards (no lasting ``sys.path`` change): imports the module
makes at import time see the directory; an import it defers to run time does not, so import
sibling modules at the top of the file. A module already imported (``sys.modules``) is reused,
whichever directory it came from.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from ._actor import Actor
from ._params import check_params_class
from ._ports import Input, Output
from ._suggest import did_you_mean

__all__ = ["ENTRY_POINT_GROUP", "KindError", "available_kinds", "check_kind", "resolve_kind"]

ENTRY_POINT_GROUP = "rtrun.actors"


class KindError(LookupError):
    """A kind cannot be resolved or is malformed; the message states why."""


@cache
def _entry_points() -> Mapping[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_kinds() -> list[str]:
    """Names of every registered kind (entry points), sorted."""
    return sorted(_entry_points())


def resolve_kind(
    kind: str | type[Actor],
    extra: Mapping[str, type[Actor]] | None = None,
    *,
    search_path: str | None = None,
) -> type[Actor]:
    """Return the actor class for ``kind``; raise :class:`KindError` with the reason.

    ``search_path`` (the graph file's directory) is put first on ``sys.path`` while a
    ``"module:Class"`` kind is imported.
    """
    if isinstance(kind, type):
        return check_kind(kind, kind.__name__)
    if extra and kind in extra:
        return check_kind(extra[kind], kind)
    if ":" in kind:
        with _first_on_path(search_path):
            return check_kind(_import_path(kind), kind)
    ep = _entry_points().get(kind)
    if ep is None:
        names = sorted({*_entry_points(), *(extra or {})})
        known = ", ".join(names) or "none registered"
        raise KindError(
            f"unknown kind {kind!r}{did_you_mean(kind, names)} "
            f"(built-in kinds: {known}; user actors: 'package.module:Class')"
        )
    try:
        cls = ep.load()
    except Exception as exc:  # an import error in the kind's module is reported, not raised
        raise KindError(f"kind {kind!r} ({ep.value}) failed to import: {exc!r}") from exc
    return check_kind(cls, kind)


@contextmanager
def _first_on_path(directory: str | None) -> Iterator[None]:
    """Put ``directory`` first on ``sys.path`` for the duration of the block (None: no change)."""
    if directory is None:
        yield
        return
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        sys.path.remove(directory)  # removes the first occurrence: the one inserted above


def _import_path(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise KindError(f"kind {path!r}: cannot import module {module_name!r}: {exc!r}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise KindError(f"kind {path!r}: module {module_name!r} has no attribute {attr!r}") from None


def check_kind(cls: Any, name: str) -> type[Actor]:
    """Check that ``cls`` is a well-formed actor class (ports, Params); return it."""
    if not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise KindError(f"kind {name!r}: {cls!r} is not a subclass of rtrun.Actor")
    for port, decl in cls.inputs.items():
        if not isinstance(decl, Input):
            raise KindError(f"kind {name!r}: input {port!r} must be declared with rtrun.Input(...)")
    for port, decl in cls.outputs.items():
        if not isinstance(decl, Output):
            raise KindError(f"kind {name!r}: output {port!r} must be declared with rtrun.Output(...)")
    if not dataclasses.is_dataclass(cls.Params):
        raise KindError(f"kind {name!r}: Params must be a dataclass")
    problems = check_params_class(cls.Params)
    if problems:
        raise KindError(f"kind {name!r}: " + "; ".join(problems))
    return cls
