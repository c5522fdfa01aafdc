"""A synthetic camera: a pure-numpy moving pattern with a frame counter you can read back.

Theory of operation
-------------------
Every frame is a pure function of ``(index, width, height)`` (:func:`render_frame`), so two
cameras with the same settings produce byte-identical streams and a test can predict any
frame. The image has three horizontal zones, top to bottom:

1. **Counter band** (``2 × cell_h`` rows). The 32-bit frame index, most significant bit first,
   is drawn as 32 equal-width cells across the image: white (255) for a 1, black (0) for a 0.
   The row of cells below repeats the bits *inverted*. :func:`decode_frame_counter` averages the
   centre of each cell, thresholds at mid-grey and checks the inverted row, so it survives lossy
   video coding (chroma subsampling, blur at cell edges) and rejects images that are not
   synthetic frames instead of returning garbage. Columns left over after 32 cells are grey.
2. **Colour legend** (``cell_h`` rows): pure red, green and blue thirds, left to right. A
   consumer that swapped channels (BGR somewhere downstream) sees blue on the left.
3. **Moving pattern** (the rest): ``R`` ramps along x, ``G`` along y, ``B`` along the diagonal,
   each shifted by a different multiple of the index, so consecutive frames always differ and
   motion is visible in a viewer.

``cell_h = max(4, height // 24)``, ``cell_w = width // 32``; the minimum size is 64×24.
The camera does not pace itself (see ``camera.py``): ``read()`` returns the next frame at once.
"""

from __future__ import annotations

import functools

import numpy as np

from .camera import CameraConfigError, CameraDisconnectedError, CameraError, CameraInfo

__all__ = [
    "COUNTER_BITS",
    "FrameCounterError",
    "SyntheticCamera",
    "decode_frame_counter",
    "render_frame",
]

COUNTER_BITS = 32
"""Bits of the embedded counter; the index wraps modulo ``2**32`` (4.5 years at 30 fps)."""

MIN_WIDTH = 2 * COUNTER_BITS
"""Narrowest frame: two pixels per counter cell, so a cell always has a centre to sample."""

MIN_HEIGHT = 24
"""Shortest frame: counter band (8 rows) + legend (4 rows) + some moving pattern."""

_AMBIGUOUS = (64.0, 192.0)
"""Cell means strictly inside this grey band are neither black nor white: not a synthetic frame."""


class FrameCounterError(ValueError):
    """The image does not carry a readable synthetic frame counter."""


