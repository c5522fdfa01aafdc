"""The ``recorder`` actor: records a graph's streams as LeRobotDataset v3 episodes (issue 7).

Graph snippet (see README.md, "Record a dataset")::

    [[actor]]
    id = "recorder"
    kind = "rtrun.actors.recorder:RecorderActor"      # short name "recorder" once registered
    params = { root = "datasets/demo", fps = 30 }
    inputs.state = "arm/state"                        # JointState  -> observation.state
    inputs.action = "arm/executed"                    # JointCommand -> action
    inputs.cam0 = "front/frames"                      # Frame -> observation.images.<camera id>
    inputs.control = { source = "pedal/episode", capacity = 8, policy = "drop_oldest" }

Theory of operation
-------------------
*Inputs.* Inputs are declared statically on a kind, so the recorder declares a fixed set:
``state`` (JointState), ``action`` (JointCommand), ``cam0``..``cam3`` (Frame), ``intervention``
(Flag) and ``control`` (EpisodeControl). Every connected input (``ActorContext.has_input``) but
``control`` is recorded; at least one aligned one must be connected (``RecorderConfigError``).
Feature keys default to ``observation.state``, ``action``, ``observation.images.<Frame.camera>``
and ``intervention``; ``params.features`` overrides them.
Joint names become LeRobot's feature names, ``<joint>.pos`` (``_lerobot_names.py``).
At start the recorder waits for the first message of every recorded stream to learn the joint
names and image sizes, builds the feature spec, then creates the dataset or resumes it
(``DatasetWriter.open`` refuses different features with ``FeatureMismatchError``, which fails
the start). Only then does it report ready.

*Alignment.* Every sample is stamped with its capture time (``Frame.t_capture``,
``JointState.t_read``, ``JointCommand.t_issued``); arrival times and nominal rates are never
used. An episode started at ``t0`` has grid ticks ``t0 + k / fps``; ``FrameAligner`` gives each
tick the latest sample of every stream captured at or before it, if at most
``tolerance_frames / fps`` old (default 2 frames) -- or two of the stream's own periods (or its
longest recent gap) for a stream slower than the grid, whose frames are then repeated (hold-last)
so the episode keeps its duration: warned once per episode and stream, marked (``Episode.report``).
A tick with a stale stream produces no row and is counted (``skipped``). The newest sample
of each stream seen *before* the start (and its recent rate) is offered to the episode so tick 0
is not lost. Real capture times go to the ``capture_time`` column
(seconds since ``t0``, one value per aligned stream). The intervention flag is not aligned: a
row takes the last flag value set at or before its tick (False before any flag).

*Off the event loop.* The writer (PyAV encoding, parquet, fsync) lives in one dedicated thread
owned by this actor, fed through a command queue (``_recorder_thread.py``). Rows are bounded (``pipeline_rows``): when
the thread falls behind (a slow save, a slow disk), new rows are **dropped on the event-loop
side, counted** per episode and in ``dropped_total``; the writer drops rows itself when an
encoder queue is full (``encoder_queue``), counted too. Nothing on the event loop ever waits
for the writer, so control actors in the same process are only affected through CPU and GIL
load. Control commands are bounded too (:data:`CONTROL_BACKLOG`).

*Episodes.* ``EpisodeControl`` messages on ``control``: ``start`` (task optional), ``save``,
``discard``, ``set_task`` (changes the task of the following ticks, or of the next episode when
idle), ``reset`` (discard the current episode, if any: re-record). ``episode >= 0`` in a
``save``/``discard`` must name the current episode. Commands that do not fit the state (``save``
while idle, ``start`` while recording) are rejected: logged and counted (``control_rejected``),
never fatal. ``save`` waits ``settle_s`` so late samples still reach the last ticks, then queues
the episode for the writer; "episode N saved" is logged (and ``episodes``, ``last_episode``,
``pending_saves`` change) only once the writer thread has **committed** it, never before. With
``auto_episode_s > 0`` episodes start at startup and are saved every ``auto_episode_s`` seconds,
``auto_reset_s`` apart, up to ``max_episodes``.

*Crash safety.* The writer publishes each episode through a redo journal
(``_dataset_commit.py``): after a SIGKILL every saved episode loads; on the next start
``DatasetWriter.open`` rolls a committed save forward or **discards** the partial episode, and
the recorder reports it (status ``recovered``, a warning). On a graceful stop the current
episode is saved (``on_stop = "save"``) or discarded; after a failure it is discarded.

Design decisions (the issue is silent):
- An episode with no complete row is discarded, not saved (LeRobot needs >= 1 frame).
- The episode index is predicted on the loop side (dataset total + saves queued) so control
  messages can be checked at once; the writer thread is authoritative (status ``episodes``).
- A writer failure (encoder crash, disk full) fails the actor; the supervisor restarts it and
  the restart resumes the dataset (waiting up to :data:`LOCK_WAIT_S` for the old thread).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import anyio
import numpy as np
from anyio.abc import TaskStatus
from rtrun import Actor, ActorContext, ActorError, ConfigurationError, Input, Ticker

from ._dataset_layout import DatasetLockedError
from ._dataset_writer import DatasetWriter
from ._frame_align import CAPTURE_TIME_KEY, RATE_WINDOW, FrameAligner, capture_time_feature
from ._lerobot_names import POSITION_SUFFIX, feature_names
from ._recorder_episode import Episode, saved_line
from ._recorder_params import ALIGNED_INPUTS, CAMERA_INPUTS, DEFAULT_KEYS, RecorderParams, recorded_inputs
from ._recorder_thread import Close, EndEpisode, StartEpisode, WriterThread
from .messages import EpisodeControl, Flag, Frame, JointCommand, JointState

__all__ = ["RecorderActor", "RecorderConfigError", "RecorderError", "RecorderParams"]

LOCK_WAIT_S = 10.0
"""How long a (re)start waits for a previous instance's thread to release the dataset."""
SHUTDOWN_BUDGET_S = 30.0
"""Upper bound for saving the current episode on a graceful stop (the graph's
``shutdown_timeout_s`` of the recorder, default 5 s, usually cuts it first: raise it)."""
FLAG_HISTORY = 256
"""Intervention flag changes kept (a pedal changes a few times per second at most)."""


