"""Feature statistics for the LeRobotDataset v3 writer (per episode and aggregated).

Pure numpy, no I/O. Formulas follow LeRobot 0.4.4 (``lerobot.datasets.compute_stats``) so
``stats.json`` and the episodes' ``stats/<feature>/<stat>`` columns mean what a LeRobot user
expects: ``min, max, mean, std, count, q01, q10, q50, q90, q99``; vector features per
dimension; image/video features per channel, scaled to [0, 1], shaped ``[3, 1, 1]``; the dataset
statistics are the count-weighted aggregation of the episodes' (``aggregate_feature_stats``:
parallel variance, count-weighted quantiles).

Design decision: image statistics come from a 256-bin histogram per channel accumulated while
the episode streams (:class:`ImageStatsAccumulator`), on frames spatially subsampled like
LeRobot's ``auto_downsample_height_width``. min/max/mean/std are exact for the sampled pixels
and quantiles are exact to the histogram bin (1/255), with bounded memory whatever the episode
length -- LeRobot instead re-reads ~100 sampled PNGs at ``save_episode``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "QUANTILES",
    "ImageStatsAccumulator",
    "aggregate_stats",
    "stats_from_json",
    "stats_to_json",
    "vector_stats",
]

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
"""LeRobot's ``DEFAULT_QUANTILES``; the keys are ``q01, q10, q50, q90, q99``."""

_Q_KEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)

_DOWNSAMPLE_TARGET = 150
_DOWNSAMPLE_THRESHOLD = 300
"""LeRobot's ``auto_downsample_height_width`` defaults: images whose longer side is >= 300 px are
strided down to ~150 px before statistics."""

Stats = dict[str, np.ndarray]


def vector_stats(values: np.ndarray) -> Stats:
    """Statistics of an ``(n, d)`` array along axis 0 (LeRobot: quantiles = mean if n < 2)."""
    data = np.asarray(values, dtype=np.float64)
    stats: Stats = {
        "min": data.min(axis=0),
        "max": data.max(axis=0),
        "mean": data.mean(axis=0),
        "std": data.std(axis=0),
        "count": np.array([data.shape[0]]),
    }
    for key, q in zip(_Q_KEYS, QUANTILES, strict=True):
        stats[key] = np.quantile(data, q, axis=0) if data.shape[0] >= 2 else stats["mean"].copy()
    return stats


class ImageStatsAccumulator:
    """Per-channel statistics of uint8 RGB images, accumulated one image at a time."""

    def __init__(self) -> None:
        self._hist = np.zeros((3, 256), dtype=np.int64)
        self.images = 0

    def add(self, image: np.ndarray) -> None:
        """Accumulate one H×W×3 uint8 image (subsampled like LeRobot for large images)."""
        h, w = image.shape[:2]
        if max(h, w) >= _DOWNSAMPLE_THRESHOLD:
            step = max(1, max(h, w) // _DOWNSAMPLE_TARGET)
            image = image[::step, ::step]
        for c in range(3):
            self._hist[c] += np.bincount(image[..., c].ravel(), minlength=256)
        self.images += 1

    def result(self) -> Stats | None:
        """The statistics (values in [0, 1], shape (3, 1, 1)), or None if nothing was added."""
        if self.images == 0:
            return None
        levels = np.arange(256, dtype=np.float64) / 255.0
        total = self._hist.sum(axis=1).astype(np.float64)
        mean = (self._hist * levels).sum(axis=1) / total
        var = (self._hist * (levels[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
        nonzero = self._hist > 0
        first = nonzero.argmax(axis=1)
        last = 255 - nonzero[:, ::-1].argmax(axis=1)
        cdf = np.cumsum(self._hist, axis=1) / total[:, None]
        stats: Stats = {
            "min": levels[first],
            "max": levels[last],
            "mean": mean,
            "std": np.sqrt(var),
        }
        for key, q in zip(_Q_KEYS, QUANTILES, strict=True):
            stats[key] = levels[(cdf >= q).argmax(axis=1)]
        out = {k: v.reshape(3, 1, 1) for k, v in stats.items()}
        out["count"] = np.array([self.images])
        return out


def _aggregate_feature(items: list[Stats]) -> Stats:
    means = np.stack([s["mean"] for s in items])
    variances = np.stack([s["std"] ** 2 for s in items])
    counts = np.stack([s["count"] for s in items]).astype(np.float64)
    total = counts.sum(axis=0)
    while counts.ndim < means.ndim:
        counts = np.expand_dims(counts, axis=-1)
    mean = (means * counts).sum(axis=0) / total
    variance = ((variances + (means - mean) ** 2) * counts).sum(axis=0) / total
    out: Stats = {
        "min": np.min(np.stack([s["min"] for s in items]), axis=0),
        "max": np.max(np.stack([s["max"] for s in items]), axis=0),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": total.astype(np.int64),
    }
    for key in _Q_KEYS:
        if all(key in s for s in items):
            out[key] = (np.stack([s[key] for s in items]) * counts).sum(axis=0) / total
    return out


def aggregate_stats(items: list[Mapping[str, Stats]]) -> dict[str, Stats]:
    """Aggregate several ``{feature: stats}`` dicts (LeRobot's ``aggregate_stats``)."""
    keys = {k for item in items for k in item}
    return {k: _aggregate_feature([dict(item[k]) for item in items if k in item]) for k in keys}


def stats_to_json(stats: Mapping[str, Stats]) -> dict[str, dict[str, Any]]:
    """``{feature: {stat: nested list}}`` for ``stats.json`` / the episodes parquet."""
    return {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in stats.items()}


def stats_from_json(data: Mapping[str, Mapping[str, Any]]) -> dict[str, Stats]:
    """Inverse of :func:`stats_to_json`."""
    return {f: {k: np.asarray(v) for k, v in s.items()} for f, s in data.items()}
