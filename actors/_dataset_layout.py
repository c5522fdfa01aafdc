"""LeRobotDataset v3 layout: paths, feature specs, ``info.json``, parquet schemas, errors.

Pure helpers shared by the writer and the checker (see ``shared/reference/dataset-v3.md``).
pyarrow is imported lazily inside the functions that need it.

Feature specs follow LeRobot's dictionaries: ``{"dtype": ..., "shape": [...], "names": [...]}``.
Supported (design decision, the common robot-learning case): numeric or ``bool`` vectors of shape
``[n]`` and ``video`` features of shape ``[height, width, 3]``. ``image`` (PNG bytes embedded in
the parquet), ``string`` and multi-dimensional array features are refused with
:class:`FeatureSpecError` rather than written in a form we cannot test against LeRobot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rtrun import ConfigurationError, RtrunError

__all__ = [
    "CODEBASE_VERSION",
    "DEFAULT_FEATURES",
    "DatasetError",
    "DatasetLockedError",
    "EpisodeStateError",
    "FeatureMismatchError",
    "FeatureSpecError",
    "FrameError",
    "VideoOptionsMismatchError",
    "atomic_write_bytes",
    "compare_features",
    "normalize_features",
]

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
"""Max files per chunk directory (LeRobot ``DEFAULT_CHUNK_SIZE``)."""
DATA_FILES_SIZE_MB = 100
"""Data/episode parquet rotation size (LeRobot ``DEFAULT_DATA_FILE_SIZE_IN_MB``)."""
VIDEO_FILES_SIZE_MB = 200
"""mp4 rotation size (LeRobot 0.4.4 ``DEFAULT_VIDEO_FILE_SIZE_IN_MB``)."""

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"

DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
"""Columns the writer fills itself (the caller never passes them), in LeRobot's order."""

NUMERIC_DTYPES = frozenset(
    {"bool", "float16", "float32", "float64", "int8", "int16", "int32", "int64"}
    | {"uint8", "uint16", "uint32", "uint64"}
)
_RESERVED = frozenset(DEFAULT_FEATURES) | {"task"}


class DatasetError(RtrunError):
    """Base class of the dataset writer's errors."""


class FeatureSpecError(DatasetError, ValueError):
    """A feature specification is invalid; the message names the feature and the rule."""


class FeatureMismatchError(DatasetError, ConfigurationError):
    """Refused to append: the requested features differ from the dataset's.

    A :class:`rtrun.ConfigurationError`: no restart can change the dataset on disk, so the
    recorder is not restarted and the graph stops.

    ``differences`` lists every difference, one human-readable line each.
    """

    def __init__(self, root: Path, differences: list[str]) -> None:
        self.root = root
        self.differences = tuple(differences)
        lines = "\n  - ".join(differences)
        super().__init__(
            f"refusing to append to {root}: features differ from the dataset's "
            f"(appending requires identical features):\n  - {lines}"
        )


class VideoOptionsMismatchError(DatasetError, ConfigurationError):
    """Refused to append: encoder settings differ from those the dataset was recorded with.

    A :class:`rtrun.ConfigurationError` (deterministic: not restarted, the graph stops).
    """

    def __init__(self, root: Path, differences: list[str]) -> None:
        self.root = root
        self.differences = tuple(differences)
        super().__init__(
            f"refusing to append to {root}: video options differ from the recorded ones "
            f"(changing encoder settings mid-dataset is unsupported): {'; '.join(differences)}"
        )


class FrameError(DatasetError, ValueError):
    """``add_frame`` got a row or image that does not match the features."""


class EpisodeStateError(DatasetError):
    """An episode operation was called in the wrong state (e.g. ``add_frame`` before
    ``start_episode``, ``save_episode`` with no frames)."""


class DatasetLockedError(DatasetError):
    """Another writer (this process or another) has the dataset open."""


def _check_names(key: str, names: object, length: int) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, Mapping):  # LeRobot allows {"axes": [...]}: keep the flat list
        values = next(iter(names.values()), [])
        names = values
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise FeatureSpecError(f"feature {key!r}: names must be a list of strings or null")
    if len(names) != length:
        raise FeatureSpecError(f"feature {key!r}: {len(names)} names for a dimension of size {length}")
    return list(names)


