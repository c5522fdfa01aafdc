"""The ``recorder`` actor in a graph with fake sources: episodes by control messages, auto mode,
alignment from capture times, resume, feature mismatch, and LeRobot 0.4.4 as the oracle.

The fake sources below are also used (by import path) by test_recorder_crash.py and
test_recorder_overload.py. Their capture times are exact (``t0 + seq / rate`` on the runtime
clock) and every sample carries its ``seq`` (joint 0, or the image's brightness), so a test can
tell which sample went into which row.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import rtrun
import trio.testing
from anyio.abc import TaskStatus
from rtrun import Actor, ActorContext, Output, Ticker

from ..conftest import THREAD_FRIENDLY_VIRTUAL

pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("av")

from rtrun.actors._dataset_check import check_dataset  # noqa: E402
from rtrun.actors._dataset_writer import WriterStatistics  # noqa: E402
from rtrun.actors._recorder_params import recorded_inputs  # noqa: E402
from rtrun.actors._recorder_thread import (  # noqa: E402
    CONTROL_BACKLOG,
    Close,
    EndEpisode,
    StartEpisode,
    WriterThread,
    _best_effort_scheduling,
)
from rtrun.actors.messages import EpisodeControl, Flag, Frame, JointCommand, JointState  # noqa: E402
from rtrun.actors.recorder import RecorderActor, RecorderConfigError  # noqa: E402

JOINTS = ("shoulder_pan.pos", "elbow_flex.pos", "gripper.pos")
FPS = 30
VIRTUAL_SAFE_TIMEOUT_S = 1e6
"""Start/stop budget of the recorder in test graphs (clock seconds; see recorder_graph)."""


@pytest.fixture(
    params=[
        pytest.param("trio-virtual", id="trio-virtual"),
        pytest.param("asyncio", id="asyncio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """Both backends; the virtual clock only autojumps after 50 ms of real quiescence, because
    the recorder's writer thread works in real time (autojump 0 would leap over its work)."""
    if request.param == "asyncio":
        return "asyncio", {}
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0.05)}


# ------------------------------------------------------------------------------- fake sources


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeCameraParams:
    """Parameters of :class:`FakeCamera`."""

    fps: float = 30.0
    """Frame rate."""
    width: int = 64
    """Image width."""
    height: int = 48
    """Image height."""
    latency_s: float = 0.0
    """Frames are delivered this long after their capture time."""
    noise: bool = False
    """Random noise images (expensive to encode) instead of flat ones."""


def seq_image(seq: int, height: int, width: int) -> np.ndarray:
    """A flat image whose brightness encodes ``seq % 16`` (robust to lossy coding)."""
    img = np.full((height, width, 3), 8 + 16 * (seq % 16), np.uint8)
    img.flags.writeable = False
    return img


def image_seq(img: np.ndarray) -> int:
    """Inverse of :func:`seq_image` (``seq % 16``)."""
    return round((float(np.mean(img)) - 8) / 16) % 16


async def send_at(out: rtrun.OutputPort[Any], msg: object, when: float) -> None:
    """Deliver ``msg`` at ``when`` (models transport/processing latency after capture)."""
    await anyio.sleep_until(when)
    await out.send(msg)


class FakeCamera(Actor):
    """Publishes ``Frame`` at ``fps``, capture time ``t0 + seq / fps``; ready after frame 0."""

    outputs = {"frames": Output(Frame)}
    Params = FakeCameraParams

    async def run(self, ctx: ActorContext[FakeCameraParams], *, task_status: TaskStatus[None]) -> None:
        p = ctx.params
        out = ctx.output("frames")
        rng = np.random.default_rng(0)
        noise = [rng.integers(0, 256, (p.height, p.width, 3), np.uint8) for _ in range(4)] if p.noise else []
        for img in noise:
            img.flags.writeable = False
        async with Ticker(p.fps, mode="portable") as ticker, anyio.create_task_group() as tg:
            async for tick in ticker:
                seq = tick.index
                img = noise[seq % 4] if noise else seq_image(seq, p.height, p.width)
                frame = Frame(camera=ctx.id, seq=seq, t_capture=tick.deadline, image=img)
                tg.start_soon(send_at, out, frame, tick.deadline + p.latency_s)
                if seq == 0:
                    task_status.started()


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeArmParams:
    """Parameters of :class:`FakeArm`."""

    rate_hz: float = 100.0
    """Publish rate."""
    joints: tuple[str, ...] = JOINTS
    """Joint names."""
    latency_s: float = 0.0
    """Samples are delivered this long after their capture time."""


