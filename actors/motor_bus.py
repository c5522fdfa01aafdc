"""The ``motor_bus`` actor: the single owner of one motor bus (a real arm, a fake, or the MuJoCo sim).

Every tick of an absolute-deadline :class:`rtrun.Ticker` at ``rate_hz``, one worker-thread call
(``ctx.run_sync``; the actor's ``CapacityLimiter(1)`` serializes every use of the bus):

1. advances simulated buses by the runtime time elapsed since the previous tick
   (``anyio.current_time()``, so virtual time in tests drives the physics);
2. reads the present positions (robot units: degrees mid-point centred, gripper 0–100);
3. validates the newest :class:`JointCommand` (if any arrived) and merges it into the active
   goal; clamps the goal into the position limits and by ``max_relative_target`` against the
   positions just read (``rtrun.actors._motor_safety``); writes it when it changed or is still
   being approached.

Then the actor publishes :class:`JointState` on ``state`` (stamped with ``anyio.current_time()``
right after the call returned), updates its status and counters, and logs progress every
``progress_interval_s``. It signals readiness after the first successful read.

Bad commands (NaN/inf, wrong dimension, unknown or duplicate joints) are refused: the arm does not
move on them, they are counted per reason in the status, and logged once per reason per
``log_interval_s`` (a 30 Hz stream of bad commands must not flood the log). They never crash the
actor. Bus faults do: a servo error (overload, overheat), a vanished port, or more than
``max_consecutive_errors`` consecutive timeouts/corrupt replies raise :class:`MotorBusFailure`
(chained to the driver's typed error, which names the motor), and the supervisor restarts the
actor, which reconnects.

A command source going away is **not** a bus fault and never restarts the actor (issue 16): the
``command`` input is read through :class:`rtrun.actors._source.WatchedInput`, so a producer whose
host vanished (``BrokenResourceError``: killed, hung past its lease, stopped) or that ended
(``EndOfStream``) is a typed event. The actor then applies ``on_source_lost`` once -- ``hold``
(default: forget the goal and hold the pose just read, torque on) or ``safe_state`` (the
configured ``safe_state``; ``torque_off`` releases the arm) -- keeps reading and publishing
state at ``rate_hz``, and accepts commands again as soon as a source delivers (torque is
re-enabled first if it was released). Status: ``command_source`` (``waiting``, ``live``,
``lost:vanished``, ``lost:ended``) and ``source_losses``. What restarts the actor: bus faults
only (above).

Shutdown. In ``finally``, inside ``ctx.cleanup`` (shielded and time-bounded): on a graceful stop
and with ``return_home``, the arm first glides back to the pose read at start-up (linear, over
``return_home_s``, LeRobot's 3 s at 50 Hz); then the safe state is applied: ``hold`` (goal ←
present, torque stays on) or ``torque_off``; then the port is closed. After a crash the bus may
be unusable: the safe state is still attempted, errors there are logged, never raised over the
original failure. The actor's ``shutdown_timeout_s`` (graph) must exceed ``return_home_s +
cleanup_timeout_s``.

Design decisions (the brief is silent on them):

- One thread hop per tick (read, filter and write in the same call) rather than two: at 500 Hz
  each hop costs tens of microseconds of jitter. ``JointState.t_read`` is therefore stamped
  after the write; the difference is one sync write (no reply) on the wire.
- Commands are polled (``receive_nowait``) at each tick, never awaited, so a silent command
  source can never stall the state stream. With a ``block``/``drop_*`` input every queued
  command is merged in order; with ``latest`` only the newest exists.
- A write happens only on a new command or while the previous write was clamped by
  ``max_relative_target`` (the goal is still being approached); otherwise servos hold their
  last goal and the bus carries only the read.
- Transient read faults (any :class:`rtrun.drivers.TransientError`: timeout, corrupt reply, a CAN
  motor that missed an exchange) up to ``max_consecutive_errors`` in a row are tolerated: the
  tick publishes nothing and counts ``errors``. A servo error or a lost port is never tolerated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
import numpy as np
import rtrun
from anyio.abc import TaskStatus
from rtrun.drivers import TransientError
from rtrun.drivers.calibration import SO_ARM_JOINTS

from ._arms import ARMS, Arm, build_arm
from ._diagnostics import RateLimiter
from ._motor_safety import REJECT_REASONS, CommandFilter, Rejection, normalize_relative_cap
from ._source import SourceChange, SourceEvent, WatchedInput
from .messages import JointCommand, JointState

__all__ = ["MotorBusActor", "MotorBusFailure", "MotorBusParams"]

_DRIVER_MODULES: dict[str, Mapping[str, str]] = {
    "feetech": {"serial": "pip install 'rtrun[hardware]'"},
    "dynamixel": {"serial": "pip install 'rtrun[hardware]'"},
    "damiao": {"can": "pip install 'rtrun[hardware]'"},
    "sim": {"mujoco": "pip install 'rtrun[sim]'"},
}
"""Python modules each bus driver imports (``rtrun check`` reports missing ones)."""

MAX_COMMANDS_PER_TICK = 64
"""Bound on queued commands merged in one tick (a ``block`` input cannot starve the loop)."""


class MotorBusFailure(rtrun.ActorError):
    """The bus failed (servo error, lost port, repeated timeouts); ``error`` is the driver's error."""

    def __init__(self, actor: str, error: BaseException) -> None:
        super().__init__(f"motor_bus {actor!r}: {error}")
        self.actor = actor
        """Actor id."""
        self.error = error
        """The typed driver error (names the motor when one is involved)."""


