"""The ``camera`` actor: runs a camera driver in a worker thread and publishes RGB ``Frame``s.

Each frame is read with ``ctx.run_sync(camera.read)`` (the actor's ``CapacityLimiter(1)``: one
device call at a time), stamped with ``anyio.current_time()`` right after the read returns (the
runtime's only time base; the device's own latency is part of the error, as in LeRobot), marked
read-only and sent on ``frames``. Consumers connect with a ``latest`` input (the graph default),
so a slow consumer only ever sees the newest frame. Readiness is signalled after the first frame.

Pacing (``pace``):

- ``ticker``: an absolute-deadline :class:`rtrun.Ticker` at ``fps`` triggers each read. Right
  for sources that return at once (synthetic, fake, video files, MuJoCo renders).
- ``device``: read back to back; the device's own frame clock paces the loop (live USB cameras
  block in ``read()`` until the sensor delivers, so a ticker on top would only add latency).
- ``auto`` (default): ``device`` for live OpenCV sources, ``ticker`` otherwise.

Counters (``ctx.set_status``): ``seq`` (frames published), ``fps`` (measured over the last
second of capture times), ``late`` (frames whose capture completed more than one period after
the slot they were read for: the read itself was slow), ``dropped`` (frame slots lost: ticker
deadlines skipped because the loop overran, gaps of more than 1.5 periods between device-paced
captures, and tolerated read timeouts), ``timeouts``.

Failures: a device loss (:class:`CameraDisconnectedError`) or more than
``max_consecutive_timeouts`` transient read errors in a row (any
:class:`rtrun.drivers.TransientError`, e.g. ``CameraTimeoutError``) raise :class:`CameraFailure` (chained to the
driver's typed error); the supervisor restarts the actor, whose fresh instance reconnects. The
device is always released in a shielded, bounded ``finally``.

Design decisions (the brief is silent on them):

- ``fake`` cameras live in a process-wide registry keyed by ``device`` (default: the actor id),
  like a USB device that survives the actor: a fault script (``fake_faults``) therefore plays
  once over the device's life, not again after every restart.
- The ``mujoco`` driver renders the plant the ``motor_bus`` actor (``driver = "sim"``) steps,
  found by the same ``device`` name (default ``so101``). Rendering needs an OpenGL context:
  headless machines set ``MUJOCO_GL=osmesa`` before starting. With ``fallback = "synthetic"``
  a missing ``sim`` extra or an unusable GL backend degrades to the synthetic pattern with
  **one** warning (status ``fallback = "synthetic"``) instead of failing the graph. A backend
  can fail at ``import mujoco`` (``MUJOCO_GL=egl`` without libEGL), at ``connect()`` (no
  context) or only at the first render (a context that cannot be made current), so the
  fallback covers every MuJoCo (``SimError``) failure up to the first published frame; after
  that a failure is a real one and goes to the supervisor. ``fallback = "none"`` fails the
  start with :class:`CameraFailure` naming the driver's error and what to set.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
import numpy as np
import rtrun
from anyio.abc import TaskStatus
from rtrun.drivers import TransientError
from rtrun.drivers.camera import Camera, CameraDisconnectedError

from ._arms import sim_plant
from .messages import Frame

__all__ = ["FAKE_CAMERAS", "CameraActor", "CameraFailure", "CameraParams"]

_DRIVER_MODULES: dict[str, Mapping[str, str]] = {
    "opencv": {"cv2": "pip install 'rtrun[hardware]'"},
    "mujoco": {"mujoco": "pip install 'rtrun[sim]'"},
}
"""Python modules each camera driver imports (``rtrun check`` reports missing ones)."""

FAKE_CAMERAS: dict[str, Any] = {}
"""Fake camera devices by name (persist across actor restarts, like hardware)."""
_FAKE_LOCK = threading.Lock()

FPS_WINDOW_S = 1.0
"""Window of the measured-fps estimate: one second of capture times."""

LATE_GAP_PERIODS = 1.5
"""Device pacing: a gap longer than this many periods between captures counts dropped frames."""


class CameraFailure(rtrun.ActorError):
    """The camera failed (device lost, repeated timeouts); ``error`` is the driver's error."""

    def __init__(self, actor: str, error: BaseException) -> None:
        super().__init__(f"camera {actor!r}: {error}")
        self.actor = actor
        """Actor id."""
        self.error = error
        """The typed driver error."""