class FakeArm(Actor):
    """Publishes ``JointState`` (``state``) and ``JointCommand`` (``action``) with ``position[0] = seq``."""

    outputs = {"state": Output(JointState), "action": Output(JointCommand)}
    Params = FakeArmParams

    async def run(self, ctx: ActorContext[FakeArmParams], *, task_status: TaskStatus[None]) -> None:
        p = ctx.params
        async with Ticker(p.rate_hz, mode="portable") as ticker, anyio.create_task_group() as tg:
            async for tick in ticker:
                seq, t = tick.index, tick.deadline
                pos = np.array([seq, *range(1, len(p.joints))], np.float32)
                pos.flags.writeable = False
                state = JointState(names=p.joints, position=pos, seq=seq, t_read=t)
                cmd = JointCommand(names=p.joints, position=pos, seq=seq, t_issued=t, source="fake")
                tg.start_soon(send_at, ctx.output("state"), state, t + p.latency_s)
                tg.start_soon(send_at, ctx.output("action"), cmd, t + p.latency_s)
                if seq == 0:
                    task_status.started()


# ------------------------------------------------------------------------------- helpers


def recorder_graph(
    root: Path, *, cams: int = 2, joints: tuple[str, ...] = JOINTS, flags: bool = False, **params: Any
) -> rtrun.GraphSpec:
    """arm + ``cams`` cameras + recorder (inputs as a user writes them: latest, capacity 1);
    ``flags``: an ``intervention`` input fed by the test (``external``)."""
    latest = {"capacity": 1, "policy": "latest"}
    actors = [rtrun.ActorSpec(id="arm", kind=FakeArm, params={"joints": list(joints)})]
    inputs = {
        "state": rtrun.InputSpec(name="state", source="arm/state", **latest),
        "action": rtrun.InputSpec(name="action", source="arm/action", **latest),
        "control": rtrun.InputSpec(name="control", source=None, capacity=8, policy="drop_oldest"),
    }
    for i in range(cams):
        actors.append(rtrun.ActorSpec(id=f"cam{i}", kind=FakeCamera, params={"fps": FPS}))
        inputs[f"cam{i}"] = rtrun.InputSpec(name=f"cam{i}", source=f"cam{i}/frames", **latest)
    if flags:
        inputs["intervention"] = rtrun.InputSpec(
            name="intervention", source=None, external=True, capacity=8, policy="drop_oldest"
        )
    rec: dict[str, Any] = {"root": str(root), "fps": FPS}
    rec["encoder_queue"] = 64  # virtual time runs ahead of the encoder threads: no drops in tests
    rec.update(params)
    actors.append(
        rtrun.ActorSpec(
            id="rec",
            kind=RecorderActor,
            params=rec,
            inputs=inputs,
            # Virtual time races ahead while the writer works in real time (opening the
            # dataset, saving on stop): budgets in clock seconds must not bite there.
            start_timeout_s=VIRTUAL_SAFE_TIMEOUT_S,
            shutdown_timeout_s=VIRTUAL_SAFE_TIMEOUT_S,
        )
    )
    return rtrun.GraphSpec(name="rec-test", actors=tuple(actors))


