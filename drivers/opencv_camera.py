"""OpenCV camera driver: a device index, a ``/dev/video*`` path, or a video file, delivered as RGB.

This module is the **only** place in rtrun where BGR→RGB conversion happens (OpenCV decodes to
BGR; every other part of the runtime sees RGB). ``cv2`` is imported lazily, at ``connect()``,
so ``import rtrun.drivers`` works without the ``hardware`` extra.

Design decisions (the brief is silent on them):

- **Source resolution** (:func:`resolve_source`): an ``int`` or a string of digits is a device
  index; a string starting with ``/dev/`` is a device path; anything else is a video file,
  which must exist. Live sources use the V4L2 backend on Linux (as LeRobot does), files the
  default backend (FFmpeg).
- **Settings are verified, not hoped for.** For live devices ``fourcc`` is applied first (V4L2
  only accepts a size valid for the current pixel format), then width/height, then fps; each is
  read back and a mismatch raises :class:`CameraConfigError` naming the setting (LeRobot does
  the same). A video file cannot be reconfigured: a requested width/height/fps must equal the
  file's, and ``fourcc`` is rejected for files.
- **Read failures.** A live source whose ``read()`` fails raises
  :class:`CameraDisconnectedError` when its device node has vanished, else
  :class:`CameraTimeoutError` (OpenCV gives no finer status). A video file at its end raises
  :class:`CameraDisconnectedError` ("stream ended"), or rewinds when ``loop=True``.
- Frames are not paced for files (see ``camera.py``): the camera actor's ticker sets the rate.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .camera import (
    CameraConfigError,
    CameraDisconnectedError,
    CameraError,
    CameraInfo,
    CameraTimeoutError,
    check_rgb_image,
)

__all__ = ["CameraSource", "OpenCVCamera", "resolve_source"]

DEFAULT_FILE_FPS = 30.0
"""Nominal fps reported for a video file that carries no rate metadata (OpenCV returns 0)."""

FPS_REL_TOLERANCE = 1e-3
"""Relative tolerance when checking the fps a device accepted (LeRobot uses ``math.isclose``
with ``rel_tol=1e-3``: V4L2 reports rationals such as 30000/1001)."""

READ_TIMEOUT_S = 2.0
"""Default read timeout for live devices: generous enough for a 5 fps camera starting up."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraSource:
    """Where frames come from, after resolving the user's ``source`` argument."""

    kind: Literal["index", "device", "file"]
    """``index`` (``/dev/video<N>`` on Linux), ``device`` (a device path) or ``file``."""
    target: int | str
    """The index, or the path, handed to ``cv2.VideoCapture``."""

    @property
    def is_live(self) -> bool:
        """True for capture devices, False for video files."""
        return self.kind != "file"

    def device_node(self) -> Path | None:
        """The device node whose disappearance means "unplugged", when one is known."""
        if self.kind == "device":
            return Path(str(self.target))
        if self.kind == "index" and sys.platform.startswith("linux"):
            return Path(f"/dev/video{self.target}")
        return None


def resolve_source(source: int | str | os.PathLike[str]) -> CameraSource:
    """Classify ``source`` as a device index, a device path or a video file (see module doc)."""
    if isinstance(source, bool):
        raise CameraConfigError(f"camera source must be an index or a path, got {source!r}")
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        index = int(source)
        if index < 0:
            raise CameraConfigError(f"camera index must be >= 0, got {index}")
        return CameraSource(kind="index", target=index)
    path = os.fspath(source)
    if path.startswith("/dev/"):
        return CameraSource(kind="device", target=path)
    if not Path(path).is_file():
        raise CameraConfigError(f"video file {path!r} does not exist (camera source)")
    return CameraSource(kind="file", target=path)


def _import_cv2() -> Any:
    """Import OpenCV on first use, with an install hint instead of a bare ImportError."""
    try:
        import cv2
    except ImportError as exc:
        raise CameraError(
            "OpenCV is required for OpenCVCamera: pip install 'rtrun[hardware]' (opencv-python-headless)"
        ) from exc
    return cv2


