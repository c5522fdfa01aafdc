"""The Camera contract, checked against every camera that needs no device or optional library."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from rtrun.drivers.camera import (
    Camera,
    CameraConfigError,
    CameraDisconnectedError,
    CameraError,
    CameraTimeoutError,
    check_rgb_image,
)
from rtrun.drivers.fake import FakeCamera
from rtrun.drivers.synthetic_camera import SyntheticCamera

FACTORIES: dict[str, Callable[[], Camera]] = {
    "synthetic": lambda: SyntheticCamera(width=96, height=48, fps=15.0),
    "fake": lambda: FakeCamera(width=96, height=48, fps=15.0),
}


@pytest.fixture(params=sorted(FACTORIES))
def camera(request: pytest.FixtureRequest) -> Camera:
    return FACTORIES[request.param]()


def test_error_tree() -> None:
    for cls in (CameraConfigError, CameraDisconnectedError, CameraTimeoutError):
        assert issubclass(cls, CameraError)
    assert issubclass(CameraError, Exception)
    assert not issubclass(CameraTimeoutError, CameraDisconnectedError)


def test_implements_protocol(camera: Camera) -> None:
    assert isinstance(camera, Camera)


def test_info_describes_the_stream(camera: Camera) -> None:
    assert (camera.info.width, camera.info.height, camera.info.fps) == (96, 48, 15.0)


def test_read_before_connect_is_a_disconnected_error(camera: Camera) -> None:
    assert not camera.is_connected
    with pytest.raises(CameraDisconnectedError, match="not connected"):
        camera.read()


def test_frames_are_owned_contiguous_rgb(camera: Camera) -> None:
    camera.connect()
    first, second = camera.read(), camera.read()
    for image in (first, second):
        assert image.shape == (48, 96, 3)
        assert image.dtype == np.uint8
        assert image.flags.c_contiguous and image.flags.writeable and image.flags.owndata
    assert not np.array_equal(first, second)
    first[:] = 0  # the caller owns the buffer: scribbling on it must not affect later frames
    assert camera.read().any()


def test_double_connect_is_refused_and_disconnect_is_idempotent(camera: Camera) -> None:
    camera.connect()
    with pytest.raises(CameraError, match="already connected"):
        camera.connect()
    camera.disconnect()
    camera.disconnect()
    assert not camera.is_connected
    camera.connect()
    assert camera.read().shape == (48, 96, 3)


def test_check_rgb_image_names_the_rule() -> None:
    check_rgb_image(np.zeros((2, 3, 3), np.uint8), width=3, height=2)
    with pytest.raises(CameraError, match=r"uint8 RGB of shape \(2, 3, 3\)"):
        check_rgb_image(np.zeros((2, 3), np.uint8), width=3, height=2)
    with pytest.raises(CameraError, match="float32"):
        check_rgb_image(np.zeros((2, 3, 3), np.float32), width=3, height=2)