class RecorderError(ActorError):
    """The recorder cannot record as configured (the message names the rule broken)."""


class RecorderConfigError(RecorderError, ConfigurationError):
    """The graph gives the recorder nothing it can record; a restart cannot fix it."""


# ------------------------------------------------------------------------------- streams


@dataclass(frozen=True, slots=True, kw_only=True)
class _Stream:
    """One aligned input: its feature key and what its samples look like."""

    input: str
    key: str
    names: tuple[str, ...] = ()  # joints, in feature order
    shape: tuple[int, ...] = ()  # frames (H, W, 3)
    suffix: str = POSITION_SUFFIX  # joint -> feature name (LeRobot's "<joint>.pos")

    @property
    def is_video(self) -> bool:
        return bool(self.shape)

    def feature(self) -> dict[str, Any]:
        if self.is_video:
            return {"dtype": "video", "shape": list(self.shape), "names": ["height", "width", "channels"]}
        names = feature_names(self.names, self.suffix)
        return {"dtype": "float32", "shape": [len(names)], "names": names}

    def sample(self, msg: object) -> tuple[float, np.ndarray] | None:
        """``(capture time, value)`` of a message, or None when it does not fit the feature."""
        if self.is_video:
            if isinstance(msg, Frame) and msg.image.shape == self.shape:
                return msg.t_capture, msg.image
            return None
        if isinstance(msg, JointState):
            t = msg.t_read
        elif isinstance(msg, JointCommand):
            t = msg.t_issued
        else:
            return None
        if msg.names == self.names:
            return t, msg.position
        index = {n: i for i, n in enumerate(msg.names)}
        if not all(n in index for n in self.names):
            return None
        return t, np.asarray(msg.position)[[index[n] for n in self.names]]


