"""Generated per-class code for the codec's two hot paths: flat encode and compiled decode.

Theory of operation
-------------------
A message class's fields are fixed when it is decorated, so -- as :mod:`dataclasses` does for
``__init__`` -- each class gets two small functions compiled from generated source, once, on
first use:

``pack_flat(msg) -> bytes | None``
    The one-call encode (layout: :mod:`rtrun._codec`). One straight-line function reads every
    field, runs the fast checks inline, builds the body as one dict in wire order and packs it
    with one msgspec call. msgspec writes a dict's pairs in insertion order with the smallest
    msgpack representation of each value, exactly as the general path's ``msgpack.Packer``
    does, so the bytes are identical (the tests compare). The checks only *accept* (exact types,
    in-range ints, little-endian arrays of an allowed dtype up to :data:`PACK_ARRAY_MAX` bytes,
    in any memory layout: ``tobytes()`` writes C order, as the general path converts): ``None``
    sends anything else down the general path, which converts it or raises the precise error.

``build(mirror, count=-1) -> Message``
    The last step of the compiled decode (:mod:`rtrun._codec_fast`): from msgspec's mirror struct
    to the message. One-dimensional arrays become read-only views of the body inline
    (``np.ndarray`` over the buffer: what ``np.frombuffer`` makes, ~1.5 µs cheaper cold); other
    conversions call the field's closure. ``count`` (the top-level map's entry count) must
    equal the keys present, else a key was repeated. When the class has no ``__init__`` of its
    own (the decorator generated one), the message is built as that ``__init__`` would -- each slot
    set, absent optional fields given their default, then ``__post_init__`` if the class has
    one -- minus the call and keyword parsing; a class with its own ``__init__`` is called.
    Anything not accepted raises ``_Reject`` and the general decoder decides.

Why: a sparse control message (30-500 Hz) meets a cold CPU cache, where every Python call and
loop iteration costs several times its warm price. Measured on the Zenoh benchmark's message
(three ints and a small uint8 array), cold cache: encode 37 -> 18 us, decode 45 -> 19 us; warm:
3.2 -> 1.7 us and 4.2 -> 1.8 us.

Safety: as every generator in rtrun, these follow :mod:`rtrun._gen`'s rule (identifiers in
the source, values in the namespace).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from types import MemberDescriptorType
from typing import Any, Final

import msgspec
import numpy as np

from ._codec_wire import _INT_MAX, _INT_MIN, ARRAY_LAYOUT, TAG_KEY, VERSION_KEY, _Bad
from ._gen import compile_function, source_name
from ._message import ARRAY_DTYPES, MAX_ARRAY_NDIM, ArrayType, FieldPlan, OptionalType, Scalar

__all__ = ["PACK_ARRAY_MAX", "Reject", "compile_build", "compile_pack_flat"]

PACK_ARRAY_MAX: Final = 16 * 1024
"""Largest array (bytes) ``pack_flat`` packs; bigger ones take the segment path, which copies the
payload once. Measured here: the one-call path wins at 16 KiB (4.7 vs 6.1 µs). Handing msgspec
the array's own buffer instead of ``tobytes()`` (one copy at any size) was faster warm up to
1.2 MB, yet made the Zenoh hop at 300 KB ~10 % slower (fresh large buffers meet cold memory),
and cost ~1 µs more with a cold cache for small arrays, so small arrays are copied first."""

NAME_OF_DTYPE: Final = {dtype: name for name, dtype in ARRAY_DTYPES.items()}
"""Allowed dtype -> its wire name (a hit means the same name ``dtype.str`` would give)."""

_DTYPE_OF_NAME: Final = {name: (dtype, dtype.itemsize) for name, dtype in ARRAY_DTYPES.items()}
"""Wire name -> (allowed dtype, its item size): one lookup (a dtype attribute costs ~1 µs cold)."""
_UNSET: Final = msgspec.UNSET


class Reject(Exception):
    """The compiled decode declines this body: the general decoder decides."""


# -- encode -----------------------------------------------------------------------------------------

Check = Callable[[Any], Any]
"""A field's encode check: the value normalized to plain msgpack-able Python, or raises _Bad."""


