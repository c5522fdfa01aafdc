"""The graph model and the ``graph.toml`` reader (pure: text in, spec or problems out).

A graph file has these tables (the README has the complete key reference)::

    [graph]            name, root supervisor flags (strategy, intensity, period_s, backoff),
                       defaults for inputs and actors
    [zenoh]            transport settings shared by every host
    [realtime]         real-time scheduling shared by every host (:mod:`rtrun._realtime`)
    [hosts.<name>]     one rtrun process each (placement unit), its Zenoh and realtime settings
    [[supervisor]]     nested supervisors: id, parent, strategy, intensity, period_s, backoff,
                       restart, shutdown_timeout_s
    [[actor]]          id, kind, params, host, restart, shutdown_timeout_s, start_timeout_s,
                       supervisor, inputs.<name> = "actor/output" | { source, capacity, policy, qos }

Reading collects *every* structural problem (unknown keys, wrong types) instead of stopping
at the first; :mod:`rtrun._validate` then checks kinds, ports, params, types and cycles.
Decisions where the design is silent:

* A supervisor's children start in file order: its ``[[actor]]`` tables first, then its nested
  ``[[supervisor]]`` tables.
* Without a ``[hosts]`` table every actor runs on the implicit host ``local``. With one, an
  actor without ``host`` runs on the first declared host.
* Paths written in a graph file are relative to the file, not to the current directory:
  ``load_graph`` records the file's directory in ``GraphSpec.base_dir``; validation imports
  ``"module:Class"`` kinds with it first on ``sys.path`` and resolves relative path parameters
  (``Annotated[str, PathParam()]``, e.g. a dataset root or a checkpoint) against it.
* An input written as a plain string takes ``capacity``/``policy`` from ``[graph.defaults]``
  (default: capacity 1, policy ``latest``: fresh data beats stale data in a control loop).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from ._actor import Actor
from ._errors import GraphError, GraphProblem
from ._qos import QoS as QoS
from ._restart import Backoff
from ._suggest import did_you_mean
from ._toml_lines import line_of, locate

__all__ = [
    "DEFAULT_HOST",
    "ROOT",
    "ActorSpec",
    "GraphSpec",
    "HostSpec",
    "InputSpec",
    "QoS",
    "SupervisorSpec",
    "load_graph",
    "parse_graph",
]

ROOT: Final = "root"
"""Id of the root supervisor."""
DEFAULT_HOST: Final = "local"
"""Host of every actor when the graph declares no ``[hosts]``."""
DEFAULT_CAPACITY: Final = 1
DEFAULT_POLICY: Final = "latest"
DEFAULT_SHUTDOWN_TIMEOUT_S: Final = 5.0
"""OTP's default shutdown for workers is 5 s; long enough for a torque-off and a port close."""
DEFAULT_START_TIMEOUT_S: Final = 30.0
"""A USB camera can take several seconds to deliver its first frame; 30 s catches real hangs."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSpec:
    """One actor input and the channel feeding it."""

    name: str
    """Input port name, declared by the kind."""
    source: str | None
    """``"actor/output"`` feeding it, or None when left unconnected."""
    capacity: int = DEFAULT_CAPACITY
    """Channel capacity."""
    policy: str = DEFAULT_POLICY
    """Channel policy: ``block``, ``drop_oldest``, ``drop_newest``, ``latest``."""
    qos: QoS = field(default_factory=QoS)
    """Transport QoS when the channel crosses hosts."""
    external: bool = False
    """Fed by the embedding application through ``graph.sender()`` (satisfies ``required``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorSpec:
    """One ``[[actor]]`` table."""

    id: str
    """Unique actor id (letters, digits, ``_``, ``-``)."""
    kind: str | type[Actor]
    """Kind name, ``"pkg.mod:Class"``, or (in Python) the class itself."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Raw parameter values, validated against the kind's ``Params``."""
    host: str | None = None
    """Placement; None means the default host."""
    restart: str = "permanent"
    """``permanent`` | ``transient`` | ``temporary``."""
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    """Graceful stop budget before the hard stop."""
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S
    """Readiness budget."""
    supervisor: str = ROOT
    """Id of the supervisor this actor belongs to."""
    inputs: Mapping[str, InputSpec] = field(default_factory=dict)
    """Connected (or explicitly declared) inputs by name."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorSpec:
    """The root supervisor (``[graph]`` flags) or a nested ``[[supervisor]]`` table."""

    id: str
    """Supervisor id (``root`` for the root)."""
    parent: str | None = ROOT
    """Parent supervisor id; None only for the root."""
    strategy: str = "one_for_one"
    """``one_for_one`` | ``one_for_all`` | ``rest_for_one``."""
    intensity: int = 3
    """Max restarts within ``period_s`` before escalating."""
    period_s: float = 5.0
    """Restart intensity window."""
    backoff: Backoff | None = None
    """Optional delay between restarts."""
    restart: str = "permanent"
    """How the parent restarts this supervisor."""
    shutdown_timeout_s: float = float("inf")
    """Budget to stop the whole subtree (OTP: infinity for supervisors)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HostSpec:
    """One ``[hosts.<name>]`` table: a placement unit and its transport settings."""

    name: str
    """Host name used by actors' ``host`` key and ``rtrun run --host``."""
    zenoh: Mapping[str, Any] = field(default_factory=dict)
    """Zenoh settings for this host's process, merged over the graph's ``[zenoh]`` table."""
    realtime: Mapping[str, Any] = field(default_factory=dict)
    """Real-time scheduling of this host's process, merged over the graph's ``[realtime]`` table."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphSpec:
    """A whole graph, as read from TOML or built in Python."""

    name: str
    """Graph name (also the Zenoh key prefix ``@rtrun/<name>``)."""
    actors: tuple[ActorSpec, ...]
    """Actors in file order."""
    root: SupervisorSpec = field(default_factory=lambda: SupervisorSpec(id=ROOT, parent=None))
    """Root supervisor flags."""
    supervisors: tuple[SupervisorSpec, ...] = ()
    """Nested supervisors in file order."""
    hosts: Mapping[str, HostSpec] = field(default_factory=dict)
    """Declared hosts (empty: one implicit ``local`` host)."""
    zenoh: Mapping[str, Any] = field(default_factory=dict)
    """Graph-wide Zenoh settings."""
    realtime: Mapping[str, Any] = field(default_factory=dict)
    """Graph-wide real-time scheduling defaults (raw ``[realtime]`` table)."""
    file: str = "<spec>"
    """Where the spec came from (for error messages)."""
    base_dir: str | None = None
    """Directory that ``"module:Class"`` kinds are imported from first and relative path
    parameters are resolved against: the graph file's directory for :func:`load_graph`; None
    (a spec built in Python) leaves both to the process (``sys.path``, current directory)."""
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    """Line numbers of the file's tables and keys (:func:`rtrun._toml_lines.locate`)."""
    problems: tuple[GraphProblem, ...] = field(default=(), compare=False)
    """Structural problems found while reading, kept for validation to report with the rest
    (only from ``load_graph(..., collect=True)``; otherwise reading raises)."""

    def zenoh_settings(self, host: str) -> dict[str, Any]:
        """The raw Zenoh settings of ``host``: ``[zenoh]`` overridden key by key by ``[hosts.<host>].zenoh``."""
        spec = self.hosts.get(host)
        return {**self.zenoh, **(spec.zenoh if spec else {})}

    def realtime_settings(self, host: str) -> dict[str, Any]:
        """The raw realtime table of ``host``: ``[realtime]`` overridden key by key by ``[hosts.<host>.realtime]``."""
        spec = self.hosts.get(host)
        return {**self.realtime, **(spec.realtime if spec else {})}

    def host_of(self, actor: ActorSpec) -> str:
        """The host an actor runs on."""
        if actor.host is not None:
            return actor.host
        return next(iter(self.hosts), DEFAULT_HOST)


# ---------------------------------------------------------------------------- TOML reading

GRAPH_KEYS = {"name", "strategy", "intensity", "period_s", "backoff", "defaults"}
DEFAULTS_KEYS = {"capacity", "policy", "restart", "shutdown_timeout_s", "start_timeout_s"}
ACTOR_KEYS = {
    "id",
    "kind",
    "params",
    "host",
    "restart",
    "shutdown_timeout_s",
    "start_timeout_s",
    "supervisor",
    "inputs",
}
INPUT_KEYS = {"source", "capacity", "policy", "qos", "external"}
QOS_KEYS = {"reliability", "congestion", "priority", "express"}
SUPERVISOR_KEYS = {
    "id",
    "parent",
    "strategy",
    "intensity",
    "period_s",
    "backoff",
    "restart",
    "shutdown_timeout_s",
}
BACKOFF_KEYS = {"initial_s", "max_s", "multiplier", "jitter"}
TOP_KEYS = {"graph", "zenoh", "realtime", "hosts", "supervisor", "actor"}
HOST_KEYS = {"zenoh", "realtime"}


class _Reader:
    """Collects problems while turning TOML tables into spec objects."""

    def __init__(self, file: str, lines: Mapping[str, int]) -> None:
        self.file = file
        self.lines = lines
        self.problems: list[GraphProblem] = []

    def problem(self, where: str, rule: str) -> None:
        line = line_of(self.lines, where, rule)
        self.problems.append(GraphProblem(file=self.file, where=where, rule=rule, line=line))

    def keys(self, table: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                self.problem(where, f"unknown key {key!r}{hint} (allowed: {', '.join(sorted(allowed))})")

    def get(
        self, table: Mapping[str, Any], key: str, types: tuple[type, ...], default: Any, where: str
    ) -> Any:
        value = table.get(key, default)
        if value is default:
            return value
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            self.problem(where, f"{key!r} must be {names}, got {type(value).__name__} {value!r}")
            return default
        return (
            float(value)
            if float in types and isinstance(value, int) and not isinstance(value, bool)
            else value
        )

    def table(self, parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, Mapping):
            self.problem(where, f"{key!r} must be a table, got {type(value).__name__}")
            return {}
        return value


def _backoff(r: _Reader, raw: Any, where: str) -> Backoff | None:
    if raw is None:
        return None
    if raw is True:
        return Backoff()
    if not isinstance(raw, Mapping):
        r.problem(where, "'backoff' must be true or a table {initial_s, max_s, multiplier, jitter}")
        return None
    r.keys(raw, BACKOFF_KEYS, f"{where} / backoff")
    num = (int, float)
    try:
        return Backoff(
            initial=r.get(raw, "initial_s", num, 0.1, where),
            maximum=r.get(raw, "max_s", num, 5.0, where),
            multiplier=r.get(raw, "multiplier", num, 2.0, where),
            jitter=r.get(raw, "jitter", num, 0.1, where),
        )
    except ValueError as exc:
        r.problem(where, str(exc))
        return None


def _supervisor(r: _Reader, raw: Mapping[str, Any], where: str, *, root: bool) -> SupervisorSpec:
    num = (int, float)
    return SupervisorSpec(
        id=ROOT if root else r.get(raw, "id", (str,), "", where),
        parent=None if root else r.get(raw, "parent", (str,), ROOT, where),
        strategy=r.get(raw, "strategy", (str,), "one_for_one", where),
        intensity=r.get(raw, "intensity", (int,), 3, where),
        period_s=r.get(raw, "period_s", num, 5.0, where),
        backoff=_backoff(r, raw.get("backoff"), where),
        restart=r.get(raw, "restart", (str,), "permanent", where),
        shutdown_timeout_s=r.get(raw, "shutdown_timeout_s", num, float("inf"), where),
    )


def _input(r: _Reader, name: str, raw: Any, defaults: Mapping[str, Any], where: str) -> InputSpec:
    cap, pol = defaults.get("capacity", DEFAULT_CAPACITY), defaults.get("policy", DEFAULT_POLICY)
    if isinstance(raw, str):
        return InputSpec(name=name, source=raw, capacity=cap, policy=pol)
    if not isinstance(raw, Mapping):
        r.problem(where, 'an input must be "actor/output" or a table {source, capacity, policy, qos}')
        return InputSpec(name=name, source=None)
    r.keys(raw, INPUT_KEYS, where)
    qos_raw = r.table(raw, "qos", where)
    r.keys(qos_raw, QOS_KEYS, f"{where} / qos")
    qos = QoS(
        reliability=r.get(qos_raw, "reliability", (str,), "best_effort", where),
        congestion=r.get(qos_raw, "congestion", (str,), "drop", where),
        priority=r.get(qos_raw, "priority", (str,), "data", where),
        express=r.get(qos_raw, "express", (bool,), False, where),
    )
    return InputSpec(
        name=name,
        source=r.get(raw, "source", (str,), None, where),
        capacity=r.get(raw, "capacity", (int,), cap, where),
        policy=r.get(raw, "policy", (str,), pol, where),
        qos=qos,
        external=r.get(raw, "external", (bool,), False, where),
    )


def _actor(r: _Reader, raw: Mapping[str, Any], index: int, defaults: Mapping[str, Any]) -> ActorSpec:
    actor_id = raw.get("id")
    where = f"actor {actor_id!r}" if isinstance(actor_id, str) else f"actor #{index + 1}"
    r.keys(raw, ACTOR_KEYS, where)
    if not isinstance(actor_id, str):
        r.problem(where, "every [[actor]] needs an 'id' string")
    if not isinstance(raw.get("kind"), str):
        r.problem(where, "every [[actor]] needs a 'kind' string (a built-in kind or 'package.module:Class')")
    num = (int, float)
    inputs_raw = r.table(raw, "inputs", where)
    inputs = {
        name: _input(r, name, value, defaults, f"{where} / input {name!r}")
        for name, value in inputs_raw.items()
    }
    return ActorSpec(
        id=actor_id if isinstance(actor_id, str) else f"#{index + 1}",
        kind=raw.get("kind") if isinstance(raw.get("kind"), str) else "",
        params=dict(r.table(raw, "params", where)),
        host=r.get(raw, "host", (str,), None, where),
        restart=r.get(raw, "restart", (str,), defaults.get("restart", "permanent"), where),
        shutdown_timeout_s=r.get(
            raw,
            "shutdown_timeout_s",
            num,
            defaults.get("shutdown_timeout_s", DEFAULT_SHUTDOWN_TIMEOUT_S),
            where,
        ),
        start_timeout_s=r.get(
            raw, "start_timeout_s", num, defaults.get("start_timeout_s", DEFAULT_START_TIMEOUT_S), where
        ),
        supervisor=r.get(raw, "supervisor", (str,), ROOT, where),
        inputs=inputs,
    )


def _array_of_tables(r: _Reader, doc: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        r.problem(f"[[{key}]]", f"'{key}' must be an array of tables written [[{key}]]")
        return []
    return value


def parse_graph(
    doc: Mapping[str, Any],
    file: str = "<spec>",
    *,
    default_name: str = "graph",
    lines: Mapping[str, int] | None = None,
    collect: bool = False,
) -> GraphSpec:
    """Turn a parsed TOML document into a :class:`GraphSpec`.

    Raises GraphError listing every structural problem, unless ``collect``: then the spec (with
    defaults where values were unusable) carries them in ``problems`` so that validation reports
    them together with every other problem. ``lines`` (from :func:`rtrun._toml_lines.locate`) puts
    line numbers on problems.
    """
    lines = lines if lines is not None else {}
    r = _Reader(file, lines)
    r.keys(doc, TOP_KEYS, "top level")
    graph = r.table(doc, "graph", "[graph]")
    r.keys(graph, GRAPH_KEYS, "[graph]")
    defaults = r.table(graph, "defaults", "[graph]")
    r.keys(defaults, DEFAULTS_KEYS, "[graph.defaults]")
    hosts_raw = r.table(doc, "hosts", "[hosts]")
    hosts = {}
    for name, table in hosts_raw.items():
        if isinstance(table, Mapping):
            r.keys(table, HOST_KEYS, f"[hosts.{name}]")
            hosts[name] = HostSpec(
                name=name,
                zenoh=dict(r.table(table, "zenoh", f"[hosts.{name}]")),
                realtime=dict(r.table(table, "realtime", f"[hosts.{name}]")),
            )
        else:
            r.problem(f"[hosts.{name}]", "a host must be a table, e.g. [hosts.robot] zenoh = { ... }")
    spec = GraphSpec(
        name=r.get(graph, "name", (str,), default_name, "[graph]"),
        actors=tuple(_actor(r, a, i, defaults) for i, a in enumerate(_array_of_tables(r, doc, "actor"))),
        root=_supervisor(r, graph, "[graph]", root=True),
        supervisors=tuple(
            _supervisor(r, s, f"supervisor {s.get('id')!r}", root=False)
            for s in _array_of_tables(r, doc, "supervisor")
        ),
        hosts=hosts,
        zenoh=dict(r.table(doc, "zenoh", "[zenoh]")),
        realtime=dict(r.table(doc, "realtime", "[realtime]")),
        file=file,
        lines=lines,
        problems=tuple(r.problems),
    )
    if r.problems and not collect:
        raise GraphError(r.problems)
    return spec


def load_graph(path: str | Path, *, collect: bool = False) -> GraphSpec:
    """Read and parse a ``graph.toml`` file (structure only; see ``rtrun._validate`` for the rest).

    With ``collect``, structural problems travel in the spec's ``problems`` instead of raising,
    so ``compile_graph`` reports them together with every semantic problem (``rtrun check``).

    Raises:
        GraphError: the file is missing, not valid TOML (with line and column), or malformed
            (the latter only without ``collect``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GraphError(
            [GraphProblem(file=str(path), where="file", rule=f"cannot read: {exc.strerror}")]
        ) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GraphError([GraphProblem(file=str(path), where="TOML syntax", rule=str(exc))]) from None
    spec = parse_graph(doc, str(path), default_name=path.stem, lines=locate(text), collect=collect)
    return replace(spec, base_dir=str(path.resolve().parent))
