"""Built-in flow-matching chunk policy with RTC prefix guidance (torch, CPU-sized).

Theory of operation
-------------------
Flow matching (pi0 / SmolVLA convention, as in LeRobot): ``x_t = t·noise + (1−t)·actions``, so
``t = 1`` is pure noise and ``t = 0`` is the chunk; the network predicts the velocity
``v = noise − actions``. Inference integrates ``dx/dt = v(x_t, t)`` with ``num_steps`` Euler
steps of ``dt = −1/num_steps`` from ``t = 1`` to ``t = 0``. At every step the clean chunk implied
by the current estimate is ``x̂₁ = x_t − t·v``.

Real-time chunking (lerobot-rtc.md §5). When the caller passes ``prefix`` (the unexecuted
model-space tail of the previous chunk) and ``inference_delay = d``, each velocity is replaced by
the guided velocity of LeRobot's ``RTCProcessor.denoise_step``::

    err = (prefix_padded − x̂₁) · w          # w = prefix weights, one per chunk row
    v'  = v − g(t) · err                     # g = min(max_guidance_weight, c·(…)), §5.2

with ``w = get_prefix_weights(d, h, chunk_size, schedule)``: 1 on the ``d`` rows that will
already have been executed when the chunk arrives (frozen), a ZEROS/ONES/LINEAR/EXP ramp up to the
guided horizon ``h``, 0 after. Because ``x_{t+dt} = x_t − v'/N``, guidance moves the estimate
toward the prefix by ``g/N · w · (prefix − x̂₁)`` per step, strongest (``g`` = max) near noise and
still ~0.9 of the gap at the last step, so the frozen rows end close to the prefix and the free
rows continue smoothly from it. As in LeRobot's shipped code, the vector-Jacobian product is the
identity (``v`` is computed without gradient tracking), so no autograd is needed at inference.

Deviation (deliberate): the guided horizon is ``h = min(execution_horizon, len(prefix))``, capped
to the *real* prefix. LeRobot's server first zero-pads a short prefix to ``H`` rows and then guides
the padded rows toward zeros; rtrun never guides toward fabricated zeros (lerobot-rtc.md §12.1).

Noise comes from a private ``torch.Generator`` seeded with ``config.noise_seed``; :meth:`reset`
re-seeds it, so an episode replays identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .act import ACTConfig, TorchChunkPolicy
from .policy import ModelError
from .rtc import PREFIX_SCHEDULES, get_prefix_weights, guidance_weight

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["FlowConfig", "FlowPolicy", "guided_velocity"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowConfig(ACTConfig):
    """Architecture and sampler of :class:`FlowPolicy`."""

    num_steps: int = 10
    """Euler integration steps (LeRobot pi0/SmolVLA default 10)."""
    prefix_attention_schedule: str = "LINEAR"
    """RTC prefix weights schedule: ZEROS, ONES, LINEAR or EXP (LeRobot default LINEAR)."""
    max_guidance_weight: float = 10.0
    """Cap of the guidance gain ``g`` (LeRobot default 10.0, must be > 0)."""
    noise_seed: int = 0
    """Seed of the sampling noise generator (re-applied by ``reset()``)."""

    def __post_init__(self) -> None:
        super(FlowConfig, self).__post_init__()
        if self.num_steps < 1:
            raise ModelError(f"num_steps must be >= 1, got {self.num_steps}")
        if self.prefix_attention_schedule not in PREFIX_SCHEDULES:
            raise ModelError(
                f"prefix_attention_schedule must be one of {PREFIX_SCHEDULES}, "
                f"got {self.prefix_attention_schedule!r}"
            )
        if not self.max_guidance_weight > 0:
            raise ModelError(f"max_guidance_weight must be > 0, got {self.max_guidance_weight}")


def guided_velocity(
    x_t: torch.Tensor,
    v: torch.Tensor,
    prefix: torch.Tensor,
    weights: torch.Tensor,
    time: float,
    max_guidance_weight: float,
) -> torch.Tensor:
    """RTC guided velocity ``v − g·(prefix − (x_t − time·v))·w`` (lerobot-rtc.md §5.2).

    ``prefix`` is padded to ``x_t``'s last two dims; ``weights`` has one entry per chunk row.
    """
    x1 = x_t - time * v
    err = (prefix - x1) * weights[:, None]
    return v - guidance_weight(time, max_guidance_weight) * err


class FlowPolicy(TorchChunkPolicy):
    """Flow-matching chunk policy; guides toward ``prefix`` when given (RTC)."""

    type_name: ClassVar[str] = "flow"
    config_cls: ClassVar[type[Any]] = FlowConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.config, FlowConfig):
            raise ModelError(f"FlowPolicy needs a FlowConfig, got {type(self.config).__name__}")
        self._gen = self._torch.Generator().manual_seed(self.config.noise_seed)

    def _build(self, tu: Any, state_dim: int) -> nn.Module:
        return tu.FlowNet(
            state_dim=state_dim,
            n_images=len(self._images),
            n_actions=self._metadata.n_actions,
            chunk=self._metadata.chunk_size,
            **self.config.net_kwargs(),
        )

    def reset(self) -> None:
        """Re-seed the noise generator (episodes replay identically)."""
        self._gen.manual_seed(self.config.noise_seed)

    def prefix_weights(self, inference_delay: int, prefix_len: int) -> np.ndarray:
        """Row weights used for a prefix of ``prefix_len`` rows (see the module docstring)."""
        horizon = min(self._metadata.execution_horizon, prefix_len, self._metadata.chunk_size)
        return get_prefix_weights(
            inference_delay,
            horizon,
            self._metadata.chunk_size,
            self.config.prefix_attention_schedule,
        )

    def predict_chunk(
        self,
        observation: Mapping[str, np.ndarray],
        *,
        inference_delay: int = 0,
        prefix: np.ndarray | None = None,
    ) -> np.ndarray:
        """``float32 (chunk_size, n_actions)`` in model space, RTC-guided when ``prefix``."""
        prev = self._check_prefix(prefix, inference_delay)
        from ._torch_util import set_threads

        set_threads(self.num_threads)
        torch = self._torch
        shape = (1, self._metadata.chunk_size, self._metadata.n_actions)
        noise = torch.randn(shape, generator=self._gen)
        with torch.inference_mode():
            state, images = self._inputs(observation)
            memory = self.net.encode(state, images)
            guide = None if prev is None else self._guide_tensors(prev, inference_delay)
            return self._to_chunk(self._integrate(memory, noise, guide))

    def _guide_tensors(self, prev: np.ndarray, inference_delay: int) -> tuple[Any, Any]:
        weights = self.prefix_weights(inference_delay, len(prev))
        padded = np.zeros((self._metadata.chunk_size, self._metadata.n_actions), np.float32)
        h = min(len(prev), self._metadata.chunk_size)
        padded[:h] = prev[:h]
        torch = self._torch
        return torch.from_numpy(padded)[None], torch.from_numpy(weights)

    def _integrate(self, memory: Any, x: Any, guide: tuple[Any, Any] | None) -> Any:
        n = self.config.num_steps
        dt = -1.0 / n
        for k in range(n):
            time = 1.0 - k / n
            v = self.net.velocity(memory, x, self._torch.full((x.shape[0],), time))
            if guide is not None:
                v = guided_velocity(x, v, guide[0], guide[1], time, self.config.max_guidance_weight)
            x = x + dt * v
        return x
