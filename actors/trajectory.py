"""The ``trajectory`` actor: a keyboard-free scripted source of smooth ``JointCommand``s.

It plays a list of waypoints (robot units: degrees, gripper 0–100) at ``rate_hz``, moving from
each to the next over ``segment_s`` with a minimum-jerk profile (zero velocity and acceleration
at both ends, so the arm starts and stops without a jolt), then dwelling ``dwell_s``. With
``loop`` it cycles forever, else it holds the last waypoint and stops sending. It is what the
``configs/sim_so101.toml`` demo uses to move the simulated arm.

Start-up: the first segment starts from the arm's *measured* pose, read from the optional
``state`` input (wait up to ``state_timeout_s``), so the first command never jumps. Without a
state the trajectory starts at the first waypoint (the motor bus's ``max_relative_target``
still protects the arm).

The core, :class:`Trajectory`, is pure (``sample(t)`` is a function of time only) and tested with
Hypothesis: every sample lies between the waypoints it blends (hence within limits whenever the
waypoints are), and the motion is continuous.

Design decisions (the brief is silent on them):

- Waypoints are validated against ``position_limits`` at graph check: a script that leaves the
  limits is a configuration error, not something to clamp silently.
- Readiness is signalled at once (before the first state arrives), so the actor may appear
  anywhere in the graph file without delaying the start of the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio
import numpy as np
import rtrun
from anyio.abc import TaskStatus
from rtrun.drivers.calibration import SO_ARM_JOINTS

from .messages import JointCommand, JointState

__all__ = ["DEMO_WAYPOINTS", "Trajectory", "TrajectoryActor", "TrajectoryParams", "blend"]

DEMO_WAYPOINTS: tuple[tuple[float, ...], ...] = (
    (0.0, 0.0, 0.0, 0.0, 0.0, 20.0),
    (30.0, -20.0, 25.0, 20.0, 45.0, 80.0),
    (-30.0, -35.0, 45.0, -20.0, -45.0, 10.0),
    (0.0, -10.0, 15.0, 30.0, 0.0, 60.0),
)
"""A gentle SO-101 tour (degrees; gripper 0–100), well inside the arm's ranges."""

Profile = Literal["minimum_jerk", "cosine", "linear"]


def blend(tau: float, profile: Profile = "minimum_jerk") -> float:
    """Progress 0…1 along a segment at normalized time ``tau`` (clipped to 0…1)."""
    tau = min(1.0, max(0.0, tau))
    if profile == "minimum_jerk":
        return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)
    if profile == "cosine":
        return 0.5 - 0.5 * math.cos(math.pi * tau)
    return tau


