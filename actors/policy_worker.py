"""The ``policy_worker`` actor: hosts one :class:`~rtrun.models.policy.Policy` and answers requests.

Theory of operation
-------------------
::

    [requests*] ─InferenceRequest─▶ Mailboxes (one latest-only slot per client)
                                        │ round robin over ready clients
                                        ▼
               validate (features via rename_map, prefix width, delay)
                                        │ error → InferenceReply(error_kind=..., error=...)
                                        ▼
               ctx.run_sync: predict_chunk → check_chunk → postprocessor   (worker thread)
                                        ▼
    [replies] ◀─InferenceReply(chunk, chunk_robot, queue_wait_s, inference_s)

* **Off the event loop.** Loading, warm-up and inference run in the actor's worker thread
  (``ctx.run_sync``, one at a time); torch's thread pool is bounded by ``torch_threads``
  (default 1) so control actors in the same process keep their rate. The GIL still costs the
  event loop a few ms per inference: for jitter-sensitive robots place the worker in its own
  process/host (README.md, "Running a policy on the robot").
* **Readiness.** ``task_status.started()`` only after the policy is loaded and warmed up
  (``warmup`` calls), so the graph starts the merger against a worker that answers quickly.
* **Several clients.** Every request names its ``client``. Each client has one latest-only
  mailbox: a newer request replaces an unserved one (counted as superseded, never a backlog).
  Ready clients are served round robin in sorted id order, starting after the last one served
  (lerobot-rtc.md §10.4). Per-client state: the episode seen last and counters; with
  ``serving = "exclusive"`` (stateful policies; ``auto`` picks it from
  ``metadata.stateful``) only the first client is served and ``policy.reset()`` runs at every
  episode boundary; ``shared`` never resets the policy. At most ``max_clients`` clients.
* **Errors are replies.** A request that does not fit the policy (observation features,
  prefix width, delay), a policy output of the wrong shape or non-finite values, or a policy
  exception become a reply with ``error_kind`` (one of
  :data:`rtrun.actors.messages.ERROR_KINDS`) and ``error`` (the message for people); the
  worker keeps serving. Only
  ``max_consecutive_errors`` policy failures in a row fail the actor (the supervisor decides).

Policy sources (``checkpoint`` parameter)
-----------------------------------------
``"demo:act"`` / ``"demo:flow"``: a random-init built-in checkpoint generated once into
``cache_dir`` (``make_demo_checkpoint``; cameras from ``demo_cameras``); ``"scripted"``: the
SO-101 :class:`ScriptedPolicy`; ``"sleep"`` / ``"sleep:<seconds>"``: a :class:`SleepPolicy` (a
step-index ramp; the seconds are a real ``time.sleep`` in the worker thread); anything else: a
checkpoint directory (rtrun or LeRobot layout, :func:`rtrun.models.checkpoint.load_policy`).

Test hooks: ``simulated_latency_s`` adds an ``anyio.sleep`` after each inference (virtual-time
tests model slow policies without sleeping for real), and ``inference_thread = false`` loads, warms up
and runs instantaneous test policies on the event loop (a worker thread lets a MockClock autojump while
it computes, which makes virtual-time runs nondeterministic).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import anyio
import anyio.lowlevel
import numpy as np
import rtrun
from anyio.abc import TaskStatus
from rtrun.models.policy import (
    ActionDimensionError,
    CheckpointError,
    MetadataError,
    ModelError,
    ObservationMismatchError,
    Policy,
    PolicyOutputError,
    check_chunk,
    check_observation,
)

from ._diagnostics import RateLimiter, describe_observation_mismatch
from .messages import InferenceReply, InferenceRequest
from .rtc_messages import readonly

__all__ = [
    "REQUEST_INPUTS",
    "Mailboxes",
    "PolicyWorkerActor",
    "PolicyWorkerParams",
    "load_policy_source",
]

R = TypeVar("R")

REQUEST_INPUTS = ("requests", "requests_2", "requests_3", "requests_4")
"""Request input slots (one per connected merger; mailboxes are keyed by ``client``, not slot)."""

DEFAULT_CACHE_DIR = "~/.cache/rtrun/demo-checkpoints"
"""Where ``demo:*`` checkpoints are generated (once per option set)."""

_EMPTY = np.zeros((0, 0), dtype=np.float32)
_EMPTY.flags.writeable = False


def is_builtin_source(checkpoint: str) -> bool:
    """Whether ``checkpoint`` names a built-in policy source rather than a directory."""
    return checkpoint.startswith(("demo:", "sleep:")) or checkpoint in ("scripted", "sleep")


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyWorkerParams:
    """Parameters of the ``policy_worker`` actor."""

    checkpoint: Annotated[str, rtrun.PathParam(keep=is_builtin_source)] = "demo:act"
    """Policy source: ``demo:act``, ``demo:flow``, ``scripted``, ``sleep[:s]`` or a directory
    (relative: to the graph file)."""
    action_names: tuple[str, ...] = ()
    """Expected ordered action names (checked against the checkpoint); empty: no check."""
    rename_map: dict[str, str] = field(default_factory=dict)
    """Observation keys provided -> policy feature names (``observation.images.wrist`` -> ``...top``)."""
    torch_threads: int = 1
    """torch intra-op threads (process-wide): keep control actors of this process on time."""
    serving: Literal["auto", "shared", "exclusive"] = "auto"
    """``exclusive`` (stateful policies: one client, reset per episode), ``shared`` or ``auto``."""
    max_clients: int = 8
    """Clients served at once; more are answered ``busy``."""
    warmup: int = 1
    """Warm-up inferences before readiness."""
    max_consecutive_errors: int = 10
    """Policy failures in a row before the actor fails (LeRobot: 10)."""
    cache_dir: Annotated[str, rtrun.PathParam()] = DEFAULT_CACHE_DIR
    """Directory for generated ``demo:*`` checkpoints."""
    demo_cameras: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """``demo:*``: cameras ``{name = [height, width]}`` (feature ``observation.images.<name>``)."""
    demo_chunk_size: int = 30
    """``demo:*``, ``scripted`` and ``sleep``: chunk length (steps)."""
    fps: float = 30.0
    """``demo:*``, ``scripted`` and ``sleep``: trained action rate."""
    simulated_latency_s: float = 0.0
    """Test hook: extra latency per inference modelled with ``anyio.sleep`` (virtual time)."""
    inference_thread: bool = True
    """Run inference in the worker thread (False: on the event loop — instantaneous test policies only)."""
    log_interval_s: float = 5.0
    """Minimum interval between two log lines of the same kind."""

    def __post_init__(self) -> None:
        if self.torch_threads < 1 or self.max_clients < 1 or self.warmup < 0:
            raise ValueError("torch_threads and max_clients must be >= 1, warmup >= 0")
        if self.simulated_latency_s < 0 or not math.isfinite(self.simulated_latency_s):
            raise ValueError(f"simulated_latency_s must be finite and >= 0, got {self.simulated_latency_s}")
        for name, size in self.demo_cameras.items():
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"demo_cameras.{name} must be [height, width], got {list(size)}")


# ------------------------------------------------------------------------------ loading


def _demo_dir(p: PolicyWorkerParams, kind: str) -> Path:
    options = {"kind": kind, "cameras": p.demo_cameras, "chunk": p.demo_chunk_size, "fps": p.fps}
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]
    return Path(os.path.expanduser(p.cache_dir)) / f"demo-{kind}-{digest}"


def _make_demo(p: PolicyWorkerParams, kind: str) -> Path:
    """Generate (once, atomically) the demo checkpoint for these options."""
    from rtrun.models.checkpoint import make_demo_checkpoint

    final = _demo_dir(p, kind)
    if (final / "config.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
    try:
        cameras = {k: (int(v[0]), int(v[1])) for k, v in p.demo_cameras.items()}
        make_demo_checkpoint(tmp, kind, cameras=cameras, chunk_size=p.demo_chunk_size, fps=p.fps)
        try:
            tmp.rename(final)
        except OSError:  # another process won the race: its checkpoint is identical
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_policy_source(p: PolicyWorkerParams) -> Policy:
    """Build the policy named by ``p.checkpoint`` (blocking: run it in a worker thread)."""
    from rtrun.models import testing_policies as tp
    from rtrun.models.checkpoint import load_policy
    from rtrun.models.policy import FeatureSpec

    spec = p.checkpoint
    names = p.action_names or tp.SO101_ACTION_NAMES
    if spec.startswith("demo:"):
        return load_policy(
            _make_demo(p, spec[5:]), action_names=p.action_names or None, num_threads=p.torch_threads
        )
    if spec == "scripted":
        return tp.ScriptedPolicy.so101(chunk_size=p.demo_chunk_size, fps=p.fps)
    if spec == "sleep" or spec.startswith("sleep:"):
        latency = float(spec[6:] or 0.0) if spec.startswith("sleep:") else 0.0
        state = {"observation.state": FeatureSpec(shape=(len(names),))}
        return tp.SleepPolicy(latency, p.demo_chunk_size, names, fps=p.fps, input_features=state)
    return load_policy(spec, action_names=p.action_names or None, num_threads=p.torch_threads)


# ----------------------------------------------------------------------------- mailboxes


@dataclass(slots=True)
class _Slot:
    request: InferenceRequest | None = None
    received: float = 0.0
    superseded: int = 0
    superseded_total: int = 0
    episode: int = -1
    served: int = 0
    errors: int = 0


class Mailboxes:
    """One latest-only slot per client, round-robin selection (sans-io; lerobot-rtc.md §10.3-4)."""

    def __init__(self, max_clients: int) -> None:
        self.max_clients = max_clients
        self.slots: dict[str, _Slot] = {}
        self._last_served: str | None = None
        self.refused = 0
        """Requests refused because ``max_clients`` clients already exist."""

    def deposit(self, req: InferenceRequest, now: float) -> bool:
        """Store ``req`` in its client's slot (replacing an unserved one); False when full."""
        slot = self.slots.get(req.client)
        if slot is None:
            if len(self.slots) >= self.max_clients:
                self.refused += 1
                return False
            slot = self.slots[req.client] = _Slot()
        if slot.request is not None:
            slot.superseded += 1
            slot.superseded_total += 1
        slot.request, slot.received = req, now
        return True

    def next_ready(self) -> str | None:
        """The next client to serve: first ready id after the last served, wrapping around."""
        ready = sorted(c for c, s in self.slots.items() if s.request is not None)
        if not ready:
            return None
        last = self._last_served
        after = [c for c in ready if last is None or c > last]
        return (after or ready)[0]

    def take(self, client: str) -> tuple[InferenceRequest, float, int]:
        """Empty ``client``'s slot: ``(request, received_at, superseded_since_last_take)``."""
        slot = self.slots[client]
        assert slot.request is not None
        req, received, superseded = slot.request, slot.received, slot.superseded
        slot.request, slot.superseded = None, 0
        self._last_served = client
        return req, received, superseded