def _geometry(width: int, height: int) -> tuple[int, int]:
    """Return ``(cell_w, cell_h)`` for a frame size, validating the minimum size."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise CameraConfigError(
            f"synthetic frames need at least {MIN_WIDTH}×{MIN_HEIGHT} pixels "
            f"(width × height), got {width}×{height}"
        )
    return width // COUNTER_BITS, max(4, height // 24)


@functools.lru_cache(maxsize=8)
def _ramps(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static x, y and diagonal ramps (uint8) that the moving pattern shifts per frame."""
    x = (np.arange(width, dtype=np.int64) * 256 // width).astype(np.uint8)[None, :]
    y = (np.arange(height, dtype=np.int64) * 256 // height).astype(np.uint8)[:, None]
    diag = (x.astype(np.int64) + y.astype(np.int64)).astype(np.uint8)
    for ramp in (x, y, diag):
        ramp.flags.writeable = False
    return x, y, diag


def render_frame(index: int, width: int, height: int) -> np.ndarray:
    """Return synthetic frame ``index`` as a fresh ``height×width×3`` uint8 RGB array."""
    cell_w, cell_h = _geometry(width, height)
    image = np.empty((height, width, 3), dtype=np.uint8)
    x, y, diag = _ramps(width, height)
    # uint8 arithmetic wraps modulo 256, which is exactly the scrolling we want.
    # (Scalars are reduced in Python first: numpy warns on uint8 *scalar* overflow.)
    image[..., 0] = x + np.uint8(index * 4 % 256)
    image[..., 1] = y + np.uint8(index * 3 % 256)
    image[..., 2] = diag + np.uint8(index * 7 % 256)
    _draw_counter(image, index % (1 << COUNTER_BITS), cell_w, cell_h)
    _draw_legend(image, cell_h)
    return image


def _draw_counter(image: np.ndarray, value: int, cell_w: int, cell_h: int) -> None:
    """Draw the counter band: bits on the first cell row, inverted bits on the second."""
    image[: 2 * cell_h] = 128
    for bit in range(COUNTER_BITS):
        level = 255 if (value >> (COUNTER_BITS - 1 - bit)) & 1 else 0
        cols = slice(bit * cell_w, (bit + 1) * cell_w)
        image[:cell_h, cols] = level
        image[cell_h : 2 * cell_h, cols] = 255 - level


def _draw_legend(image: np.ndarray, cell_h: int) -> None:
    """Draw the red | green | blue legend below the counter band."""
    rows = slice(2 * cell_h, 3 * cell_h)
    third = image.shape[1] // 3
    image[rows] = 0
    for channel in range(3):
        stop = image.shape[1] if channel == 2 else (channel + 1) * third
        image[rows, channel * third : stop, channel] = 255


def decode_frame_counter(image: np.ndarray) -> int:
    """Read the frame index back from a synthetic frame (RGB or grey, possibly lossy-coded).

    Raises :class:`FrameCounterError` when the image is not a synthetic frame (wrong shape,
    ambiguous cells, or the inverted row disagreeing with the bit row).
    """
    if image.ndim not in (2, 3) or image.shape[0] < MIN_HEIGHT or image.shape[1] < MIN_WIDTH:
        raise FrameCounterError(
            f"a synthetic frame is at least {MIN_HEIGHT}×{MIN_WIDTH} (H×W), got {image.shape}"
        )
    height, width = image.shape[:2]
    cell_w, cell_h = _geometry(width, height)
    grey = image.astype(np.float32).mean(axis=2) if image.ndim == 3 else image.astype(np.float32)
    value = 0
    for bit in range(COUNTER_BITS):
        top = _cell_mean(grey, 0, bit * cell_w, cell_w, cell_h)
        bottom = _cell_mean(grey, cell_h, bit * cell_w, cell_w, cell_h)
        if not (top > 127.5) ^ (bottom > 127.5) or _ambiguous(top) or _ambiguous(bottom):
            raise FrameCounterError(
                f"counter bit {bit} is unreadable (cell means {top:.0f} / {bottom:.0f}; "
                "a synthetic frame has a black/white cell above its inverse)"
            )
        value = (value << 1) | int(top > 127.5)
    return value


def _cell_mean(grey: np.ndarray, row0: int, col0: int, cell_w: int, cell_h: int) -> float:
    """Mean of the centre of one cell (a quarter-cell margin tolerates blurred edges)."""
    my, mx = cell_h // 4, cell_w // 4
    return float(grey[row0 + my : row0 + cell_h - my, col0 + mx : col0 + cell_w - mx].mean())


def _ambiguous(mean: float) -> bool:
    """True when a cell is mid-grey rather than black or white."""
    return _AMBIGUOUS[0] < mean < _AMBIGUOUS[1]


class SyntheticCamera:
    """A :class:`~rtrun.drivers.camera.Camera` that renders :func:`render_frame` images.

    ``read()`` returns frame ``start_index``, then ``start_index + 1``, ... without blocking;
    the counter keeps running across ``disconnect()``/``connect()`` so a reconnect is visible
    as continuity, not a restart.
    """

    def __init__(
        self, *, width: int = 640, height: int = 480, fps: float = 30.0, start_index: int = 0
    ) -> None:
        """Validate the size and fps; nothing is rendered before ``connect()``."""
        _geometry(width, height)
        if not fps > 0:
            raise CameraConfigError(f"synthetic camera fps must be > 0, got {fps}")
        self._info = CameraInfo(source="synthetic", width=width, height=height, fps=float(fps))
        self._next = start_index
        self._connected = False

    @property
    def is_connected(self) -> bool:
        """True between ``connect()`` and ``disconnect()``."""
        return self._connected

    @property
    def info(self) -> CameraInfo:
        """Size and nominal fps of the stream."""
        return self._info

    @property
    def next_index(self) -> int:
        """Counter value the next ``read()`` will embed."""
        return self._next

    def connect(self) -> None:
        """Start delivering frames."""
        if self._connected:
            raise CameraError("synthetic camera is already connected; disconnect() first")
        self._connected = True

    def read(self) -> np.ndarray:
        """Return the next frame (never blocks)."""
        if not self._connected:
            raise CameraDisconnectedError("synthetic camera is not connected; call connect()")
        image = render_frame(self._next, self._info.width, self._info.height)
        self._next += 1
        return image

    def disconnect(self) -> None:
        """Stop delivering frames (idempotent)."""
        self._connected = False