@dataclass(frozen=True, slots=True, kw_only=True)
class Trajectory:
    """A waypoint sequence played with a smooth profile (pure)."""

    waypoints: np.ndarray
    """``(K, J)`` positions; row 0 is where the motion starts."""
    segment_s: float
    """Travel time between consecutive waypoints."""
    dwell_s: float = 0.0
    """Pause at each waypoint after arriving."""
    profile: Profile = "minimum_jerk"
    """Blend profile of each segment."""
    loop: bool = True
    """After the last waypoint, travel back to waypoint 1 and repeat (row 0 is only the start)."""

    def __post_init__(self) -> None:
        if self.waypoints.ndim != 2 or self.waypoints.shape[0] < 2:
            raise ValueError(
                f"a trajectory needs at least 2 waypoints of equal length, got {self.waypoints.shape}"
            )
        if not np.all(np.isfinite(self.waypoints)):
            raise ValueError("waypoints must be finite")
        if not (self.segment_s > 0 and self.dwell_s >= 0):
            raise ValueError(f"segment_s must be > 0 and dwell_s >= 0, got {self.segment_s}, {self.dwell_s}")

    @property
    def step_s(self) -> float:
        """Duration of one segment plus its dwell."""
        return self.segment_s + self.dwell_s

    @property
    def duration_s(self) -> float:
        """Length of a non-looping run (infinite when looping)."""
        return math.inf if self.loop else (self.waypoints.shape[0] - 1) * self.step_s

    def segment(self, t: float) -> tuple[int, int, float]:
        """``(from, to, local time)`` of the segment active at ``t`` (seconds from the start)."""
        k = self.waypoints.shape[0]
        index = int(max(0.0, t) // self.step_s)
        local = max(0.0, t) - index * self.step_s
        if not self.loop and index >= k - 1:
            return k - 2, k - 1, self.step_s
        if index < k - 1:
            return index, index + 1, local
        cycle = k - 1  # rows 1..k-1 repeat: k-1 → 1 → 2 → ... → k-1
        pos = (index - (k - 1)) % cycle
        start = k - 1 if pos == 0 else pos
        return start, pos + 1, local

    def sample(self, t: float) -> np.ndarray:
        """Positions at ``t`` seconds from the start."""
        a, b, local = self.segment(t)
        s = blend(local / self.segment_s, self.profile)
        return self.waypoints[a] + (self.waypoints[b] - self.waypoints[a]) * s

    def done(self, t: float) -> bool:
        """True once a non-looping trajectory has reached (and dwelt at) its last waypoint."""
        return t >= self.duration_s


@dataclass(frozen=True, slots=True, kw_only=True)
class TrajectoryParams:
    """Parameters of the ``trajectory`` actor."""

    joints: tuple[str, ...] = SO_ARM_JOINTS
    """Joint names of the commands (the motor bus's names)."""
    waypoints: tuple[tuple[float, ...], ...] = DEMO_WAYPOINTS
    """Targets in robot units, one value per joint; played in order."""
    segment_s: float = 2.0
    """Travel time between two waypoints, seconds."""
    dwell_s: float = 0.5
    """Pause at each waypoint, seconds."""
    profile: Profile = "minimum_jerk"
    """Blend profile: ``minimum_jerk`` (smoothest), ``cosine`` or ``linear``."""
    loop: bool = True
    """Cycle forever; False = play once and hold."""
    rate_hz: float = 50.0
    """Command rate."""
    position_limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Optional ``{joint = [lo, hi]}``: every waypoint must lie within (checked at graph check)."""
    state_timeout_s: float = 2.0
    """How long to wait for the arm's state before starting from the first waypoint."""
    progress_interval_s: float = 5.0
    """Interval of the progress log line (0 disables)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise ValueError(f"rate_hz must be finite and > 0, got {self.rate_hz}")
        if len(set(self.joints)) != len(self.joints) or not self.joints:
            raise ValueError(f"joints must be non-empty and unique, got {self.joints}")
        if not self.waypoints:
            raise ValueError("waypoints must not be empty")
        for i, w in enumerate(self.waypoints):
            if len(w) != len(self.joints):
                raise ValueError(
                    f"waypoint {i} has {len(w)} values, expected {len(self.joints)} ({self.joints})"
                )
            self._check_limits(i, w)
        Trajectory(
            waypoints=np.array([self.waypoints[0], *self.waypoints], dtype=np.float64),
            segment_s=self.segment_s,
            dwell_s=self.dwell_s,
        )

    def _check_limits(self, index: int, waypoint: Sequence[float]) -> None:
        for name, (lo, hi) in self.position_limits.items():
            if name not in self.joints:
                raise ValueError(f"position_limits names unknown joint {name!r}; joints are {self.joints}")
            value = waypoint[self.joints.index(name)]
            if not lo <= value <= hi:
                raise ValueError(
                    f"waypoint {index} puts {name!r} at {value}, outside its limits [{lo}, {hi}]"
                )


class TrajectoryActor(rtrun.Actor):
    """Plays waypoints as smooth ``JointCommand``s (see the module docstring)."""

    inputs = {"state": rtrun.Input(JointState, required=False, doc="measured pose: the start point")}
    outputs = {"command": rtrun.Output(JointCommand, doc="goal positions at rate_hz")}
    Params = TrajectoryParams

    async def run(
        self,
        ctx: rtrun.ActorContext[TrajectoryParams],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Wait for the start pose, then stream the trajectory."""
        p = ctx.params
        task_status.started()
        start = await self._start_pose(ctx)
        traj = Trajectory(
            waypoints=np.array([start, *p.waypoints], dtype=np.float64),
            segment_s=p.segment_s,
            dwell_s=p.dwell_s,
            profile=p.profile,
            loop=p.loop,
        )
        await self._play(ctx, traj)

    async def _start_pose(self, ctx: rtrun.ActorContext[TrajectoryParams]) -> np.ndarray:
        p = ctx.params
        state: JointState | None = None
        with anyio.move_on_after(p.state_timeout_s):
            try:
                state = await ctx.input("state").receive()
            except anyio.EndOfStream:
                state = None
        if state is not None:
            index = {n: i for i, n in enumerate(state.names)}
            if all(j in index for j in p.joints):
                ctx.log.info("starting from the measured pose")
                return np.array([float(state.position[index[j]]) for j in p.joints])
            ctx.log.warning("state names %s lack some of %s; starting at waypoint 0", state.names, p.joints)
        else:
            ctx.log.warning("no state within %.1f s; starting at waypoint 0", p.state_timeout_s)
        return np.array(p.waypoints[0], dtype=np.float64)

    async def _play(self, ctx: rtrun.ActorContext[TrajectoryParams], traj: Trajectory) -> None:
        p, out = ctx.params, ctx.output("command")
        seq, last_segment = 0, -1
        async with rtrun.Ticker(p.rate_hz) as ticker:
            t0 = None
            async for _tick in ticker:
                now = anyio.current_time()
                t0 = now if t0 is None else t0
                t = now - t0
                if traj.done(t):
                    ctx.set_status(done=True, seq=seq)
                    ctx.log.info("trajectory finished after %d commands; holding", seq)
                    await anyio.sleep_forever()
                self._drain_state(ctx)
                position = traj.sample(t).astype(np.float32)
                position.flags.writeable = False
                await out.send(
                    JointCommand(names=p.joints, position=position, seq=seq, t_issued=now, source=ctx.id)
                )
                seq += 1
                segment = int(t // traj.step_s)
                error = self._tracking_error(p.joints, position)
                ctx.set_status(seq=seq, segment=segment, done=False, tracking_error=error)
                if segment != last_segment and p.progress_interval_s > 0:
                    _, target, _ = traj.segment(t)
                    ctx.log.info(
                        "segment %d: heading to waypoint %d (tracking error %s)",
                        segment,
                        target - 1,
                        "n/a" if error is None else f"{error:.2f}",
                    )
                    last_segment = segment

    def _drain_state(self, ctx: rtrun.ActorContext[TrajectoryParams]) -> None:
        """Keep the newest measured pose (consuming the input so it never counts drops needlessly)."""
        port = ctx.input("state")
        for _ in range(64):
            try:
                self._state = port.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return

    def _tracking_error(self, joints: tuple[str, ...], command: np.ndarray) -> float | None:
        """Largest |command − measured| over the joints (robot units), or None without a state."""
        state = getattr(self, "_state", None)
        if state is None:
            return None
        index = {n: i for i, n in enumerate(state.names)}
        if not all(j in index for j in joints):
            return None
        measured = np.array([state.position[index[j]] for j in joints], dtype=np.float64)
        return round(float(np.max(np.abs(measured - command))), 3)
