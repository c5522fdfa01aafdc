"""The camera actor with synthetic, fake and OpenCV (video file) drivers, on virtual time."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rtrun
import trio.testing
from rtrun.actors.camera import FAKE_CAMERAS, CameraActor, CameraParams
from rtrun.actors.messages import Frame
from rtrun.drivers import TransientError
from rtrun.drivers.fake import FakeCamera
from rtrun.drivers.synthetic_camera import decode_frame_counter

REPO = Path(__file__).resolve().parents[2]
AUTOJUMP_S = 0.02
"""Real idle time before the virtual clock jumps (longer than a frame read in a worker thread)."""


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Virtual time that waits for worker threads before jumping."""
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=AUTOJUMP_S)}


@pytest.fixture(autouse=True)
def _fresh_fakes() -> Iterator[None]:
    FAKE_CAMERAS.clear()
    yield
    FAKE_CAMERAS.clear()


def spec(params: dict[str, Any], *, backoff: rtrun.Backoff | None = None) -> rtrun.GraphSpec:
    return rtrun.GraphSpec(
        name="cam",
        actors=(rtrun.ActorSpec(id="cam", kind=CameraActor, params=params),),
        root=rtrun.SupervisorSpec(id="root", parent=None, intensity=5, period_s=10.0, backoff=backoff),
    )


async def frames(graph: rtrun.Graph, n: int) -> list[Frame]:
    tap = graph.receiver("cam/frames", capacity=n, policy="drop_oldest")
    return [await tap.receive() for _ in range(n)]


async def test_synthetic_frames_are_rgb_read_only_and_stamped() -> None:
    params = {"driver": "synthetic", "fps": 20.0, "width": 64, "height": 48}
    async with rtrun.open_graph(spec(params)) as graph:
        assert graph.context("cam").status["seq"] >= 1  # ready after the first frame
        got = await frames(graph, 10)
        status = graph.context("cam").status
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in got)
    assert all(not f.image.flags.writeable for f in got)
    assert all(f.camera == "cam" for f in got)
    seqs = [f.seq for f in got]
    assert seqs == list(range(seqs[0], seqs[0] + 10))
    counters = [decode_frame_counter(f.image) for f in got]
    assert counters == list(range(counters[0], counters[0] + 10))  # no frame lost or repeated
    periods = np.diff([f.t_capture for f in got])
    assert np.allclose(periods, 1 / 20, atol=2e-3)  # ticker-paced on the runtime clock
    assert status["fps"] == pytest.approx(20.0, rel=0.05)
    assert status["dropped"] == 0 and status["late"] == 0


async def test_timeouts_are_tolerated_and_counted() -> None:
    params = {"driver": "fake", "fps": 30.0, "width": 64, "height": 48, "fake_faults": {"3": "timeout"}}
    async with rtrun.open_graph(spec(params)) as graph:
        await frames(graph, 5)
        status = graph.context("cam").status
        assert status["timeouts"] == 1
        assert status["dropped"] >= 1
        assert graph.context("cam").restarts == 0


class GlitchError(TransientError):
    """A driver's own transient error, unknown to the actor by name."""


class GlitchyCamera(FakeCamera):
    """A fake camera whose read 2 raises a transient error of a class the actor never heard of."""

    def read(self) -> np.ndarray:
        if self.reads == 2:
            self.reads += 1
            raise GlitchError("sensor hiccup")
        return super().read()


async def test_any_transient_driver_error_is_tolerated() -> None:
    """The actor decides retry-vs-fail by ``TransientError``, not by a list of class names."""
    FAKE_CAMERAS["cam"] = GlitchyCamera(width=64, height=48, fps=30.0)
    params = {"driver": "fake", "fps": 30.0, "width": 64, "height": 48}
    async with rtrun.open_graph(spec(params)) as graph:
        await frames(graph, 5)
        status = graph.context("cam").status
        assert status["timeouts"] == 1
        assert graph.context("cam").restarts == 0


async def test_device_loss_restarts_and_reconnects() -> None:
    params = {"driver": "fake", "fps": 30.0, "width": 64, "height": 48, "fake_faults": {"5": "disconnect"}}
    backoff = rtrun.Backoff(initial=0.1, maximum=0.1, multiplier=1.0, jitter=0.0)
    async with rtrun.open_graph(spec(params, backoff=backoff)) as graph:
        tap = graph.receiver("cam/frames", capacity=64, policy="drop_oldest")
        counters = [decode_frame_counter((await tap.receive()).image) for _ in range(10)]
        status = graph.status()
    assert status.restarts == 1
    exits = [e.reason for e in status.events if e.kind == "exited"]
    assert any("CameraFailure" in r and "device loss" in r for r in exits)
    assert FAKE_CAMERAS["cam"].connects == 2  # the same device, reconnected
    assert counters == sorted(counters) and len(set(counters)) == 10  # the stream resumed


