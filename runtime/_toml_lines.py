"""Line numbers of the tables and keys of a ``graph.toml`` (``tomllib`` gives none).

Theory of operation
-------------------
:func:`locate` scans the text once, line by line, tracking the current table header, and maps
*locations* to 1-based line numbers. A location is the ``where`` of a graph problem
(``[graph]``, ``actor 'cam'``, ``supervisor 'arms'``, ``[hosts.robot]``, ``actor #2``) optionally
followed by dotted keys: ``[graph].strategy``, ``actor 'cam'.params.fps``,
``actor 'sink'.inputs.frames``. Keys are found whether written inline (``params.fps = 30``,
``params = { fps = 30 }`` maps ``params``), or in a sub-table (``[actor.params]`` after an
``[[actor]]``). An ``[[actor]]`` block is known as ``actor #N`` until its ``id = "..."`` line
names it.

This is a best-effort index for error messages, not a TOML parser: a location it cannot find
simply has no line (multi-line strings and arrays are skipped as their first line's key).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = ["line_of", "locate"]

_ARRAY_HEADER: Final = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.\-]+)\s*\]\]")
_HEADER: Final = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"]+)\s*\]")
_KEY: Final = re.compile(r"^\s*([A-Za-z0-9_\-.\" ]+?)\s*=")
_ID: Final = re.compile(r"""^\s*id\s*=\s*["']([^"']*)["']""")
_BLOCKS: Final = {"actor": "actor", "supervisor": "supervisor"}


class _Scan:
    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.prefix = ""  # location of the current table, "" at top level
        self.sub = ""  # dotted sub-table inside it ("params", "inputs")
        self.block: tuple[str, str] | None = None  # ("actor", "actor #2") while inside one
        self.counts = dict.fromkeys(_BLOCKS, 0)

    def add(self, location: str, line: int) -> None:
        self.lines.setdefault(location, line)

    def array_header(self, name: str, line: int) -> None:
        kind = _BLOCKS.get(name)
        self.sub = ""
        if kind is None:
            self.block, self.prefix = None, f"[[{name}]]"
        else:
            self.counts[kind] += 1
            self.prefix = f"{kind} #{self.counts[kind]}"
            self.block = (kind, self.prefix)
        self.add(self.prefix, line)

    def header(self, name: str, line: int) -> None:
        first, _, rest = name.replace('"', "").partition(".")
        if self.block is not None and first == self.block[0] and rest:
            self.sub = rest  # [actor.params] / [actor.inputs] belong to the current block
            self.add(f"{self.prefix}.{rest}", line)
            return
        self.block, self.sub = None, ""
        self.prefix = "[graph]" if first == "graph" and not rest else f"[{name.replace(chr(34), '')}]"
        self.add(self.prefix, line)

    def key(self, key: str, line: int) -> None:
        parts = [p.strip().strip('"') for p in key.split(".")]
        path = ([self.sub] if self.sub else []) + parts
        for i in range(1, len(path) + 1):
            self.add(f"{self.prefix}." + ".".join(path[:i]), line)

    def name_block(self, ident: str) -> None:
        if self.block is None or self.sub:
            return
        kind, anonymous = self.block
        named = f"{kind} {ident!r}"
        for location, line in list(self.lines.items()):
            if location == anonymous or location.startswith(anonymous + "."):
                self.add(named + location[len(anonymous) :], line)
        self.prefix = named


def locate(text: str) -> dict[str, int]:
    """Map every location of ``text`` (see the module docstring) to its 1-based line number."""
    scan = _Scan()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0] if '"' not in raw and "'" not in raw else raw
        if match := _ARRAY_HEADER.match(line):
            scan.array_header(match.group(1), number)
        elif match := _HEADER.match(line):
            scan.header(match.group(1), number)
        elif match := _KEY.match(line):
            scan.key(match.group(1), number)
            if (ident := _ID.match(line)) is not None:
                scan.name_block(ident.group(1))
    return scan.lines


def line_of(lines: Mapping[str, int], where: str, rule: str) -> int | None:
    """The line a problem at ``where`` (``actor 'x' / input 'y'``) about ``rule`` points to:
    the most specific location known, trying the first name quoted in the rule, then the
    sub-tables of ``where``, then the rule's first three words as keys (``strategy must ...``,
    ``unknown kind ...``), then the table itself."""
    base, *subs = [part.strip() for part in where.split(" / ")]
    path = [_sub_key(sub) for sub in subs]
    quoted = re.findall(r"'([^']+)'", rule)
    words = [word.strip("'\",:;()") for word in rule.split(" ", 3)[:3]]
    candidates = [".".join([base, *path, q]) for q in quoted[:1]]
    candidates += [".".join([base, *path[:i]]) for i in range(len(path), 0, -1)]
    candidates += [f"{base}.{word}" for word in words if word]
    candidates.append(base)
    return next((lines[c] for c in candidates if c in lines), None)


def _sub_key(sub: str) -> str:
    match = re.fullmatch(r"input '([^']+)'", sub)
    return f"inputs.{match.group(1)}" if match else sub