def _is_device(source: str) -> bool:
    """A device index or a stream URL: not a file path."""
    return source.isdigit() or "://" in source


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraParams:
    """Parameters of the ``camera`` actor."""

    driver: Literal["synthetic", "opencv", "mujoco", "fake"] = "synthetic"
    """Frame source: numpy pattern, OpenCV device/file, MuJoCo render, or scripted fake."""
    fps: float = 30.0
    """Frame rate (ticker pacing) or requested device rate (OpenCV)."""
    width: int = 640
    """Image width in pixels."""
    height: int = 480
    """Image height in pixels."""
    source: Annotated[str, rtrun.PathParam(keep=_is_device)] = "0"
    """OpenCV: device index (``"0"``), device path (``/dev/video0``), stream URL or video file
    (relative: to the graph file)."""
    fourcc: str = ""
    """OpenCV: pixel format, e.g. ``MJPG`` (empty: the device default)."""
    loop: bool = False
    """OpenCV video files: rewind at the end instead of ending the stream."""
    read_timeout_s: float = 2.0
    """OpenCV: read timeout of a live device."""
    pace: Literal["auto", "ticker", "device"] = "auto"
    """Who sets the rate (see the module docstring)."""
    device: str = ""
    """Fake: device name in the registry (default: actor id). MuJoCo: plant name (default so101)."""
    view: str = "-1"
    """MuJoCo: camera name in the model (e.g. ``front``) or id; ``-1`` = the free camera."""
    fallback: Literal["none", "synthetic"] = "none"
    """MuJoCo: use the synthetic pattern when MuJoCo or rendering is unavailable."""
    fake_faults: dict[str, str] = field(default_factory=dict)
    """Fake: ``{read number = "timeout" | "disconnect"}`` fault script (tests)."""
    max_consecutive_timeouts: int = 3
    """Read timeouts tolerated in a row (counted as dropped) before failing."""
    cleanup_timeout_s: float = 2.0
    """Budget of the device release on stop."""
    progress_interval_s: float = 5.0
    """Interval of the progress log line (0 disables)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be finite and > 0, got {self.fps}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"width and height must be > 0, got {self.width}x{self.height}")
        bad = {
            k: v for k, v in self.fake_faults.items() if not k.isdigit() or v not in ("timeout", "disconnect")
        }
        if bad:
            raise ValueError(f"fake_faults must map read numbers to 'timeout' or 'disconnect', got {bad}")


def _fake_camera(name: str, p: CameraParams) -> Camera:
    from rtrun.drivers.fake import FakeCamera

    with _FAKE_LOCK:
        if name not in FAKE_CAMERAS:
            faults = {int(k): v for k, v in p.fake_faults.items()}
            FAKE_CAMERAS[name] = FakeCamera(width=p.width, height=p.height, fps=p.fps, faults=faults)
        return FAKE_CAMERAS[name]


def _synthetic(p: CameraParams) -> Camera:
    from rtrun.drivers.synthetic_camera import SyntheticCamera

    return SyntheticCamera(width=p.width, height=p.height, fps=p.fps)


def build_camera(p: CameraParams, actor_id: str) -> Camera:
    """Create the driver selected by ``p.driver`` (blocking: MuJoCo loads a model).

    A MuJoCo camera is not connected here: its GL context is created by ``connect()``, and the
    actor applies ``fallback`` to failures up to its first frame (see the module docstring).
    """
    if p.driver == "synthetic":
        return _synthetic(p)
    if p.driver == "fake":
        return _fake_camera(p.device or actor_id, p)
    if p.driver == "opencv":
        from rtrun.drivers.opencv_camera import OpenCVCamera

        return OpenCVCamera(
            p.source,
            fps=p.fps,
            width=p.width,
            height=p.height,
            fourcc=p.fourcc or None,
            loop=p.loop,
            read_timeout_s=p.read_timeout_s,
        )
    from rtrun.drivers.mujoco_so101 import MujocoCamera

    view: str | int = int(p.view) if p.view.lstrip("-").isdigit() else p.view
    plant = sim_plant(p.device or "so101")
    return MujocoCamera(plant, camera=view, width=p.width, height=p.height, fps=p.fps)


def _device_paced(p: CameraParams) -> bool:
    if p.pace != "auto":
        return p.pace == "device"
    if p.driver != "opencv":
        return False
    from rtrun.drivers.opencv_camera import resolve_source

    return resolve_source(p.source).is_live


@dataclass(slots=True)
class _Stats:
    seq: int = 0
    late: int = 0
    dropped: int = 0
    timeouts: int = 0
    consecutive_timeouts: int = 0
    captures: deque[float] = field(default_factory=lambda: deque(maxlen=1024))

    def fps(self, now: float) -> float:
        while self.captures and now - self.captures[0] > FPS_WINDOW_S:
            self.captures.popleft()
        if len(self.captures) < 2 or self.captures[-1] <= self.captures[0]:
            return 0.0
        return (len(self.captures) - 1) / (self.captures[-1] - self.captures[0])


class CameraActor(rtrun.Actor):
    """Publishes RGB frames from one camera driver (see the module docstring)."""

    outputs = {"frames": rtrun.Output(Frame, doc="RGB frames; consume with a latest input")}
    Params = CameraParams

    @classmethod
    def requirements(cls, params: CameraParams) -> Mapping[str, str]:
        """OpenCV or MuJoCo for those drivers, unless a synthetic fallback is allowed."""
        if params.fallback == "synthetic":
            return {}
        return _DRIVER_MODULES.get(params.driver, {})

    async def run(
        self,
        ctx: rtrun.ActorContext[CameraParams],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Connect, read at the configured pace, release the device on the way out."""
        p = ctx.params
        self._ctx, self._stats = ctx, _Stats()
        self._camera: Camera | None = None
        self._fallback: str | None = None
        try:
            self._camera = await ctx.run_sync(build_camera, p, ctx.id)
        except ValueError as exc:  # CameraConfigError is a CameraError, not a ValueError
            raise rtrun.ParamsError(f"camera {ctx.id!r}: {exc}") from exc
        except Exception as exc:
            await self._fall_back(exc)
        try:
            await self._connect()
            if _device_paced(p):
                await self._device_loop(ctx, task_status)
            else:
                await self._ticker_loop(ctx, task_status)
        finally:
            with ctx.cleanup(p.cleanup_timeout_s):
                try:
                    await ctx.run_sync(self._device().disconnect)
                except Exception as exc:
                    ctx.log.warning("releasing the camera failed: %s", exc)
                ctx.set_status(state="stopped")

    def _device(self) -> Camera:
        assert self._camera is not None
        return self._camera

    async def _connect(self) -> None:
        ctx, p = self._ctx, self._ctx.params
        try:
            await ctx.run_sync(self._device().connect)
        except Exception as exc:
            await self._fall_back(exc)
            await self._guard(ctx.run_sync(self._device().connect))
        info = self._device().info
        ctx.set_status(
            source=info.source, width=info.width, height=info.height, fallback=self._fallback, state="running"
        )
        ctx.log.info("connected %s %dx%d @ %.0f fps", info.source, info.width, info.height, p.fps)

    def _may_fall_back(self, exc: Exception) -> bool:
        """``fallback = "synthetic"`` covers a MuJoCo failure at open, connect or first frame."""
        from rtrun.drivers.mujoco_so101 import SimError

        p = self._ctx.params
        first_frame = self._stats.seq == 0 and self._fallback is None
        return (
            p.driver == "mujoco" and p.fallback == "synthetic" and first_frame and isinstance(exc, SimError)
        )

    async def _fall_back(self, exc: Exception) -> None:
        """Replace the device by the (unconnected) synthetic pattern with one warning, or fail
        with :class:`CameraFailure`."""
        ctx = self._ctx
        if not self._may_fall_back(exc):
            raise CameraFailure(ctx.id, exc) from exc
        ctx.log.warning("%s; using the synthetic pattern instead (fallback = 'synthetic')", exc)
        failed, self._camera, self._fallback = self._camera, _synthetic(ctx.params), "synthetic"
        if failed is not None:
            await ctx.run_sync(failed.disconnect)  # idempotent, never raises (Camera contract)

    async def _guard(self, call: Any) -> Any:
        try:
            return await call
        except Exception as exc:
            raise CameraFailure(self._ctx.id, exc) from exc

    async def _read(self, ctx: rtrun.ActorContext[CameraParams]) -> np.ndarray | None:
        """One read; tolerated timeouts return None (counted), a MuJoCo failure before the first
        frame falls back (``fallback``), anything else fails the actor."""
        s = self._stats
        try:
            image = await ctx.run_sync(self._device().read)
        except TransientError as exc:
            s.timeouts += 1
            s.dropped += 1
            s.consecutive_timeouts += 1
            if s.consecutive_timeouts > ctx.params.max_consecutive_timeouts:
                raise CameraFailure(ctx.id, exc) from exc
            ctx.log.warning("camera read timed out (%d in a row): %s", s.consecutive_timeouts, exc)
            return None
        except CameraDisconnectedError as exc:
            raise CameraFailure(ctx.id, exc) from exc
        except Exception as exc:
            await self._fall_back(exc)
            await self._connect()
            return await self._read(ctx)
        s.consecutive_timeouts = 0
        return image

    async def _publish(self, ctx: rtrun.ActorContext[CameraParams], image: np.ndarray, t: float) -> None:
        s = self._stats
        image.flags.writeable = False
        await ctx.output("frames").send(Frame(camera=ctx.id, seq=s.seq, t_capture=t, image=image))
        s.seq += 1
        s.captures.append(t)
        ctx.set_status(seq=s.seq, fps=round(s.fps(t), 2), late=s.late, dropped=s.dropped, timeouts=s.timeouts)

    async def _ticker_loop(
        self, ctx: rtrun.ActorContext[CameraParams], task_status: TaskStatus[None]
    ) -> None:
        period = 1.0 / ctx.params.fps
        started = False
        progress = _Progress(ctx)
        async with rtrun.Ticker(ctx.params.fps) as ticker:
            async for tick in ticker:
                self._stats.dropped += tick.missed
                image = await self._read(ctx)
                if image is None:
                    continue
                t = anyio.current_time()
                if t - tick.deadline > period:
                    self._stats.late += 1
                await self._publish(ctx, image, t)
                if not started:
                    task_status.started()
                    started = True
                progress.maybe_log(t, self._stats)

    async def _device_loop(
        self, ctx: rtrun.ActorContext[CameraParams], task_status: TaskStatus[None]
    ) -> None:
        period = 1.0 / ctx.params.fps
        previous: float | None = None
        progress = _Progress(ctx)
        while True:
            image = await self._read(ctx)
            if image is None:
                continue
            t = anyio.current_time()
            if previous is not None and t - previous > LATE_GAP_PERIODS * period:
                self._stats.dropped += max(1, round((t - previous) / period) - 1)
                self._stats.late += 1
            await self._publish(ctx, image, t)
            if previous is None:
                task_status.started()
            previous = t
            progress.maybe_log(t, self._stats)


class _Progress:
    """Periodic info line (fps, seq, late, dropped)."""

    def __init__(self, ctx: rtrun.ActorContext[CameraParams]) -> None:
        self._ctx = ctx
        self._next: float | None = None

    def maybe_log(self, now: float, s: _Stats) -> None:
        interval = self._ctx.params.progress_interval_s
        if interval <= 0:
            return
        if self._next is None:
            self._next = now + interval
        elif now >= self._next:
            self._next = now + interval
            self._ctx.log.info(
                "frame %d, %.1f fps, late %d, dropped %d, timeouts %d",
                s.seq,
                s.fps(now),
                s.late,
                s.dropped,
                s.timeouts,
            )
