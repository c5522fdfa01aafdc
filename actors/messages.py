"""The message catalogue of the robot actors: every type exchanged between built-in actors.

Conventions (DESIGN §2):

* Times are runtime-clock instants (``anyio.current_time()``, seconds) stamped at capture. They
  never cross hosts as instants: a remote peer echoes them opaquely and reports durations only.
* Images are RGB ``uint8`` ``(H, W, 3)`` everywhere; the camera driver is the only place that
  converts from BGR.
* Joint values are in *robot space*: the units of the motor bus after calibration (degrees,
  mid-point centred; gripper 0–100), in the order of ``names``. The simulator uses the same units
  so the same graph drives a real or simulated arm.
* Producers mark arrays read-only (``array.flags.writeable = False``).
* Observation dictionaries use LeRobot's feature names: ``observation.state`` and
  ``observation.images.<camera>``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray
from rtrun import Message, message

__all__ = [
    "CONTRACT_ERRORS",
    "ERROR_KINDS",
    "EpisodeControl",
    "Flag",
    "Frame",
    "InferenceReply",
    "InferenceRequest",
    "JointCommand",
    "JointState",
]


@message(tag="rtrun.Frame", version=1)
class Frame(Message):
    """One RGB image from a camera actor."""

    camera: str
    """Camera id (the actor id in graph.toml)."""
    seq: int
    """Per-camera counter; a gap means frames were dropped upstream."""
    t_capture: float
    """Runtime clock at capture, seconds."""
    image: NDArray[np.uint8]
    """H×W×3 RGB; read-only."""


@message(tag="rtrun.JointState", version=1)
class JointState(Message):
    """Measured joint positions of one arm, read from the bus at the control rate."""

    names: tuple[str, ...]
    """Joint names, in the order of ``position``."""
    position: NDArray[np.float32]
    """Positions in robot units (degrees; gripper 0–100); read-only."""
    seq: int
    """Per-bus read counter."""
    t_read: float
    """Runtime clock when the read completed, seconds."""
    velocity: NDArray[np.float32] | None = None
    """Velocities in robot units per second, when the bus reports them."""


@message(tag="rtrun.JointCommand", version=1)
class JointCommand(Message):
    """Goal positions for an arm (one control tick)."""

    names: tuple[str, ...]
    """Joint names, in the order of ``position`` (a subset of the bus's joints is allowed)."""
    position: NDArray[np.float32]
    """Goal positions in robot units; read-only."""
    seq: int
    """Producer counter (never repeats within an episode)."""
    t_issued: float
    """Runtime clock when the command was issued, seconds."""
    episode: int = 0
    """Episode the command belongs to."""
    source: str = ""
    """Producer id (``action_queue``, ``teleop``...), for logs and recordings."""


@message(tag="rtrun.InferenceRequest", version=1)
class InferenceRequest(Message):
    """A robot asks a policy worker for a new action chunk.

    Designed for a worker serving several robots: ``client`` names the robot session,
    ``epoch`` changes on every (re)connection, ``seq`` orders requests within an epoch.
    """

    client: str
    """Client (robot session) id; the worker keeps per-client state under it."""
    epoch: int
    """Session epoch; replies from an older epoch are dropped by the client."""
    seq: int
    """Request sequence number within the epoch."""
    episode: int
    """Episode the observation belongs to."""
    observation: dict[str, np.ndarray]
    """Features by LeRobot name (``observation.state``, ``observation.images.<cam>``)."""
    inference_delay: int
    """RTC delay in control steps the policy should assume (``>= 0``)."""
    prefix: np.ndarray | None
    """Unexecuted model-space tail of the previous chunk ``(k, A)``, or None."""
    t_sent: float
    """Client clock at send; echoed opaquely in the reply (never compared across hosts)."""
    task: str = ""
    """Language instruction for VLA policies."""


ERROR_KINDS: Final[tuple[str, ...]] = (
    "observation_mismatch",
    "action_dim",
    "bad_request",
    "busy",
    "policy_output",
    "inference",
)
"""Values of ``InferenceReply.error_kind`` (a fixed set: a new kind is a new schema version).

``observation_mismatch``: the observation does not fit the policy's features; ``action_dim``: the
policy's action dimension does not fit; ``bad_request``: a malformed request (prefix shape,
negative delay); ``busy``: the worker serves other clients already; ``policy_output``: the policy
returned a bad chunk (NaN, wrong shape); ``inference``: the policy raised."""

CONTRACT_ERRORS: Final[frozenset[str]] = frozenset({"observation_mismatch", "action_dim", "bad_request"})
"""Kinds no retry can fix (the deployment is wrong): the merger enters fail-safe state ``DEAD``
before the robot moves. The others are transient: retry, the queue's fallback covers the gap."""


@message(tag="rtrun.InferenceReply", version=1)
class InferenceReply(Message):
    """A policy worker answers one request (or reports why it could not).

    ``error_kind`` was added to version 1 without a bump: the field is additive (decoders ignore
    unknown fields, and a missing one takes its default).
    """

    client: str
    """Client id from the request."""
    epoch: int
    """Epoch from the request."""
    seq: int
    """Sequence number of the request answered."""
    episode: int
    """Episode from the request."""
    chunk: np.ndarray
    """Model-space chunk ``(T, A)`` float32 (RTC prefixes are taken from it); empty on error."""
    chunk_robot: np.ndarray
    """Robot-space chunk ``(T, A)`` float32 after the postprocessor; empty on error."""
    action_names: tuple[str, ...]
    """Column names of ``chunk_robot``."""
    t_request: float
    """The request's ``t_sent``, echoed unchanged."""
    queue_wait_s: float
    """Time the request waited in the worker's mailbox, seconds (a duration)."""
    inference_s: float
    """Time spent in ``predict_chunk`` and processors, seconds (a duration)."""
    error: str = ""
    """Empty on success; otherwise why no chunk was produced, for people (bad observation...)."""
    error_kind: str = ""
    """Empty on success; otherwise what kind of failure, one of :data:`ERROR_KINDS`, for code:
    the merger stops on a :data:`CONTRACT_ERRORS` kind and retries the others. A reply with an
    ``error`` and no kind (a sender older than this field) counts as ``inference``."""

    def __post_init__(self) -> None:
        if self.error and not self.error_kind:
            object.__setattr__(self, "error_kind", "inference")
        if self.error_kind and self.error_kind not in ERROR_KINDS:
            raise ValueError(
                f"InferenceReply.error_kind must be one of {ERROR_KINDS}, got {self.error_kind!r}"
            )
        if self.error_kind and not self.error:
            raise ValueError(f"InferenceReply.error_kind {self.error_kind!r} needs an error text")


@message(tag="rtrun.EpisodeControl", version=1)
class EpisodeControl(Message):
    """Steers episodes: recorder, action queue and RTC merger all listen to it."""

    command: str
    """``start`` | ``save`` | ``discard`` | ``reset`` | ``set_task``."""
    episode: int = -1
    """Episode index the command refers to (-1: the current one)."""
    task: str = ""
    """Task string for ``start``/``set_task``."""

    def __post_init__(self) -> None:
        if self.command not in ("start", "save", "discard", "reset", "set_task"):
            raise ValueError(
                f"EpisodeControl.command must be start|save|discard|reset|set_task, got {self.command!r}"
            )


@message(tag="rtrun.Flag", version=1)
class Flag(Message):
    """A named boolean signal (e.g. ``intervention`` from a teleop pedal)."""

    name: str
    """Signal name."""
    value: bool
    """Current value."""
    t: float
    """Runtime clock when it changed, seconds."""