async def wait_for(graph: rtrun.Graph, pred: Any, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the recorder's status until ``pred(status)``, for at most ``timeout`` seconds of
    *real* time: the writer thread works in real time while a virtual clock can race ahead."""
    deadline = time.monotonic() + timeout
    while True:
        status = dict(graph.context("rec").status)
        if status and pred(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"recorder status never matched: {status}")
        await anyio.sleep(0.02)


async def command(graph: rtrun.Graph, cmd: str, task: str = "", episode: int = -1) -> None:
    """Send one EpisodeControl to the recorder."""
    with graph.sender("rec/control") as send:
        await send.send(EpisodeControl(command=cmd, task=task, episode=episode))


async def record_two(root: Path, **params: Any) -> dict[str, Any]:
    """Record two 0.5 s episodes with tasks 'pick' and 'place' by control messages."""
    async with rtrun.open_graph(recorder_graph(root, **params)) as graph:
        base = graph.context("rec").status["episodes"]  # resumed datasets start above 0
        for i, task in enumerate(("pick", "place")):
            await command(graph, "start", task)
            await wait_for(graph, lambda s: s["state"] == "recording")
            await anyio.sleep(0.5)
            await command(graph, "save")
            await wait_for(graph, lambda s, n=base + i + 1: s["episodes"] == n)
        return dict(graph.context("rec").status)


def read_rows(root: Path) -> dict[str, list[Any]]:
    """Every data row of the dataset, as columns."""
    return pq.read_table(sorted(root.glob("data/*/*.parquet"))).to_pydict()


def episodes(root: Path) -> list[dict[str, Any]]:
    """Every episode metadata row."""
    return pq.read_table(sorted(root.glob("meta/episodes/*/*.parquet"))).to_pylist()


# ------------------------------------------------------------------------------- tests


async def test_two_episodes_by_control_messages(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    status = await record_two(root)
    assert status["episodes"] == 2 and status["dropped_total"] == 0 and status["control_rejected"] == 0
    assert check_dataset(root) == []
    eps = episodes(root)
    assert [e["tasks"] for e in eps] == [["pick"], ["place"]]
    assert all(8 <= e["length"] <= 20 for e in eps), [e["length"] for e in eps]  # ~0.5 s at 30 fps
    info = json.loads((root / "meta/info.json").read_text())
    feats = info["features"]
    assert feats["observation.state"]["names"] == list(JOINTS)
    assert feats["observation.images.cam0"]["shape"] == [48, 64, 3]
    assert feats["capture_time"]["names"] == [
        "observation.state",
        "action",
        "observation.images.cam0",
        "observation.images.cam1",
    ]


@pytest.mark.parametrize("anyio_backend", THREAD_FRIENDLY_VIRTUAL)
async def test_rows_follow_capture_times(tmp_path: Path) -> None:
    """Alignment rule on (thread-friendly) virtual time: each row holds the latest sample captured at or before
    its tick (not the latest *delivered*: the samples arrive 25 ms late), within 2 frames."""
    root = tmp_path / "ds"
    spec = recorder_graph(root, cams=1)
    actors = list(spec.actors)
    actors[0] = rtrun.ActorSpec(id="arm", kind=FakeArm, params={"latency_s": 0.025})
    actors[1] = rtrun.ActorSpec(id="cam0", kind=FakeCamera, params={"fps": 30.0, "latency_s": 0.025})
    async with rtrun.open_graph(rtrun.GraphSpec(name="align", actors=tuple(actors))) as graph:
        await anyio.sleep(0.2)
        await command(graph, "start", "align")
        await anyio.sleep(1.0)
        await command(graph, "save")
        await wait_for(graph, lambda s: s["episodes"] == 1)
    rows = read_rows(root)
    n = len(rows["index"])
    assert 29 <= n <= 31
    state_seq = [int(s[0]) for s in rows["observation.state"]]
    cap = np.array(rows["capture_time"])  # seconds since the episode's tick 0
    for k in range(n):
        age = k / FPS - cap[k]
        assert np.all(age >= -1e-9) and np.all(age <= 2 / FPS + 1e-9), (k, age)
        # state at 100 Hz: the latest sample captured at or before the tick is < 10 ms old
        assert age[0] < 0.01 + 1e-9, (k, age)
    assert state_seq == sorted(state_seq) and len(set(state_seq)) == n
    assert all(b - a in (3, 4) for a, b in itertools.pairwise(state_seq))  # 100 Hz / 30 fps
    assert check_dataset(root) == []


async def test_auto_episode_mode(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    spec = recorder_graph(root, cams=1, auto_episode_s=0.4, auto_reset_s=0.1, max_episodes=2, task="auto")
    async with rtrun.open_graph(spec) as graph:
        status = await wait_for(graph, lambda s: s["episodes"] == 2 and s["state"] == "idle")
        await anyio.sleep(0.3)
        assert graph.context("rec").status["state"] == "idle"  # max_episodes reached: stays idle
    assert status["last_episode"]["saved"] is True
    eps = episodes(root)
    assert [e["tasks"] for e in eps] == [["auto"], ["auto"]]
    # 0.4 s at 30 fps = 12 ticks; on real time a starved machine may skip a few (stale samples)
    assert all(6 <= e["length"] <= 12 for e in eps), [e["length"] for e in eps]
    assert check_dataset(root) == []


async def test_discard_reset_set_task_and_rejections(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    async with rtrun.open_graph(recorder_graph(root, cams=1)) as graph:
        await command(graph, "save")  # idle: rejected
        await command(graph, "start", "first")
        await wait_for(graph, lambda s: s["state"] == "recording" and s["rows"] > 3)
        await command(graph, "start", "again")  # recording: rejected
        await command(graph, "discard")
        await wait_for(graph, lambda s: s["state"] == "idle")
        await command(graph, "start", "second")
        await wait_for(graph, lambda s: s["rows"] > 3)
        await command(graph, "reset")  # discards too (re-record)
        await wait_for(graph, lambda s: s["state"] == "idle")
        await command(graph, "set_task", "third")  # idle: the next start's default task
        await command(graph, "start")
        await wait_for(graph, lambda s: s["rows"] >= 6)
        await command(graph, "set_task", "third, part 2")
        await wait_for(graph, lambda s: s["rows"] >= 12)
        await command(graph, "save", episode=5)  # wrong index: rejected
        await command(graph, "save", episode=0)
        status = await wait_for(graph, lambda s: s["episodes"] == 1)
    assert status["control_rejected"] == 3
    (ep,) = episodes(root)
    assert ep["tasks"] == ["third", "third, part 2"]
    rows = read_rows(root)
    assert rows["task_index"][0] == 0 and rows["task_index"][-1] == 1
    assert rows["task_index"] == sorted(rows["task_index"])
    assert check_dataset(root) == []


async def test_intervention_flag_column(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    spec = recorder_graph(root, cams=0, flags=True, capture_times=False)
    async with rtrun.open_graph(spec) as graph:
        await command(graph, "start", "dagger")
        await wait_for(graph, lambda s: s["rows"] >= 5)
        with graph.sender("rec/intervention") as send:
            await send.send(Flag(name="intervention", value=True, t=anyio.current_time()))
        await wait_for(graph, lambda s: s["rows"] >= 12)
        await command(graph, "save")
        await wait_for(graph, lambda s: s["episodes"] == 1)
    rows = read_rows(root)
    flags = [bool(v) for v in rows["intervention"]]  # shape [1] is stored as a scalar (LeRobot)
    assert "capture_time" not in rows
    assert flags[0] is False and flags[-1] is True and flags == sorted(flags)
    assert check_dataset(root) == []


async def test_resume_appends_and_refuses_other_features(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "ds"
    await record_two(root, cams=1)
    await record_two(root, cams=1)  # resumed: episodes 2 and 3
    assert [e["episode_index"] for e in episodes(root)] == [0, 1, 2, 3]
    assert check_dataset(root) == []
    spec = recorder_graph(root, cams=1, joints=("a", "b", "c"))
    with pytest.raises(BaseException) as info:
        async with rtrun.open_graph(spec):
            pytest.fail("the recorder must not start with different features")
    # The supervisor reports the start failure (the kernel raises a generic error out of
    # open_graph; the writer's message is in the supervisor's start_failed event/log).
    text = _chain_text(info.value) + caplog.text
    assert "FeatureMismatchError" in text and "refusing to append" in text, text
    assert "'observation.state': names ['a.pos', 'b.pos', 'c.pos'] requested" in text  # LeRobot names
    assert len(episodes(root)) == 4


def _chain_text(exc: BaseException) -> str:
    """Every exception in a chain/group, as ``Type: message`` lines."""
    out, todo, seen = [], [exc], set()
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        out.append(f"{type(e).__name__}: {e}")
        todo.extend(getattr(e, "exceptions", ()))
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return "\n".join(out)


async def test_bad_params_are_rejected_before_start(tmp_path: Path) -> None:
    spec = recorder_graph(tmp_path / "ds", features={"cam9": "observation.images.x"})
    with pytest.raises(rtrun.GraphError, match=r"features names unknown inputs \['cam9'\]"):
        async with rtrun.open_graph(spec):
            pytest.fail("must not start")


def test_recorded_inputs_are_the_connected_ones() -> None:
    """No ``record`` list: ``has_input`` tells which inputs are connected."""
    connected = {"state", "cam1", "intervention", "control"}
    assert recorded_inputs(connected.__contains__, {}) == ("state", "cam1", "intervention")
    with pytest.raises(ValueError, match="nothing to record"):
        recorded_inputs({"intervention", "control"}.__contains__, {})
    with pytest.raises(ValueError, match=r"not connected: \['cam0'\]"):
        recorded_inputs(connected.__contains__, {"cam0": "observation.images.top"})


async def test_a_feature_for_an_unconnected_input_fails_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = recorder_graph(tmp_path / "ds", cams=0, features={"cam0": "observation.images.top"})
    with pytest.raises(BaseException) as info:
        async with rtrun.open_graph(spec):
            pytest.fail("must not start")
    text = _chain_text(info.value) + caplog.text  # the start failure, as in the resume test
    assert "RecorderConfigError" in text and "not connected: ['cam0']" in text, text
    assert issubclass(RecorderConfigError, rtrun.ConfigurationError)


# ------------------------------------------------------------------------------- writer thread


class GatedWriter:
    """Stands in for DatasetWriter: ``add_frame`` blocks until ``gate`` is set, or raises."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = threading.Event()
        self.fail = fail
        self.frames = 0
        self.closed = False
        self.total_episodes = self.total_frames = 0

    def start_episode(self, task: str) -> int:
        return 0

    def set_task(self, task: str) -> None:
        pass

    def add_frame(self, row: Any, images: Any) -> bool:
        if self.fail:
            raise OSError("disk full")
        assert self.gate.wait(10)
        self.frames += 1
        return True

    def statistics(self) -> WriterStatistics:
        return WriterStatistics(
            episodes=0, frames=0, recording=0, episode_frames=self.frames, episode_dropped=0
        )

    def discard_episode(self) -> None:
        self.frames = 0

    def close(self) -> None:
        self.closed = True


def test_writer_thread_bounds_pending_rows_and_drops() -> None:
    writer = GatedWriter()
    thread = WriterThread(writer, capacity=3, name="test-writer")  # type: ignore[arg-type]
    try:
        assert thread.submit(StartEpisode(task="task"))
        accepted = [thread.submit_row({}, {}, "task") for _ in range(6)]
        assert accepted == [True, True, True, False, False, False]  # the writer is stuck: 3 pending
        assert thread.pending_rows() == 3
    finally:
        writer.gate.set()
        thread.submit(Close(save=False, dropped=3))
        assert thread.join(10)
    assert writer.closed and thread.error is None
    assert thread.snapshot.last_episode == {"index": 0, "frames": 3, "dropped": 3, "saved": False}


def test_writer_thread_bounds_episode_commands_but_always_accepts_close() -> None:
    writer = GatedWriter()
    thread = WriterThread(writer, capacity=3, name="test-writer")  # type: ignore[arg-type]
    try:
        assert thread.submit(StartEpisode(task="task"))
        assert thread.submit_row({}, {}, "task")  # the writer is stuck on this row
        accepted = [thread.submit(EndEpisode(save=False)) for _ in range(CONTROL_BACKLOG + 2)]
        assert accepted.count(False) >= 2  # backlogged commands are refused, not queued
    finally:
        writer.gate.set()
        assert thread.submit(Close(save=False))  # never refused
        assert thread.join(10)
    assert writer.closed and thread.error is None
    assert thread.snapshot.last_episode is not None and thread.snapshot.last_episode["saved"] is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        Close(save=True).save = False  # type: ignore[misc]


def test_writer_thread_reports_writer_failure_and_releases_the_dataset() -> None:
    writer = GatedWriter(fail=True)
    thread = WriterThread(writer, capacity=3, name="test-writer")  # type: ignore[arg-type]
    thread.submit(StartEpisode(task="task"))
    thread.submit_row({}, {}, "task")
    assert thread.join(10)  # the thread ended on the error
    assert isinstance(thread.error, OSError) and writer.closed


def test_writer_thread_leaves_real_time_scheduling() -> None:
    """Under ``chrt -f`` the writer (and the encoder threads it spawns) time-share instead."""
    if not hasattr(os, "sched_setscheduler"):
        pytest.skip("no sched_setscheduler on this OS")
    result: list[int] = []

    def body() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except PermissionError:
            result.append(-1)
            return
        _best_effort_scheduling()
        result.append(os.sched_getscheduler(0))

    t = threading.Thread(target=body)
    t.start()
    t.join(10)
    if result == [-1]:
        pytest.skip("not allowed to use SCHED_FIFO here")
    assert result == [os.SCHED_OTHER]


# ------------------------------------------------------------------------------- LeRobot oracle


@pytest.fixture(scope="module")
def lerobot() -> types.ModuleType:
    """Import LeRobot offline with the torchvision shim (test-oracles.md §3)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    return pytest.importorskip("lerobot.datasets.lerobot_dataset")


@pytest.mark.oracle
@pytest.mark.parametrize("anyio_backend", THREAD_FRIENDLY_VIRTUAL)
async def test_lerobot_loads_recorded_episodes(lerobot: types.ModuleType, tmp_path: Path) -> None:
    """Two episodes recorded by a graph load in LeRobot 0.4.4; every frame decodes at its
    timestamp and shows the camera frame the row's capture time names."""
    root = tmp_path / "ds"
    await record_two(root)
    assert check_dataset(root) == []
    ds = lerobot.LeRobotDataset("local/rtrun", root=root, delta_timestamps={"action": [0.0, 1 / FPS]})
    items = [ds[i] for i in range(len(ds))]  # FrameTimestampError if a frame is off its timestamp
    lengths = [e["length"] for e in episodes(root)]
    assert [it["task"] for it in items] == ["pick"] * lengths[0] + ["place"] * lengths[1]
    for e in (0, 1):
        ep_items = [it for it in items if int(it["episode_index"]) == e]
        for cam in (0, 1):
            key = f"observation.images.cam{cam}"
            seqs = [image_seq(it[key].numpy().transpose(1, 2, 0) * 255) for it in ep_items]
            caps = [float(it["capture_time"][2 + cam]) for it in ep_items]
            for k in range(1, len(ep_items)):  # the decoded frame is the one captured at caps[k]
                assert (seqs[k] - seqs[0]) % 16 == round((caps[k] - caps[0]) * FPS) % 16, (e, cam, k)
        states = [int(it["observation.state"][0]) for it in ep_items]
        actions = [int(it["action"][0][0]) for it in ep_items]
        assert states == actions and states == sorted(states)


# ------------------------------------------------------------------------------- the example graph

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "sim_record.toml"


@pytest.mark.parametrize("anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")])
async def test_sim_record_config_records_episodes(tmp_path: Path) -> None:
    """configs/sim_record.toml (sim arm + trajectory + camera + recorder) records auto-episodes;
    a graceful stop saves the episode in progress."""
    root = tmp_path / "ds"
    overrides = [("recorder", "root", str(root)), ("recorder", "auto_episode_s", 1.0)]
    overrides += [("recorder", "auto_reset_s", 0.2), ("arm", "return_home", False)]
    async with rtrun.open_graph(CONFIG, overrides=overrides) as graph:
        ctx = graph.context("recorder")
        with anyio.fail_after(60):
            while not (ctx.status.get("episodes", 0) >= 2 and ctx.status["rows"] > 5):
                await anyio.sleep(0.05)
    assert check_dataset(root) == []
    info = json.loads((root / "meta/info.json").read_text())
    assert info["total_episodes"] >= 3 and info["robot_type"] == "so101_follower"  # + the one saved on stop
    assert set(info["features"]) >= {
        "observation.state",
        "action",
        "observation.images.front",
        "capture_time",
    }
    assert len(info["features"]["observation.state"]["names"]) == 6
    eps = episodes(root)
    assert all(e["tasks"] == ["follow the scripted tour"] for e in eps)
    assert all(15 <= e["length"] <= 30 for e in eps[:2]), [e["length"] for e in eps]  # 1 s at 30 fps
