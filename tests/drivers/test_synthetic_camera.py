"""Synthetic camera: counter round trip, RGB layout, determinism, rejection of foreign images."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtrun.drivers.camera import CameraConfigError, CameraDisconnectedError
from rtrun.drivers.synthetic_camera import (
    COUNTER_BITS,
    FrameCounterError,
    SyntheticCamera,
    decode_frame_counter,
    render_frame,
)


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=2**COUNTER_BITS - 1),
    width=st.integers(min_value=64, max_value=400),
    height=st.integers(min_value=24, max_value=300),
)
def test_counter_round_trip(index: int, width: int, height: int) -> None:
    image = render_frame(index, width, height)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert decode_frame_counter(image) == index


def test_counter_wraps_modulo_2_32() -> None:
    assert decode_frame_counter(render_frame(2**32 + 5, 64, 24)) == 5


def test_counter_survives_grey_conversion_and_mild_noise() -> None:
    image = render_frame(0xA5A5_1234, 320, 240)
    assert decode_frame_counter(image.mean(axis=2).astype(np.uint8)) == 0xA5A5_1234
    noise = np.random.default_rng(0).integers(-40, 41, size=image.shape)
    noisy = np.clip(image.astype(np.int64) + noise, 0, 255).astype(np.uint8)
    assert decode_frame_counter(noisy) == 0xA5A5_1234


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((48, 64, 3), np.uint8),
        np.full((48, 64, 3), 255, np.uint8),
        np.random.default_rng(1).integers(0, 256, (48, 64, 3)).astype(np.uint8),
        np.zeros((10, 64, 3), np.uint8),
    ],
    ids=["black", "white", "noise", "too-small"],
)
def test_foreign_images_are_rejected(image: np.ndarray) -> None:
    with pytest.raises(FrameCounterError):
        decode_frame_counter(image)


def test_legend_is_red_green_blue_left_to_right() -> None:
    image = render_frame(7, 96, 48)  # cell_h = 4: counter rows 0–7, legend rows 8–11
    row = image[10]
    assert row[5].tolist() == [255, 0, 0]
    assert row[48].tolist() == [0, 255, 0]
    assert row[90].tolist() == [0, 0, 255]


def test_deterministic_and_moving() -> None:
    a, b = SyntheticCamera(width=128, height=64), SyntheticCamera(width=128, height=64)
    a.connect()
    b.connect()
    frames_a = [a.read() for _ in range(5)]
    frames_b = [b.read() for _ in range(5)]
    for fa, fb in zip(frames_a, frames_b, strict=True):
        assert np.array_equal(fa, fb)
    # the moving pattern (below the counter band and legend) changes every frame
    assert not np.array_equal(frames_a[0][20:], frames_a[1][20:])
    assert [decode_frame_counter(f) for f in frames_a] == [0, 1, 2, 3, 4]


def test_counter_continues_across_reconnect() -> None:
    cam = SyntheticCamera(width=64, height=24, start_index=41)
    cam.connect()
    assert decode_frame_counter(cam.read()) == 41
    cam.disconnect()
    with pytest.raises(CameraDisconnectedError):
        cam.read()
    cam.connect()
    assert decode_frame_counter(cam.read()) == 42
    assert cam.next_index == 43


@pytest.mark.parametrize(("width", "height", "fps"), [(63, 24, 30.0), (64, 23, 30.0), (64, 24, 0.0)])
def test_bad_settings_are_config_errors(width: int, height: int, fps: float) -> None:
    with pytest.raises(CameraConfigError):
        SyntheticCamera(width=width, height=height, fps=fps)