SLOW_OPEN_AUTOJUMP_S = 0.5
"""Opening a video file loads OpenCV's decoder in a worker thread: on a loaded machine that
took longer than AUTOJUMP_S of real time once, the virtual clock jumped past the actor's
start timeout and the test failed. Virtual time now waits longer for it."""


@pytest.mark.parametrize(
    "anyio_backend",
    [("trio", {"clock": trio.testing.MockClock(autojump_threshold=SLOW_OPEN_AUTOJUMP_S)})],
    ids=["trio-virtual-slow-open"],
)
async def test_opencv_video_file_is_rgb(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2", reason="OpenCV is in the 'hardware' extra")
    path = tmp_path / "red.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    red_bgr = np.zeros((48, 64, 3), np.uint8)
    red_bgr[..., 2] = 255  # pure red, written in OpenCV's BGR order
    for _ in range(5):
        writer.write(red_bgr)
    writer.release()
    warm = cv2.VideoCapture(str(path))  # load the decoder now, not in the actor's start
    assert warm.read()[0]
    warm.release()
    params = {"driver": "opencv", "source": str(path), "fps": 30.0, "width": 64, "height": 48, "loop": True}
    async with rtrun.open_graph(spec(params)) as graph:
        frame = (await frames(graph, 1))[0]
    mean = frame.image.reshape(-1, 3).mean(axis=0)
    assert mean[0] > 200 and mean[1] < 40 and mean[2] < 40  # red is channel 0: RGB (§11 #6)


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="fps"):
        CameraParams(fps=0.0)
    with pytest.raises(ValueError, match="fake_faults"):
        CameraParams(fake_faults={"x": "boom"})
    with pytest.raises(ValueError, match="width and height"):
        CameraParams(width=0)


# ------------------------------------------------------------------------------- MuJoCo fallback (issue 16)


class RenderlessMujocoCamera:
    """Stands in for ``MujocoCamera`` on a machine whose GL backend fails at the first render
    (a context that ``connect`` could not detect): every ``read`` raises ``SimRenderError``."""

    def __init__(self, plant: object, *, camera: object, width: int, height: int, fps: float) -> None:
        from rtrun.drivers.camera import CameraInfo

        self.info = CameraInfo(source="mujoco:-1", width=width, height=height, fps=fps)
        self.is_connected = False

    def connect(self) -> None:
        self.is_connected = True

    def read(self) -> np.ndarray:
        from rtrun.drivers.mujoco_so101 import SimRenderError

        raise SimRenderError("EGL: eglMakeCurrent failed (no EGL device)")

    def disconnect(self) -> None:
        self.is_connected = False


@pytest.fixture
def renderless_mujoco(monkeypatch: pytest.MonkeyPatch) -> None:
    import rtrun.actors.camera as camera_module
    import rtrun.drivers.mujoco_so101 as mujoco_driver

    monkeypatch.setattr(mujoco_driver, "MujocoCamera", RenderlessMujocoCamera)
    monkeypatch.setattr(camera_module, "sim_plant", lambda name: object())


MUJOCO_PARAMS = {"driver": "mujoco", "fps": 20.0, "width": 64, "height": 48}


@pytest.mark.usefixtures("renderless_mujoco")
async def test_mujoco_render_failure_falls_back_once(caplog: pytest.LogCaptureFixture) -> None:
    """fallback = 'synthetic' also covers a backend that fails at the first frame, not only at open."""
    caplog.set_level("WARNING", logger="rtrun")
    async with rtrun.open_graph(spec({**MUJOCO_PARAMS, "fallback": "synthetic"})) as graph:
        got = await frames(graph, 10)
        status = graph.context("cam").status
        assert graph.context("cam").restarts == 0
    counters = [decode_frame_counter(f.image) for f in got]
    assert counters == list(range(counters[0], counters[0] + 10))  # the synthetic pattern flows
    assert status["source"] == "synthetic" and status["fallback"] == "synthetic"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "eglMakeCurrent" in warnings[0].getMessage() and "synthetic" in warnings[0].getMessage()