# ---------------------------------------------------------------------------------- actor


class _RequestError(Exception):
    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


def _infer(
    policy: Policy, obs: Mapping[str, np.ndarray], delay: int, prefix: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """predict_chunk + check_chunk + postprocessor (runs in the worker thread)."""
    chunk = check_chunk(policy.metadata, policy.predict_chunk(obs, inference_delay=delay, prefix=prefix))
    post = getattr(policy, "postprocessor", None)
    robot = chunk if post is None else np.asarray(post(chunk, observation=obs), dtype=np.float32)
    if robot.shape != chunk.shape:
        raise PolicyOutputError(f"postprocessor must keep the chunk shape {chunk.shape}, got {robot.shape}")
    if not np.isfinite(robot).all():
        raise PolicyOutputError("postprocessor produced NaN or inf")
    return chunk, robot


POLICY_FAILURES = (ModelError, ValueError, RuntimeError, ArithmeticError)
"""Exceptions of ``predict_chunk`` answered as ``inference`` errors (torch raises RuntimeError)."""


class PolicyWorkerActor(rtrun.Actor):
    """Hosts a policy; answers inference requests off the event loop (module doc)."""

    inputs = {
        name: rtrun.Input(InferenceRequest, required=name == "requests", doc="requests from an rtc_merger")
        for name in REQUEST_INPUTS
    }
    outputs = {"replies": rtrun.Output(InferenceReply, doc="chunks (or errors) for every client")}
    Params = PolicyWorkerParams
    requires: ClassVar[Mapping[str, str]] = {"torch": "pip install 'rtrun[torch]'"}

    async def run(
        self,
        ctx: rtrun.ActorContext[PolicyWorkerParams],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Load and warm up, then serve mailboxes round robin."""
        p = ctx.params
        self.ctx = ctx
        t0 = time.perf_counter()
        self.policy: Policy = await self._load(p)
        meta = self.policy.metadata
        self.exclusive = p.serving == "exclusive" or (p.serving == "auto" and meta.stateful)
        for _ in range(p.warmup):
            await self._call(self.policy.warmup)
        if self.exclusive:
            self.policy.reset()
        ctx.log.info(
            "policy %s ready in %.2f s: %d actions, chunk %d at %.0f fps, %s serving",
            p.checkpoint, time.perf_counter() - t0, meta.n_actions, meta.chunk_size, meta.fps,
            "exclusive" if self.exclusive else "shared",
        )  # fmt: skip
        self.mail = Mailboxes(1 if self.exclusive else p.max_clients)
        self.limiter = RateLimiter(p.log_interval_s)
        self.wake = anyio.Event()
        self.counts = {"requests": 0, "replies": 0, "errors": 0, "superseded": 0}
        self.consecutive_failures = 0
        self.last = (0.0, 0.0)
        self._publish()
        async with anyio.create_task_group() as tg:
            for name in REQUEST_INPUTS:
                if name == "requests" or ctx.has_input(name):
                    tg.start_soon(self._pump, name)
            task_status.started()
            await self._serve_forever()

    async def _pump(self, name: str) -> None:
        async for req in self.ctx.input(name):
            self.counts["requests"] += 1
            if self.mail.deposit(req, anyio.current_time()):
                self.wake.set()
                continue
            owner = ", ".join(sorted(self.mail.slots))
            why = f"worker serves {len(self.mail.slots)} client(s) already ({owner}); " + (
                "serving is exclusive (stateful policy)" if self.exclusive else "raise max_clients"
            )
            await self._reply_error(req, "busy", why, 0.0)

    async def _serve_forever(self) -> None:
        while True:
            client = self.mail.next_ready()
            if client is None:
                await self.wake.wait()
                self.wake = anyio.Event()
                continue
            req, received, superseded = self.mail.take(client)
            self.counts["superseded"] += superseded
            await self._serve(req, anyio.current_time() - received)
            self._publish()

    async def _serve(self, req: InferenceRequest, queue_wait: float) -> None:
        slot = self.mail.slots[req.client]
        try:
            obs, prefix = self._validate(req)
        except _RequestError as exc:
            slot.errors += 1
            await self._reply_error(req, exc.kind, str(exc), queue_wait)
            return
        if slot.episode != req.episode:
            slot.episode = req.episode
            if self.exclusive:
                self.policy.reset()
        t0 = anyio.current_time()
        try:
            chunk, robot = await self._call(_infer, self.policy, obs, req.inference_delay, prefix)
        except POLICY_FAILURES as exc:
            slot.errors += 1
            await self._policy_failed(req, exc, queue_wait, anyio.current_time() - t0)
            return
        if self.ctx.params.simulated_latency_s:
            await anyio.sleep(self.ctx.params.simulated_latency_s)
        self.consecutive_failures = 0
        slot.served += 1
        await self._reply(req, chunk, robot, queue_wait, anyio.current_time() - t0)

    def _validate(self, req: InferenceRequest) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        meta = self.policy.metadata
        rename = self.ctx.params.rename_map
        try:
            obs = check_observation(meta, req.observation, rename_map=rename)
        except ObservationMismatchError as exc:
            where = f"policy_worker {self.ctx.id!r} param rename_map"
            raise _RequestError(
                "observation_mismatch", describe_observation_mismatch(exc, rename_map=rename, where=where)
            ) from exc
        if req.inference_delay < 0:
            raise _RequestError("bad_request", f"inference_delay must be >= 0, got {req.inference_delay}")
        prefix = None if req.prefix is None else np.asarray(req.prefix, dtype=np.float32)
        if prefix is not None and (prefix.ndim != 2 or prefix.shape[1] != meta.n_actions):
            raise _RequestError(
                "bad_request",
                f"prefix must have shape (k, {meta.n_actions}) (policy action names {list(meta.action_names)}), "
                f"got {prefix.shape}",
            )
        if prefix is not None and len(prefix) == 0:
            prefix = None
        return obs, prefix

    async def _load(self, p: PolicyWorkerParams) -> Policy:
        """Load the policy. A checkpoint that cannot fit (missing, malformed, other action names)
        is a :class:`rtrun.ConfigurationError`: a restart would only fail the same way."""
        try:
            return await self._call(load_policy_source, p)
        except (CheckpointError, MetadataError) as exc:
            raise rtrun.ConfigurationError(f"policy_worker {self.ctx.id!r}: {exc}") from exc

    async def _call(self, func: Callable[..., R], *args: Any) -> R:
        """Run a blocking policy call in the worker thread (or inline: ``inference_thread``)."""
        if self.ctx.params.inference_thread:
            return await self.ctx.run_sync(func, *args)
        await anyio.lowlevel.checkpoint()
        return func(*args)

    async def _policy_failed(
        self, req: InferenceRequest, exc: Exception, queue_wait: float, spent: float
    ) -> None:
        if isinstance(exc, ActionDimensionError):
            kind = "action_dim"
        elif isinstance(exc, PolicyOutputError):
            kind = "policy_output"
        else:
            kind = "inference"
            self.consecutive_failures += 1
        text = f"{type(exc).__name__}: {exc}"
        if self.limiter.allow(kind, anyio.current_time()) is not None:
            self.ctx.log.error("client %r seq %d: %s: %s", req.client, req.seq, kind, text)
        await self._reply_error(req, kind, text, queue_wait, spent)
        limit = self.ctx.params.max_consecutive_errors
        if self.consecutive_failures >= limit:
            raise rtrun.ActorError(
                f"policy_worker {self.ctx.id!r}: {limit} consecutive policy failures; last: {text}"
            )

    async def _reply(
        self, req: InferenceRequest, chunk: np.ndarray, robot: np.ndarray, queue_wait: float, spent: float
    ) -> None:
        self.last = (queue_wait, spent)
        model_ro, robot_ro = readonly(chunk), readonly(robot)
        assert model_ro is not None and robot_ro is not None
        self.counts["replies"] += 1
        await self.ctx.output("replies").send(
            InferenceReply(
                client=req.client, epoch=req.epoch, seq=req.seq, episode=req.episode,
                chunk=model_ro, chunk_robot=robot_ro, action_names=self.policy.metadata.action_names,
                t_request=req.t_sent, queue_wait_s=queue_wait, inference_s=spent,
            )
        )  # fmt: skip

    async def _reply_error(
        self, req: InferenceRequest, kind: str, text: str, queue_wait: float, spent: float = 0.0
    ) -> None:
        self.counts["errors"] += 1
        if kind != "inference" and self.limiter.allow(kind, anyio.current_time()) is not None:
            self.ctx.log.error("client %r seq %d refused: %s", req.client, req.seq, text)
        await self.ctx.output("replies").send(
            InferenceReply(
                client=req.client, epoch=req.epoch, seq=req.seq, episode=req.episode,
                chunk=_EMPTY, chunk_robot=_EMPTY, action_names=self.policy.metadata.action_names,
                t_request=req.t_sent, queue_wait_s=queue_wait, inference_s=spent,
                error=text, error_kind=kind,
            )
        )  # fmt: skip

    def _publish(self) -> None:
        self.ctx.set_status(
            ready=True,
            checkpoint=self.ctx.params.checkpoint,
            serving="exclusive" if self.exclusive else "shared",
            clients=sorted(self.mail.slots),
            refused=self.mail.refused,
            last_queue_wait_ms=round(self.last[0] * 1e3, 3),
            last_inference_ms=round(self.last[1] * 1e3, 3),
            **self.counts,
        )
