"""The generated message ``__init__`` behaves exactly as the one dataclasses generates."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import numpy as np
import pytest
from rtrun._message import Message, message


def _reference(cls: type) -> Any:
    """The same class body under plain dataclasses (frozen, slots, keyword-only)."""
    twin = type(cls.__name__, (), {"__annotations__": dict(cls.__annotations__)})
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            setattr(twin, f.name, f.default)
        elif f.default_factory is not dataclasses.MISSING:
            setattr(twin, f.name, dataclasses.field(default_factory=f.default_factory))
    if "__post_init__" in cls.__dict__:
        twin.__post_init__ = cls.__dict__["__post_init__"]  # type: ignore[attr-defined]
    twin.__qualname__ = cls.__qualname__
    return dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(twin)


@message(tag="test.init.Mixed")
class Mixed(Message):
    """Required, default and factory fields."""

    a: int
    """Required."""
    data: np.ndarray
    """Required array."""
    b: str = "x"
    """With a default."""
    c: tuple[int, ...] = dataclasses.field(default_factory=tuple)
    """With a factory."""
    d: dict[str, int] = dataclasses.field(default_factory=dict)
    """A factory whose product is mutable: fresh per message."""


@message(tag="test.init.Checked")
class Checked(Message):
    """Has a __post_init__ check."""

    n: int
    """Must be >= 0."""

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must be >= 0")


@message(tag="test.init.Empty")
class Empty(Message):
    """No fields."""


def test_generated_init_replaces_dataclasses_one() -> None:
    for cls in (Mixed, Checked, Empty):
        assert cls.__init__.__code__.co_filename.startswith("<rtrun generated")
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"


@pytest.mark.parametrize("cls", [Mixed, Checked, Empty])
def test_same_signature_as_dataclasses(cls: type) -> None:
    assert str(inspect.signature(cls)) == str(inspect.signature(_reference(cls)))


def test_same_values_defaults_and_factories() -> None:
    arr = np.arange(3)
    m = Mixed(a=1, data=arr)
    assert (m.a, m.b, m.c, m.d) == (1, "x", (), {})
    assert m.data is arr
    assert Mixed(a=1, data=arr).d is not m.d  # a fresh factory product per message
    full = Mixed(a=2, data=arr, b="y", c=(1, 2), d={"k": 1})
    assert (full.b, full.c, full.d) == ("y", (1, 2), {"k": 1})
    assert Empty() == Empty()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # a required argument missing
        {"a": 1},
        {"a": 1, "data": None, "e": 3},  # an unknown one
    ],
)
def test_same_errors_as_dataclasses(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError) as ours:
        Mixed(**kwargs)
    with pytest.raises(TypeError) as theirs:
        _reference(Mixed)(**kwargs)
    assert str(ours.value) == str(theirs.value)


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="positional"):
        Mixed(1, np.zeros(1))  # type: ignore[misc]


def test_post_init_runs_and_frozen_holds() -> None:
    with pytest.raises(ValueError, match="n must be >= 0"):
        Checked(n=-1)
    c = Checked(n=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.n = 2  # type: ignore[misc]


def test_a_field_named_like_the_generated_names_keeps_the_dataclasses_init() -> None:
    @message(tag="test.init.SelfNamed")
    class SelfNamed(Message):
        """A field named ``self``."""

        self: int
        """Legal for dataclasses."""

    assert not SelfNamed.__init__.__code__.co_filename.startswith("<rtrun generated")
    assert SelfNamed(self=3).self == 3


def test_an_own_init_is_kept() -> None:
    @message(tag="test.init.Own")
    class Own(Message):
        """Defines __init__."""

        x: int
        """Set by the own __init__."""

        def __init__(self, *, x: int = 7) -> None:
            object.__setattr__(self, "x", x)

    assert Own().x == 7
    assert not Own.__init__.__code__.co_filename.startswith("<rtrun generated")