class OpenCVCamera:
    """A :class:`~rtrun.drivers.camera.Camera` backed by ``cv2.VideoCapture``; RGB out."""

    def __init__(
        self,
        source: int | str | os.PathLike[str],
        *,
        fps: float | None = None,
        width: int | None = None,
        height: int | None = None,
        fourcc: str | None = None,
        loop: bool = False,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        """Record the settings; nothing is opened before ``connect()``.

        ``fps``/``width``/``height``/``fourcc`` of ``None`` keep the device's current value.
        ``loop`` rewinds a video file at its end instead of reporting the stream as ended.
        """
        if fourcc is not None and len(fourcc) != 4:
            raise CameraConfigError(f"fourcc must be 4 characters, got {fourcc!r}")
        if fps is not None and not fps > 0:
            raise CameraConfigError(f"camera fps must be > 0, got {fps}")
        if not read_timeout_s > 0:
            raise CameraConfigError(f"read_timeout_s must be > 0, got {read_timeout_s}")
        self._raw_source = source
        self._fps, self._width, self._height, self._fourcc = fps, width, height, fourcc
        self._loop = loop
        self._read_timeout_s = read_timeout_s
        self._source: CameraSource | None = None
        self._cap: Any = None
        self._cv2: Any = None
        self._info: CameraInfo | None = None
        self._frames_read = 0

    @property
    def is_connected(self) -> bool:
        """True while the capture is open."""
        return self._cap is not None

    @property
    def info(self) -> CameraInfo:
        """The stream actually delivered; raises before ``connect()``."""
        if self._info is None:
            raise CameraError("camera info is only known after connect()")
        return self._info

    def connect(self) -> None:
        """Open the source and apply and verify the requested settings."""
        if self._cap is not None:
            raise CameraError(f"camera {self._raw_source!r} is already connected")
        source = resolve_source(self._raw_source)
        cv2 = _import_cv2()
        cap = self._open(cv2, source)
        try:
            info = self._configure(cv2, cap, source)
        except BaseException:
            cap.release()
            raise
        self._cv2, self._cap, self._source, self._info = cv2, cap, source, info
        self._frames_read = 0

    def _open(self, cv2: Any, source: CameraSource) -> Any:
        """Open ``cv2.VideoCapture`` on the right backend, mapping failures to typed errors."""
        node = source.device_node()
        if source.is_live and node is not None and not node.exists():
            raise CameraDisconnectedError(f"camera device {node} does not exist")
        api = cv2.CAP_V4L2 if source.is_live and sys.platform.startswith("linux") else cv2.CAP_ANY
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self._read_timeout_s * 1000)]
        if source.is_live:
            params += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self._read_timeout_s * 1000)]
        cap = cv2.VideoCapture(source.target, api, params)
        if not cap.isOpened():
            cap.release()
            raise CameraDisconnectedError(f"OpenCV could not open camera source {source.target!r}")
        return cap

    def _configure(self, cv2: Any, cap: Any, source: CameraSource) -> CameraInfo:
        """Apply settings (live devices) or check them against the file; return the info."""
        if source.is_live:
            self._apply_live_settings(cv2, cap)
        elif self._fourcc is not None:
            raise CameraConfigError("fourcc can only be set on capture devices, not video files")
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        if not source.is_live and fps <= 0:
            fps = self._fps if self._fps is not None else DEFAULT_FILE_FPS
        self._check("width", self._width, width, exact=True)
        self._check("height", self._height, height, exact=True)
        self._check("fps", self._fps, fps, exact=False)
        return CameraInfo(source=str(source.target), width=width, height=height, fps=fps)

    def _apply_live_settings(self, cv2: Any, cap: Any) -> None:
        """Set fourcc, then size, then fps (the order V4L2 needs); then verify fourcc."""
        if self._fourcc is not None:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self._fourcc))
            code = int(cap.get(cv2.CAP_PROP_FOURCC))
            actual = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
            if actual != self._fourcc:
                raise CameraConfigError(
                    f"camera {self._raw_source!r} refused fourcc {self._fourcc!r} (uses {actual!r})"
                )
        if self._width is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._width)
        if self._height is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._height)
        if self._fps is not None:
            cap.set(cv2.CAP_PROP_FPS, self._fps)

    def _check(self, name: str, wanted: float | None, actual: float, *, exact: bool) -> None:
        """Raise :class:`CameraConfigError` when a requested setting was not honoured."""
        if wanted is None:
            return
        ok = actual == wanted if exact else math.isclose(actual, wanted, rel_tol=FPS_REL_TOLERANCE)
        if not ok:
            raise CameraConfigError(
                f"camera {self._raw_source!r} cannot deliver {name}={wanted} (it delivers {actual})"
            )

    def read(self) -> np.ndarray:
        """Return the next frame as an owned ``H×W×3`` uint8 RGB array."""
        if self._cap is None or self._info is None or self._source is None:
            raise CameraDisconnectedError(f"camera {self._raw_source!r} is not connected; call connect()")
        ok, frame = self._cap.read()
        if not ok and not self._source.is_live and self._loop and self._frames_read > 0:
            self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok or frame is None:
            raise self._read_failure()
        self._frames_read += 1
        image = self._to_rgb(frame)
        check_rgb_image(image, width=self._info.width, height=self._info.height)
        return image

    def _read_failure(self) -> CameraError:
        """Classify a failed ``VideoCapture.read()`` (see the module docstring)."""
        assert self._source is not None
        if not self._source.is_live:
            return CameraDisconnectedError(
                f"video file {self._source.target!r} ended after {self._frames_read} frames"
            )
        node = self._source.device_node()
        if node is not None and not node.exists():
            return CameraDisconnectedError(f"camera device {node} disappeared")
        return CameraTimeoutError(
            f"camera {self._source.target!r} delivered no frame within {self._read_timeout_s} s"
        )

    def _to_rgb(self, frame: np.ndarray) -> np.ndarray:
        """The one BGR→RGB conversion in rtrun (grey and BGRA frames are converted too)."""
        cv2 = self._cv2
        if frame.ndim == 2:
            return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB))
        if frame.shape[2] == 4:
            return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB))
        return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))

    def disconnect(self) -> None:
        """Release the capture (idempotent)."""
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
