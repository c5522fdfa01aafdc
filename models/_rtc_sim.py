"""A discrete-event, virtual-time simulation of the RTC loop (planner + source + policy).

It runs both sans-io cores exactly as the actors do — one :meth:`ActionSource.tick` per control
tick; after it, the replies whose modelled latency has elapsed are merged (a reply due exactly at
a tick instant counts as arriving just after that tick), then the planner is polled —
with no threads, no event loop and no real sleeping, so 10 virtual minutes at 30 Hz take well
under a second. Tests use it to check the RTC targets on the cores alone (zero empty ticks at
300 ms, fallback at 1.5× the chunk duration) and benchmarks to compare RTC on/off.

The "robot" is ideal: its state is the last command (or ``initial_state``). The policy is
called at request time (its ``predict_chunk`` must not really sleep: use
``SleepPolicy(sleep=None)``); its latency comes from ``latency_fn(call_index)`` or, by default,
from the policy's ``latency_s`` attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ._rtc_planner import PlannerConfig, PlannerStatistics, RequestPlanner
from ._rtc_source import ActionSource, ActionSourceStatistics, MergeCommand
from .policy import Policy, PolicyMetadata

__all__ = ["SimResult", "simulate"]

_DUE_EPS = 1e-9
"""A reply due within 1 ns of a tick instant counts as due (float noise in ``k·dt``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimResult:
    """Outcome of :func:`simulate`."""

    ticks: int
    """Control ticks simulated."""
    starved_ticks: int
    """Ticks without a policy action after the episode's first merge."""
    max_jump: float
    """Largest inf-norm difference between consecutive commands within an episode."""
    source: ActionSourceStatistics
    """Final action-source counters."""
    planner: PlannerStatistics
    """Final planner counters."""
    actions: np.ndarray | None = field(default=None)
    """Every emitted command (``NaN`` rows for ticks without one), when requested."""


def simulate(
    policy: Policy,
    *,
    duration_s: float,
    planner: PlannerConfig | None = None,
    interpolation_multiplier: int = 1,
    max_action_age_s: float | None = 3.0,
    fallback: str = "hold",
    latency_fn: Callable[[int], float] | None = None,
    postprocess: Callable[[np.ndarray], np.ndarray] | None = None,
    initial_state: np.ndarray | None = None,
    reset_every_s: float | None = None,
    record: bool = False,
) -> SimResult:
    """Run the RTC loop for ``duration_s`` virtual seconds and report starvation and jumps."""
    meta = policy.metadata
    cfg = planner or PlannerConfig(fps=meta.fps, prefix_rows=meta.execution_horizon)
    source = ActionSource(
        n_actions=meta.n_actions,
        rtc_enabled=cfg.rtc_enabled,
        interpolation_multiplier=interpolation_multiplier,
        max_action_age_s=max_action_age_s,
        fallback=fallback,
    )
    sim = _Sim(
        policy=policy,
        planner=RequestPlanner(cfg),
        source=source,
        latency=latency_fn or (lambda _i: float(getattr(policy, "latency_s", 0.0))),
        post=postprocess or (lambda a: a),
        state=np.zeros(meta.n_actions) if initial_state is None else np.asarray(initial_state),
    )
    tick_dt = cfg.dt / interpolation_multiplier
    n_ticks = round(duration_s / tick_dt)
    next_reset = reset_every_s
    rows: list[np.ndarray] = []
    for k in range(n_ticks):
        now = k * tick_dt
        if next_reset is not None and reset_every_s is not None and now >= next_reset:
            sim.reset()
            next_reset += reset_every_s
        action = sim.step(now)
        if record:
            rows.append(action if action is not None else np.full(meta.n_actions, np.nan))
    stats = source.statistics()
    return SimResult(
        ticks=n_ticks,
        starved_ticks=stats.starved_ticks,
        max_jump=sim.max_jump,
        source=stats,
        planner=sim.planner.statistics(),
        actions=np.array(rows) if record else None,
    )


@dataclass(kw_only=True)
class _Sim:
    policy: Policy
    planner: RequestPlanner
    source: ActionSource
    latency: Callable[[int], float]
    post: Callable[[np.ndarray], np.ndarray]
    state: np.ndarray
    pending: list[tuple[float, int, int, int, np.ndarray, np.ndarray]] = field(default_factory=list)
    prev: np.ndarray | None = None
    max_jump: float = 0.0
    calls: int = 0

    def reset(self) -> None:
        self.planner.reset(self.source.reset())
        self.policy.reset()
        self.prev = None

    def step(self, now: float) -> np.ndarray | None:
        tick = self.source.tick(now)
        if tick.action is not None:
            if self.prev is not None:
                self.max_jump = max(self.max_jump, float(np.abs(tick.action - self.prev).max()))
            self.prev = self.state = tick.action
        self._deliver(now)
        self._request(now)
        return tick.action

    def _deliver(self, now: float) -> None:
        while self.pending and self.pending[0][0] <= now + _DUE_EPS:
            _, seq, ep, epoch, model, robot = self.pending.pop(0)
            reply = self.planner.on_reply(
                now, seq=seq, episode=ep, epoch=epoch, chunk_model=model, chunk_robot=robot
            )
            if isinstance(reply, MergeCommand):
                self.source.merge(reply, now)

    def _request(self, now: float) -> None:
        req = self.planner.poll(now, self.source.snapshot(self.planner.config.prefix_rows))
        if req is None:
            return
        obs = _observation(self.policy.metadata, self.state)
        chunk = self.policy.predict_chunk(obs, inference_delay=req.inference_delay, prefix=req.prefix_model)
        due = now + self.latency(self.calls)
        self.pending.append((due, req.seq, req.episode, req.epoch, chunk, self.post(chunk)))
        self.pending.sort(key=lambda p: p[0])
        self.calls += 1


def _observation(meta: PolicyMetadata, state: np.ndarray) -> Mapping[str, np.ndarray]:
    obs: dict[str, np.ndarray] = {}
    for name, spec in meta.input_features.items():
        shape = tuple(1 if s == -1 else s for s in spec.shape)
        if spec.kind == "state" and shape == state.shape:
            obs[name] = state.astype(spec.dtype)
        else:
            obs[name] = np.zeros(shape, dtype=spec.dtype)
    return obs