def _array_lines(i: int, pinned: bool) -> list[str]:
    """Fast checks of an array in ``v{i}``, then ``v{i}`` becomes its wire map (or return None)."""
    pin = f" or v{i}.dtype != _pin{i}" if pinned else ""
    return [  # (any memory layout: tobytes() copies in C order, as the general path converts)
        f"    if type(v{i}) is not _ndarray or v{i}.nbytes > _PACK_MAX:",
        "        return None",
        f"    n{i} = _dtype_name(v{i}.dtype)",
        f"    s{i} = v{i}.shape",
        f"    if n{i} is None{pin} or len(s{i}) > _MAX_NDIM:",
        "        return None",
        f"    v{i} = {{'@nd': _LAYOUT, 'dtype': n{i}, 'shape': s{i}, 'data': v{i}.tobytes()}}",
    ]


def compile_pack_flat(cls: type, plans: Sequence[FieldPlan], checks: Sequence[Check | None]) -> Any:
    """``cls``'s generated ``pack_flat``; None when a field needs the general path (an array
    inside a container, a nested message, ...). ``checks[i]``: field i's encode check, if any."""
    ns: dict[str, Any] = {
        "_ndarray": np.ndarray,
        "_PACK_MAX": PACK_ARRAY_MAX,
        "_MAX_NDIM": MAX_ARRAY_NDIM,
        "_LAYOUT": ARRAY_LAYOUT,
        "_dtype_name": NAME_OF_DTYPE.get,
        "_INT_MIN": _INT_MIN,
        "_INT_MAX": _INT_MAX,
        "_Bad": _Bad,
        "_encode": msgspec.msgpack.Encoder().encode,
        "_tag": cls.__rtrun_tag__,  # type: ignore[attr-defined]
        "_version": cls.__rtrun_version__,  # type: ignore[attr-defined]
    }
    body, pairs = [], [f"{TAG_KEY!r}: _tag", f"{VERSION_KEY!r}: _version"]
    for i, (plan, check) in enumerate(zip(plans, checks, strict=True)):
        t = plan.type
        body.append(f"    v{i} = msg.{source_name(plan.name)}")
        if isinstance(t, Scalar) and t.py_type is int:
            body += [
                f"    if type(v{i}) is not int or not _INT_MIN <= v{i} <= _INT_MAX:",
                "        return None",
            ]
        elif isinstance(t, Scalar):
            ns[f"_type{i}"] = t.py_type
            body += [f"    if type(v{i}) is not _type{i}:", "        return None"]
        elif isinstance(t, ArrayType):
            ns[f"_pin{i}"] = t.dtype
            body += _array_lines(i, t.dtype is not None)
        elif isinstance(t, OptionalType) and isinstance(t.inner, ArrayType):
            ns[f"_pin{i}"] = t.inner.dtype
            body += [f"    if v{i} is not None:"]
            body += ["    " + line for line in _array_lines(i, t.inner.dtype is not None)]
        elif check is not None:
            ns[f"_check{i}"] = check
            body += ["    try:", f"        v{i} = _check{i}(v{i})", "    except _Bad:", "        return None"]
        else:
            return None
        pairs.append(f"{plan.name!r}: v{i}")
    lines = ["def pack_flat(msg):", *body, f"    return _encode({{{', '.join(pairs)}}})"]
    return compile_function("pack_flat", lines, ns, f"{cls.__qualname__}.pack_flat")


# -- decode -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class BuildField:
    """How ``build`` turns one mirror attribute into a field value."""

    name: str
    """The field's name (also the mirror's attribute)."""
    required: bool
    """False: the mirror holds ``msgspec.UNSET`` when the key was absent."""
    array: bool
    """An array field (its mirror value is an array map)."""
    pinned: np.dtype[Any] | None
    """An array field's pinned dtype (the whitelist's own object), if any."""
    conv: Callable[[Any], Any] | None
    """Conversion of the mirror value (arrays: used for n-D shapes); None: as is."""


