"""Typed messages: the :class:`Message` base, the :func:`message` decorator and the tag registry.

A message is a frozen, slotted, keyword-only dataclass with one docstring per field, registered
under a stable *tag* (its name on the wire) and a *schema version*::

    @rtrun.message(tag="rtrun.Frame", version=1)
    class Frame(rtrun.Message):
        \"\"\"One RGB image from a camera actor.\"\"\"

        seq: int
        \"\"\"Per-camera counter; a gap means frames were dropped upstream.\"\"\"
        image: np.ndarray
        \"\"\"H×W×3 uint8 RGB; the producer marks the array read-only.\"\"\"

Theory of operation
-------------------
The decorator does all the reflection once, at class-definition time: it resolves the field
annotations and turns each into a :class:`FieldType` tree (a small closed vocabulary:
:class:`Scalar`, :class:`ArrayType`, :class:`OptionalType`, :class:`TupleType`,
:class:`FixedTupleType`, :class:`DictType`, :class:`NestedType`). Anything outside that
vocabulary is a :class:`~rtrun.MessageDefinitionError` naming the class, the field and the rule.
The codec (:mod:`rtrun._codec`) compiles these trees into encode/decode closures on first use,
and the hypothesis strategies in :mod:`rtrun.testing._strategies` walk the same trees, so the
set of supported types is defined in exactly one place.

Decisions where the brief is silent (recorded here on purpose):

- **No validation on construction.** Building a message is on the hot path (a camera at 30 Hz, a
  motor loop at 500 Hz), so ``Frame(seq="x", ...)`` is *not* rejected when constructed: the codec
  validates every field on :func:`~rtrun.encode` (``EncodeError`` naming the field) and on
  :func:`~rtrun.decode` (``DecodeError("field_type")``). A message class may still define
  ``__post_init__`` for semantic checks; it runs on construction and on decode.
- **A faster ``__init__``.** A frozen dataclass's ``__init__`` goes through
  ``object.__setattr__`` per field; the decorator swaps in a generated twin that sets each slot
  directly (same signature, defaults, factories, ``__post_init__`` and errors; see
  :func:`_fast_init`). A class that defines its own ``__init__`` keeps it.
- **Messages are final.** A class that subclasses an already-registered message is rejected: the
  tag identifies exactly one layout, and the decoder checks nested messages by exact class.
- **Nested messages must be registered first**, hence recursive (self-referencing) messages are
  not supported; use a tuple of nested messages instead of a linked structure.
- **Fields with ``init=False`` are rejected**: the decoder rebuilds messages through ``__init__``.
- ``numpy.typing.NDArray[np.uint8]`` (or ``np.ndarray[Any, np.dtype[np.uint8]]``) pins the dtype,
  which the codec then enforces; a bare ``np.ndarray`` accepts every whitelisted dtype.
- **Re-registration**: the registry is keyed by tag. Registering a class with the same module and
  qualified name as the current holder of its tag (a module reload, a test function run twice)
  replaces it; a different class claiming a taken tag is an error. A reloaded class that changed
  its tag also drops its stale old tag.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import threading
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np

from ._errors import MessageDefinitionError
from ._gen import compile_function, source_name

__all__ = [
    "ArrayType",
    "DictType",
    "FieldPlan",
    "FieldType",
    "FixedTupleType",
    "Message",
    "NestedType",
    "OptionalType",
    "Scalar",
    "TupleType",
    "lookup",
    "message",
    "message_types",
]

M = TypeVar("M", bound="Message")

SUPPORTED_TYPES = (
    "bool, int, float, str, bytes, numpy.ndarray, X | None, tuple[X, ...], tuple[X, Y], "
    "dict[str, X] and registered Message classes"
)
"""The field-type vocabulary, quoted by every MessageDefinitionError about a field type."""

#: numpy dtypes allowed in array fields, by wire name. Only plain numeric and bool types: no
#: object, string, void/structured or datetime dtypes (nothing whose bytes could mean code or
#: pointers). Values are the *little-endian* dtype, the byte order used on the wire.
ARRAY_DTYPES: Mapping[str, np.dtype[Any]] = types.MappingProxyType(
    {
        name: np.dtype(code)
        for name, code in (
            ("bool", "|b1"),
            ("uint8", "|u1"),
            ("uint16", "<u2"),
            ("uint32", "<u4"),
            ("uint64", "<u8"),
            ("int8", "|i1"),
            ("int16", "<i2"),
            ("int32", "<i4"),
            ("int64", "<i8"),
            ("float16", "<f2"),
            ("float32", "<f4"),
            ("float64", "<f8"),
            ("complex64", "<c8"),
            ("complex128", "<c16"),
        )
    }
)

MAX_ARRAY_NDIM = 32
"""Arrays with more dimensions are rejected (numpy 1.x's own limit; numpy 2 allows 64)."""


# --------------------------------------------------------------------------------------------
# Field-type vocabulary
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class FieldType:
    """Base of the resolved field-type trees the codec and the test strategies walk."""

    @property
    def has_array(self) -> bool:
        """Whether a numpy array can occur anywhere inside a value of this type."""
        return False


@dataclasses.dataclass(frozen=True, slots=True)
class Scalar(FieldType):
    """``bool``, ``int`` (int64/uint64 range), ``float`` (float64), ``str`` or ``bytes``."""

    py_type: type
    """The Python type: one of bool, int, float, str, bytes."""


@dataclasses.dataclass(frozen=True, slots=True)
class ArrayType(FieldType):
    """A numpy array of a whitelisted dtype (:data:`ARRAY_DTYPES`)."""

    dtype: np.dtype[Any] | None = None
    """Required little-endian dtype when the annotation pins one, else ``None`` (any allowed)."""

    @property
    def has_array(self) -> bool:
        """Always true."""
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class OptionalType(FieldType):
    """``X | None``."""

    inner: FieldType
    """The type of the value when it is not None."""

    @property
    def has_array(self) -> bool:
        """True if the inner type can hold an array."""
        return self.inner.has_array


@dataclasses.dataclass(frozen=True, slots=True)
class TupleType(FieldType):
    """``tuple[X, ...]``: any number of items of one type."""

    item: FieldType
    """The type of every item."""

    @property
    def has_array(self) -> bool:
        """True if the item type can hold an array."""
        return self.item.has_array


@dataclasses.dataclass(frozen=True, slots=True)
class FixedTupleType(FieldType):
    """``tuple[X, Y, ...]`` with a fixed number of positions."""

    items: tuple[FieldType, ...]
    """The type of each position."""

    @property
    def has_array(self) -> bool:
        """True if any position can hold an array."""
        return any(t.has_array for t in self.items)


@dataclasses.dataclass(frozen=True, slots=True)
class DictType(FieldType):
    """``dict[str, X]``."""

    value: FieldType
    """The type of every value (keys are always str)."""

    @property
    def has_array(self) -> bool:
        """True if the value type can hold an array."""
        return self.value.has_array


@dataclasses.dataclass(frozen=True, slots=True)
class NestedType(FieldType):
    """A registered Message class used as a field type."""

    cls: type[Message]
    """The nested message class (exact class; messages are final)."""

    @property
    def has_array(self) -> bool:
        """True if any field of the nested message can hold an array."""
        return any(f.type.has_array for f in self.cls.__rtrun_fields__)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FieldPlan:
    """One field of a message class, resolved at decoration time."""

    name: str
    """Field (and wire key) name."""
    type: FieldType
    """Resolved field type."""
    required: bool
    """True when the field has neither a default nor a default factory."""


# --------------------------------------------------------------------------------------------
# Message base
# --------------------------------------------------------------------------------------------


class _ArraySummary:
    """Stand-in shown by ``__rich_repr__`` instead of an array's contents."""

    __slots__ = ("_text",)

    def __init__(self, array: np.ndarray[Any, Any]) -> None:
        self._text = f"ndarray({tuple(array.shape)!r}, {array.dtype})"

    def __repr__(self) -> str:
        return self._text


def _summarize(value: object) -> object:
    """Replace arrays (also inside tuples and dicts) by a one-line summary."""
    if isinstance(value, np.ndarray):
        return _ArraySummary(value)
    if isinstance(value, tuple):
        return tuple(_summarize(v) for v in value)
    if isinstance(value, dict):
        return {k: _summarize(v) for k, v in value.items()}
    return value


class Message:
    """Base class of every rtrun message. Never instantiated directly; see :func:`message`.

    Subclasses are frozen, slotted, keyword-only dataclasses. Field values are *not* validated on
    construction (that would cost on every hot-path message); the codec validates on encode and
    decode. Numpy array fields should be marked read-only by the producer
    (``array.flags.writeable = False``): a frozen dataclass cannot freeze an array's contents.

    The generated ``__eq__`` compares fields as a tuple, so comparing two messages whose array
    fields are distinct objects raises numpy's "truth value of an array is ambiguous" error;
    compare such fields with ``np.array_equal``. Messages with array or dict fields are
    unhashable for the same reason.
    """

    __slots__ = ()

    __rtrun_tag__: ClassVar[str]
    __rtrun_version__: ClassVar[int]
    __rtrun_generated_init__: ClassVar[bool]
    __rtrun_fields__: ClassVar[tuple[FieldPlan, ...]]

    def __rich_repr__(self) -> Iterator[tuple[str, object]]:
        """Fields for rich's pretty printer, showing arrays as ``ndarray(shape, dtype)``."""
        for plan in type(self).__rtrun_fields__:
            yield plan.name, _summarize(getattr(self, plan.name))


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_registry: dict[str, type[Message]] = {}
_registry_lock = threading.Lock()


def message_types() -> Mapping[str, type[Message]]:
    """A read-only snapshot of the registry: tag -> message class."""
    with _registry_lock:
        return types.MappingProxyType(dict(_registry))


def lookup(tag: str) -> type[Message]:
    """The message class registered under ``tag``; ``KeyError`` if there is none."""
    try:
        return _registry[tag]
    except KeyError:
        raise KeyError(f"no message type is registered under tag {tag!r}") from None


def _registry_get(tag: str) -> type[Message] | None:
    """Registry lookup without the error (used by the codec on every decode)."""
    return _registry.get(tag)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _register(cls: type[Message], tag: str) -> None:
    with _registry_lock:
        holder = _registry.get(tag)
        if holder is not None and _qualified(holder) != _qualified(cls):
            raise MessageDefinitionError(
                f"{_qualified(cls)}: tag {tag!r} is already registered by "
                f"{_qualified(holder)}; message tags must be unique"
            )
        stale = [t for t, c in _registry.items() if _qualified(c) == _qualified(cls)]
        for old_tag in stale:  # a reloaded class that changed its tag
            del _registry[old_tag]
        _registry[tag] = cls


# --------------------------------------------------------------------------------------------
# Annotation resolution
# --------------------------------------------------------------------------------------------


def _resolve_hints(cls: type, localns: dict[str, Any]) -> dict[str, Any]:
    """Resolve string annotations; on failure, name the first field that cannot be resolved."""
    try:
        return typing.get_type_hints(cls, localns=localns)
    except Exception as exc:  # NameError, SyntaxError, TypeError from user annotations
        for field in dataclasses.fields(cls):
            probe = type("_Probe", (), {"__annotations__": {field.name: field.type}})
            probe.__module__ = cls.__module__
            try:
                typing.get_type_hints(probe, localns=localns)
            except Exception:
                raise MessageDefinitionError(
                    f"{cls.__qualname__}.{field.name}: cannot resolve annotation "
                    f"{field.type!r} ({exc}); field annotations must be importable names"
                ) from exc
        raise MessageDefinitionError(f"{cls.__qualname__}: cannot resolve annotations ({exc})") from exc


def _array_dtype(hint: Any) -> np.dtype[Any] | None:
    """The dtype pinned by ``NDArray[X]`` / ``np.ndarray[Any, np.dtype[X]]``, if any."""
    args = typing.get_args(hint)
    if len(args) != 2:
        return None
    dtype_args = typing.get_args(args[1])
    if len(dtype_args) != 1 or not isinstance(dtype_args[0], type):
        return None
    scalar = dtype_args[0]
    if not issubclass(scalar, np.generic) or scalar.__subclasses__():  # abstract: np.floating
        return None
    return np.dtype(scalar).newbyteorder("<")


class _Unsupported(Exception):
    """Internal: a hint is outside the vocabulary (converted to MessageDefinitionError)."""


def _field_type(hint: Any) -> FieldType:
    """Map one resolved annotation to the FieldType vocabulary."""
    if hint in (bool, int, float, str, bytes):
        return Scalar(hint)
    origin = typing.get_origin(hint)
    if hint is np.ndarray or origin is np.ndarray:
        return _array_type(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if len(args) != 2 or type(None) not in args:
            raise _Unsupported(f"union {hint!r}: only `X | None` unions are supported")
        inner = args[0] if args[1] is type(None) else args[1]
        return OptionalType(_field_type(inner))
    if origin is tuple:
        return _tuple_type(hint)
    if origin is dict:
        key, value = typing.get_args(hint)
        if key is not str:
            raise _Unsupported(f"{hint!r}: dict keys must be str")
        return DictType(_field_type(value))
    if isinstance(hint, type) and issubclass(hint, Message):
        return _nested_type(hint)
    raise _Unsupported(f"unsupported field type {hint!r}")


def _array_type(hint: Any) -> ArrayType:
    dtype = _array_dtype(hint)
    if dtype is not None and dtype not in ARRAY_DTYPES.values():
        raise _Unsupported(f"array dtype {dtype} is not allowed; allowed: {', '.join(ARRAY_DTYPES)}")
    return ArrayType(dtype)


def _tuple_type(hint: Any) -> FieldType:
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        return TupleType(_field_type(args[0]))
    if Ellipsis in args:
        raise _Unsupported(f"{hint!r}: `...` is only allowed as `tuple[X, ...]`")
    return FixedTupleType(tuple(_field_type(a) for a in args))


def _nested_type(hint: type[Message]) -> NestedType:
    tag = hint.__dict__.get("__rtrun_tag__")
    if tag is None or _registry.get(tag) is not hint:
        raise _Unsupported(
            f"nested message {hint.__qualname__} is not registered: decorate it with "
            "@rtrun.message before using it as a field type (recursive messages are not supported)"
        )
    return NestedType(hint)


def _plans(cls: type[Message], localns: dict[str, Any]) -> tuple[FieldPlan, ...]:
    hints = _resolve_hints(cls, localns)
    plans = []
    for field in dataclasses.fields(cls):
        where = f"{cls.__qualname__}.{field.name}"
        if not field.init:
            raise MessageDefinitionError(f"{where}: fields with init=False are not supported")
        try:
            ftype = _field_type(hints[field.name])
        except _Unsupported as exc:
            raise MessageDefinitionError(
                f"{where}: {exc}; message fields must be one of: {SUPPORTED_TYPES}"
            ) from None
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        plans.append(FieldPlan(name=field.name, type=ftype, required=required))
    return tuple(plans)


def _fast_init(cls: type) -> Callable[..., None] | None:
    """A faster twin of the ``__init__`` dataclasses generated for ``cls``, or None.

    Theory: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__(self, "name", value)`` -- a global, an attribute and a name lookup per
    field. This one calls each slot's member descriptor directly, which is what that call ends
    in: same signature (the original's own parameter defaults, including dataclasses' factory
    sentinel), same ``default_factory`` handling, same ``__post_init__`` call, same errors (its
    ``__qualname__`` is the original's). Messages are built on every send, often with a cold
    cache: measured ~9 -> ~5 µs for a four-field message. None (keep the original) unless
    every parameter is a field stored in a plain slot, named unlike the function's own names.
    """
    original = cls.__dict__["__init__"]
    params = list(inspect.signature(original).parameters.values())[1:]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if [p.name for p in params] != list(fields) or any(p.kind is not p.KEYWORD_ONLY for p in params):
        return None
    if any(type(cls.__dict__.get(name)) is not types.MemberDescriptorType for name in fields):
        return None
    if any(name == "self" or name.startswith("_rtrun_") for name in fields):  # the source's names
        return None
    ns: dict[str, Any] = {}
    args, body = [], []
    for i, param in enumerate(params):
        name = source_name(param.name)
        ns[f"_rtrun_set{i}"] = cls.__dict__[name].__set__
        if param.default is inspect.Parameter.empty:
            args.append(name)
        else:
            ns[f"_rtrun_d{i}"] = param.default
            args.append(f"{name}=_rtrun_d{i}")
        factory = fields[name].default_factory
        if factory is dataclasses.MISSING:
            body.append(f"    _rtrun_set{i}(self, {name})")
        else:  # dataclasses' default for such a parameter is its "<factory>" sentinel
            ns[f"_rtrun_factory{i}"] = factory
            body.append(f"    _rtrun_set{i}(self, _rtrun_factory{i}() if {name} is _rtrun_d{i} else {name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    lines = [f"def __init__(self, *, {', '.join(args)}):" if args else "def __init__(self):"]
    init = compile_function("__init__", [*lines, *(body or ["    pass"])], ns, f"{cls.__qualname__}.__init__")
    init.__qualname__ = original.__qualname__
    init.__module__ = original.__module__
    init.__annotations__ = dict(original.__annotations__)
    return init  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# The decorator
# --------------------------------------------------------------------------------------------


def _check_class(cls: type, tag: str, version: int) -> None:
    if not isinstance(cls, type) or not issubclass(cls, Message):
        raise MessageDefinitionError(
            f"{getattr(cls, '__qualname__', cls)!r}: @message classes must subclass rtrun.Message"
        )
    if not isinstance(tag, str) or not tag or tag.startswith("@"):
        raise MessageDefinitionError(
            f"{cls.__qualname__}: tag must be a non-empty str not starting with '@', got {tag!r}"
        )
    if type(version) is not int or not 0 <= version < 2**16:
        raise MessageDefinitionError(
            f"{cls.__qualname__}: version must be an int in [0, 65535], got {version!r}"
        )
    for base in cls.__mro__[1:]:
        if "__rtrun_tag__" in base.__dict__:
            raise MessageDefinitionError(
                f"{cls.__qualname__}: subclasses registered message {base.__qualname__}; "
                "messages are final, subclass rtrun.Message directly"
            )


@typing.dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(dataclasses.field,))
def message(*, tag: str, version: int = 1) -> Callable[[type[M]], type[M]]:
    """Class decorator turning a :class:`Message` subclass into a registered message type.

    Applies ``dataclasses.dataclass(frozen=True, slots=True, kw_only=True)``, resolves the field
    types (see :data:`SUPPORTED_TYPES`), and registers the class under ``tag`` with schema
    ``version``. Raises :class:`~rtrun.MessageDefinitionError` naming the class, the field and the
    rule when the class breaks a rule. Field values are validated by the codec, not on
    construction.
    """

    def decorate(cls: type[M]) -> type[M]:
        # Names visible where the class statement runs, so that messages defined inside a
        # function (tests, notebooks) may refer to other local classes (as pydantic does).
        localns = {**sys._getframe(1).f_locals, cls.__name__: cls}
        _check_class(cls, tag, version)
        own_init = "__init__" in cls.__dict__
        try:
            new_cls = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
        except TypeError as exc:  # e.g. the class defines __slots__ itself
            raise MessageDefinitionError(f"{cls.__qualname__}: {exc}") from exc
        new_cls.__rtrun_fields__ = _plans(new_cls, localns)
        new_cls.__rtrun_tag__ = tag
        new_cls.__rtrun_version__ = version
        new_cls.__rtrun_generated_init__ = not own_init  # the decoder may then skip the call
        init = None if own_init else _fast_init(new_cls)
        if init is not None:
            new_cls.__init__ = init  # type: ignore[misc]
        _register(new_cls, tag)
        return new_cls

    return decorate