def _probe_stream(name: str, key: str | None, msg: object, suffix: str = POSITION_SUFFIX) -> _Stream:
    """Learn a stream's feature from its first message."""
    if name in CAMERA_INPUTS:
        if not isinstance(msg, Frame) or msg.image.ndim != 3 or msg.image.shape[2] != 3:
            raise RecorderError(f"input {name!r} must carry H×W×3 Frame messages, got {msg!r:.80}")
        return _Stream(input=name, key=key or f"observation.images.{msg.camera}", shape=msg.image.shape)
    if not isinstance(msg, JointState | JointCommand):
        raise RecorderError(f"input {name!r} must carry JointState/JointCommand, got {type(msg).__name__}")
    return _Stream(input=name, key=key or DEFAULT_KEYS[name], names=tuple(msg.names), suffix=suffix)


# ------------------------------------------------------------------------------- the actor


class RecorderActor(Actor):
    """Records the graph's cameras, joint states and actions as LeRobotDataset v3 episodes."""

    inputs = {
        "state": Input(JointState, required=False, doc="measured joints -> observation.state"),
        "action": Input(JointCommand, required=False, doc="executed commands -> action"),
        **{
            cam: Input(Frame, required=False, doc="camera -> observation.images.<camera>")
            for cam in CAMERA_INPUTS
        },
        "intervention": Input(Flag, required=False, doc="intervention flag -> intervention column"),
        "control": Input(EpisodeControl, required=False, doc="start/save/discard/set_task/reset"),
    }
    Params = RecorderParams
    requires: ClassVar[Mapping[str, str]] = {
        "pyarrow": "pip install 'rtrun[record]'",
        "av": "pip install 'rtrun[record]'",
    }

    def __init__(self) -> None:
        self._streams: list[_Stream] = []
        self._last: dict[str, tuple[float, np.ndarray]] = {}
        self._times: dict[str, deque[float]] = {}  # recent capture times: a stream's rate at start
        self._flags: deque[tuple[float, bool]] = deque(maxlen=FLAG_HISTORY)
        self._episode: Episode | None = None
        self._worker: WriterThread | None = None
        self._lock = anyio.Lock()
        self._changed = anyio.Event()
        self._next_index = 0
        self._task = ""
        self._saves = 0
        self._pending_saves = 0  # saves queued for the writer thread and not yet committed
        self._counts = {"dropped_total": 0, "control_rejected": 0, "rejected_samples": 0, "skipped_total": 0}
        self._recovered: dict[str, Any] | None = None
        self._keys: list[str] = []
        self._capture_times = False
        self._flag_key: str | None = None
        self._recorded: tuple[str, ...] = ()  # connected inputs among RECORDED_INPUTS

    async def run(self, ctx: ActorContext[RecorderParams], *, task_status: TaskStatus[None]) -> None:
        """Probe the streams, open the dataset, then record until cancelled."""
        p = ctx.params
        self._task = p.task
        graceful = False
        try:
            await self._probe(ctx)
            await self._open(ctx)
            async with anyio.create_task_group() as tg:
                for stream in self._streams:
                    tg.start_soon(self._receive_stream, ctx, stream)
                tg.start_soon(self._receive_control, ctx)
                if "intervention" in self._recorded:
                    tg.start_soon(self._receive_flags, ctx)
                tg.start_soon(self._tick_loop, ctx)
                if p.auto_episode_s > 0:
                    tg.start_soon(self._auto_loop, ctx)
                self._publish_status(ctx)
                task_status.started()
        except anyio.get_cancelled_exc_class():
            graceful = True
            raise
        finally:
            with ctx.cleanup(SHUTDOWN_BUDGET_S):
                await self._shutdown(ctx, save=graceful and p.on_stop == "save")

    # ---------------------------------------------------------------- startup

    async def _probe(self, ctx: ActorContext[RecorderParams]) -> None:
        p = ctx.params
        try:
            self._recorded = recorded_inputs(ctx.has_input, p.features)
        except ValueError as exc:
            raise RecorderConfigError(f"recorder {ctx.id!r}: {exc}") from None
        for name in (n for n in ALIGNED_INPUTS if n in self._recorded):
            try:
                with anyio.fail_after(p.probe_timeout_s):
                    msg = await ctx.input(name).receive()
            except TimeoutError:
                raise RecorderError(
                    f"recorder {ctx.id!r}: no message on input {name!r} within probe_timeout_s="
                    f"{p.probe_timeout_s} s; is its producer running?"
                ) from None
            except anyio.EndOfStream:
                raise RecorderError(
                    f"recorder {ctx.id!r}: input {name!r} ended before its first message"
                ) from None
            stream = _probe_stream(name, p.features.get(name), msg, p.joint_suffix)
            self._streams.append(stream)
            self._times[stream.key] = deque(maxlen=RATE_WINDOW)
            sample = stream.sample(msg)
            if sample is not None:
                self._last[stream.key] = sample
                self._times[stream.key].append(sample[0])
        keys = [s.key for s in self._streams]
        if len(set(keys)) != len(keys):
            raise RecorderError(f"recorder {ctx.id!r}: two inputs map to the same feature key: {keys}")

    def _features(self, p: RecorderParams) -> dict[str, dict[str, Any]]:
        features = {s.key: s.feature() for s in self._streams}
        if p.capture_times:
            features[CAPTURE_TIME_KEY] = capture_time_feature([s.key for s in self._streams])
        if "intervention" in self._recorded:
            key = p.features.get("intervention", DEFAULT_KEYS["intervention"])
            features[key] = {"dtype": "bool", "shape": [1], "names": None}
        return features

    async def _open(self, ctx: ActorContext[RecorderParams]) -> None:
        p = ctx.params
        features = self._features(p)
        deadline = anyio.current_time() + LOCK_WAIT_S
        while True:
            try:
                writer = await ctx.run_sync(_open_writer, p, features)
                break
            except DatasetLockedError:
                if anyio.current_time() >= deadline:
                    raise
                await anyio.sleep(0.1)  # a previous instance's thread is still finishing
        if not writer.recovery.clean:
            r = writer.recovery
            self._recovered = {
                "discarded_episode": r.discarded_episode,
                "rolled_forward_episode": r.rolled_forward_episode,
            }
            ctx.log.warning("dataset %s was not closed cleanly: %s", p.root, self._recovered)
        self._next_index = writer.total_episodes
        self._keys = [s.key for s in self._streams]
        self._capture_times = p.capture_times
        self._flag_key = (
            p.features.get("intervention", DEFAULT_KEYS["intervention"])
            if "intervention" in self._recorded
            else None
        )
        self._worker = WriterThread(writer, capacity=p.pipeline_rows, name=f"rtrun-recorder-{ctx.id}")
        ctx.log.info(
            "recording to %s (%d episodes, %d frames): %s",
            p.root,
            writer.total_episodes,
            writer.total_frames,
            ", ".join(s.key for s in self._streams),
        )

    # ---------------------------------------------------------------- receiving

    async def _receive_stream(self, ctx: ActorContext[RecorderParams], stream: _Stream) -> None:
        async for msg in ctx.input(stream.input):
            sample = stream.sample(msg)
            if sample is None:
                self._counts["rejected_samples"] += 1
                if self._counts["rejected_samples"] == 1:
                    ctx.log.warning(
                        "input %r: message does not fit feature %r: %.120r", stream.input, stream.key, msg
                    )
                continue
            self._last[stream.key] = sample
            self._times[stream.key].append(sample[0])
            if self._episode is not None:
                self._episode.aligner.push(stream.key, *sample)
        ctx.log.info("input %r ended: its feature goes stale, ticks will be skipped", stream.input)

    async def _receive_flags(self, ctx: ActorContext[RecorderParams]) -> None:
        async for flag in ctx.input("intervention"):
            self._flags.append((flag.t, bool(flag.value)))

    async def _receive_control(self, ctx: ActorContext[RecorderParams]) -> None:
        async for msg in ctx.input("control"):
            await self.control(ctx, msg)

    async def control(self, ctx: ActorContext[RecorderParams], msg: EpisodeControl) -> None:
        """Apply one episode command (also used by the auto-episode loop)."""
        ep = self._episode
        if (
            msg.command in ("save", "discard")
            and msg.episode >= 0
            and (ep is None or ep.index != msg.episode)
        ):
            return self._reject(ctx, msg, f"episode {msg.episode} is not being recorded")
        if msg.command == "start":
            await self._start(ctx, msg.task or self._task)
        elif msg.command == "save":
            await self._finish(ctx, save=True)
        elif msg.command in ("discard", "reset"):
            if ep is None and msg.command == "discard":
                return self._reject(ctx, msg, "no episode is being recorded")
            await self._finish(ctx, save=False)
        elif msg.command == "set_task":
            if not msg.task:
                return self._reject(ctx, msg, "set_task needs a non-empty task")
            self._task = msg.task
            if ep is not None:
                ep.tasks.append((anyio.current_time(), msg.task))
        return None

    def _reject(self, ctx: ActorContext[RecorderParams], what: object, why: str) -> None:
        self._counts["control_rejected"] += 1
        ctx.log.warning("ignored %s: %s", what, why)

    # ---------------------------------------------------------------- episodes

    async def _start(self, ctx: ActorContext[RecorderParams], task: str) -> None:
        p = ctx.params
        async with self._lock:
            if self._episode is not None:
                return self._reject(ctx, f"start {task!r}", "already recording")
            assert self._worker is not None
            if not self._worker.submit(StartEpisode(task=task)):
                return self._reject(ctx, f"start {task!r}", "writer thread backlogged")
            now = anyio.current_time()
            default_age = p.tolerance_frames / p.fps
            ages = {s.key: p.tolerance_s.get(s.input, default_age) for s in self._streams}
            aligner = FrameAligner(
                fps=p.fps,
                streams=[s.key for s in self._streams],
                start_time=now,
                max_age_s=ages,
                settle_s=p.settle_s,
                history={key: tuple(times) for key, times in self._times.items()},
            )
            for key, (t, value) in self._last.items():
                aligner.push(key, t, value)
            self._episode = Episode(
                index=self._next_index, t0=now, aligner=aligner, tasks=[(-math.inf, task)]
            )
            self._notify()
            ctx.log.info("episode %d started: %r", self._next_index, task)
        return None

    async def _finish(
        self, ctx: ActorContext[RecorderParams], *, save: bool, end: float | None = None
    ) -> None:
        """End the current episode at ``end`` (default: now); ticks after it are not recorded."""
        async with self._lock:
            ep = self._episode
            if ep is None:
                if save:
                    self._reject(ctx, "save", "no episode is being recorded")
                return
            ep.end = min(anyio.current_time(), end if end is not None else math.inf)
            if save:
                await anyio.sleep_until(ep.end + ctx.params.settle_s)  # late samples still count
            self._close_episode(ctx, ep, save=save)

    def _close_episode(self, ctx: ActorContext[RecorderParams], ep: Episode, *, save: bool) -> None:
        """Flush the aligner up to ``ep.end`` and queue the save/discard (no await)."""
        if save:
            self._forward(ep, max(anyio.current_time(), ep.end + ctx.params.settle_s))
        self._episode = None
        self._notify()
        keep = save and ep.rows > 0
        assert self._worker is not None
        if not self._worker.submit(EndEpisode(save=keep, dropped=ep.dropped, info=ep.report(save=keep))):
            raise RecorderError(f"writer thread backlogged: cannot queue the end of episode {ep.index}")
        if keep:
            self._next_index += 1
            self._saves += 1
            self._pending_saves += 1
        elif save:
            ctx.log.warning("episode %d has no complete row (stale streams?): discarded", ep.index)
        what = "ended, saving" if keep else "discarded"  # "saved" is logged once committed
        ctx.log.info("episode %d %s: %d rows, %d dropped", ep.index, what, ep.rows, ep.dropped)

    def _log_ended(self, ctx: ActorContext[RecorderParams]) -> None:
        """Log each episode the writer thread has committed -- never earlier, so that a crash
        right after "episode N saved" cannot lose episode N."""
        assert self._worker is not None
        for summary in self._worker.ended():
            if not summary.get("save_requested"):
                continue
            self._pending_saves -= 1
            if summary["saved"]:
                level, fmt, args = saved_line(summary)
                ctx.log.log(level, fmt, *args)
            else:
                ctx.log.warning("episode %d not saved: no row reached the writer", summary["index"])

    def _forward(self, ep: Episode, now: float) -> None:
        """Hand the rows resolved by ``now`` (and not after ``ep.end``) to the writer thread."""
        assert self._worker is not None
        before = ep.aligner.statistics().skipped_ticks
        for r in ep.aligner.poll(now):
            if r.tick_time > ep.end:
                continue
            row: dict[str, Any] = {}
            images: dict[str, np.ndarray] = {}
            for s in self._streams:
                (images if s.is_video else row)[s.key] = r.values[s.key]
            if self._capture_times:
                row[CAPTURE_TIME_KEY] = r.capture_offsets(self._keys, ep.t0)
            if self._flag_key is not None:
                row[self._flag_key] = [self._flag_at(r.tick_time)]
            if self._worker.submit_row(row, images, ep.task_at(r.tick_time)):
                ep.rows += 1
            else:
                ep.dropped += 1
                self._counts["dropped_total"] += 1
        self._counts["skipped_total"] += ep.aligner.statistics().skipped_ticks - before

    def _warn_slow(self, ctx: ActorContext[RecorderParams], ep: Episode) -> None:
        """Warn once per episode and stream about a stream too slow for the dataset's fps."""
        for key, rate in ep.newly_slow().items():
            ctx.log.warning(
                "stream %r delivers %.1f Hz, slower than the dataset's %d fps: rows repeat its latest "
                "sample (hold-last); episode %d is marked (rtrun/slow_streams)",
                key,
                rate,
                ctx.params.fps,
                ep.index,
            )

    def _flag_at(self, t: float) -> bool:
        return next((v for tf, v in reversed(self._flags) if tf <= t), False)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # ---------------------------------------------------------------- periodic work

    async def _tick_loop(self, ctx: ActorContext[RecorderParams]) -> None:
        p = ctx.params
        async with Ticker(p.fps, mode="portable") as ticker:
            async for _ in ticker:
                self._check_worker()
                if (ep := self._episode) is not None:
                    self._forward(ep, anyio.current_time())
                    self._warn_slow(ctx, ep)
                self._log_ended(ctx)
                self._publish_status(ctx)

    async def _auto_loop(self, ctx: ActorContext[RecorderParams]) -> None:
        p = ctx.params
        while p.max_episodes == 0 or self._saves < p.max_episodes:
            ep = self._episode
            if ep is None:
                await self._start(ctx, self._task)
                if self._episode is None:  # refused (writer backlogged): retry next frame
                    await anyio.sleep(1 / p.fps)
            elif ep.end < math.inf:  # being saved by a control message
                await self._changed.wait()
            elif (remaining := ep.t0 + p.auto_episode_s - anyio.current_time()) > 0:
                with anyio.move_on_after(remaining):
                    await self._changed.wait()  # woken early by a manual save/discard
            else:  # exactly round(auto_episode_s * fps) ticks, however late this task wakes up
                ticks = max(1, round(p.auto_episode_s * p.fps))
                await self._finish(ctx, save=True, end=ep.t0 + (ticks - 0.5) / p.fps)
                if p.auto_reset_s > 0:
                    await anyio.sleep(p.auto_reset_s)
        ctx.log.info("auto-episode mode: %d episodes saved, max_episodes reached", self._saves)

    def _check_worker(self) -> None:
        worker = self._worker
        if worker is not None and worker.error is not None:
            raise RecorderError(f"dataset writer failed: {worker.error!r}") from worker.error

    def _publish_status(self, ctx: ActorContext[RecorderParams]) -> None:
        assert self._worker is not None
        snap = self._worker.snapshot
        ep = self._episode
        state = "idle" if ep is None else ("saving" if ep.end < math.inf else "recording")
        encoder_dropped = snap.episode_dropped if ep is not None and snap.recording == ep.index else 0
        align = ep.aligner.statistics() if ep is not None else None
        ctx.set_status(
            state=state,
            episode=ep.index if ep is not None else self._next_index,
            rows=ep.rows - encoder_dropped if ep is not None else 0,
            dropped=ep.dropped + encoder_dropped if ep is not None else 0,
            skipped=align.skipped_ticks if align else 0,
            repeated=align.repeated if align else {},
            slow_streams=align.slow if align else {},
            episodes=snap.episodes,
            frames=snap.frames,
            pending=self._worker.pending_rows(),
            pending_saves=self._pending_saves,
            last_episode=snap.last_episode,
            recovered=self._recovered,
            **self._counts,
        )

    # ---------------------------------------------------------------- shutdown

    async def _shutdown(self, ctx: ActorContext[RecorderParams], *, save: bool) -> None:
        worker, ep = self._worker, self._episode
        if worker is None:
            return
        dropped = 0
        if ep is not None:
            ep.end = min(ep.end, anyio.current_time())
            if save and worker.error is None:
                self._forward(ep, ep.end + ctx.params.settle_s)
            dropped = ep.dropped
            self._episode = None
        keep = save and ep is not None and ep.rows > 0
        worker.submit(
            Close(save=keep, dropped=dropped, info=ep.report(save=keep) if ep is not None else None)
        )
        if ep is not None:
            what = "saving" if keep else "discarding"
            ctx.log.info("stopping: %s episode %d (%d rows)", what, ep.index, ep.rows)
            self._pending_saves += 1 if keep else 0
        if not await anyio.to_thread.run_sync(worker.join, SHUTDOWN_BUDGET_S, abandon_on_cancel=True):
            ctx.log.error("writer thread did not finish within %s s", SHUTDOWN_BUDGET_S)
        self._log_ended(ctx)
        self._publish_status(ctx)


def _open_writer(p: RecorderParams, features: dict[str, dict[str, Any]]) -> DatasetWriter:
    """Create or resume the dataset (blocking: runs in a worker thread)."""
    root = Path(p.root)
    options = p.video_options()
    if not (root / "meta" / "info.json").is_file():
        return DatasetWriter.create(
            root,
            fps=p.fps,
            features=features,
            robot_type=p.robot_type,
            video_options=options,
            encoder_queue_size=p.encoder_queue,
        )
    if not p.resume:
        raise RecorderError(f"{root} already holds a dataset and resume = false: pick another root")
    writer = DatasetWriter.open(
        root, features=features, video_options=options, encoder_queue_size=p.encoder_queue
    )
    if writer.fps != p.fps:
        writer.close()
        raise RecorderError(f"{root} was recorded at {writer.fps} fps; cannot append at fps = {p.fps}")
    return writer
