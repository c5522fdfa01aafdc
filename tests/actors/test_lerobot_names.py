"""LeRobot's names without a hand-written map (issue 16): datasets recorded by rtrun carry
``shoulder_pan.pos`` …, and a LeRobot checkpoint (no action names) drives the right joints."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import rtrun
from rtrun.actors._lerobot_names import feature_name, feature_names, is_unnamed, name_unnamed_actions
from rtrun.actors.messages import InferenceReply
from rtrun.actors.rtc_messages import MergeChunk
from rtrun.models.checkpoint import SO101_ACTION_NAMES

from ..conftest import VIRTUAL
from .test_policy_path import JOINTS, FakeArm, Tap
from .test_rtc_merger import _merger, _request

REPO = Path(__file__).resolve().parents[2]
SIM_RECORD = REPO / "configs" / "sim_record.toml"


def _offline_lerobot() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hub
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )  # torchvision shim (test-oracles.md §3)


# ------------------------------------------------------------------------------------ mapping


def test_joint_to_feature_names() -> None:
    assert feature_names(JOINTS) == list(SO101_ACTION_NAMES)
    assert feature_name("gripper.pos") == "gripper.pos" and feature_name("gripper", "") == "gripper"


def test_unnamed_actions_take_the_state_joints() -> None:
    assert is_unnamed(("action.0", "action.1")) and not is_unnamed(("action.1", "action.0"))
    assert not is_unnamed(()) and not is_unnamed(("a.pos",))
    unnamed = tuple(f"action.{i}" for i in range(6))
    assert name_unnamed_actions(unnamed, JOINTS) == SO101_ACTION_NAMES
    assert name_unnamed_actions(unnamed[:5], JOINTS) == unnamed[:5]  # widths differ: kept
    assert name_unnamed_actions(("x.pos", "y.pos"), ("a", "b")) == ("x.pos", "y.pos")


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_merger_names_a_checkpoints_unnamed_columns_after_the_state() -> None:
    h: Any = _merger()
    h.last_episode, h.last_seq = 0, -1
    async with h.running():
        req = await _request(h)  # state joints a, b, c; the reply has 3 unnamed columns
        rows = np.repeat(np.arange(20, dtype=np.float32)[:, None], 3, axis=1)
        rows.flags.writeable = False
        reply = InferenceReply(
            client=req.client, epoch=req.epoch, seq=req.seq, episode=req.episode, chunk=rows,
            chunk_robot=rows, action_names=("action.0", "action.1", "action.2"), t_request=req.t_sent,
            queue_wait_s=0.0, inference_s=0.1,
        )  # fmt: skip
        await h.send["replies"].send(reply)
        with anyio.fail_after(1.0):
            merge: MergeChunk = await h.out["merge"].receive()
    assert merge.action_names == ("a.pos", "b.pos", "c.pos")


# ------------------------------------------------------------------------------ recorded names


async def _record_sim(root: Path) -> None:
    overrides = [("recorder", "root", str(root)), ("recorder", "auto_episode_s", 0.5)]
    overrides += [("arm", "return_home", False)]
    async with rtrun.open_graph(SIM_RECORD, overrides=overrides) as graph:
        ctx = graph.context("recorder")
        with anyio.fail_after(60):
            while ctx.status.get("episodes", 0) < 1:
                await anyio.sleep(0.05)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sim_so101_dataset_has_lerobot_joint_names(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    pytest.importorskip("av")
    await _record_sim(tmp_path / "ds")
    features = json.loads((tmp_path / "ds" / "meta" / "info.json").read_text())["features"]
    assert features["observation.state"]["names"] == list(SO101_ACTION_NAMES)
    assert features["action"]["names"] == list(SO101_ACTION_NAMES)


@pytest.mark.oracle
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sim_so101_dataset_matches_lerobots_own_so101_features(tmp_path: Path) -> None:
    """LeRobot's SO-101 follower defines the features a LeRobot SO-101 dataset has; the
    dataset rtrun records from the simulated SO-101 loads in LeRobot with the same ones."""
    pytest.importorskip("pyarrow")
    pytest.importorskip("av")
    _offline_lerobot()
    pytest.importorskip("lerobot")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.utils import hw_to_dataset_features
    from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

    robot = SO101Follower(SO101FollowerConfig(port="/dev/null", id="oracle"))  # never connected
    expected = {
        **hw_to_dataset_features(robot.observation_features, "observation"),
        **hw_to_dataset_features(robot.action_features, "action"),
    }
    await _record_sim(tmp_path / "ds")
    ds = LeRobotDataset("local/sim", root=tmp_path / "ds")
    for key in ("observation.state", "action"):
        got = ds.meta.features[key]
        assert (got["names"], list(got["shape"])) == (expected[key]["names"], list(expected[key]["shape"]))
    assert ds[0]["observation.state"].shape == (6,)


# ------------------------------------------------------------------------- LeRobot checkpoint


@pytest.fixture(scope="module")
def lerobot_act(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LeRobot ACT policy directory as ``lerobot-train`` leaves it (no action names)."""
    _offline_lerobot()
    torch = pytest.importorskip("torch")
    pytest.importorskip("lerobot")
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(0)
    state, image = "observation.state", "observation.images.front"
    cfg = ACTConfig(
        input_features={
            state: PolicyFeature(type=FeatureType.STATE, shape=(6,)),
            image: PolicyFeature(type=FeatureType.VISUAL, shape=(3, 48, 64)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(6,))},
        pretrained_backbone_weights=None, dim_model=32, n_heads=2, dim_feedforward=64,
        n_encoder_layers=1, n_decoder_layers=1, chunk_size=10, n_action_steps=10, use_vae=False,
        device="cpu",
    )  # fmt: skip
    stats = {
        state: {"mean": torch.zeros(6), "std": torch.ones(6)},
        image: {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)},
        "action": {"mean": torch.zeros(6), "std": torch.ones(6)},
    }
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    root = tmp_path_factory.mktemp("lerobot_act")
    ACTPolicy(cfg).save_pretrained(root)
    pre.save_pretrained(root)
    post.save_pretrained(root)
    return root


