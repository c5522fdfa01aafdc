"""The ``rtc_merger`` actor: when to ask the policy for a chunk, and what to merge.

Theory of operation
-------------------
The merger wraps :class:`rtrun.models.rtc.RequestPlanner` (self-clocking, one request in flight,
latency tracker, episode/epoch/seq filters) and a fail-safe state machine, and does the I/O::

    motor_bus ─JointState─▶ [state]  ┐
    camera(s) ─Frame──────▶ [frames*]├─ latest observation ─┐
    action_queue ─QueueStatus─▶ [queue] ─ snapshot ─▶ planner.poll ─▶ [requests] InferenceRequest
    policy_worker ─InferenceReply─▶ [replies] ─▶ planner.on_reply ─▶ [merge] MergeChunk ─▶ action_queue

* **Self-clocked requests.** Every :class:`QueueStatus` (one per policy step) is a snapshot;
  when the queued playback is at most ``buffer_time_s``, nothing is in flight and the snapshot
  acknowledges the last merge, a request goes out with the latest observation
  (``observation.state`` from :class:`JointState`, ``observation.images.<camera>`` from each
  :class:`Frame`; LeRobot feature names), the model-space prefix and the sent delay
  ``ceil(max latency/dt)``. Observations older than ``max_observation_age_s`` are never sent.
* **Replies** are filtered (other client, old epoch, old episode, not the request in flight)
  and turned into a :class:`MergeChunk` trimmed by ``ceil(L/dt)`` of this cycle.
* **Episodes.** The queue is the episode authority: when a status shows a newer episode the
  planner resets to it (abandoning the request in flight; a late reply of the old episode is
  dropped by both actors). The latency tracker survives resets.
* **Fail-safe** (DESIGN §4): the table :data:`LINK_TRANSITIONS` (in ``_rtc_failsafe``). Timeouts and error
  replies count as failures; a reconnect attempt bumps the session epoch (late replies of the
  old epoch are dropped) with exponential backoff; STREAMING again only at the next merge
  (lerobot-rtc.md §12.8). ``DEAD`` — offline longer than ``max_offline_s`` or a contract
  violation (observation features, action dimension or names) — raises
  :class:`PolicyPathError`: the supervisor decides (restart or stop the graph). The control
  tick lives in ``action_queue`` and never depends on any of this: it keeps its rate and its
  fallback whatever the network does.
* **Producers leaving are events, not crashes** (issue 16). Every input is read through
  :class:`rtrun.actors._source.WatchedInput`: a producer whose host vanished
  (``BrokenResourceError``) or that ended (``EndOfStream``) is counted (``lost_<input>``) and
  logged, and the actor keeps running. When the policy worker goes away (``replies`` lost),
  the request in flight is abandoned (new epoch) and the fail-safe records a failure:
  DEGRADED (actions still queued) or STALLED, then RECONNECTING and DEAD on the usual timers.
  No request is sent while the worker is away.
* **Presence before the first request.** On a cross-host ``replies`` input the merger waits
  until the worker's reply sender is live (its liveliness token, ``wait_for_sender``) before
  the first request, and when a vanished worker comes back it abandons whatever is in flight
  and requests at once -- instead of losing a request to a host that is not there yet and
  waiting ``request_timeout_s`` for it. The worker's request subscriber is declared before its
  reply sender (the launcher opens receivers first), so the request waits in the worker's
  mailbox while the policy loads.

Design decisions (the brief is silent)
--------------------------------------
* An error reply abandons the request at once (``planner.new_epoch()``, so any late answer is
  dropped) instead of waiting for ``request_timeout_s`` as LeRobot's client does: a worker that
  answered with an error will not answer again.
* Cameras: the ``frames`` inputs (``frames``, ``frames_2`` … ``frames_4``) are slots; the camera
  name comes from ``Frame.camera``. Every *connected* slot (``ActorContext.has_input``) must
  have delivered a fresh frame before a request leaves: otherwise a request could leave before
  the first frame and the worker would refuse the observation (a contract violation: DEAD).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Final

import anyio
import numpy as np
import rtrun
from anyio.abc import TaskStatus
from rtrun.models.rtc import DroppedReply, PlannerConfig, RequestPlanner

from ._diagnostics import ActionCoverage, RateLimiter
from ._lerobot_names import name_unnamed_actions
from ._rtc_failsafe import LINK_TRANSITIONS, FailSafe, FailSafeConfig, LinkEvent, LinkState
from ._source import SourceChange, SourceEvent, WatchedInput
from .messages import (
    CONTRACT_ERRORS,
    EpisodeControl,
    Frame,
    InferenceReply,
    InferenceRequest,
    JointState,
)
from .rtc_messages import MergeChunk, QueueStatus, readonly

__all__ = [
    "FRAME_INPUTS",
    "LINK_TRANSITIONS",
    "FailSafe",
    "FailSafeConfig",
    "LinkEvent",
    "LinkState",
    "ObservationBuilder",
    "PolicyContractError",
    "PolicyPathError",
    "RTCMergerActor",
    "RTCMergerParams",
]

FRAME_INPUTS: Final = ("frames", "frames_2", "frames_3", "frames_4")
"""Camera input slots (one camera each; the name comes from ``Frame.camera``)."""


STATUS_INTERVAL_S = 0.25
"""Dashboard refresh period of ``ctx.set_status`` (the latency percentile costs ~0.3 ms)."""


class PolicyPathError(rtrun.ActorError):
    """The policy path is DEAD: offline too long, or the policy does not fit the robot."""


class PolicyContractError(PolicyPathError, rtrun.ConfigurationError):
    """The policy does not fit the robot (observation keys, action names, dimensions).

    A :class:`rtrun.ConfigurationError`: deterministic, so the merger is not restarted and the
    graph stops (a restart would only reach DEAD again after another round-trip).
    """


# --------------------------------------------------------------------------- observation


@dataclass(kw_only=True)
class ObservationBuilder:
    """Keeps the latest state and frames; builds LeRobot-named observations (pure)."""

    state_names: tuple[str, ...] = ()
    """Joints (``JointState.names``) put in ``observation.state``, in this order; empty: all."""
    max_age_s: float = 0.5
    """Inputs older than this are not sent (a frozen camera must not drive the arm)."""
    slots: tuple[str, ...] = ()
    """Frame inputs that must have delivered a fresh frame (the connected ones)."""
    state: JointState | None = None
    frames: dict[str, Frame] = field(default_factory=dict)
    """Newest frame per frame input."""
    frame_times: dict[str, float] = field(default_factory=dict)
    state_time: float = -math.inf

    def on_state(self, msg: JointState, now: float) -> None:
        """Remember the newest joint state (received at ``now``)."""
        self.state, self.state_time = msg, now

    def on_frame(self, slot: str, msg: Frame, now: float) -> None:
        """Remember the newest frame of frame input ``slot``."""
        self.frames[slot] = msg
        self.frame_times[slot] = now

    def missing(self, now: float) -> str | None:
        """Why no observation can be sent now (``None`` when one can)."""
        if self.state is None:
            return "no_state"
        if now - self.state_time > self.max_age_s:
            return "stale_state"
        if any(s not in self.frames for s in self.slots):
            return "no_frames"
        if any(now - self.frame_times[s] > self.max_age_s for s in self.slots):
            return "stale_frames"
        return None

    def build(self, now: float) -> dict[str, np.ndarray]:
        """``{"observation.state": ..., "observation.images.<camera>": ...}`` (read-only arrays)."""
        assert self.state is not None
        position = np.asarray(self.state.position, dtype=np.float32)
        if self.state_names:
            index = {n: i for i, n in enumerate(self.state.names)}
            missing = [n for n in self.state_names if n not in index]
            if missing:
                raise PolicyContractError(
                    f"state_names {missing} are not in the joint state {list(self.state.names)}"
                )
            position = position[[index[n] for n in self.state_names]]
        state = readonly(position)
        assert state is not None
        obs: dict[str, np.ndarray] = {"observation.state": state}
        for slot, frame in sorted(self.frames.items()):
            if now - self.frame_times[slot] <= self.max_age_s:
                obs[f"observation.images.{frame.camera}"] = frame.image
        return obs


# ---------------------------------------------------------------------------------- actor


@dataclass(frozen=True, slots=True, kw_only=True)
class RTCMergerParams:
    """Parameters of the ``rtc_merger`` actor."""

    fps: float = 30.0
    """Policy action rate (must equal the action_queue's ``fps``); ``dt = 1/fps``."""
    buffer_time_s: float = 0.5
    """Request when the queued playback is at most this long (LeRobot default 0.5 s)."""
    rtc: bool = True
    """Send prefixes and the inference delay; False: append merges (must match the queue)."""
    prefix_rows: int = 10
    """Prefix rows sent (the policy's execution horizon H)."""
    request_timeout_s: float = 5.0
    """A request unanswered this long is abandoned and counted as a failure."""
    latency_window: int = 100
    """Latency tracker window (samples)."""
    clamp_trim_to_consumed: bool = False
    """Opt-in first-chunk over-trim fix (lerobot-rtc.md §12.6); off = LeRobot parity."""
    client: str = ""
    """Client id in requests (a worker keeps per-client state under it); empty: the actor id."""
    task: str = ""
    """Language instruction sent with every request (``EpisodeControl`` set_task/start change it)."""
    state_names: tuple[str, ...] = ()
    """Joints in ``observation.state`` and their order; empty: the joint state's order."""
    max_observation_age_s: float = 0.5
    """Never send a state or frame older than this (seconds on the runtime clock)."""
    reconnect_after_s: float = 10.0
    """Offline this long since the first failure: RECONNECTING (new epoch per attempt)."""
    reconnect_initial_backoff_s: float = 0.5
    """First wait between reconnect attempts."""
    reconnect_max_backoff_s: float = 10.0
    """Backoff cap."""
    max_offline_s: float = 60.0
    """Offline longer than this: DEAD (the actor fails with ``PolicyPathError``)."""
    poll_interval_s: float = 0.05
    """Timer period when no queue status arrives (timeouts, reconnects)."""
    log_interval_s: float = 5.0
    """Minimum interval between two log lines of the same kind."""

    def planner_config(self) -> PlannerConfig:
        """The :class:`PlannerConfig` of these parameters."""
        return PlannerConfig(
            fps=self.fps,
            buffer_time_s=self.buffer_time_s,
            rtc_enabled=self.rtc,
            prefix_rows=self.prefix_rows,
            request_timeout_s=self.request_timeout_s,
            latency_window=self.latency_window,
            clamp_trim_to_consumed=self.clamp_trim_to_consumed,
        )

    def failsafe_config(self) -> FailSafeConfig:
        """The :class:`FailSafeConfig` of these parameters."""
        return FailSafeConfig(
            reconnect_after_s=self.reconnect_after_s,
            initial_backoff_s=self.reconnect_initial_backoff_s,
            max_backoff_s=self.reconnect_max_backoff_s,
            max_offline_s=self.max_offline_s,
        )

    def __post_init__(self) -> None:
        self.planner_config()  # raises RTCError (a ValueError) naming the rule
        if not self.poll_interval_s > 0 or not self.max_observation_age_s > 0:
            raise ValueError("poll_interval_s and max_observation_age_s must be > 0")


class RTCMergerActor(rtrun.Actor):
    """Plans inference requests from queue snapshots and merges the replies (module doc)."""

    inputs = {
        "state": rtrun.Input(JointState, required=True, doc="joint state: observation.state"),
        "queue": rtrun.Input(QueueStatus, required=True, doc="action_queue 'status' snapshots"),
        "replies": rtrun.Input(InferenceReply, required=True, doc="policy_worker 'replies'"),
        **{
            name: rtrun.Input(Frame, required=False, doc="camera frames: observation.images.<camera>")
            for name in FRAME_INPUTS
        },
        "episode": rtrun.Input(EpisodeControl, required=False, doc="task changes (set_task/start)"),
    }
    outputs = {
        "requests": rtrun.Output(InferenceRequest, doc="to policy_worker 'requests'"),
        "merge": rtrun.Output(MergeChunk, doc="to action_queue 'merge'"),
    }
    Params = RTCMergerParams

    async def run(
        self,
        ctx: rtrun.ActorContext[RTCMergerParams],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Pump inputs, plan requests on every queue status, merge replies."""
        p = ctx.params
        self.ctx = ctx
        self.client = p.client or ctx.id
        self.task = p.task
        self.planner = RequestPlanner(p.planner_config())
        self.failsafe = FailSafe(p.failsafe_config())
        slots = tuple(name for name in FRAME_INPUTS if ctx.has_input(name))
        self.obs = ObservationBuilder(
            state_names=p.state_names, max_age_s=p.max_observation_age_s, slots=slots
        )
        self.coverage = ActionCoverage()
        self.limiter = RateLimiter(p.log_interval_s)
        self.queue: QueueStatus | None = None
        self.counts: dict[str, int] = {}
        self._published = -math.inf
        replies = ctx.input("replies")
        self._presence = hasattr(replies, "wait_for_sender")
        self.worker_present = not self._presence
        """Whether the policy worker's reply sender is live (always, without presence)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._pump, "state", self._on_state)
            for name in FRAME_INPUTS:
                tg.start_soon(self._pump, name, partial(self._on_frame, name))
            tg.start_soon(self._pump, "episode", self._on_episode)
            tg.start_soon(self._pump_replies, WatchedInput(replies, "replies"))
            task_status.started()
            await self._drive()

    # ---------------------------------------------------------------------------- inputs

    async def _pump(self, name: str, handle: Any) -> None:
        """Feed input ``name`` to ``handle``; a producer leaving is only logged and counted."""
        async for item in WatchedInput(self.ctx.input(name), name):
            if isinstance(item, SourceChange):
                self._on_source_change(item)
            else:
                handle(item)

    def _on_state(self, msg: JointState) -> None:
        self.obs.on_state(msg, anyio.current_time())

    def _on_frame(self, slot: str, msg: Frame) -> None:
        self.obs.on_frame(slot, msg, anyio.current_time())

    def _on_episode(self, msg: EpisodeControl) -> None:
        if msg.command in ("set_task", "start") and msg.task:
            self.task = msg.task

    def _on_source_change(self, change: SourceChange) -> None:
        now = anyio.current_time()
        if change.event is SourceEvent.LOST:
            self._count(f"lost_{change.input}")
            self._log(f"lost_{change.input}", now, "input %r: producer %s", change.input, change.reason)
        else:
            self.ctx.log.info("input %r: producer back (%s)", change.input, change.reason)

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    # ------------------------------------------------------------------------- the driver

    async def _drive(self) -> None:
        port: WatchedInput[QueueStatus] = WatchedInput(self.ctx.input("queue"), "queue")
        while True:
            status: QueueStatus | None = None
            with anyio.move_on_after(self.ctx.params.poll_interval_s):
                item = await port.receive()
                if isinstance(item, SourceChange):
                    self._on_source_change(item)
                else:
                    status = item
            now = anyio.current_time()
            if status is not None:
                self._on_status(status)
            self._supervise(now)
            if status is not None:
                await self._maybe_request(now)
            self._publish_status()

    def _on_status(self, status: QueueStatus) -> None:
        self.queue = status
        if status.episode > self.planner.episode:
            self.planner.reset(status.episode)
            self.coverage.rearm()
            self.ctx.log.info("episode %d: following the action queue", status.episode)
        self.failsafe.on_queue(status.queued_steps)

    def _supervise(self, now: float) -> None:
        if self.planner.expire(now):
            self._count("timeouts")
            self.failsafe.on_failure(now, self._queued())
            self._log("timeout", now, "request timed out after %.1f s", self.ctx.params.request_timeout_s)
        if self.failsafe.poll(now):
            epoch = self.planner.new_epoch()
            self.ctx.log.warning(
                "policy offline: reconnect attempt %d (epoch %d)", self.failsafe.reconnects, epoch
            )
        if self.failsafe.state is LinkState.DEAD:
            self._publish_status(force=True)
            raise PolicyPathError(f"rtc_merger {self.ctx.id!r}: policy path DEAD: {self.failsafe.reason}")

    def _queued(self) -> int:
        return 0 if self.queue is None else self.queue.queued_steps

    async def _maybe_request(self, now: float) -> None:
        assert self.queue is not None
        missing = self.obs.missing(now)
        snapshot = self.queue.to_snapshot()
        if not self.planner.wants_request(now, snapshot):
            return
        if missing is None and not self.worker_present:
            missing = "no_worker"
        if missing is not None:
            self._count(f"skipped_{missing}")
            self._log(missing, now, "no request: %s", missing.replace("_", " "))
            return
        req = self.planner.start_request(now, snapshot)
        await self.ctx.output("requests").send(
            InferenceRequest(
                client=self.client,
                epoch=req.epoch,
                seq=req.seq,
                episode=req.episode,
                observation=self.obs.build(now),
                inference_delay=req.inference_delay,
                prefix=req.prefix_model,
                t_sent=now,
                task=self.task,
            )
        )

    # --------------------------------------------------------------------------- replies

    async def _pump_replies(self, port: WatchedInput[InferenceReply]) -> None:
        if not self.worker_present:
            await port.wait_present()
            self._on_worker_back("present")
        async for reply in port:
            if isinstance(reply, SourceChange):
                self._on_source_change(reply)
                if reply.event is SourceEvent.LOST:
                    self._on_worker_lost(anyio.current_time(), reply.reason)
                elif not self.worker_present:
                    self._on_worker_back(reply.reason)
                continue
            if reply.client != self.client:
                self._count("other_client")
                continue
            await self._on_reply(reply, anyio.current_time())

    def _on_worker_lost(self, now: float, reason: str) -> None:
        """The worker went away: abandon the request in flight, enter the fail-safe states.

        Requests wait for its presence only after it *vanished* on a port that reports presence;
        otherwise (ended, or no presence) they keep going out and time out as usual, since only
        an answer could tell that it is back.
        """
        self.worker_present = not (reason == "vanished" and self._presence)
        if self.planner.in_flight is not None:
            self.planner.new_epoch()  # its answer can never come: a late one is dropped
        self.failsafe.on_failure(now, self._queued())
        self._publish_status(force=True)

    def _on_worker_back(self, reason: str) -> None:
        """The worker is present: request at once (the next queue status) instead of waiting."""
        self.worker_present = True
        if self.planner.in_flight is not None:
            self.planner.new_epoch()  # sent while nobody listened: do not wait for its timeout
        how = "its reply sender is live" if reason == "present" else "it answered"
        self.ctx.log.info("policy worker reachable (%s): requesting now", how)

    def _answers_in_flight(self, reply: InferenceReply) -> bool:
        req = self.planner.in_flight
        return req is not None and (req.seq, req.episode, reply.epoch) == (
            reply.seq,
            reply.episode,
            self.planner.epoch,
        )

    async def _on_reply(self, reply: InferenceReply, now: float) -> None:
        if reply.error_kind:
            self._on_error_reply(reply, now)
            return
        reply = self._named(reply)
        names = self.queue.action_names if self.queue is not None else ()
        if names and tuple(reply.action_names) != tuple(names) and self._answers_in_flight(reply):
            self._violation(
                f"policy action names {list(reply.action_names)} differ from the queue's {list(names)}"
            )
        result = self.planner.on_reply(
            now,
            seq=reply.seq,
            episode=reply.episode,
            epoch=reply.epoch,
            chunk_model=np.asarray(reply.chunk),
            chunk_robot=np.asarray(reply.chunk_robot),
        )
        if isinstance(result, DroppedReply):
            self._count(f"dropped_{result.reason}")
            return
        self._check_coverage(reply, now)
        msg = MergeChunk.from_command(result, epoch=reply.epoch, action_names=tuple(reply.action_names))
        await self.ctx.output("merge").send(msg)
        self._merged(now)
        self.last_reply = (reply.queue_wait_s, reply.inference_s, result.latency_s)

    def _merged(self, now: float) -> None:
        """Record a merge; the first one of the run or after an outage is logged."""
        first, since = self.failsafe.state is not LinkState.STREAMING, self.failsafe.offline_since
        self.failsafe.on_merge()
        if first:
            outage = "" if since is None else f" after {now - since:.2f} s offline"
            self.ctx.log.info("chunk merged: link streaming%s", outage)

    def _on_error_reply(self, reply: InferenceReply, now: float) -> None:
        if not self._answers_in_flight(reply):
            self._count("dropped_error_reply")
            return
        kind, text = reply.error_kind, f"{reply.error_kind}: {reply.error}"
        self._count(f"error_{kind}")
        if kind in CONTRACT_ERRORS:
            self._violation(text)
        self.planner.new_epoch()  # abandon the request now; a late answer is dropped
        self.failsafe.on_failure(now, self._queued())
        self._log(f"error_{kind}", now, "inference failed: %s", text)

    def _violation(self, reason: str) -> None:
        self.failsafe.on_violation(reason)
        self._publish_status(force=True)
        self.ctx.log.error("policy does not fit the robot; stopping before the robot moves:\n%s", reason)
        raise PolicyContractError(f"rtc_merger {self.ctx.id!r}: policy path DEAD: {reason}")

    def _named(self, reply: InferenceReply) -> InferenceReply:
        """A LeRobot checkpoint's ``action.<i>`` columns named after the ``observation.state``
        joints, ``<joint>.pos`` (LeRobot's rule, ``_lerobot_names.py``)."""
        state = self.obs.state
        joints = self.obs.state_names or (state.names if state is not None else ())
        names = name_unnamed_actions(reply.action_names, joints)
        return reply if names == tuple(reply.action_names) else replace(reply, action_names=names)

    def _check_coverage(self, reply: InferenceReply, now: float) -> None:
        state = self.obs.state
        if state is None:
            return
        warning = self.coverage.check(reply.action_names, state.names)
        if warning:
            self.ctx.log.warning("%s", warning)

    # ---------------------------------------------------------------------------- status

    def _log(self, key: str, now: float, fmt: str, *args: Any) -> None:
        suppressed = self.limiter.allow(key, now)
        if suppressed is not None:
            self.ctx.log.warning(fmt + (f" ({suppressed} more suppressed)" if suppressed else ""), *args)

    def _publish_status(self, *, force: bool = False) -> None:
        now = anyio.current_time()
        if not force and now - self._published < STATUS_INTERVAL_S:
            return
        self._published = now
        st = self.planner.statistics()
        last = getattr(self, "last_reply", (0.0, 0.0, 0.0))
        self.ctx.set_status(
            link=self.failsafe.state.value,
            reason=self.failsafe.reason,
            episode=st.episode,
            epoch=st.epoch,
            requests=st.requests,
            merges=st.merges,
            timeouts=st.timeouts,
            in_flight=st.in_flight,
            dropped=dict(st.dropped),
            last_latency_ms=round(st.last_latency_s * 1e3, 3),
            max_latency_ms=round(st.max_latency_s * 1e3, 3),
            p95_latency_ms=round(st.p95_latency_s * 1e3, 3),
            inference_delay=st.inference_delay,
            last_queue_wait_ms=round(last[0] * 1e3, 3),
            last_inference_ms=round(last[1] * 1e3, 3),
            reconnects=self.failsafe.reconnects,
            failures=self.failsafe.failures,
            queued_steps=self._queued(),
            counts=dict(self.counts),
            task=self.task,
        )
