"""The ``teleop`` actor: a leader arm, read at a fixed rate, drives a follower through ``JointCommand``s.

The leader uses the same drivers and units as the follower's ``motor_bus`` (degrees mid-point
centred, gripper 0–100), with torque **off** so a person can move it. Each tick it reads the
leader's positions in a worker thread and publishes them as a :class:`JointCommand` on
``command``; wire that into the follower's ``command`` input and the follower's own safety
(limits, ``max_relative_target``) applies exactly as for a policy.

Optional ``intervention`` output: a :class:`Flag` named ``intervention`` that turns true when the
leader moves (any joint more than ``motion_threshold`` since the last tick) and false after
``idle_s`` without motion — the signal a recorder or an action queue uses to know a human took
over (LeRobot's HIL "intervention"). It is sent on changes only.

Design decisions (the brief is silent on them):

- ``joint_map`` renames leader joints to follower joints (bimanual or mismatched naming);
  ``joint_signs`` flips directions. Both are applied here, at the teleop boundary, once.
- Bus faults fail the actor like the motor bus (``TeleopFailure``, chained to the driver's typed
  error); the supervisor restarts it. On stop the leader is left limp and its port closed.
- Transient read faults (any :class:`rtrun.drivers.TransientError`: timeout, corrupt reply)
  skip the tick, up to ``max_consecutive_errors`` in a row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
import numpy as np
import rtrun
from anyio.abc import TaskStatus
from rtrun.drivers import TransientError

from ._arms import ARMS, Arm, build_arm
from .messages import Flag, JointCommand

__all__ = ["TeleopActor", "TeleopFailure", "TeleopParams"]


class TeleopFailure(rtrun.ActorError):
    """The leader's bus failed; ``error`` is the driver's typed error."""

    def __init__(self, actor: str, error: BaseException) -> None:
        super().__init__(f"teleop {actor!r}: {error}")
        self.actor = actor
        """Actor id."""
        self.error = error
        """The typed driver error (names the motor when one is involved)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TeleopParams:
    """Parameters of the ``teleop`` actor."""

    driver: Literal["feetech", "dynamixel", "fake"] = "fake"
    """Leader bus driver."""
    port: str = ""
    """Serial port of the leader arm."""
    arm: Literal["so100", "so101", "koch", "koch_leader"] = "so101"
    """Leader arm model (SO leaders use the SO table; Koch leaders ``koch_leader``)."""
    device: str = ""
    """Fake driver: device name in the fake registry (default: the actor id)."""
    calibration: Annotated[str, rtrun.PathParam()] = ""
    """LeRobot calibration JSON of the leader; empty = the range stored in the motors."""
    use_degrees: bool = True
    """Degrees like the follower (must match the follower's ``use_degrees``)."""
    rate_hz: float = 50.0
    """Read and command rate."""
    joint_map: dict[str, str] = field(default_factory=dict)
    """Rename leader joints to follower joints (``{leader = "follower"}``); unnamed joints keep their name."""
    joint_signs: dict[str, float] = field(default_factory=dict)
    """``{leader joint = -1}`` flips a direction (applied before renaming)."""
    motion_threshold: float = 0.5
    """Intervention: movement per tick (robot units) that counts as a human moving the leader."""
    idle_s: float = 1.0
    """Intervention: stillness after which the flag turns false again."""
    max_consecutive_errors: int = 2
    """Consecutive transient bus errors tolerated before failing."""
    baudrate: int = 1_000_000
    """Serial line rate."""
    bus_timeout_s: float = 0.05
    """Serial reply timeout."""
    cleanup_timeout_s: float = 2.0
    """Budget of the torque-off and port close on stop."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise ValueError(f"rate_hz must be finite and > 0, got {self.rate_hz}")
        if self.driver != "fake" and not self.port:
            raise ValueError(f"driver {self.driver!r} needs a port")
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}")
        bad = {k: v for k, v in self.joint_signs.items() if v not in (1.0, -1.0)}
        if bad:
            raise ValueError(f"joint_signs must be +1 or -1, got {bad}")


class TeleopActor(rtrun.Actor):
    """Reads a limp leader arm and emits follower commands (see the module docstring)."""

    outputs = {
        "command": rtrun.Output(JointCommand, doc="leader pose as follower goals"),
        "intervention": rtrun.Output(Flag, doc="true while a human moves the leader"),
    }
    Params = TeleopParams

    async def run(
        self,
        ctx: rtrun.ActorContext[TeleopParams],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Connect the leader limp, then stream its pose at ``rate_hz``."""
        p = ctx.params
        options = {
            "arm": p.arm,
            "port": p.port,
            "calibration": p.calibration,
            "use_degrees": p.use_degrees,
            "configure": False,
            "baudrate": p.baudrate,
            "bus_timeout_s": p.bus_timeout_s,
        }
        try:
            arm: Arm = await ctx.run_sync(lambda: build_arm(p.driver, device=p.device or ctx.id, **options))
        except ValueError as exc:
            raise rtrun.ParamsError(f"teleop {ctx.id!r}: {exc}") from exc
        connected = False
        try:
            await self._guard(ctx, ctx.run_sync(arm.connect))
            connected = True
            await self._guard(ctx, ctx.run_sync(arm.disable_torque))
            ctx.log.info("leader connected (%s), torque off", p.driver)
            await self._loop(ctx, arm, task_status)
        finally:
            with ctx.cleanup(p.cleanup_timeout_s):
                await self._release(ctx, arm, connected)

    async def _guard(self, ctx: rtrun.ActorContext[TeleopParams], call: Any) -> Any:
        try:
            return await call
        except Exception as exc:
            raise TeleopFailure(ctx.id, exc) from exc

    async def _release(self, ctx: rtrun.ActorContext[TeleopParams], arm: Arm, connected: bool) -> None:
        try:
            if connected:
                await ctx.run_sync(arm.disable_torque)
        except Exception as exc:
            ctx.log.warning("could not disable the leader's torque: %s", exc)
        try:
            await ctx.run_sync(arm.close)
        except Exception as exc:
            ctx.log.warning("closing the leader's bus failed: %s", exc)

    def _names(self, ctx: rtrun.ActorContext[TeleopParams], arm: Arm) -> tuple[str, ...]:
        return tuple(ctx.params.joint_map.get(j, j) for j in arm.joints)

    async def _loop(
        self, ctx: rtrun.ActorContext[TeleopParams], arm: Arm, task_status: TaskStatus[None]
    ) -> None:
        p = ctx.params
        names = self._names(ctx, arm)
        signs = np.array([p.joint_signs.get(j, 1.0) for j in arm.joints])
        seq, errors, started = 0, 0, False
        flag = _Intervention(p.motion_threshold, p.idle_s)
        async with rtrun.Ticker(p.rate_hz) as ticker:
            async for _tick in ticker:
                try:
                    pose = await ctx.run_sync(arm.read)
                except Exception as exc:
                    errors += 1
                    if not isinstance(exc, TransientError) or errors > p.max_consecutive_errors:
                        raise TeleopFailure(ctx.id, exc) from exc
                    ctx.log.warning("tolerated leader read error: %s", exc)
                    continue
                errors = 0
                now = anyio.current_time()
                position = (np.array([pose[j] for j in arm.joints]) * signs).astype(np.float32)
                position.flags.writeable = False
                await ctx.output("command").send(
                    JointCommand(names=names, position=position, seq=seq, t_issued=now, source=ctx.id)
                )
                seq += 1
                changed = flag.update(position, now)
                if changed is not None:
                    await ctx.output("intervention").send(Flag(name="intervention", value=changed, t=now))
                ctx.set_status(seq=seq, intervention=flag.active)
                if not started:
                    task_status.started()
                    started = True


class _Intervention:
    """Motion detector behind the ``intervention`` flag (pure; time passed in)."""

    def __init__(self, threshold: float, idle_s: float) -> None:
        self.threshold, self.idle_s = threshold, idle_s
        self.active = False
        self._last: np.ndarray | None = None
        self._moved_at = -math.inf

    def update(self, position: np.ndarray, now: float) -> bool | None:
        """Feed one pose; return the new flag value when it changes, else None."""
        if self._last is not None and float(np.max(np.abs(position - self._last))) > self.threshold:
            self._moved_at = now
        self._last = position
        active = now - self._moved_at < self.idle_s
        if active != self.active:
            self.active = active
            return active
        return None
