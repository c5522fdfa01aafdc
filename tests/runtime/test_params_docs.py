"""Parameter descriptions for ``rtrun kinds``: type, default and the field's own docstring."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rtrun._params import ParamInfo, describe_params, field_docs


@dataclass(frozen=True, kw_only=True)
class _Base:
    rate_hz: float = 30.0
    """Loop rate.

    Second paragraph, not shown."""


@dataclass(frozen=True, kw_only=True)
class _Params(_Base):
    device: str
    """Device path."""
    mode: Literal["a", "b"] = "a"
    names: tuple[str, ...] = field(default_factory=tuple)
    note: str = ""
    "Single-quoted docs count too."


def test_field_docs_read_the_string_after_each_field_including_bases() -> None:
    assert field_docs(_Params) == {
        "rate_hz": "Loop rate.",
        "device": "Device path.",
        "note": "Single-quoted docs count too.",
    }


def test_describe_params_gives_type_default_and_doc_in_declaration_order() -> None:
    assert describe_params(_Params) == [
        ParamInfo("rate_hz", "float", "30.0", "Loop rate."),
        ParamInfo("device", "str", None, "Device path."),
        ParamInfo("mode", "'a' | 'b'", "'a'", ""),
        ParamInfo("names", "tuple[str]", "()", ""),
        ParamInfo("note", "str", "''", "Single-quoted docs count too."),
    ]


def test_a_class_without_source_has_no_docs() -> None:
    cls = type("Dynamic", (), {"__annotations__": {"x": int}})
    assert field_docs(cls) == {}