@pytest.mark.usefixtures("renderless_mujoco")
async def test_mujoco_render_failure_without_fallback_fails_clearly(caplog: pytest.LogCaptureFixture) -> None:
    """fallback = 'none': the start fails, and the failure names the camera and the driver's error.
    (The launcher may re-raise it as "child exited without calling task_status.started()" on
    trio, so the exception chain and the supervisor's report are searched together.)"""
    with pytest.raises(Exception) as info:  # the start failure, however the launcher wraps it
        async with rtrun.open_graph(spec({**MUJOCO_PARAMS, "fallback": "none"})):
            pytest.fail("must not start")
    text = _chain_text(info.value) + caplog.text
    assert "CameraFailure" in text and "camera 'cam'" in text and "eglMakeCurrent" in text, text


def _chain_text(exc: BaseException) -> str:
    """Every exception in a chain/group, as ``Type: message`` lines."""
    out, todo, seen = [], [exc], set()
    while todo:
        e = todo.pop()
        if id(e) not in seen:
            seen.add(id(e))
            out.append(f"{type(e).__name__}: {e}")
            todo.extend(getattr(e, "exceptions", ()))
            todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return "\n".join(out)


NO_EGL_SITECUSTOMIZE = """
import ctypes
_load = ctypes.CDLL.__init__
def _no_egl(self, name, *args, **kwargs):
    if name and "libEGL" in str(name):  # a machine without libEGL: dlopen fails
        raise OSError(f"{name}: cannot open shared object file: No such file or directory")
    _load(self, name, *args, **kwargs)
ctypes.CDLL.__init__ = _no_egl
"""
NO_EGL_SCRIPT = """
import logging, sys, anyio, rtrun
from rtrun.actors.camera import CameraActor
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
params = {"driver": "mujoco", "fps": 20.0, "width": 64, "height": 48, "fallback": sys.argv[1]}
spec = rtrun.GraphSpec(
    name="cam",
    actors=(rtrun.ActorSpec(id="cam", kind=CameraActor, params=params),),
    root=rtrun.SupervisorSpec(id="root", parent=None, intensity=0, period_s=10.0),
)
async def main():
    async with rtrun.open_graph(spec) as graph:
        tap = graph.receiver("cam/frames", capacity=8, policy="drop_oldest")
        for _ in range(5):
            frame = await tap.receive()
        print("frames", frame.image.shape, graph.context("cam").status["source"])
anyio.run(main)
"""


def run_without_egl(
    tmp_path: Path, fallback: str, mujoco_gl: str = "egl"
) -> subprocess.CompletedProcess[str]:
    """The camera graph in a fresh interpreter with ``MUJOCO_GL=<mujoco_gl>``, no loadable libEGL
    and no X display."""
    pytest.importorskip("mujoco", reason="the sim extra is not installed")
    (tmp_path / "sitecustomize.py").write_text(NO_EGL_SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYOPENGL_PLATFORM", "DISPLAY")}
    env.update(MUJOCO_GL=mujoco_gl, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    return subprocess.run(
        [sys.executable, "-c", NO_EGL_SCRIPT, fallback],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
    )


@pytest.mark.slow
def test_mujoco_gl_egl_without_egl_falls_back(tmp_path: Path) -> None:
    result = run_without_egl(tmp_path, "synthetic")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "frames (48, 64, 3) synthetic"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, result.stderr[-3000:]
    assert "MUJOCO_GL=egl" in warnings[0] and "synthetic" in warnings[0], warnings


@pytest.mark.slow
def test_mujoco_gl_egl_without_egl_fails_clearly_without_fallback(tmp_path: Path) -> None:
    result = run_without_egl(tmp_path, "none")
    assert result.returncode != 0
    assert "CameraFailure: camera 'cam'" in result.stderr, result.stderr[-3000:]
    assert "MUJOCO_GL=egl" in result.stderr and "osmesa" in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
def test_mujoco_glfw_without_display_falls_back_with_one_warning(tmp_path: Path) -> None:
    """GLFW reports a missing DISPLAY as Python warnings: they are folded into the one warning."""
    result = run_without_egl(tmp_path, "synthetic", mujoco_gl="glfw")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "frames (48, 64, 3) synthetic"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("WARNING"), result.stderr[-3000:]
    assert "DISPLAY" in lines[0] and "synthetic" in lines[0]
