"""Torch building blocks of the built-in policies (imports torch: only import lazily).

``rtrun.models.act`` and ``rtrun.models.flow`` import this module inside functions, so
``import rtrun.models`` never imports torch (the ``torch`` extra is optional).

Architecture (shared by both policies, small enough for a CPU control computer):

* :class:`ObsEncoder` turns the state vector into one token and every camera image into a
  3x4 grid of tokens (a two-layer strided conv, adaptive pooling, so any resolution works),
  tagged with a learned per-source embedding.
* :class:`ChunkTransformer` encodes those tokens (``nn.TransformerEncoder``) and decodes
  ``chunk_size`` query tokens against them (``nn.TransformerDecoder``), ACT's encoder/decoder
  layout without the VAE (ACT runs inference with the latent at zero anyway).
* :class:`ACTNet`: queries are learned positions -> a linear head gives the chunk.
* :class:`FlowNet`: queries are the noisy chunk ``x_t`` embedded, plus position and a sinusoidal
  flow-time embedding -> a linear head gives the velocity ``v(x_t, t)``; the observation memory
  is encoded once per chunk and reused for every integration step.

Dropout is 0 and modules stay in eval mode: these are inference objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

IMAGE_GRID = (3, 4)
"""Tokens per camera image (rows, cols) after adaptive pooling: 12 tokens keep attention cheap."""
CONV_CHANNELS = (16, 32)
"""Channels of the two image conv layers (tiny: this is a CPU demo backbone, not a ResNet)."""


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global RNG seeded, restoring the caller's RNG state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def set_threads(num_threads: int) -> None:
    """Bound torch's intra-op thread pool (process-wide) so control actors keep their rate."""
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    if torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)


class ImageEncoder(nn.Module):
    """``(B, 3, H, W)`` float image -> ``(B, 12, dim)`` tokens."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        c1, c2 = CONV_CHANNELS
        self.conv = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(IMAGE_GRID),
        )
        self.proj = nn.Linear(c2, dim)
        self.pos = nn.Parameter(torch.randn(IMAGE_GRID[0] * IMAGE_GRID[1], dim) * 0.02)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Encode one camera."""
        feats = self.conv(image).flatten(2).transpose(1, 2)
        return self.proj(feats) + self.pos


class ObsEncoder(nn.Module):
    """State vector + images -> observation tokens ``(B, N, dim)``."""

    def __init__(self, state_dim: int, n_images: int, dim: int) -> None:
        super().__init__()
        if state_dim == 0 and n_images == 0:
            raise ValueError("a policy needs at least one state or image input feature")
        self.state_proj = nn.Linear(state_dim, dim) if state_dim else None
        self.image_enc = ImageEncoder(dim) if n_images else None
        self.source = nn.Embedding(1 + n_images, dim)

    def forward(self, state: torch.Tensor | None, images: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate the state token and every camera's tokens."""
        tokens = []
        if self.state_proj is not None and state is not None:
            tokens.append((self.state_proj(state) + self.source.weight[0]).unsqueeze(1))
        for i, image in enumerate(images):
            assert self.image_enc is not None
            tokens.append(self.image_enc(image) + self.source.weight[1 + i])
        return torch.cat(tokens, dim=1)


class ChunkTransformer(nn.Module):
    """Encoder over observation tokens, decoder over ``chunk_size`` query tokens."""

    def __init__(
        self, *, dim: int, n_heads: int, dim_ff: int, enc_layers: int, dec_layers: int, chunk: int
    ) -> None:
        super().__init__()
        enc = nn.TransformerEncoderLayer(dim, n_heads, dim_ff, dropout=0.0, batch_first=True)
        dec = nn.TransformerDecoderLayer(dim, n_heads, dim_ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(enc, enc_layers, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dec, dec_layers)
        self.query_pos = nn.Parameter(torch.randn(chunk, dim) * 0.02)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Observation memory ``(B, N, dim)``."""
        return self.encoder(tokens)

    def decode(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """``(B, T, dim)`` decoded queries (positions added here)."""
        return self.decoder(queries + self.query_pos, memory)


class ACTNet(nn.Module):
    """ACT-style chunk predictor: observation -> ``(B, T, A)``."""

    def __init__(self, *, state_dim: int, n_images: int, n_actions: int, chunk: int, **kw: int) -> None:
        super().__init__()
        dim = kw["dim"]
        self.obs = ObsEncoder(state_dim, n_images, dim)
        self.core = ChunkTransformer(chunk=chunk, **kw)
        self.head = nn.Linear(dim, n_actions)

    def forward(self, state: torch.Tensor | None, images: list[torch.Tensor]) -> torch.Tensor:
        """Predict one chunk per batch row."""
        memory = self.core.encode(self.obs(state, images))
        queries = torch.zeros(memory.shape[0], *self.core.query_pos.shape, dtype=memory.dtype)
        return self.head(self.core.decode(queries, memory))


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of flow time ``t`` (shape ``(B,)``) -> ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t[:, None].float() * 1000.0 * freqs[None, :]
    emb = torch.cat([angles.sin(), angles.cos()], dim=1)
    return nn.functional.pad(emb, (0, dim - 2 * half))


class FlowNet(nn.Module):
    """Velocity field ``v(x_t, t | observation)`` over a whole chunk."""

    def __init__(self, *, state_dim: int, n_images: int, n_actions: int, chunk: int, **kw: int) -> None:
        super().__init__()
        dim = kw["dim"]
        self.dim = dim
        self.obs = ObsEncoder(state_dim, n_images, dim)
        self.core = ChunkTransformer(chunk=chunk, **kw)
        self.action_in = nn.Linear(n_actions, dim)
        self.time_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.head = nn.Linear(dim, n_actions)

    def encode(self, state: torch.Tensor | None, images: list[torch.Tensor]) -> torch.Tensor:
        """Observation memory, computed once per chunk."""
        return self.core.encode(self.obs(state, images))

    def velocity(self, memory: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``(B, T, A)`` velocity at flow time ``t`` (``(B,)``, 1 = noise, 0 = data)."""
        temb = self.time_mlp(time_embedding(t, self.dim))[:, None, :]
        return self.head(self.core.decode(self.action_in(x_t) + temb, memory))
