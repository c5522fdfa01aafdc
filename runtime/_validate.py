"""Graph validation: turn a :class:`GraphSpec` into a :class:`CompiledGraph` or report every problem.

Pure apart from importing actor kinds. Each rule is one small function appending
:class:`GraphProblem` entries that name the file, the table and the rule, so ``rtrun check``
prints *all* problems at once. Rules:

* ids: actor and supervisor ids are unique and use ``[A-Za-z0-9_-]`` (they become Zenoh key
  segments and REPL names);
* kinds resolve (``"module:Class"`` imported from the graph file's directory first); params
  match the kind's schema (unknown, wrong type, missing required); relative path parameters
  are resolved against the graph file's directory (:func:`rtrun._params.resolve_path_params`);
* restart types, strategies, timeouts, intensity and period are valid;
* every supervisor's parent exists and the supervisor tree has no cycle;
* hosts: an actor's host is declared;
* inputs: declared by the kind; ``source = "actor/output"`` names an existing actor and output;
  the output's message type is accepted by the input; capacity/policy are valid; QoS values are
  known and congestion is never ``block``; required inputs are connected;
* a cycle whose every edge uses the ``block`` policy is rejected (it can deadlock: each actor
  waits for room the next one can only make by sending); one ``latest``/``drop_*`` edge breaks it;
* realtime tables (``[realtime]``, ``[hosts.<name>.realtime]``): known keys, policy names,
  priorities in 1..99 with ``fifo``/``rr``, CPU lists. What depends on the machine (CPUs that
  exist, a loop sharing its CPU with the workers) is checked by :func:`realtime_problems`, apart:
  a graph is often checked on another machine than the one a host runs on.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from ._actor import Actor
from ._channel import _check_config
from ._errors import ChannelError, GraphError, GraphProblem
from ._graph import DEFAULT_HOST, ROOT, ActorSpec, GraphSpec, InputSpec, SupervisorSpec
from ._kinds import KindError, resolve_kind
from ._params import build_params, describe_type, resolve_path_params
from ._realtime import RealtimeSettings, machine_problems, parse_realtime, settings_from
from ._suggest import did_you_mean
from ._toml_lines import line_of

__all__ = [
    "CompiledActor",
    "CompiledGraph",
    "Edge",
    "compile_graph",
    "missing_requirements",
    "process_realtime",
    "realtime_problems",
]

ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
RESTART_TYPES: Final = ("permanent", "transient", "temporary")
STRATEGIES: Final = ("one_for_one", "one_for_all", "rest_for_one")


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledActor:
    """An actor whose kind and params were resolved and validated."""

    spec: ActorSpec
    """The spec as written."""
    cls: type[Actor]
    """The resolved actor class."""
    params: Any
    """The validated ``Params`` instance (never None in a compiled graph: an actor whose params
    are invalid is only kept while validating, so its inputs are checked too)."""
    host: str
    """Resolved placement."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    """One connection ``source_actor/output -> target_actor/input``."""

    source_actor: str
    """Producing actor id."""
    output: str
    """Output port name."""
    target_actor: str
    """Consuming actor id."""
    input: InputSpec
    """The consuming input (capacity, policy, QoS)."""
    type: type[Any]
    """Message type carried (the output's declared type)."""

    @property
    def name(self) -> str:
        """``"source/output->target/input"``."""
        return f"{self.source_actor}/{self.output}->{self.target_actor}/{self.input.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledGraph:
    """A validated graph, ready to launch."""

    spec: GraphSpec
    """The spec (with ``--set`` overrides applied)."""
    actors: Mapping[str, CompiledActor]
    """Actors by id, in file order."""
    edges: tuple[Edge, ...]
    """Every connection, in file order."""

    def supervisor_children(self, supervisor_id: str) -> tuple[list[CompiledActor], list[SupervisorSpec]]:
        """Direct children of a supervisor, in start order (actors first, then nested supervisors)."""
        actors = [a for a in self.actors.values() if a.spec.supervisor == supervisor_id]
        subs = [s for s in self.spec.supervisors if s.parent == supervisor_id]
        return actors, subs


class _Check:
    def __init__(self, spec: GraphSpec) -> None:
        self.spec = spec
        self.problems: list[GraphProblem] = []

    def add(self, where: str, rule: str) -> None:
        line = line_of(self.spec.lines, where, rule)
        self.problems.append(GraphProblem(file=self.spec.file, where=where, rule=rule, line=line))


def apply_overrides(spec: GraphSpec, overrides: Iterable[tuple[str, str, Any]]) -> GraphSpec:
    """Return ``spec`` with ``--set actor.param=value`` overrides applied (unknown actors reported)."""
    actors = {a.id: a for a in spec.actors}
    problems = []
    for actor_id, param, value in overrides:
        if actor_id not in actors:
            rule = f"no actor {actor_id!r}{did_you_mean(actor_id, actors)}"
            problems.append(GraphProblem(file=spec.file, where=f"--set {actor_id}.{param}", rule=rule))
            continue
        actors[actor_id] = replace(actors[actor_id], params={**actors[actor_id].params, param: value})
    if problems:
        raise GraphError(problems)
    return replace(spec, actors=tuple(actors.values()))


def compile_graph(
    spec: GraphSpec,
    *,
    kinds: Mapping[str, type[Actor]] | None = None,
    overrides: Sequence[tuple[str, str, Any]] = (),
) -> CompiledGraph:
    """Validate ``spec`` completely; raise :class:`GraphError` listing every problem found."""
    spec = apply_overrides(spec, overrides) if overrides else spec
    check = _Check(spec)
    check.problems.extend(spec.problems)  # structural ones, when read with collect=True
    _check_ids(check)
    _check_supervisors(check)
    # Actors whose params are invalid still have their inputs checked (params=None): every
    # problem is reported at once, and the graph is refused below anyway.
    actors = {a.id: c for a in spec.actors if (c := _compile_actor(check, a, kinds)) is not None}
    edges = _check_inputs(check, actors)
    _check_block_cycles(check, edges)
    _check_hosts(check)
    _check_realtime(check)
    if check.problems:
        raise GraphError(check.problems)
    return CompiledGraph(spec=spec, actors=actors, edges=tuple(edges))


def _check_ids(check: _Check) -> None:
    seen: set[str] = set()
    for actor in check.spec.actors:
        where = f"actor {actor.id!r}"
        if not ID_PATTERN.match(actor.id):
            check.add(where, "an id uses letters, digits, '_' and '-' only (at most 64 characters)")
        if actor.id in seen:
            check.add(where, f"duplicate actor id {actor.id!r}")
        seen.add(actor.id)


def _check_supervisors(check: _Check) -> None:
    specs = {ROOT: check.spec.root}
    for sup in check.spec.supervisors:
        where = f"supervisor {sup.id!r}"
        if not ID_PATTERN.match(sup.id) or sup.id == ROOT:
            check.add(
                where, f"a supervisor needs a unique id other than {ROOT!r} (letters, digits, '_', '-')"
            )
        elif sup.id in specs:
            check.add(where, f"duplicate supervisor id {sup.id!r}")
        specs[sup.id] = sup
    for sup in (check.spec.root, *check.spec.supervisors):
        _check_flags(check, sup)
    for sup in check.spec.supervisors:
        if sup.parent not in specs:
            check.add(f"supervisor {sup.id!r}", f"parent {sup.parent!r} is not a declared supervisor")
    _check_supervisor_cycles(check, specs)
    for actor in check.spec.actors:
        if actor.supervisor not in specs:
            hint = did_you_mean(actor.supervisor, specs)
            check.add(f"actor {actor.id!r}", f"supervisor {actor.supervisor!r} is not declared{hint}")


def _check_flags(check: _Check, sup: SupervisorSpec) -> None:
    where = "[graph]" if sup.id == ROOT else f"supervisor {sup.id!r}"
    if sup.strategy not in STRATEGIES:
        check.add(where, f"strategy must be one of {', '.join(STRATEGIES)}, got {sup.strategy!r}")
    if sup.intensity < 0:
        check.add(where, f"intensity must be >= 0, got {sup.intensity}")
    if not sup.period_s > 0:
        check.add(where, f"period_s must be > 0, got {sup.period_s}")
    if sup.restart not in RESTART_TYPES:
        check.add(where, f"restart must be one of {', '.join(RESTART_TYPES)}, got {sup.restart!r}")
    if not sup.shutdown_timeout_s > 0:
        check.add(where, f"shutdown_timeout_s must be > 0, got {sup.shutdown_timeout_s}")


def _check_supervisor_cycles(check: _Check, specs: Mapping[str, SupervisorSpec]) -> None:
    reported: set[str] = set()
    for start in specs:
        path, node = [], start
        while node in specs and node not in path:
            path.append(node)
            node = specs[node].parent  # type: ignore[assignment]
        if node in path and node not in reported:
            cycle = path[path.index(node) :]
            reported.update(cycle)
            check.add(f"supervisor {node!r}", f"supervisor cycle: {' -> '.join([*cycle, node])}")


def _compile_actor(
    check: _Check, actor: ActorSpec, kinds: Mapping[str, type[Actor]] | None
) -> CompiledActor | None:
    where = f"actor {actor.id!r}"
    if actor.restart not in RESTART_TYPES:
        check.add(where, f"restart must be one of {', '.join(RESTART_TYPES)}, got {actor.restart!r}")
    for key in ("shutdown_timeout_s", "start_timeout_s"):
        if not getattr(actor, key) > 0:
            check.add(where, f"{key} must be > 0, got {getattr(actor, key)}")
    if not actor.kind:
        return None
    try:
        cls = resolve_kind(actor.kind, kinds, search_path=check.spec.base_dir)
    except KindError as exc:
        check.add(where, str(exc))
        return None
    params, problems = build_params(cls.Params, actor.params)
    for rule in problems:
        check.add(f"{where} / params", rule)
    params = resolve_path_params(params, check.spec.base_dir)
    return CompiledActor(spec=actor, cls=cls, params=params, host=check.spec.host_of(actor))


def _check_inputs(check: _Check, actors: Mapping[str, CompiledActor]) -> list[Edge]:
    edges = []
    for actor in actors.values():
        for name, inp in actor.spec.inputs.items():
            edge = _check_input(check, actor, name, inp, actors)
            if edge is not None:
                edges.append(edge)
        for name, decl in actor.cls.inputs.items():
            connected = actor.spec.inputs.get(name)
            if decl.required and (connected is None or (connected.source is None and not connected.external)):
                check.add(
                    f"actor {actor.spec.id!r} / input {name!r}",
                    f'required input is not connected (add inputs.{name} = "actor/output"; '
                    f"it accepts {describe_type(decl.type)})",
                )
    return edges


def _check_input(
    check: _Check, actor: CompiledActor, name: str, inp: InputSpec, actors: Mapping[str, CompiledActor]
) -> Edge | None:
    where = f"actor {actor.spec.id!r} / input {name!r}"
    decl = actor.cls.inputs.get(name)
    if decl is None:
        known = ", ".join(sorted(actor.cls.inputs)) or "none"
        hint = did_you_mean(name, actor.cls.inputs)
        check.add(where, f"kind {_kind_name(actor)} has no input {name!r}{hint} (inputs: {known})")
        return None
    try:
        _check_config(inp.capacity, inp.policy)
    except ChannelError as exc:
        check.add(where, str(exc))
    _check_qos(check, where, inp)
    if inp.external and inp.source is not None:
        check.add(where, "an input is either fed by a source or external, not both")
    if inp.source is None:
        return None
    source_id, sep, output = inp.source.partition("/")
    if not sep or not source_id or not output or "/" in output:
        check.add(where, f'source must be "actor/output", got {inp.source!r}')
        return None
    if source_id not in actors:
        ids = [a.id for a in check.spec.actors]
        if source_id not in ids:
            check.add(where, f"source actor {source_id!r} does not exist{did_you_mean(source_id, ids)}")
        return None
    source = actors[source_id]
    out = source.cls.outputs.get(output)
    if out is None:
        known = ", ".join(sorted(source.cls.outputs)) or "none"
        hint = did_you_mean(output, source.cls.outputs)
        check.add(
            where,
            f"actor {source_id!r} ({_kind_name(source)}) has no output {output!r}{hint} (outputs: {known})",
        )
        return None
    if not (isinstance(out.type, type) and issubclass(out.type, decl.type)):
        check.add(
            where,
            f"type mismatch: {inp.source} carries {describe_type(out.type)} but the input accepts {describe_type(decl.type)}",
        )
        return None
    return Edge(source_actor=source_id, output=output, target_actor=actor.spec.id, input=inp, type=out.type)


def _check_qos(check: _Check, where: str, inp: InputSpec) -> None:
    for problem in inp.qos.problems():
        check.add(where, problem)


def _kind_name(actor: CompiledActor) -> str:
    return repr(actor.spec.kind) if isinstance(actor.spec.kind, str) else actor.cls.__name__


def _check_block_cycles(check: _Check, edges: Sequence[Edge]) -> None:
    graph: dict[str, list[str]] = {}
    for edge in edges:
        if edge.input.policy == "block":
            graph.setdefault(edge.source_actor, []).append(edge.target_actor)
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                check.add(
                    f"actor {nxt!r}",
                    f"cycle of 'block' channels can deadlock: {' -> '.join(cycle)}; "
                    "give one of its inputs policy 'latest', 'drop_oldest' or 'drop_newest'",
                )
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in list(graph):
        if node not in state:
            visit(node)


def _check_hosts(check: _Check) -> None:
    from ._zenoh_config import ZenohConfigError, ZenohSettings  # light: zenoh itself is not imported

    for host in check.spec.hosts or {DEFAULT_HOST: None}:
        where = f"[hosts.{host}] / zenoh" if check.spec.hosts else "[zenoh]"
        try:
            ZenohSettings.from_mapping(check.spec.zenoh_settings(host))
        except (ZenohConfigError, TypeError) as exc:
            check.add(where, f"invalid zenoh settings: {exc}")
    declared = set(check.spec.hosts) or {DEFAULT_HOST}
    for actor in check.spec.actors:
        if actor.host is not None and actor.host not in declared:
            check.add(
                f"actor {actor.id!r}",
                f"host {actor.host!r} is not declared{did_you_mean(actor.host, declared)} "
                f"(declare [hosts.{actor.host}]; declared: {', '.join(sorted(declared))})",
            )


def missing_requirements(compiled: CompiledGraph, hosts: Collection[str] | None = None) -> list[GraphProblem]:
    """What the actors placed on ``hosts`` (default: every host) need and this Python lacks:
    one problem per module a kind declares (:meth:`rtrun.Actor.requirements`) that cannot be
    imported here, with the kind's install hint."""
    problems = []
    for actor in compiled.actors.values():
        if hosts is not None and actor.host not in hosts:
            continue
        for module, hint in actor.cls.requirements(actor.params).items():
            if not _importable(module):
                where = f"actor {actor.spec.id!r}"
                rule = f"kind {_kind_name(actor)} needs the Python module {module!r}, not installed here ({hint})"
                line = line_of(compiled.spec.lines, where, "kind")
                problems.append(GraphProblem(file=compiled.spec.file, where=where, rule=rule, line=line))
    return problems


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a broken install
        return False


def _realtime_where(spec: GraphSpec, host: str | None) -> str:
    """Where a realtime problem is reported: the host's table (as written) or ``[realtime]``."""
    if host is None or host not in spec.hosts or not spec.hosts[host].realtime:
        return "[realtime]"
    header = f"[hosts.{host}.realtime]"
    return header if header in spec.lines else f"[hosts.{host}] / realtime"


def _check_realtime(check: _Check) -> None:
    spec = check.spec
    graph_wide, problems = parse_realtime(spec.realtime)
    for _key, rule in problems:
        check.add("[realtime]", rule)
    seen: set[tuple[str, str]] = set()
    for host in list(spec.hosts) or [DEFAULT_HOST]:
        where = _realtime_where(spec, host)
        own: dict[str, Any] = {}
        if where != "[realtime]":
            own, problems = parse_realtime(spec.hosts[host].realtime)
            for _key, rule in problems:
                check.add(where, rule)
        for _key, rule in settings_from({**graph_wide, **own})[1]:
            if (where, rule) not in seen:
                seen.add((where, rule))
                check.add(where, rule)


def host_realtime(spec: GraphSpec, host: str) -> RealtimeSettings:
    """The realtime settings of ``host`` in a validated graph."""
    return settings_from(parse_realtime(spec.realtime_settings(host))[0])[0]


def process_realtime(spec: GraphSpec, hosts: Collection[str]) -> tuple[RealtimeSettings, str]:
    """The settings a process running ``hosts`` applies, and where they come from.

    One host: its own table over ``[realtime]``. Several hosts in one process: ``[realtime]``
    only, since a process has one event-loop thread (run each host with ``--host`` or
    ``--isolate`` for per-host settings).
    """
    if len(hosts) == 1:
        (host,) = hosts
        return host_realtime(spec, host), _realtime_where(spec, host)
    return settings_from(parse_realtime(spec.realtime)[0])[0], "[realtime]"


def realtime_problems(
    compiled: CompiledGraph, hosts: Collection[str] | None = None
) -> tuple[list[GraphProblem], list[GraphProblem]]:
    """``(errors, warnings)`` of the realtime settings of ``hosts`` (default: every host) on this
    machine: CPUs it does not have; a loop sharing its CPU with the worker threads."""
    spec = compiled.spec
    names = sorted(
        hosts if hosts is not None else {a.host for a in compiled.actors.values()} | set(spec.hosts)
    )
    errors: list[GraphProblem] = []
    warnings: list[GraphProblem] = []
    seen: set[tuple[str, str]] = set()
    for host in names:
        where = _realtime_where(spec, host)
        found = machine_problems(host_realtime(spec, host))
        for rules, out in zip(found, (errors, warnings), strict=True):
            for rule in rules:
                if (where, rule) not in seen:
                    seen.add((where, rule))
                    line = line_of(spec.lines, where, rule)
                    out.append(GraphProblem(file=spec.file, where=where, rule=rule, line=line))
    return errors, warnings
