"""The rtrun exception tree.

Theory of operation
-------------------
rtrun reuses anyio's resource errors for stream semantics instead of inventing parallels:
``anyio.ClosedResourceError`` (you closed this port), ``anyio.BrokenResourceError`` (the far side
is gone), ``anyio.EndOfStream`` (every sender closed) and ``anyio.WouldBlock`` (a ``*_nowait``
call could not complete). Everything rtrun raises itself derives from :class:`RtrunError`::

    RtrunError
    ├── CodecError
    │   ├── EncodeError            a message cannot be encoded (local bug: wrong field type...)
    │   └── DecodeError            bytes from elsewhere are malformed (remote problem)
    ├── MessageDefinitionError     a Message class breaks the rules (missing tag, bad field type...)
    ├── ChannelError               invalid channel configuration (capacity/policy)
    ├── ActorError
    │   ├── ActorStateError        an illegal lifecycle transition was requested (a runtime bug)
    │   └── ConfigurationError     the deployment is wrong: no restart can help (never restarted)
    │       └── ParamsError        actor parameters do not match the kind's schema
    ├── SupervisionError
    │   └── EscalationError        a supervisor exceeded its restart intensity and gave up
    ├── GraphError                 a graph file/spec is invalid (carries every problem found)
    ├── TransportError             a transport (Zenoh) could not be opened or used
    └── InternalError              a bug in rtrun itself; please report it

Error classes build their message from their fields, so the message always states the rule.

:class:`ConfigurationError` is the one exception that changes supervision: an actor raising it
(a contract mismatch, a bad parameter, a dataset with other features...) says the failure is
deterministic, so its supervisor does not restart it (no restart intensity is spent on it),
reports it once and stops the graph (``rtrun run`` exits 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ActorError",
    "ActorStateError",
    "ChannelError",
    "CodecError",
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "EscalationError",
    "GraphError",
    "GraphProblem",
    "InternalError",
    "MessageDefinitionError",
    "ParamsError",
    "RtrunError",
    "SupervisionError",
    "TransportError",
]


class RtrunError(Exception):
    """Base class of every error rtrun raises itself."""


class CodecError(RtrunError):
    """A message could not be converted to or from bytes."""


class EncodeError(CodecError):
    """Local problem: a message instance cannot be encoded (e.g. a field holds the wrong type)."""


class DecodeError(CodecError):
    """Remote problem: received bytes are not a valid rtrun message.

    ``reason`` is a short stable identifier (``"malformed"``, ``"unknown_tag"``,
    ``"schema_version"``, ``"field_type"``, ``"oversize"``, ...) suitable as a drop-counter key;
    the message text says what exactly was wrong.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"cannot decode message ({reason}): {detail}")
        self.reason = reason
        self.detail = detail


class MessageDefinitionError(RtrunError, TypeError):
    """A Message class violates the message rules (frozen, slotted, kw-only, tag, field types)."""


class ChannelError(RtrunError, ValueError):
    """A channel was configured with an invalid capacity or policy."""


class ActorError(RtrunError):
    """Base class for actor-related errors."""


class ActorStateError(ActorError):
    """An illegal actor lifecycle transition was requested (indicates a runtime bug)."""

    def __init__(self, actor: str, current: str, requested: str) -> None:
        super().__init__(
            f"actor {actor!r}: illegal transition {current} -> {requested} (see rtrun._actor.TRANSITIONS)"
        )
        self.actor = actor
        self.current = current
        self.requested = requested


class ConfigurationError(ActorError):
    """A failure no restart can fix: the graph, the parameters or the hardware do not fit.

    Raise it from an actor for a deterministic mismatch (a policy whose action names differ from
    the robot's joints, a dataset recorded with other features, an unknown driver option). Its
    supervisor does not restart the actor, reports the error once and stops; the error then
    stops the whole graph (``open_graph`` raises it, ``rtrun run`` exits 3). A transient fault
    (a USB hiccup, a timeout) must stay an ordinary exception, which is restarted.
    """

    actor: str | None = None
    """The actor that raised it (set by its supervisor when the actor did not)."""


class ParamsError(ConfigurationError, ValueError):
    """Actor parameters do not match the schema of the actor's kind."""


class SupervisionError(RtrunError):
    """Base class for supervision errors."""


class EscalationError(SupervisionError):
    """A supervisor exceeded its restart intensity and shut down; its parent must react.

    Raised out of the supervisor's ``run()``; the root supervisor's escalation stops the graph.
    """

    def __init__(self, supervisor: str, restarts: int, period: float, last_child: str) -> None:
        super().__init__(
            f"supervisor {supervisor!r} gave up: more than {restarts - 1} restarts within "
            f"{period:g} s (last failing child: {last_child!r})"
        )
        self.supervisor = supervisor
        self.restarts = restarts
        self.period = period
        self.last_child = last_child


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphProblem:
    """One rule a graph breaks, located precisely."""

    file: str
    """The graph file (or ``"<spec>"`` for graphs built in Python)."""
    where: str
    """The table concerned, e.g. ``actor "policy" / input "frames"``."""
    rule: str
    """What is wrong, stated as the rule broken."""
    line: int | None = None
    """1-based line in ``file`` where the table or key concerned is written, when known."""

    def __str__(self) -> str:
        at = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{at}: {self.where}: {self.rule}"


class GraphError(RtrunError):
    """A graph is invalid. ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[GraphProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid graph ({len(self.problems)} problem(s)):\n{lines}")


class TransportError(RtrunError):
    """A transport (e.g. a Zenoh session) could not be opened or used."""


class InternalError(RtrunError):
    """A bug in rtrun itself. Please report it with the traceback."""
