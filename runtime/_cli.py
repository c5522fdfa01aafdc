"""The ``rtrun`` command line: a thin wrapper over :func:`rtrun.open_graph`.

Exit codes (stable, documented in the README):

=====  ==========================================================================
0      clean stop: ``--duration`` elapsed, Ctrl-C/SIGTERM (also during start-up), or
       every actor ended
1      invalid graph (``rtrun check`` or ``rtrun run``): nothing was started;
       ``rtrun doctor``: a check failed (something blocks robot work on this machine)
2      usage error (bad arguments, bad ``--set``)
3      failure: the root supervisor escalated, an actor failed to start, or an actor
       raised ``ConfigurationError`` (a deterministic mismatch, never restarted)
130    forced stop: a second Ctrl-C/SIGTERM cut the graceful shutdown short
=====  ==========================================================================

The first Ctrl-C (or SIGTERM) requests a graceful stop: actors stop in reverse start order,
each within its ``shutdown_timeout_s`` (hardware cleanup runs shielded). A second one during
that shutdown hard-stops every actor, cleanups included; an actor whose cleanup was cut short
logs that its safe state was not confirmed.

During start-up the first signal aborts the start at once (the launcher holds the graph's
handle before it is ready): the actor that is starting is cancelled, its shielded cleanup runs,
no later actor starts (a motor bus after it is never connected nor torque-enabled), the started
ones stop in reverse order, and the exit code is 0 (a stop on request is a clean stop; the
summary says ``start-up aborted``). A second signal forces the fast stop at once (exit 130).
Without this, a hung start would ignore every signal until its ``start_timeout_s``.

A failure is reported once: the actor's traceback by its supervisor, then one line here saying
why the graph ended (``failed to start`` only when it never became ready).
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from ._errors import ConfigurationError, EscalationError, GraphError, RtrunError
from ._graph import load_graph
from ._launch import CompiledGraph, Graph, GraphStatus, compile_source
from ._logs import LOG_FORMATS, setup_logging
from ._params import parse_override
from ._validate import missing_requirements, process_realtime, realtime_problems

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3
EXIT_FORCED = 130

log = logging.getLogger("rtrun.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtrun", description="Supervised async actor runtime for robot control."
    )
    parser.add_argument("--version", action="version", version=f"rtrun {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate a graph file and report every problem")
    check.add_argument("graph")
    check.add_argument("--set", dest="overrides", action="append", default=[], metavar="ACTOR.PARAM=VALUE")
    run = sub.add_parser("run", help="run a graph until Ctrl-C, SIGTERM, --duration, or its end")
    run.add_argument("graph")
    run.add_argument("--duration", type=_positive_seconds, default=None, help="stop after this many seconds")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="ACTOR.PARAM=VALUE")
    run.add_argument("--host", action="append", default=None, help="run only this host's actors (repeatable)")
    run.add_argument("--isolate", action="store_true", help="run every host as a supervised child process")
    _add_log_options(run)
    run.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop", "trio"],
                     help="event loop: auto = uvloop when installed, else asyncio")  # fmt: skip
    doctor = sub.add_parser("doctor", help="check this machine for robot work and print fixes")
    doctor.add_argument("--json", action="store_true", help="one JSON document: {ok, checks: [...]}")
    kinds = sub.add_parser("kinds", help="actor kinds: ports and parameters (type, default, doc)")
    kinds.add_argument("kind", nargs="*", help="built-in kind names or user kinds as 'package.module:Class'")
    router = sub.add_parser("router", help="run a Zenoh router in this process (there is no zenohd on PyPI)")
    router.add_argument("--listen", action="append", default=None, metavar="ENDPOINT",
                        help="endpoint to listen on (repeatable; default tcp/127.0.0.1:7447)")  # fmt: skip
    _add_log_options(router)
    return parser


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=LOG_FORMATS,
                        help="text (a terminal view) or json (one object per line)")  # fmt: skip
    parser.add_argument(
        "--log-file", default=None, metavar="PATH", help="also append every log record to PATH"
    )


def _setup_logging(args: argparse.Namespace) -> bool:
    """Configure logging from the command line; False (after saying why) if the file fails."""
    try:
        setup_logging(args.log_level, fmt=args.log_format, file=args.log_file)
    except OSError as exc:
        print(f"rtrun: --log-file {args.log_file}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rtrun")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


def _positive_seconds(text: str) -> float:
    """``--duration``: a finite number of seconds > 0 (argparse turns the error into exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rtrun`` console script."""
    args = _parser().parse_args(argv)
    try:
        overrides = [parse_override(o) for o in getattr(args, "overrides", [])]
    except ValueError as exc:
        print(f"rtrun: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        return _check(args.graph, overrides)
    if args.command == "doctor":
        from ._doctor import main as doctor

        return _quiet_on_broken_pipe(doctor, args.json)
    if args.command == "kinds":
        return _quiet_on_broken_pipe(_kinds, args.kind)
    if args.command == "router":
        if not _setup_logging(args):
            return EXIT_USAGE
        return _router(args.listen or ["tcp/127.0.0.1:7447"])
    return _run(args, overrides)


def _router(listen: list[str]) -> int:
    import threading

    from ._zenoh import open_router

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with open_router(tuple(listen)) as session, session.watch_peers(_log_peer):
            # Announce only once the router listens: scripts and tests wait for this line.
            print(
                f"rtrun router listening on {', '.join(listen)} (Ctrl-C to stop)", file=sys.stderr, flush=True
            )
            stop.wait()
    except RtrunError as exc:
        print(f"rtrun router: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _log_peer(zid: str, kind: str, joined: bool) -> None:
    log.info("%s %s %s", kind, zid, "joined" if joined else "left")


def _compile(path: str, overrides: list[tuple[str, str, Any]]) -> CompiledGraph | int:
    """Compile ``path`` with ``--set`` overrides, or print why not and return the exit code.

    A problem that only exists because of an override is a usage error (exit 2) that blames
    ``--set``; a problem of the file itself is an invalid graph (exit 1).
    """
    try:
        return compile_source(load_graph(path, collect=True), overrides=overrides)
    except GraphError as exc:
        error = exc
    if not overrides or not _compiles(path):
        print(error, file=sys.stderr)
        return EXIT_INVALID
    shown = ", ".join(f"{a}.{p}={v!r}" for a, p, v in overrides)
    print(f"rtrun: bad --set ({shown}):", file=sys.stderr)
    for problem in error.problems:
        print(f"  - {problem.where}: {problem.rule}", file=sys.stderr)
    return EXIT_USAGE


def _compiles(path: str) -> bool:
    try:
        compile_source(load_graph(path, collect=True))
    except GraphError:
        return False
    return True


def _check(path: str, overrides: list[tuple[str, str, Any]]) -> int:
    compiled = _compile(path, overrides)
    if isinstance(compiled, int):
        return compiled
    hosts = sorted({a.host for a in compiled.actors.values()})
    print(
        f"{path}: ok ({len(compiled.actors)} actors, {len(compiled.edges)} channels, hosts: {', '.join(hosts)})"
    )
    for problem in missing_requirements(compiled):  # a warning: the host may be another machine
        print(f"warning: {problem}", file=sys.stderr)
    errors, warnings = realtime_problems(compiled)
    for problem in errors:  # `rtrun run` refuses these, on the machine the host runs on
        print(f"warning: {problem} (fine if that host runs on another machine)", file=sys.stderr)
    for problem in warnings:
        print(f"warning: {problem}", file=sys.stderr)
    return EXIT_OK


def _quiet_on_broken_pipe(command: Any, *args: Any) -> int:
    """Run a listing command; a reader that went away (``rtrun kinds | head``) ends it quietly."""
    import os

    try:
        return int(command(*args))
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK


def _kinds(names: Sequence[str]) -> int:
    """``rtrun kinds [KIND ...]``: ports and parameters (type, default, doc) of each kind."""
    from ._kinds import KindError, available_kinds, resolve_kind

    code = EXIT_OK
    for name in names or available_kinds():
        try:
            cls = resolve_kind(name, search_path=".")  # like `python -m`: the current directory
        except KindError as exc:
            print(f"{name}: {exc}", file=sys.stdout if not names else sys.stderr)
            code = EXIT_USAGE if names else code
            continue
        _print_kind(name, cls)
    return code


def _print_kind(name: str, cls: Any) -> None:
    from ._params import describe_params

    summary = (cls.__doc__ or "").strip().splitlines()
    ins = ", ".join(f"{n}: {d.type.__name__}{'' if d.required else '?'}" for n, d in cls.inputs.items())
    outs = ", ".join(f"{n}: {d.type.__name__}" for n, d in cls.outputs.items())
    print(f"{name}  ({cls.__module__}:{cls.__qualname__})" + (f"\n  {summary[0]}" if summary else ""))
    print(
        f"  inputs:  {ins or '-'}\n  outputs: {outs or '-'}\n  params:{'' if cls.Params.__dataclass_fields__ else '  -'}"
    )
    for p in describe_params(cls.Params):
        default = "required" if p.default is None else f"= {p.default}"
        print(f"    {p.name}: {p.annotation} {default}" + (f"\n        {p.doc}" if p.doc else ""))


@dataclass
class _RunState:
    graph: Graph | None = None
    hard_stop: Any = None
    forced: bool = False
    signals: int = 0
    startup: anyio.CancelScope | None = None
    """Encloses the graph's start: a first signal during start-up cancels it."""
    started: bool = False
    """The graph reported ready (every local actor started)."""
    aborted: bool = False
    """A signal aborted the start-up."""


def _run(args: argparse.Namespace, overrides: list[tuple[str, str, Any]]) -> int:
    if not _setup_logging(args):
        return EXIT_USAGE
    compiled = _compile(args.graph, overrides)
    if isinstance(compiled, int):
        return compiled
    known = {a.host for a in compiled.actors.values()} | set(compiled.spec.hosts)
    unknown = sorted(set(args.host or ()) - known)
    if unknown:
        print(
            f"rtrun: --host {', '.join(unknown)}: not a host of {args.graph} "
            f"(its hosts: {', '.join(sorted(known))})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    missing = missing_requirements(compiled, None if args.isolate else args.host)
    if missing:
        print(GraphError(missing), file=sys.stderr)
        return EXIT_INVALID
    errors, warnings = realtime_problems(compiled, None if args.isolate else args.host)
    if errors:  # every host run from here runs on this machine
        print(GraphError(errors), file=sys.stderr)
        return EXIT_INVALID
    if not args.isolate:  # --isolate: each host process warns and applies its own
        for problem in warnings:
            log.warning("%s", problem)
        _apply_realtime(compiled, args.host)
    backend, options = _backend(args.loop)
    state = _RunState()
    if args.isolate:
        return _run_isolated(compiled, args, state, backend, options)
    try:
        status = anyio.run(_run_async, compiled, args, state, backend=backend, backend_options=options)
    except Exception as exc:
        _report_failure(compiled.spec.name, _unwrap(exc), started=state.started)
        return EXIT_FAILURE
    how = "forced" if state.forced else "start-up aborted" if state.aborted else "clean"
    print(_summary(status, how), file=sys.stderr)
    return EXIT_FORCED if state.forced else EXIT_OK


def _apply_realtime(compiled: CompiledGraph, hosts: Sequence[str] | None) -> None:
    """Apply the realtime table of this process's hosts to this (the event-loop) thread; say
    once what took effect, or warn once with the fix (:mod:`rtrun._realtime`)."""
    from ._realtime import apply

    names = set(hosts) if hosts else {a.host for a in compiled.actors.values()}
    settings, where = process_realtime(compiled.spec, names)
    if len(names) > 1 and any(compiled.spec.hosts[h].realtime for h in names if h in compiled.spec.hosts):
        log.info("realtime: %d hosts in one process use [realtime] only; per-host tables apply "
                 "with --host or --isolate", len(names))  # fmt: skip
    report = apply(settings)
    warning = report.warning()
    if warning is not None:
        log.warning("%s: %s", where, warning)
    elif settings.requested:
        log.info("realtime %s: %s", where, report.summary())


def _unwrap(exc: BaseException) -> BaseException:
    """The exception inside task-group wrappers holding a single one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _report_failure(name: str, exc: BaseException, *, started: bool) -> None:
    """Say once why the graph ended with exit 3: the actor's traceback was already logged by its
    supervisor, so only an unexpected error (a runtime bug) gets a traceback here."""
    if isinstance(exc, ConfigurationError):
        how = "stopped" if started else "failed to start"
        log.error("graph %r %s: configuration error in actor %r, not retried: %s", name, how, exc.actor, exc)
    elif isinstance(exc, EscalationError):
        log.error("graph %r failed: %s", name, exc)
    elif not started:
        log.error("graph %r failed to start: %s: %s", name, type(exc).__name__, exc)
    else:
        log.error("graph %r failed: %s: %s", name, type(exc).__name__, exc, exc_info=exc)


def _backend(loop: str) -> tuple[str, dict[str, Any]]:
    if loop == "trio":
        return "trio", {}
    if loop in ("auto", "uvloop"):
        try:
            import uvloop  # noqa: F401
        except ImportError:
            if loop == "uvloop":
                raise SystemExit("rtrun: --loop uvloop needs the 'fast' extra (pip install uvloop)") from None
        else:
            return "asyncio", {"use_uvloop": True}
    return "asyncio", {}


async def _run_async(compiled: Any, args: argparse.Namespace, state: _RunState) -> GraphStatus:
    graph = state.graph = Graph(compiled, frozenset(args.host) if args.host else None)
    async with anyio.create_task_group() as tg:
        stop = anyio.Event()
        tg.start_soon(_watch_signals, state, stop)
        try:
            with anyio.CancelScope() as state.startup:
                async with graph._running():
                    state.started = True
                    _sweep_threads()
                    log.info("graph %r running (%d actors)", graph.name, len(graph.status().actors))
                    await _until_stopped(graph, stop, args.duration)
                    log.info("stopping graph %r", graph.name)
            if state.startup.cancelled_caught:
                state.aborted = True
                log.warning("graph %r: start-up aborted, started actors stopped", graph.name)
            return graph.status()
        finally:
            tg.cancel_scope.cancel()


def _sweep_threads() -> None:
    """Give the threads started during start-up (native ones included) the worker CPUs."""
    from ._realtime import sweep_threads

    moved = sweep_threads()
    if moved:
        log.debug("realtime: %d threads moved to the worker CPUs", moved)


async def _until_stopped(graph: Graph, stop: anyio.Event, duration: float | None) -> None:
    """Wait until the graph ends by itself, a signal, or ``--duration``."""
    with anyio.move_on_after(duration if duration is not None else math.inf):
        async with anyio.create_task_group() as waiters:
            waiters.start_soon(_cancel_after, graph.wait(), waiters.cancel_scope)
            waiters.start_soon(_cancel_after, stop.wait(), waiters.cancel_scope)


async def _cancel_after(awaitable: Any, scope: anyio.CancelScope) -> None:
    await awaitable
    scope.cancel()


async def _watch_signals(state: _RunState, stop: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            state.signals += 1
            if state.signals == 1:
                _first_signal(state, stop, signal.Signals(signum).name)
            else:
                log.warning("%s: forcing a fast stop", signal.Signals(signum).name)
                state.forced = True
                if state.graph is not None:
                    state.graph.hard_stop()
                if state.hard_stop is not None:
                    state.hard_stop()


def _first_signal(state: _RunState, stop: anyio.Event, name: str) -> None:
    """Graceful stop; during start-up, abort the start: no further actor starts, the starting
    one is cancelled (its shielded cleanup runs), the started ones stop in reverse order."""
    starting = state.graph is not None and not state.started and state.startup is not None
    if starting:
        log.warning("%s during start-up: aborting the start-up (again to force)", name)
        assert state.startup is not None
        state.startup.cancel()
    else:
        log.warning("%s: stopping gracefully (again to force)", name)
    stop.set()


def _run_isolated(
    compiled: Any, args: argparse.Namespace, state: _RunState, backend: str, options: Any
) -> int:
    from ._isolate import HostProcesses, host_supervisor

    passthrough = [
        *(f"--set={o}" for o in args.overrides),
        "--log-level",
        args.log_level,
        "--log-format",
        args.log_format,
        "--loop",
        args.loop,
    ]
    hosts = HostProcesses()
    supervisor = host_supervisor(compiled, passthrough, hosts)

    def force() -> None:  # a second signal: every host forces its own fast stop too
        supervisor.hard_stop()
        hosts.force_all()

    state.hard_stop = force

    failures: list[BaseException] = []

    async def supervise() -> None:
        try:
            await supervisor.run()
        except RtrunError as exc:
            failures.append(exc)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            stop = anyio.Event()
            tg.start_soon(_watch_signals, state, stop)
            async with anyio.create_task_group() as waiters:
                waiters.start_soon(_cancel_after, supervise(), waiters.cancel_scope)
                with anyio.move_on_after(args.duration if args.duration is not None else math.inf):
                    await stop.wait()
                hosts.terminate_all()  # every host starts stopping now, none sees the others vanish
                waiters.cancel_scope.cancel()
            tg.cancel_scope.cancel()

    anyio.run(main, backend=backend, backend_options=options)
    if failures:
        log.error("isolated graph failed: %s", failures[0])
        return EXIT_FAILURE
    how = "forced" if state.forced else "clean"
    print(f"rtrun: graph {compiled.spec.name!r} hosts stopped ({how})", file=sys.stderr)
    return EXIT_FORCED if state.forced else EXIT_OK


def _summary(status: GraphStatus, how: str) -> str:
    return (
        f"rtrun: graph {status.name!r} stopped ({how}) after {status.uptime_s:.1f} s: "
        f"{len(status.actors)} actors, {status.restarts} restarts, {status.messages} messages, "
        f"{status.dropped} dropped, {status.superseded} superseded in latest mailboxes, "
        f"{status.unconnected} sent to no consumer"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