def _joint_names(arm: str, driver: str, can_motors: dict[str, tuple[int, ...]]) -> tuple[str, ...]:
    if driver == "damiao":
        return tuple(can_motors)
    return SO_ARM_JOINTS  # SO-100/101, Koch and the sim share LeRobot's joint names


@dataclass(frozen=True, slots=True, kw_only=True)
class MotorBusParams:
    """Parameters of the ``motor_bus`` actor."""

    driver: Literal["feetech", "dynamixel", "damiao", "fake", "sim"] = "fake"
    """Bus driver: real Feetech/Dynamixel serial, Damiao CAN, in-memory fake, or the MuJoCo sim."""
    port: str = ""
    """Serial port (``/dev/ttyACM0``) or CAN channel (``can0``, ``/dev/ttyACM0`` for slcan)."""
    arm: Literal["so100", "so101", "koch", "koch_leader"] = "so101"
    """Arm model: motor ids 1–6, LeRobot joint names and norm modes (serial drivers)."""
    device: str = ""
    """Name of the simulated device (fake bus or MuJoCo plant) shared across restarts and with a
    ``mujoco`` camera; empty = the actor id (fake) or ``so101`` (sim)."""
    calibration: Annotated[str, rtrun.PathParam()] = ""
    """LeRobot calibration JSON; empty = use the range stored in the motors."""
    use_degrees: bool = True
    """Arm joints in degrees (LeRobot 0.4 default); False = −100…100."""
    configure: bool = True
    """Feetech: write LeRobot's SO follower register settings (P/I/D, acceleration) at connect."""
    torque: bool = True
    """Enable torque at start (False: a passive arm that only publishes state)."""
    rate_hz: float = 50.0
    """Control rate: read, publish and write at this rate."""
    position_limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    """``{joint = [lo, hi]}`` in robot units, applied on top of the device's own range."""
    max_relative_target: float | dict[str, float] | None = None
    """Largest step per tick from the present position (one cap, or one per joint)."""
    safe_state: Literal["hold", "torque_off"] = "torque_off"
    """What the arm does when the actor stops or crashes."""
    on_source_lost: Literal["hold", "safe_state"] = "hold"
    """When the command source goes away (its host vanished, or it ended): ``hold`` the pose
    just read (torque on), or apply ``safe_state``. Never a restart; commands are accepted
    again when a source returns."""
    return_home: bool = False
    """On a graceful stop, glide back to the pose read at start-up before the safe state."""
    return_home_s: float = 3.0
    """Duration of the return home (LeRobot: 3 s)."""
    cleanup_timeout_s: float = 2.0
    """Budget of the safe-state action and port close."""
    max_consecutive_errors: int = 2
    """Consecutive transient bus errors (timeouts, corrupt replies) tolerated before failing."""
    baudrate: int = 1_000_000
    """Serial line rate."""
    bus_timeout_s: float = 0.05
    """Serial reply timeout per transaction."""
    can_motors: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Damiao: ``{joint = [id, recv_id]}`` in bus order."""
    can_model: str = "DM4310"
    """Damiao motor model (MIT limits)."""
    can_interface: str = "auto"
    """python-can interface (``auto``: slcan for ``/dev/…``, socketcan otherwise)."""
    fake_tau_s: float = 0.05
    """Fake bus: first-order response time of the joints."""
    sim_scene: Literal["arm", "pick"] = "arm"
    """MuJoCo scene: the bare arm, or arm + table + block + ``front`` camera."""
    sim_joint_mids_deg: tuple[float, ...] = ()
    """Per-joint calibration mid-point in sim degrees (hardware.md §8); empty = all 0."""
    sim_fallback: Literal["fake", "none"] = "fake"
    """When MuJoCo is not installed: run the kinematic fake arm instead (``none``: fail)."""
    log_interval_s: float = 5.0
    """Minimum interval between two log lines for the same rejection or error reason."""
    progress_interval_s: float = 5.0
    """Interval of the progress log line (0 disables)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise ValueError(f"rate_hz must be finite and > 0, got {self.rate_hz}")
        if self.driver in ("feetech", "dynamixel", "damiao") and not self.port:
            raise ValueError(f"driver {self.driver!r} needs a port")
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}")
        if self.driver == "damiao" and not self.can_motors:
            raise ValueError("driver 'damiao' needs can_motors = { joint = [id, recv_id], ... }")
        joints = _joint_names(self.arm, self.driver, self.can_motors)
        normalize_relative_cap(self.max_relative_target, joints)
        unknown = sorted(set(self.position_limits) - set(joints))
        if unknown:
            raise ValueError(f"position_limits name unknown joints {unknown}; joints are {list(joints)}")
        for name, value in (
            ("return_home_s", self.return_home_s),
            ("cleanup_timeout_s", self.cleanup_timeout_s),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")

    def arm_options(self) -> dict[str, Any]:
        """Keyword options for :func:`rtrun.actors._arms.build_arm`."""
        return {
            "arm": self.arm,
            "port": self.port,
            "calibration": self.calibration,
            "use_degrees": self.use_degrees,
            "configure": self.configure,
            "baudrate": self.baudrate,
            "bus_timeout_s": self.bus_timeout_s,
            "can_motors": self.can_motors,
            "can_model": self.can_model,
            "can_interface": self.can_interface,
            "fake_tau_s": self.fake_tau_s,
            "sim_scene": self.sim_scene,
            "sim_joint_mids_deg": self.sim_joint_mids_deg,
            "sim_fallback": self.sim_fallback,
        }


def device_name(params: Any, actor_id: str) -> str:
    """The simulated device an actor drives (see ``MotorBusParams.device``)."""
    if params.device:
        return params.device
    return "so101" if params.driver == "sim" else actor_id


@dataclass(slots=True)
class _Cycle:
    """Result of one worker-thread cycle."""

    present: dict[str, float]
    rejections: list[Rejection]
    accepted: int
    wrote: bool
    limited: tuple[str, ...]
    relative: tuple[str, ...]


class _Controller:
    """Bus-side state of one actor run: the arm, the command filter, what was written (thread side)."""

    def __init__(self, arm: Arm, params: MotorBusParams) -> None:
        self.arm = arm
        self.params = params
        self.filter: CommandFilter | None = None
        self.approaching = False
        self.released = False
        """Torque was disabled because the command source went away (re-enabled on a command)."""

    def start(self) -> dict[str, float]:
        """Connect, set up limits, optionally enable torque; return the first reading."""
        self.arm.connect()
        limits = self.arm.default_limits()
        for name, (lo, hi) in self.params.position_limits.items():
            dlo, dhi = limits.get(name, (-math.inf, math.inf))
            limits[name] = (max(lo, dlo), min(hi, dhi))
        self.filter = CommandFilter.create(
            self.arm.joints, limits=limits, max_relative_target=self.params.max_relative_target
        )
        if self.params.torque:
            self.arm.enable_torque()
        return self.arm.read()

    def cycle(self, dt: float, commands: list[JointCommand]) -> _Cycle:
        """Advance, read, merge commands, clamp and write (see the module docstring)."""
        assert self.filter is not None
        self.arm.advance(dt)
        present = self.arm.read()
        rejections = []
        for cmd in commands:
            rejection = self.filter.accept(tuple(cmd.names), cmd.position)
            if rejection is not None:
                rejections.append(rejection)
        accepted = len(commands) - len(rejections)
        safe = self.filter.safe_goal(present) if self.params.torque else None
        wrote = False
        if safe is not None and (accepted or self.approaching):
            if self.released:
                self.arm.enable_torque()
                self.released = False
            self.arm.write(safe.goal)
            wrote = True
            self.approaching = bool(safe.relative)
        limited = safe.limited if safe is not None and wrote else ()
        relative = safe.relative if safe is not None and wrote else ()
        return _Cycle(present, rejections, accepted, wrote, limited, relative)

    def glide(self, start: dict[str, float], home: dict[str, float], fraction: float) -> None:
        """One step of the return home: write the linear blend ``start → home`` at ``fraction``."""
        goal = {n: start[n] + (home[n] - start[n]) * fraction for n in home}
        assert self.filter is not None
        goal, _ = self.filter.clamp_limits(goal)
        self.arm.write(goal)

    def source_lost(self, mode: str) -> str:
        """The command source went away: hold the present pose or apply the safe state.

        Forgets the active goal (nothing is approached any more); returns what was done.
        """
        if self.filter is None or not self.params.torque:
            return "nothing (torque off)"
        self.filter.reset()
        self.approaching = False
        if mode == "safe_state" and self.params.safe_state == "torque_off":
            self.arm.disable_torque()
            self.released = True
            return "torque off"
        self.arm.write(self.arm.read())
        return "hold"

    def safe_state(self, mode: str, pose: dict[str, float] | None = None) -> None:
        """Hold (goal ← ``pose``, default the present position) or disable torque."""
        if mode == "hold":
            self.arm.write(pose if pose is not None else self.arm.read())
        else:
            self.arm.disable_torque()


@dataclass(slots=True)
class _Counters:
    seq: int = 0
    commands: int = 0
    writes: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    clamped_limits: int = 0
    clamped_relative: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    tracking_error: float = 0.0


class MotorBusActor(rtrun.Actor):
    """Owns one motor bus: publishes ``JointState``, applies ``JointCommand`` safely (module doc)."""

    inputs = {
        "command": rtrun.Input(JointCommand, required=False, doc="goal positions (robot units), latest wins"),
    }
    outputs = {"state": rtrun.Output(JointState, doc="measured joint positions at the control rate")}
    Params = MotorBusParams

    @classmethod
    def requirements(cls, params: MotorBusParams) -> Mapping[str, str]:
        """pyserial, python-can or MuJoCo for the chosen driver (the sim may fall back to the fake)."""
        if params.driver == "sim" and params.sim_fallback == "fake":
            return {}
        return _DRIVER_MODULES.get(params.driver, {})

    async def run(
        self,
        ctx: rtrun.ActorContext[MotorBusParams],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Connect, loop at ``rate_hz``, and reach the safe state on the way out."""
        p = ctx.params
        self._ctx = ctx
        self._n = _Counters()
        self._limiter = RateLimiter(p.log_interval_s)
        port = ctx.inputs.get("command")  # absent only in hand-made contexts (tests)
        self._commands_open = port is not None
        self._commands: WatchedInput[JointCommand] = WatchedInput(port, "command")
        self._source = "waiting"
        self._lost: SourceChange | None = None
        arm = await ctx.run_sync(self._build, ctx.id)
        controller = _Controller(arm, p)
        home: dict[str, float] | None = None
        graceful = False
        try:
            home = await self._guard(ctx.run_sync(controller.start))
            ctx.set_status(joints=list(arm.joints), driver=p.driver, state="running")
            ctx.log.info("connected (%s, %d joints, %.0f Hz)", p.driver, len(arm.joints), p.rate_hz)
            await self._loop(ctx, controller, task_status)
        except anyio.get_cancelled_exc_class():
            graceful = True
            raise
        finally:
            with ctx.cleanup(p.cleanup_timeout_s + (p.return_home_s if p.return_home else 0.0)):
                await self._shutdown(ctx, controller, home if graceful else None)

    def _build(self, actor_id: str) -> Arm:
        p = self._ctx.params
        try:
            return build_arm(p.driver, device=device_name(p, actor_id), **p.arm_options())
        except ValueError as exc:
            raise rtrun.ParamsError(f"motor_bus {actor_id!r}: {exc}") from exc

    async def _guard(self, call: Any) -> Any:
        """Await a driver call, mapping driver errors to :class:`MotorBusFailure`."""
        try:
            return await call
        except rtrun.RtrunError:
            raise
        except Exception as exc:
            raise MotorBusFailure(self._ctx.id, exc) from exc

    async def _loop(
        self, ctx: rtrun.ActorContext[MotorBusParams], controller: _Controller, task_status: TaskStatus[None]
    ) -> None:
        p = ctx.params
        last = anyio.current_time()
        next_progress = last + p.progress_interval_s
        started = False
        async with rtrun.Ticker(p.rate_hz) as ticker:
            async for _tick in ticker:
                now = anyio.current_time()
                dt, last = max(0.0, now - last), now
                cycle = await self._tick(ctx, controller, dt)
                if cycle is not None:
                    await self._publish(ctx, controller, cycle)
                    if not started:
                        task_status.started()
                        started = True
                self._report(ctx, ticker)
                if p.progress_interval_s > 0 and now >= next_progress:
                    next_progress = now + p.progress_interval_s
                    self._log_progress(ctx, ticker)

    async def _tick(
        self, ctx: rtrun.ActorContext[MotorBusParams], controller: _Controller, dt: float
    ) -> _Cycle | None:
        commands = self._pending_commands()
        try:
            if self._lost is not None:
                await self._source_lost(ctx, controller, self._lost)
            cycle = await ctx.run_sync(controller.cycle, dt, commands)
        except Exception as exc:
            if not isinstance(exc, TransientError):
                raise MotorBusFailure(ctx.id, exc) from exc
            self._n.errors += 1
            self._n.consecutive_errors += 1
            if self._n.consecutive_errors > ctx.params.max_consecutive_errors:
                raise MotorBusFailure(ctx.id, exc) from exc
            kind = type(exc).__name__
            self._log_limited(ctx, f"error:{kind}", f"tolerated bus error ({kind}): {exc}")
            return None
        self._n.consecutive_errors = 0
        return cycle

    def _pending_commands(self) -> list[JointCommand]:
        """Queued commands (at most :data:`MAX_COMMANDS_PER_TICK`); notes a lost source."""
        if not self._commands_open:
            return []
        out: list[JointCommand] = []
        for _ in range(MAX_COMMANDS_PER_TICK):
            try:
                item = self._commands.receive_nowait()
            except anyio.WouldBlock:
                break
            except anyio.ClosedResourceError:  # our own port: the graph is stopping
                self._commands_open = False
                break
            if isinstance(item, SourceChange):
                self._on_source_change(item)
            else:
                out.append(item)
                self._source = "live"
        return out

    def _on_source_change(self, change: SourceChange) -> None:
        if change.event is SourceEvent.LOST:
            self._lost = change
            self._source = f"lost:{change.reason}"
        else:
            self._lost = None
            self._ctx.log.info("command source back (%s): accepting commands", change.reason)

    async def _source_lost(
        self, ctx: rtrun.ActorContext[MotorBusParams], controller: _Controller, change: SourceChange
    ) -> None:
        """Apply ``on_source_lost`` once per loss (a transient bus error retries next tick)."""
        done = await ctx.run_sync(controller.source_lost, ctx.params.on_source_lost)
        self._lost = None
        ctx.log.warning(
            "command source %s: %s; still publishing state, commands accepted when a source returns",
            change.reason, done,
        )  # fmt: skip

    async def _publish(
        self, ctx: rtrun.ActorContext[MotorBusParams], controller: _Controller, c: _Cycle
    ) -> None:
        t_read = anyio.current_time()
        n = self._n
        names = controller.arm.joints
        position = np.array([c.present[j] for j in names], dtype=np.float32)
        position.flags.writeable = False
        await ctx.output("state").send(JointState(names=names, position=position, seq=n.seq, t_read=t_read))
        n.seq += 1
        n.commands += c.accepted
        n.writes += int(c.wrote)
        n.clamped_limits += int(bool(c.limited))
        n.clamped_relative += int(bool(c.relative))
        for r in c.rejections:
            n.rejected[r.reason] = n.rejected.get(r.reason, 0) + 1
            self._log_limited(
                ctx,
                f"reject:{r.reason}",
                f"rejected command ({r.reason}): {r.message}; the arm did not move on it",
            )
        if c.relative:
            self._log_limited(
                ctx, "clamp:relative", f"max_relative_target clamped the step of {', '.join(c.relative)}"
            )
        goal = controller.filter.goal if controller.filter is not None else {}
        n.tracking_error = max((abs(goal[j] - c.present[j]) for j in goal), default=0.0)

    def _log_limited(self, ctx: rtrun.ActorContext[MotorBusParams], key: str, message: str) -> None:
        """Log ``message`` at most once per ``key`` per ``log_interval_s``, with a suppressed count."""
        suppressed = self._limiter.allow(key, anyio.current_time())
        if suppressed is not None:
            tail = f" ({suppressed} similar suppressed)" if suppressed else ""
            ctx.log.warning("%s%s", message, tail)

    def _report(self, ctx: rtrun.ActorContext[MotorBusParams], ticker: rtrun.Ticker) -> None:
        n = self._n
        stats = ticker.statistics()
        ctx.set_status(
            seq=n.seq,
            ticks=stats.ticks,
            missed=stats.missed,
            lateness_p99_us=None if stats.lateness_p99_s is None else round(stats.lateness_p99_s * 1e6, 1),
            commands=n.commands,
            writes=n.writes,
            rejected=sum(n.rejected.values()),
            rejected_by_reason={k: v for k, v in n.rejected.items() if v},
            clamped_limits=n.clamped_limits,
            clamped_relative=n.clamped_relative,
            errors=n.errors,
            tracking_error=round(n.tracking_error, 3),
            command_source=self._source,
            source_losses=self._commands.losses,
        )

    def _log_progress(self, ctx: rtrun.ActorContext[MotorBusParams], ticker: rtrun.Ticker) -> None:
        n, s = self._n, ticker.statistics()
        ctx.log.info(
            "tick %d (missed %d), commands %d, writes %d, rejected %d, clamped %d, errors %d, tracking error %.2f",
            s.ticks,
            s.missed,
            n.commands,
            n.writes,
            sum(n.rejected.values()),
            n.clamped_relative + n.clamped_limits,
            n.errors,
            n.tracking_error,
        )

    async def _shutdown(
        self, ctx: rtrun.ActorContext[MotorBusParams], controller: _Controller, home: dict[str, float] | None
    ) -> None:
        """Return home (graceful stop only), apply the safe state, close; never raises."""
        p = ctx.params
        ctx.set_status(state="stopping")
        try:
            returned = home is not None and p.return_home and p.torque and controller.filter is not None
            if returned:
                await self._return_home(ctx, controller, home)
            if controller.filter is not None:
                await ctx.run_sync(controller.safe_state, p.safe_state, home if returned else None)
                ctx.log.info("safe state reached (%s)", p.safe_state)
        except Exception as exc:  # the bus may be gone: report, never mask the original failure
            ctx.log.warning("could not reach the safe state (%s): %s", p.safe_state, exc)
        finally:
            try:
                await ctx.run_sync(controller.arm.close)
            except Exception as exc:
                ctx.log.warning("closing the bus failed: %s", exc)
            ctx.set_status(state="stopped")

    async def _return_home(
        self, ctx: rtrun.ActorContext[MotorBusParams], controller: _Controller, home: dict[str, float]
    ) -> None:
        """Linear glide to the start-up pose over ``return_home_s`` at ``rate_hz`` (LeRobot §9.3)."""
        p = ctx.params
        start = await ctx.run_sync(controller.arm.read)
        steps = max(1, round(p.return_home_s * p.rate_hz))
        ctx.log.info("returning home over %.1f s", p.return_home_s)
        t0 = last = anyio.current_time()
        for k in range(1, steps + 1):
            await ctx.run_sync(controller.glide, start, home, k / steps)
            await anyio.sleep_until(t0 + k / p.rate_hz)
            now = anyio.current_time()
            await ctx.run_sync(controller.arm.advance, max(0.0, now - last))
            last = now
