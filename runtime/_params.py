"""Actor parameter schemas: validate TOML values against a kind's ``Params`` dataclass (pure).

A kind's ``Params`` is a frozen keyword-only dataclass whose fields have defaults (required
fields have none). :func:`build_params` checks a mapping of raw values (from TOML or
``--set``) against the field annotations and returns the instance plus a list of problems, so
the graph validator can report *every* problem at once.

Supported annotations: ``bool``, ``int``, ``float`` (ints accepted), ``str``, ``Literal[...]``,
``X | None``, ``list[X]`` / ``tuple[X, ...]`` (TOML arrays; stored as tuples so params stay
immutable), ``dict[str, X]`` (TOML tables) and ``Any``. ``bool`` is never accepted for a
number and vice versa (TOML keeps them distinct, so should we).

Path-valued parameters declare it with a marker, ``root: Annotated[str, PathParam()] = ""``:
when the graph was read from a file, :func:`resolve_path_params` turns a relative value into
``<graph file's directory>/<value>`` (absolute, ``~`` and empty values are kept as written;
``PathParam(keep=...)`` keeps special values such as a device index or ``demo:act``). A marker
instead of a naming convention: the kind's author states it once, next to the field, and
``rtrun kinds`` shows the type unchanged (``str``).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import os
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

from ._suggest import did_you_mean

__all__ = [
    "ParamInfo",
    "PathParam",
    "build_params",
    "check_params_class",
    "describe_params",
    "describe_type",
    "parse_override",
    "resolve_path_params",
]

_MISSING = dataclasses.MISSING


@dataclasses.dataclass(frozen=True, slots=True)
class PathParam:
    """Marks a ``str`` parameter as a filesystem path: ``Annotated[str, PathParam()]``.

    A relative value written in a graph file is resolved against the file's directory.
    """

    keep: Callable[[str], bool] | None = None
    """Values for which this returns True are not paths and are kept as written
    (``str.isdigit`` for a camera index, a ``demo:*`` checkpoint spec)."""

    def resolve(self, value: str, base_dir: str | Path) -> str:
        """``value`` joined to ``base_dir`` when it is a relative path, else unchanged."""
        if not value or value.startswith("~") or Path(value).is_absolute():
            return value
        if self.keep is not None and self.keep(value):
            return value
        return os.path.normpath(os.path.join(base_dir, value))  # "../x" reads as written


def path_params(params_cls: type[Any]) -> dict[str, PathParam]:
    """The fields of ``params_cls`` annotated ``Annotated[str, PathParam(...)]``."""
    hints = typing.get_type_hints(params_cls, include_extras=True)
    found = {}
    for name, hint in hints.items():
        if get_origin(hint) is Annotated:
            marker = next((m for m in hint.__metadata__ if isinstance(m, PathParam)), None)
            if marker is not None:
                found[name] = marker
    return found


def resolve_path_params(params: Any, base_dir: str | Path | None) -> Any:
    """``params`` with every relative path parameter resolved against ``base_dir`` (None: as is)."""
    if base_dir is None or params is None:
        return params
    changes = {}
    for name, marker in path_params(type(params)).items():
        value = getattr(params, name)
        if isinstance(value, str) and (resolved := marker.resolve(value, base_dir)) != value:
            changes[name] = resolved
    return dataclasses.replace(params, **changes) if changes else params


def describe_type(tp: Any) -> str:
    """A short human name for an annotation (``int``, ``list[float]``, ``"hold" | "zero"``)."""
    origin = get_origin(tp)
    if tp is Any:
        return "any"
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(describe_type(a) for a in get_args(tp))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(describe_type(a) for a in get_args(tp) if a is not Ellipsis)}]"
    return "none" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Return ``value`` converted to ``tp`` or raise ValueError naming ``path`` and the rule."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if any(value == option and type(value) is type(option) for option in get_args(tp)):
            return value
        raise ValueError(f"{path} must be one of {describe_type(tp)}, got {value!r}")
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, path)
    if origin in (list, tuple):
        return _convert_sequence(tp, value, path)
    if origin in (dict, Mapping, typing.Mapping):
        return _convert_mapping(tp, value, path)
    return _convert_scalar(tp, value, path)


def _convert_union(tp: Any, value: Any, path: str) -> Any:
    errors = []
    for option in get_args(tp):
        if option is type(None):
            if value is None:
                return None
            continue
        try:
            return _convert(option, value, path)
        except ValueError as exc:
            errors.append(str(exc))
    raise ValueError(f"{path} must be {describe_type(tp)}, got {value!r}")


def _convert_sequence(tp: Any, value: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{path} must be an array ({describe_type(tp)}), got {value!r}")
    args = [a for a in get_args(tp) if a is not Ellipsis] or [Any]
    if get_origin(tp) is tuple and len(args) > 1:
        if len(args) != len(value):
            raise ValueError(f"{path} must have exactly {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))


def _convert_mapping(tp: Any, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{path} must be a table ({describe_type(tp)}), got {value!r}")
    args = get_args(tp)
    item_type = args[1] if len(args) == 2 else Any
    return {str(k): _convert(item_type, v, f"{path}.{k}") for k, v in value.items()}


def _convert_scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    else:
        raise ValueError(f"{path}: unsupported parameter type {describe_type(tp)}")
    if not ok:
        raise ValueError(f"{path} must be {describe_type(tp)}, got {type(value).__name__} {value!r}")
    return value


def _hints(params_cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(params_cls)


def check_params_class(params_cls: type[Any]) -> list[str]:
    """Problems with a ``Params`` class itself (not a dataclass, unsupported annotations...)."""
    if not dataclasses.is_dataclass(params_cls):
        return [f"Params of a kind must be a dataclass, got {params_cls!r}"]
    problems = []
    hints = _hints(params_cls)
    for f in dataclasses.fields(params_cls):
        default = _default_of(f)
        if default is not _MISSING:
            try:
                _convert(hints[f.name], default, f.name)
            except ValueError as exc:
                problems.append(f"default of {exc}")
    return problems


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return _MISSING


def build_params(params_cls: type[Any], raw: Mapping[str, Any]) -> tuple[Any | None, list[str]]:
    """Validate ``raw`` against ``params_cls``; return ``(instance or None, problems)``.

    Problems are phrased as rules: ``unknown parameter 'fpss' (known: fps, device)``,
    ``parameter 'fps' must be float, got str '30'``, ``missing required parameter 'device'``.
    """
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    hints = _hints(params_cls)
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            hint = did_you_mean(key, fields)
            problems.append(f"unknown parameter {key!r}{hint} (known: {', '.join(sorted(fields)) or 'none'})")
            continue
        try:
            values[key] = _convert(hints[key], value, f"parameter {key!r}")
        except ValueError as exc:
            problems.append(str(exc))
    for name, f in fields.items():
        if name not in raw and _default_of(f) is _MISSING:
            problems.append(f"missing required parameter {name!r} ({describe_type(hints[name])})")
    if problems:
        return None, problems
    try:
        return params_cls(**values), []
    except (TypeError, ValueError) as exc:  # __post_init__ validation of the kind
        return None, [f"parameters rejected by the kind: {exc}"]


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``--set actor.param=value`` into ``(actor, param, value)``.

    The value is read as a TOML value (``30``, ``1.5``, ``true``, ``"text"``, ``[1, 2]``); anything
    that is not valid TOML is taken as a plain string, so ``--set cam.device=/dev/video2`` works.
    """
    import tomllib

    target, sep, raw = text.partition("=")
    actor, dot, param = target.strip().partition(".")
    if not sep or not dot or not actor or not param:
        raise ValueError(f"--set expects ACTOR.PARAM=VALUE, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return actor, param, value


class ParamInfo(NamedTuple):
    """One parameter of a kind, for ``rtrun kinds`` and error messages."""

    name: str
    annotation: str
    """Short type name (:func:`describe_type`)."""
    default: str | None
    """``repr`` of the default, or None when the parameter is required."""
    doc: str
    """First line of the field's docstring (empty when it has none)."""


def describe_params(params_cls: type[Any]) -> list[ParamInfo]:
    """Every parameter of ``params_cls`` in declaration order, with default and one-line doc."""
    hints, docs = _hints(params_cls), field_docs(params_cls)
    infos = []
    for f in dataclasses.fields(params_cls):
        default = _default_of(f)
        shown = None if default is _MISSING else repr(default)
        infos.append(ParamInfo(f.name, describe_type(hints[f.name]), shown, docs.get(f.name, "")))
    return infos


def field_docs(cls: type[Any]) -> dict[str, str]:
    """First line of each field's docstring (the string literal right after the field), read
    from the source of ``cls`` and its bases; empty when the source is unavailable."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        docs.update(_class_field_docs(klass))
    return docs


def _class_field_docs(klass: type[Any]) -> dict[str, str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, after in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and _is_str(after):
            text = inspect.cleandoc(after.value.value)  # type: ignore[attr-defined]
            docs[node.target.id] = text.splitlines()[0] if text else ""
    return docs


def _is_str(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )
