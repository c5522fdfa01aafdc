"""OpenCV camera driver against video files written with PyAV (an independent encoder).

PyAV takes ``rgb24`` frames, so "red" in the file is defined without OpenCV's BGR convention:
reading it back through the driver must give a high channel 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rtrun.drivers.camera import Camera, CameraConfigError, CameraDisconnectedError, CameraError
from rtrun.drivers.opencv_camera import OpenCVCamera, resolve_source
from rtrun.drivers.synthetic_camera import decode_frame_counter, render_frame

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the 'hardware' extra) is not installed")
av = pytest.importorskip("av", reason="PyAV (the 'record' extra) is needed to write test videos")
pytestmark = pytest.mark.oracle  # PyAV is the independent encoder the driver is checked against

W, H, FPS = 128, 96, 30


def write_video(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """Encode RGB frames with PyAV (mpeg4, yuv420p)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture
def red_video(tmp_path: Path) -> Path:
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = 255
    return write_video(tmp_path / "red.mp4", [red] * 3)


@pytest.fixture
def counter_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "counter.mp4", [render_frame(i, W, H) for i in range(8)])


def test_pure_red_file_comes_out_red(red_video: Path) -> None:
    cam = OpenCVCamera(red_video)
    cam.connect()
    try:
        assert isinstance(cam, Camera)
        image = cam.read()
    finally:
        cam.disconnect()
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    r, g, b = (float(image[..., c].mean()) for c in range(3))
    assert r > 200 and g < 50 and b < 50, (r, g, b)


def test_file_frames_in_order_then_end_of_stream(counter_video: Path) -> None:
    cam = OpenCVCamera(str(counter_video), width=W, height=H, fps=FPS)
    cam.connect()
    assert (cam.info.width, cam.info.height, cam.info.fps) == (W, H, FPS)
    frames = [cam.read() for _ in range(8)]
    assert [decode_frame_counter(f) for f in frames] == list(range(8))
    legend = frames[0][10]  # RGB legend row: red | green | blue
    assert legend[5].argmax() == 0 and legend[64].argmax() == 1 and legend[120].argmax() == 2
    with pytest.raises(CameraDisconnectedError, match="ended after 8 frames"):
        cam.read()
    cam.disconnect()
    cam.disconnect()


def test_loop_rewinds_a_file(counter_video: Path) -> None:
    cam = OpenCVCamera(counter_video, loop=True)
    cam.connect()
    counters = [decode_frame_counter(cam.read()) for _ in range(10)]
    cam.disconnect()
    assert counters == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": W + 2}, "width"),
        ({"height": H * 2}, "height"),
        ({"fps": 60}, "fps"),
        ({"fourcc": "MJPG"}, "fourcc"),
    ],
)
def test_file_settings_must_match(counter_video: Path, kwargs: dict[str, object], match: str) -> None:
    cam = OpenCVCamera(counter_video, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(CameraConfigError, match=match):
        cam.connect()
    assert not cam.is_connected


def test_read_before_connect_and_double_connect(counter_video: Path) -> None:
    cam = OpenCVCamera(counter_video)
    with pytest.raises(CameraDisconnectedError, match="not connected"):
        cam.read()
    cam.connect()
    with pytest.raises(CameraError, match="already connected"):
        cam.connect()
    cam.disconnect()


def test_missing_sources(tmp_path: Path) -> None:
    with pytest.raises(CameraConfigError, match="does not exist"):
        OpenCVCamera(tmp_path / "nope.mp4").connect()
    with pytest.raises(CameraDisconnectedError, match="does not exist"):
        OpenCVCamera("/dev/video-rtrun-test-missing").connect()


def test_resolve_source(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    assert resolve_source(0).kind == "index"
    assert resolve_source("2").target == 2
    assert resolve_source("/dev/video4").kind == "device"
    assert resolve_source(video).kind == "file"
    for bad in (-1, True):
        with pytest.raises(CameraConfigError):
            resolve_source(bad)


@pytest.mark.parametrize("kwargs", [{"fourcc": "MJPEG"}, {"fps": 0}, {"read_timeout_s": 0}])
def test_invalid_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(CameraConfigError):
        OpenCVCamera(0, **kwargs)  # type: ignore[arg-type]
