"""rtrun.models: policies and pure compute (synchronous; no anyio, no kernel imports).

The Policy protocol and its checks, real-time chunking cores with LeRobot's exact semantics,
processors, checkpoints, test policies. torch is imported only by the torch policies themselves
(``rtrun.models.act``, ``rtrun.models.flow``) and LeRobot only by ``rtrun.models.lerobot_adapter``.
"""

from .checkpoint import CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from .checkpoint import POLICY_TYPES as POLICY_TYPES
from .checkpoint import is_lerobot_checkpoint as is_lerobot_checkpoint
from .checkpoint import load_policy as load_policy
from .checkpoint import make_demo_checkpoint as make_demo_checkpoint
from .checkpoint import save_checkpoint as save_checkpoint
from .policy import FEATURE_KINDS as FEATURE_KINDS
from .policy import ActionDimensionError as ActionDimensionError
from .policy import CheckpointError as CheckpointError
from .policy import FeatureSpec as FeatureSpec
from .policy import MetadataError as MetadataError
from .policy import ModelError as ModelError
from .policy import ObservationMismatchError as ObservationMismatchError
from .policy import Policy as Policy
from .policy import PolicyMetadata as PolicyMetadata
from .policy import PolicyOutputError as PolicyOutputError
from .policy import check_action_dim as check_action_dim
from .policy import check_chunk as check_chunk
from .policy import check_observation as check_observation
from .policy import rename_observation as rename_observation
from .policy import suggest_rename_map as suggest_rename_map
from .policy import uncovered_actuators as uncovered_actuators
from .processors import NORM_MODES as NORM_MODES
from .processors import STEP_TYPES as STEP_TYPES
from .processors import AbsoluteToRelative as AbsoluteToRelative
from .processors import FeatureNorm as FeatureNorm
from .processors import ImagesToCHWFloat as ImagesToCHWFloat
from .processors import JointTransform as JointTransform
from .processors import Normalize as Normalize
from .processors import ProcessorError as ProcessorError
from .processors import ProcessorPipeline as ProcessorPipeline
from .processors import ProcessorStep as ProcessorStep
from .processors import RelativeToAbsolute as RelativeToAbsolute
from .processors import Rename as Rename
from .processors import UnitConversion as UnitConversion
from .processors import Unnormalize as Unnormalize
from .processors import register_step as register_step
from .rtc import DROP_REASONS as DROP_REASONS
from .rtc import FALLBACKS as FALLBACKS
from .rtc import PREFIX_SCHEDULES as PREFIX_SCHEDULES
from .rtc import ActionInterpolator as ActionInterpolator
from .rtc import ActionQueue as ActionQueue
from .rtc import ActionSource as ActionSource
from .rtc import ActionSourceStatistics as ActionSourceStatistics
from .rtc import DroppedReply as DroppedReply
from .rtc import InferenceRequest as InferenceRequest
from .rtc import LatencyTracker as LatencyTracker
from .rtc import MergeCommand as MergeCommand
from .rtc import PlannerConfig as PlannerConfig
from .rtc import PlannerStatistics as PlannerStatistics
from .rtc import QueueSnapshot as QueueSnapshot
from .rtc import RequestPlanner as RequestPlanner
from .rtc import RTCError as RTCError
from .rtc import TickOutput as TickOutput
from .rtc import get_prefix_weights as get_prefix_weights
from .rtc import guidance_weight as guidance_weight
from .rtc import guide_velocity as guide_velocity
from .rtc import inference_delay_steps as inference_delay_steps
from .rtc import pad_prefix as pad_prefix
from .rtc import trim_steps as trim_steps
from .testing_policies import SO101_ACTION_NAMES as SO101_ACTION_NAMES
from .testing_policies import SO101_LIMITS_DEG as SO101_LIMITS_DEG
from .testing_policies import ScriptedPolicy as ScriptedPolicy
from .testing_policies import SleepPolicy as SleepPolicy

__all__ = [
    "CHECKPOINT_FORMAT",
    "DROP_REASONS",
    "FALLBACKS",
    "FEATURE_KINDS",
    "NORM_MODES",
    "POLICY_TYPES",
    "PREFIX_SCHEDULES",
    "SO101_ACTION_NAMES",
    "SO101_LIMITS_DEG",
    "STEP_TYPES",
    "AbsoluteToRelative",
    "ActionDimensionError",
    "ActionInterpolator",
    "ActionQueue",
    "ActionSource",
    "ActionSourceStatistics",
    "CheckpointError",
    "DroppedReply",
    "FeatureNorm",
    "FeatureSpec",
    "ImagesToCHWFloat",
    "InferenceRequest",
    "JointTransform",
    "LatencyTracker",
    "MergeCommand",
    "MetadataError",
    "ModelError",
    "Normalize",
    "ObservationMismatchError",
    "PlannerConfig",
    "PlannerStatistics",
    "Policy",
    "PolicyMetadata",
    "PolicyOutputError",
    "ProcessorError",
    "ProcessorPipeline",
    "ProcessorStep",
    "QueueSnapshot",
    "RTCError",
    "RelativeToAbsolute",
    "Rename",
    "RequestPlanner",
    "ScriptedPolicy",
    "SleepPolicy",
    "TickOutput",
    "UnitConversion",
    "Unnormalize",
    "check_action_dim",
    "check_chunk",
    "check_observation",
    "get_prefix_weights",
    "guidance_weight",
    "guide_velocity",
    "inference_delay_steps",
    "is_lerobot_checkpoint",
    "load_policy",
    "make_demo_checkpoint",
    "pad_prefix",
    "register_step",
    "rename_observation",
    "save_checkpoint",
    "suggest_rename_map",
    "trim_steps",
    "uncovered_actuators",
]