def _plain_init(cls: type) -> bool:
    """True if ``cls.__init__`` was generated (not the class's own) and construction is plain."""
    return (
        cls.__dict__.get("__rtrun_generated_init__", False)
        and cls.__new__ is object.__new__
        and all(type(cls.__dict__.get(f.name)) is MemberDescriptorType for f in dataclasses.fields(cls))
    )


def _build_value_lines(i: int, field: BuildField, ns: dict[str, Any]) -> list[str]:
    """Lines leaving field i's value in ``v{i}`` (its mirror value already there)."""
    if field.array:
        ns[f"_conv{i}"] = field.conv
        pin = "" if field.pinned is None else f" or dt is not _pin{i}"
        ns[f"_pin{i}"] = field.pinned
        return [
            f"    dt, size = _dtype(v{i}.dtype, _NO_DTYPE)",
            f"    if dt is None{pin}:",
            "        raise _Reject",
            f"    shape = v{i}.shape",
            "    if len(shape) == 1:",
            f"        data = v{i}.data",
            "        if shape[0] < 0 or shape[0] * size != len(data):",
            "            raise _Reject",
            f"        v{i} = _ndarray(shape, dt, data)  # (as np.frombuffer: a read-only view, ~1.5 µs less)",
            "    else:",
            f"        v{i} = _conv{i}(v{i})",
        ]
    if field.conv is not None:
        ns[f"_conv{i}"] = field.conv
        return [f"    v{i} = _conv{i}(v{i})"]
    return []


def compile_build(cls: type, fields: Sequence[BuildField]) -> Any:
    """``cls``'s generated ``build(mirror, count=-1)`` (see the module docstring)."""
    plain = _plain_init(cls)
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    ns: dict[str, Any] = {
        "_Reject": Reject,
        "_UNSET": _UNSET,
        "_dtype": _DTYPE_OF_NAME.get,
        "_NO_DTYPE": (None, 0),
        "_ndarray": np.ndarray,
        "_cls": cls,
        "_new": object.__new__,
    }
    required = sum(f.required for f in fields)
    body = [f"    n = {2 + required}"]
    kwargs, sets = [], []
    for i, field in enumerate(fields):
        name = source_name(field.name)
        body.append(f"    v{i} = m.{name}")
        value = _build_value_lines(i, field, ns)
        if field.required:
            body += value
        else:
            body += [f"    if v{i} is not _UNSET:", "        n += 1", *("    " + line for line in value)]
            if plain:  # absent: the dataclass default, as __init__ would apply it
                default = defaults[field.name]
                if default.default_factory is not dataclasses.MISSING:
                    ns[f"_factory{i}"] = default.default_factory
                    body += ["    else:", f"        v{i} = _factory{i}()"]
                else:
                    ns[f"_default{i}"] = default.default
                    body += ["    else:", f"        v{i} = _default{i}"]
        ns[f"_set{i}"] = cls.__dict__[field.name].__set__ if plain else None
        sets.append(f"    _set{i}(o, v{i})")
        kwargs.append((i, name, field.required))
    body += ["    if count >= 0 and n != count:", "        raise _Reject"]
    body += _construct_lines(cls, plain, sets, kwargs)
    lines = ["def build(m, count=-1):", *body]
    return compile_function("build", lines, ns, f"{cls.__qualname__}.build")


def _construct_lines(
    cls: type, plain: bool, sets: list[str], kwargs: list[tuple[int, str, bool]]
) -> list[str]:
    """Lines building and returning the message from ``v0``, ``v1``, ... (_Reject if refused)."""
    if plain:
        lines = ["    o = _new(_cls)", *sets]
        if hasattr(cls, "__post_init__"):
            lines += [
                "    try:",
                "        o.__post_init__()",
                "    except (TypeError, ValueError):",
                "        raise _Reject from None",
            ]
        return [*lines, "    return o"]
    lines = ["    kw = {}"]
    for i, name, required in kwargs:
        lines += (
            [f"    kw[{name!r}] = v{i}"]
            if required
            else [f"    if v{i} is not _UNSET:", f"        kw[{name!r}] = v{i}"]
        )
    return [
        *lines,
        "    try:",
        "        return _cls(**kw)",
        "    except (TypeError, ValueError):",
        "        raise _Reject from None",
    ]
