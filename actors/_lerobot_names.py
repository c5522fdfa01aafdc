"""Joint names and LeRobot feature names: the one mapping between them (issue 16, pure).

rtrun's messages name **motor joints** (``JointState.names``, ``JointCommand.names``):
``shoulder_pan``, ``shoulder_lift``, ``elbow_flex``, ``wrist_flex``, ``wrist_roll``, ``gripper``
for SO-100/SO-101 and Koch — the names of LeRobot's motor buses and of the MuJoCo SO-101. LeRobot
names a joint's **feature** by what it carries: ``shoulder_pan.pos`` in datasets (the ``names``
of ``observation.state`` and ``action``) and in robot observation/action dictionaries. So:

    feature name = joint name + ".pos"        joint name = feature name without ".pos"

Where rtrun applies it, so LeRobot datasets and checkpoints need no hand-written map:

* the ``recorder`` writes ``observation.state`` / ``action`` names as ``<joint>.pos``
  (:func:`feature_names`; its ``joint_suffix`` param, ``""`` for bare joint names);
* the ``action_queue`` drives joint ``elbow_flex`` from action column ``elbow_flex.pos``
  (:func:`rtrun.actors._diagnostics.joint_name`);
* a LeRobot checkpoint carries no action names (its config only has shapes): the adapter calls
  the columns ``action.0``, ``action.1``, … and the ``rtc_merger`` names them after the joints of
  the ``observation.state`` it sent, in order (:func:`name_unnamed_actions`). That is LeRobot's
  own rule: a follower arm's action features mirror its observation features, so action column
  ``i`` drives the joint of state column ``i``. With different widths the placeholders stay, and
  the merger's coverage warning names the joints left undriven.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

__all__ = ["POSITION_SUFFIX", "feature_name", "feature_names", "is_unnamed", "name_unnamed_actions"]

POSITION_SUFFIX: Final = ".pos"
"""LeRobot's suffix for a joint position feature (``lerobot.robots.so_follower``: ``f"{motor}.pos"``)."""
_UNNAMED = re.compile(r"action\.(\d+)")
"""Placeholder column names of a checkpoint without action names (``action.0`` …)."""


def feature_name(joint: str, suffix: str = POSITION_SUFFIX) -> str:
    """LeRobot feature name of a joint: ``shoulder_pan`` -> ``shoulder_pan.pos`` (kept if suffixed)."""
    return joint if not suffix or joint.endswith(suffix) else joint + suffix


def feature_names(joints: Sequence[str], suffix: str = POSITION_SUFFIX) -> list[str]:
    """:func:`feature_name` of every joint, in order."""
    return [feature_name(j, suffix) for j in joints]


def is_unnamed(action_names: Sequence[str]) -> bool:
    """Whether ``action_names`` are the placeholders ``action.0``, ``action.1``, … in order."""
    matches = [_UNNAMED.fullmatch(n) for n in action_names]
    return bool(matches) and all(m is not None and int(m.group(1)) == i for i, m in enumerate(matches))


def name_unnamed_actions(action_names: Sequence[str], state_joints: Sequence[str]) -> tuple[str, ...]:
    """Placeholder action columns named after the ``observation.state`` joints (same width);
    any other names are returned unchanged."""
    if is_unnamed(action_names) and len(action_names) == len(state_joints):
        return tuple(feature_names(state_joints))
    return tuple(action_names)
