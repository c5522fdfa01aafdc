"""Compiling generated per-class functions, as :mod:`dataclasses` does for ``__init__``.

rtrun generates a few small straight-line functions per message class (its ``__init__``, the
codec's flat encode and decode build) because a sparse control message meets a cold CPU cache,
where every Python call layer and loop iteration costs several times its warm price.

Safety rule for every generator: the source holds only fixed code, local names and field names,
which are Python identifiers (:func:`source_name` re-checks). Every *value* -- tags, dtypes,
defaults, descriptors, closures -- reaches the function through its namespace, never by being
formatted into the source.
"""

from __future__ import annotations

import keyword
from collections.abc import Sequence
from typing import Any

__all__ = ["compile_function", "source_name"]


def source_name(name: str) -> str:
    """``name`` for use in generated source, which only ever holds identifiers."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise TypeError(f"field name {name!r} is not an identifier")
    return name


def compile_function(func: str, lines: Sequence[str], namespace: dict[str, Any], where: str) -> Any:
    """Compile ``lines`` (a ``def func(...)``) with ``namespace`` as its globals; return it."""
    code = compile("\n".join(lines) + "\n", f"<rtrun generated {where}>", "exec")
    exec(code, namespace)  # our own fixed source; every value comes in through the namespace
    return namespace[func]