def _normalize_one(key: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(key, str) or not key or "/" in key:
        raise FeatureSpecError(f"feature {key!r}: keys must be non-empty and contain no '/'")
    if key in _RESERVED:
        raise FeatureSpecError(f"feature {key!r} is filled by the writer; do not declare it")
    dtype = spec.get("dtype")
    shape = [int(n) for n in spec.get("shape", ())]
    if dtype == "video":
        if len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
            raise FeatureSpecError(f"feature {key!r}: video shape must be [height, width, 3]")
        if shape[0] % 2 or shape[1] % 2:
            raise FeatureSpecError(f"feature {key!r}: yuv420p needs even height and width")
        return {"dtype": "video", "shape": shape, "names": ["height", "width", "channels"]}
    if dtype not in NUMERIC_DTYPES:
        raise FeatureSpecError(f"feature {key!r}: dtype {dtype!r} unsupported (numeric, bool or video only)")
    if len(shape) != 1 or shape[0] < 1:
        raise FeatureSpecError(f"feature {key!r}: vector shape must be [n] with n >= 1")
    return {"dtype": dtype, "shape": shape, "names": _check_names(key, spec.get("names"), shape[0])}


def normalize_features(
    features: Mapping[str, Mapping[str, Any]], *, from_info: bool = False
) -> dict[str, dict[str, Any]]:
    """Validate user features and return them as stored in ``info.json`` (without defaults).

    With ``from_info`` (features read back from an ``info.json``) the writer-filled default
    features are skipped instead of refused. A video's ``info`` block is always ignored.
    """
    skip = DEFAULT_FEATURES if from_info else {}
    out = {k: _normalize_one(k, v) for k, v in features.items() if k not in skip}
    if not out:
        raise FeatureSpecError("a dataset needs at least one feature")
    return out


def compare_features(have: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    """Every difference between two normalized feature dicts, as readable lines."""
    diffs = [f"{k!r} is in the dataset but not requested" for k in have if k not in want]
    diffs += [f"{k!r} is requested but not in the dataset" for k in want if k not in have]
    for key in (k for k in want if k in have):
        for attr in ("dtype", "shape", "names"):
            if have[key].get(attr) != want[key].get(attr):
                diffs.append(
                    f"{key!r}: {attr} {want[key].get(attr)!r} requested, dataset has {have[key].get(attr)!r}"
                )
    if not diffs and list(have) != list(want):
        diffs.append(f"feature order differs: dataset {list(have)}, requested {list(want)}")
    return diffs


def video_keys(features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Keys of the video features, in declaration order."""
    return [k for k, f in features.items() if f["dtype"] == "video"]


def new_info(*, fps: int, features: Mapping[str, Any], robot_type: str | None) -> dict[str, Any]:
    """``info.json`` of an empty dataset (LeRobot's ``create_empty_dataset_info``)."""
    has_video = bool(video_keys(features))
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_MB,
        "fps": fps,
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if has_video else None,
        "features": {**{k: dict(v) for k, v in features.items()}, **DEFAULT_FEATURES},
    }


def next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """LeRobot's ``update_chunk_file_indices``: the ``(chunk, file)`` after ``(chunk, file)``."""
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def _hf_feature(spec: Mapping[str, Any]) -> dict[str, Any]:
    value = {"dtype": spec["dtype"], "_type": "Value"}
    if list(spec["shape"]) == [1]:
        return value
    return {"feature": value, "length": int(spec["shape"][0]), "_type": "List"}


def arrow_schema(features: Mapping[str, Mapping[str, Any]]) -> Any:
    """pyarrow schema of the data files, with the ``huggingface`` feature metadata that the
    ``datasets`` library writes (``Features.to_dict()`` format of datasets 4.x)."""
    import pyarrow as pa

    fields, hf = [], {}
    for key, spec in features.items():
        if spec["dtype"] == "video":
            continue
        base = pa.from_numpy_dtype(spec["dtype"])
        n = int(spec["shape"][0])
        fields.append(
            pa.field(
                key, base if n == 1 and list(spec["shape"]) == [1] else pa.list_(pa.field("item", base), n)
            )
        )
        hf[key] = _hf_feature(spec)
    meta = {"huggingface": json.dumps({"info": {"features": hf}})}
    return pa.schema(fields, metadata=meta)


def data_table(features: Mapping[str, Mapping[str, Any]], cols: Mapping[str, Any]) -> Any:
    """A data-file table from ``cols`` (feature key -> ``(n, ...)`` numpy array)."""
    import pyarrow as pa

    schema = arrow_schema(features)
    arrays = []
    for fld in schema:
        values = cols[fld.name].reshape(-1)
        if pa.types.is_fixed_size_list(fld.type):
            flat = pa.array(values, type=fld.type.value_type)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, fld.type.list_size))
        else:
            arrays.append(pa.array(values, type=fld.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def tasks_table(tasks: Mapping[str, int]) -> Any:
    """``meta/tasks.parquet`` as pandas writes it: task strings are the (unnamed) index."""
    import pyarrow as pa

    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    ordered = sorted(tasks.items(), key=lambda kv: kv[1])
    schema = pa.schema(
        [pa.field("task_index", pa.int64()), pa.field("__index_level_0__", pa.string())],
        metadata={"pandas": json.dumps(pandas_meta)},
    )
    return pa.table(
        [pa.array([i for _, i in ordered], pa.int64()), pa.array([t for t, _ in ordered])],
        schema=schema,
    )


def read_tasks(path: Path) -> dict[str, int]:
    """Task string -> task_index from a ``tasks.parquet`` (written by rtrun or by pandas)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
    index_cols = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    name_col = index_cols[0] if index_cols else "task"
    return dict(zip(table.column(name_col).to_pylist(), table.column("task_index").to_pylist(), strict=True))


def fsync_dir(path: Path) -> None:
    """fsync a directory so the renames inside it survive a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def json_bytes(data: object) -> bytes:
    """JSON as LeRobot writes it (indent 4, UTF-8)."""
    return json.dumps(data, indent=4, ensure_ascii=False).encode()