def _policy_graph(checkpoint: Path) -> rtrun.GraphSpec:
    """Fake SO-101 arm + camera "front" + merger + queue + worker: no action_names, no rename_map."""
    edge = rtrun.InputSpec
    return rtrun.GraphSpec(
        name="lerobot_names",
        actors=(
            rtrun.ActorSpec(id="front", kind="camera", params={"width": 64, "height": 48, "fps": 30.0}),
            rtrun.ActorSpec(id="policy", kind="policy_worker", params={"checkpoint": str(checkpoint)},
                            start_timeout_s=120.0, inputs={"requests": edge(name="requests", source="merger/requests")}),
            rtrun.ActorSpec(id="arm", kind=FakeArm, params={"rate_hz": 30.0},
                            inputs={"command": edge(name="command", source="queue/action", capacity=8, policy="drop_oldest")}),
            rtrun.ActorSpec(id="queue", kind="action_queue", params={"gripper_range": None, "near_zero_steps": 0},
                            inputs={"merge": edge(name="merge", source="merger/merge", capacity=4, policy="block")}),
            rtrun.ActorSpec(id="merger", kind="rtc_merger", params={},
                            inputs={"state": edge(name="state", source="arm/state"),
                                    "frames": edge(name="frames", source="front/frames"),
                                    "queue": edge(name="queue", source="queue/status"),
                                    "replies": edge(name="replies", source="policy/replies", capacity=4, policy="drop_oldest")}),
        ),
    )  # fmt: skip


@pytest.mark.oracle
@pytest.mark.slow
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_lerobot_checkpoint_drives_every_joint_without_a_map(lerobot_act: Path) -> None:
    tap = Tap()
    async with rtrun.open_graph(_policy_graph(lerobot_act)) as g, anyio.create_task_group() as tg:
        tg.start_soon(tap.run, g.receiver("queue/action", capacity=256, policy="drop_oldest"))
        with anyio.fail_after(60):
            while len(tap.commands) < 30:  # 1 s of commands from the checkpoint's chunks
                await anyio.sleep(0.05)
        status = {a.id: (a.state, a.restarts) for a in g.status().actors}
        tg.cancel_scope.cancel()
    assert {c.names for c in tap.commands} == {JOINTS}, status
    assert status["arm"] == ("running", 0) and status["merger"] == ("running", 0), status
