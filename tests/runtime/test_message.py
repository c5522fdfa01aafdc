"""Message definition rules: the decorator, resolved field types, the tag registry, rich repr."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Optional

import numpy as np
import pytest
from numpy.typing import NDArray
from rich.pretty import pretty_repr
from rtrun._errors import MessageDefinitionError
from rtrun._message import (
    ArrayType,
    DictType,
    FixedTupleType,
    Message,
    NestedType,
    OptionalType,
    Scalar,
    TupleType,
    lookup,
    message,
    message_types,
)


@message(tag="test.msg.Point", version=3)
class Point(Message):
    """A 2-D point."""

    x: float
    """Abscissa."""
    y: float = 0.0
    """Ordinate."""


@message(tag="test.msg.Everything")
class Everything(Message):
    """One field of every supported kind."""

    flag: bool
    count: int
    ratio: float
    name: str
    blob: bytes
    any_array: np.ndarray
    image: NDArray[np.uint8]
    maybe: int | None
    maybe_old: Optional[str]  # noqa: UP045 - the typing.Optional spelling must work too
    many: tuple[float, ...]
    pair: tuple[int, str]
    table: dict[str, Point]
    point: Point


def test_decorator_makes_frozen_slotted_kw_only_dataclass() -> None:
    p = Point(x=1.0)
    assert dataclasses.is_dataclass(p)
    assert not hasattr(p, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point(1.0)  # type: ignore[misc]
    assert Point.__rtrun_tag__ == "test.msg.Point"
    assert Point.__rtrun_version__ == 3
    assert Everything.__rtrun_version__ == 1


def test_decorator_declares_dataclass_transform() -> None:
    spec = message.__dataclass_transform__  # type: ignore[attr-defined]
    assert spec["kw_only_default"] is True
    assert spec["kwargs"]["frozen_default"] is True


def test_construction_does_not_validate_types() -> None:
    """Documented decision: the codec validates, construction stays cheap."""
    p = Point(x="not a float")  # type: ignore[arg-type]
    assert p.x == "not a float"


def test_field_plans_resolve_every_supported_type() -> None:
    plans = {p.name: p for p in Everything.__rtrun_fields__}
    assert plans["flag"].type == Scalar(bool)
    assert plans["count"].type == Scalar(int)
    assert plans["any_array"].type == ArrayType(None)
    assert plans["image"].type == ArrayType(np.dtype("|u1"))
    assert plans["maybe"].type == OptionalType(Scalar(int))
    assert plans["maybe_old"].type == OptionalType(Scalar(str))
    assert plans["many"].type == TupleType(Scalar(float))
    assert plans["pair"].type == FixedTupleType((Scalar(int), Scalar(str)))
    assert plans["table"].type == DictType(NestedType(Point))
    assert plans["point"].type == NestedType(Point)
    assert all(p.required for p in plans.values())
    assert [p.required for p in Point.__rtrun_fields__] == [True, False]
    assert plans["image"].type.has_array and not plans["table"].type.has_array


def test_registry_lookup_and_snapshot() -> None:
    types_ = message_types()
    assert types_["test.msg.Point"] is Point
    assert lookup("test.msg.Everything") is Everything
    with pytest.raises(KeyError, match=r"no message type is registered under tag 'test\.msg\.nope'"):
        lookup("test.msg.nope")
    with pytest.raises(TypeError):
        types_["x"] = Point  # type: ignore[index]


def test_rich_repr_summarizes_arrays() -> None:
    msg = Everything(
        flag=True,
        count=1,
        ratio=0.5,
        name="n",
        blob=b"",
        any_array=np.zeros((2, 3), np.float32),
        image=np.zeros((480, 640, 3), np.uint8),
        maybe=None,
        maybe_old=None,
        many=(),
        pair=(1, "a"),
        table={},
        point=Point(x=1.0),
    )
    text = pretty_repr(msg)
    assert "image=ndarray((480, 640, 3), uint8)" in text
    assert "any_array=ndarray((2, 3), float32)" in text
    assert "point=Point(x=1.0, y=0.0)" in text


@pytest.mark.parametrize(
    ("annotation", "rule"),
    [
        (list[int], "unsupported field type"),
        (dict[int, str], "dict keys must be str"),
        (int | str, "only `X | None` unions"),
        (tuple, "unsupported field type"),
        (set[int], "unsupported field type"),
        (Any, "unsupported field type"),
        (tuple[int, ...] | None | str, "only `X | None` unions"),
        (NDArray[np.object_], "array dtype object is not allowed"),
        (NDArray[np.str_], "array dtype"),
        (tuple[int, ..., str], "`...` is only allowed"),
    ],
)
def test_unsupported_field_types_are_rejected(annotation: Any, rule: str) -> None:
    with pytest.raises(MessageDefinitionError) as info:
        message(tag="test.msg.bad")(type("Bad", (Message,), {"__annotations__": {"f": annotation}}))
    text = str(info.value)
    assert "Bad.f" in text  # names class and field
    assert rule in text
    assert "message fields must be one of" in text
    assert "test.msg.bad" not in message_types()


def test_unregistered_nested_message_is_rejected() -> None:
    class Loose(Message):
        a: int

    with pytest.raises(MessageDefinitionError, match=r"Holder\.inner: nested message .*Loose"):

        @message(tag="test.msg.holder")
        class Holder(Message):
            inner: Loose


def test_unresolvable_annotation_names_the_field() -> None:
    with pytest.raises(MessageDefinitionError, match=r"Broken\.b: cannot resolve annotation"):

        @message(tag="test.msg.broken")
        class Broken(Message):
            a: int
            b: DoesNotExist  # type: ignore[name-defined]  # noqa: F821


def test_class_must_subclass_message() -> None:
    with pytest.raises(MessageDefinitionError, match=r"must subclass rtrun\.Message"):

        @message(tag="test.msg.plain")
        class Plain:
            a: int


@pytest.mark.parametrize(
    ("tag", "version", "rule"),
    [
        ("", 1, "tag must be a non-empty str"),
        ("@x", 1, "not starting with '@'"),
        ("test.msg.v", -1, "version must be an int"),
        ("test.msg.v", True, "version must be an int"),
        ("test.msg.v", 2**16, "version must be an int"),
    ],
)
def test_bad_tag_or_version(tag: str, version: int, rule: str) -> None:
    with pytest.raises(MessageDefinitionError, match=rule):
        message(tag=tag, version=version)(type("V", (Message,), {"__annotations__": {"a": int}}))


def test_messages_are_final() -> None:
    with pytest.raises(MessageDefinitionError, match="messages are final"):

        @message(tag="test.msg.point3")
        class Point3(Point):
            z: float = 0.0


def test_init_false_fields_are_rejected() -> None:
    with pytest.raises(MessageDefinitionError, match="init=False"):

        @message(tag="test.msg.noinit")
        class NoInit(Message):
            a: int = dataclasses.field(init=False, default=0)


def test_own_slots_are_a_definition_error() -> None:
    with pytest.raises(MessageDefinitionError, match="__slots__"):

        @message(tag="test.msg.slots")
        class OwnSlots(Message):
            __slots__ = ("a",)
            a: int


def test_duplicate_tag_with_another_class_is_rejected() -> None:
    with pytest.raises(MessageDefinitionError, match=r"'test\.msg\.Point' is already registered"):

        @message(tag="test.msg.Point")
        class Impostor(Message):
            a: int

    assert lookup("test.msg.Point") is Point


def _define(tag: str) -> type[Message]:
    """Defines the same qualified class each call, like a module reload would."""

    @message(tag=tag)
    class Reloaded(Message):
        a: int

    return Reloaded


def test_reregistering_the_same_qualified_class_replaces_it() -> None:
    first = _define("test.msg.reloaded")
    second = _define("test.msg.reloaded")
    assert first is not second
    assert lookup("test.msg.reloaded") is second
    third = _define("test.msg.reloaded2")  # the reloaded class changed its tag
    assert lookup("test.msg.reloaded2") is third
    assert "test.msg.reloaded" not in message_types()


def test_string_annotations_resolve_in_the_defining_module() -> None:
    hints = typing.get_type_hints(Everything)
    assert hints["point"] is Point


def test_local_classes_may_refer_to_each_other() -> None:
    @message(tag="test.msg.local_inner")
    class LocalInner(Message):
        a: int

    @message(tag="test.msg.local_outer")
    class LocalOuter(Message):
        inner: LocalInner
        many: tuple[LocalInner, ...] = ()

    assert LocalOuter.__rtrun_fields__[0].type == NestedType(LocalInner)
