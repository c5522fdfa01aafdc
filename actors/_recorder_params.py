"""Parameters of the ``recorder`` actor (:mod:`rtrun.actors.recorder`) and its input names.

Split out of the actor's module to keep it small; import them from
:mod:`rtrun.actors.recorder`, which re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

from rtrun import PathParam

from ._dataset_video import VideoOptions

__all__ = [
    "ALIGNED_INPUTS",
    "CAMERA_INPUTS",
    "DEFAULT_KEYS",
    "PIPELINE_ROWS",
    "RECORDED_INPUTS",
    "RecorderParams",
    "recorded_inputs",
]

CAMERA_INPUTS = ("cam0", "cam1", "cam2", "cam3")
"""Camera inputs; four covers bimanual setups (two wrists + two scene cameras)."""
ALIGNED_INPUTS = ("state", "action", *CAMERA_INPUTS)
"""Inputs put on the fps grid."""
RECORDED_INPUTS = (*ALIGNED_INPUTS, "intervention")
"""Inputs recorded when connected (``control`` steers episodes and is never recorded)."""
DEFAULT_KEYS = {"state": "observation.state", "action": "action", "intervention": "intervention"}
"""Default feature key per input (LeRobot's names); cameras: ``observation.images.<camera>``."""
PIPELINE_ROWS = 60
"""Rows waiting for the writer thread: 2 s at 30 fps, longer than a typical ``save_episode`` of
the previous episode (0.6 s for 10 s of two 640x480 cameras, docs/recording.md)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecorderParams:
    """Parameters of the ``recorder`` kind."""

    root: Annotated[str, PathParam()]
    """Dataset folder (created if absent, resumed if it holds a dataset); relative: to the graph file."""
    fps: int = 30
    """Dataset frame rate: the grid rows are assembled on."""
    features: dict[str, str] = field(default_factory=dict)
    """Feature key per input, overriding the defaults (e.g. ``{cam0 = "observation.images.top"}``);
    naming an input that is not connected fails the start."""
    joint_suffix: str = ".pos"
    """Appended to each joint name in the ``names`` of state/action features: LeRobot's
    ``shoulder_pan.pos`` (names already ending with it are kept); ``""``: bare joint names."""
    robot_type: str | None = None
    """``robot_type`` stored in info.json when the dataset is created."""
    task: str = "record"
    """Task of episodes started without one (auto mode, ``start`` with an empty task)."""
    auto_episode_s: float = 0.0
    """> 0: auto-episode mode, an episode is saved every this many seconds. 0: control only."""
    auto_reset_s: float = 0.0
    """Auto mode: pause between the end of an episode and the start of the next."""
    max_episodes: int = 0
    """Auto mode: stop starting episodes after this many saves in this run (0: unlimited)."""
    on_stop: Literal["save", "discard"] = "save"
    """What a graceful stop does with the episode being recorded."""
    resume: bool = True
    """Append to an existing dataset at ``root``; False refuses to touch one."""
    capture_times: bool = True
    """Store real capture times in the ``capture_time`` column."""
    tolerance_frames: float = 2.0
    """A sample serves a tick while at most this many dataset frames old."""
    tolerance_s: dict[str, float] = field(default_factory=dict)
    """Per-input tolerance in seconds, overriding ``tolerance_frames`` (e.g. a 10 Hz action)."""
    settle_s: float = 0.1
    """Delivery-latency allowance: a tick is final this long after it (or once every stream
    delivered a later sample); ``save`` waits this long for late samples."""
    probe_timeout_s: float = 10.0
    """At start, wait at most this long for the first message of each connected input."""
    codec: str = "libx264"
    """Video encoder (``libx264``, ``libsvtav1``, ``h264_nvenc``...)."""
    pix_fmt: str = "yuv420p"
    """Video pixel format."""
    crf: int | None = 30
    """Video quality (lower is better); None: encoder default."""
    gop: int = 2
    """Keyframe interval in frames (LeRobot's default 2)."""
    preset: str | None = "veryfast"
    """Encoder speed preset."""
    video_threads: int = 1
    """Encoder threads per camera (1 bounds each camera to one core)."""
    encoder_queue: int = 30
    """Images buffered per camera encoder before rows are dropped."""
    pipeline_rows: int = PIPELINE_ROWS
    """Rows buffered between the event loop and the writer thread before rows are dropped."""

    def __post_init__(self) -> None:
        if unknown := sorted(set(self.features) - set(RECORDED_INPUTS)):
            raise ValueError(f"features names unknown inputs {unknown}; recorded inputs: {RECORDED_INPUTS}")
        if self.fps <= 0 or self.pipeline_rows < 1 or self.encoder_queue < 1:
            raise ValueError("fps, pipeline_rows and encoder_queue must be >= 1")
        if min(self.auto_episode_s, self.auto_reset_s, self.settle_s, self.max_episodes) < 0:
            raise ValueError("auto_episode_s, auto_reset_s, settle_s and max_episodes must be >= 0")

    def video_options(self) -> VideoOptions:
        """The encoder settings these parameters describe."""
        return VideoOptions(
            codec=self.codec,
            pix_fmt=self.pix_fmt,
            crf=self.crf,
            gop=self.gop,
            preset=self.preset,
            threads=self.video_threads,
        )


def recorded_inputs(has_input: Callable[[str], bool], features: Mapping[str, str]) -> tuple[str, ...]:
    """The inputs to record: the connected ones (``has_input``) among :data:`RECORDED_INPUTS`.

    Raises ValueError when none of them is aligned (nothing to put on the grid) or when
    ``features`` names an input left unconnected.
    """
    recorded = tuple(n for n in RECORDED_INPUTS if has_input(n))
    if not any(n in ALIGNED_INPUTS for n in recorded):
        raise ValueError(f"nothing to record; connect at least one of {', '.join(ALIGNED_INPUTS)}")
    if unknown := sorted(set(features) - set(recorded)):
        raise ValueError(f"features names inputs that are not connected: {unknown}")
    return recorded
