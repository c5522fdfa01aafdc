"""The Camera protocol every camera driver implements, and the typed camera errors.

A camera driver is synchronous and blocking: the camera actor calls it from a worker thread
(one ``CapacityLimiter(1)`` per device) and never on the event loop.

Contract (what the camera actor relies on):

- ``connect()`` opens the device and validates the requested settings; a setting the device
  cannot honour raises :class:`CameraConfigError` naming the setting. Calling ``connect()`` on a
  connected camera raises :class:`CameraError` (the owner must ``disconnect()`` first).
- ``read()`` blocks until the next image and returns it as an ``H×W×3`` ``uint8`` array in
  **RGB** order, C-contiguous, owned by the caller (the driver never reuses the buffer). It
  raises :class:`CameraTimeoutError` when no frame arrived in time and
  :class:`CameraDisconnectedError` when the device is gone (unplugged, stream ended, closed).
- ``disconnect()`` is idempotent and never raises for a device that is already gone.
- ``info`` describes the stream actually delivered (after ``connect()``).

Design decisions (the brief is silent on them):

- ``read()`` returns the image only, with no timestamp. The runtime has exactly one time base,
  ``anyio.current_time()`` (virtual in tests), which a driver running in a worker thread cannot
  read consistently; the camera actor stamps each frame right after ``read()`` returns, so the
  capture latency of the device is part of the measurement error, as in LeRobot.
- Drivers do not pace themselves: sources that can produce frames instantly (synthetic
  patterns, video files, fakes) return at once, and the camera actor's ``Ticker`` sets the rate.
  Live devices block in ``read()`` until the sensor delivers.
- Errors derive from :class:`Exception` only: drivers never import the kernel (layering rule),
  so the camera actor maps them onto the runtime's error tree at its boundary.
- BGR→RGB conversion happens in exactly one place, ``opencv_camera.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ._errors import TransientError

__all__ = [
    "Camera",
    "CameraConfigError",
    "CameraDisconnectedError",
    "CameraError",
    "CameraInfo",
    "CameraTimeoutError",
    "check_rgb_image",
]


class CameraError(Exception):
    """Base class of every camera driver error."""


class CameraConfigError(CameraError):
    """A requested setting (size, fps, fourcc, source) cannot be honoured by the device."""


class CameraDisconnectedError(CameraError):
    """The device is gone: unplugged, closed, or its stream ended. Reconnecting may help."""


class CameraTimeoutError(CameraError, TransientError):
    """No frame arrived within the read timeout; the device may still be present (transient)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraInfo:
    """What a connected camera actually delivers."""

    source: str
    """Human-readable source: device index, device path, file path, or ``synthetic``."""
    width: int
    """Image width in pixels."""
    height: int
    """Image height in pixels."""
    fps: float
    """Nominal frame rate in frames per second (as reported by the device or configured)."""


@runtime_checkable
class Camera(Protocol):
    """A blocking RGB camera. See the module docstring for the full contract."""

    @property
    def is_connected(self) -> bool:
        """True between a successful ``connect()`` and ``disconnect()``."""
        ...

    @property
    def info(self) -> CameraInfo:
        """The stream actually delivered; valid after ``connect()``."""
        ...

    def connect(self) -> None:
        """Open the device and apply the requested settings."""
        ...

    def read(self) -> np.ndarray:
        """Block until the next frame; return it as an owned ``H×W×3`` uint8 RGB array."""
        ...

    def disconnect(self) -> None:
        """Release the device (idempotent)."""
        ...


def check_rgb_image(image: np.ndarray, *, width: int, height: int) -> None:
    """Raise :class:`CameraError` unless ``image`` is a ``height×width×3`` uint8 array.

    Drivers call this on what they are about to return, so a decoder surprise (grey or BGRA
    frames, a resolution change mid-stream) surfaces as a typed error naming the rule.
    """
    expected = (height, width, 3)
    if image.dtype != np.uint8 or image.shape != expected:
        raise CameraError(
            f"camera frames must be uint8 RGB of shape {expected}, got {image.dtype} of shape {image.shape}"
        )
