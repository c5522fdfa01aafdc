""" "Did you mean ...?" hints for near-miss names in graph files and on the command line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Final

__all__ = ["did_you_mean"]

CUTOFF: Final = 0.6
"""Similarity (difflib ratio) a known name needs to be suggested: catches one or two typos
in short names (``camra`` → ``camera``, ``kep`` → ``keep``) without suggesting unrelated ones."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'camera'?"`` for the closest known name, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=CUTOFF)
    return f"; did you mean {close[0]!r}?" if close else ""
