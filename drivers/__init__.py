"""rtrun.drivers: blocking hardware access, one device family per module.

Drivers are synchronous: actors call them in worker threads (``ctx.run_sync``). They import
neither anyio nor the kernel. Device libraries (pyserial, python-can, OpenCV, MuJoCo) are imported
lazily, so importing this package is cheap.
"""

from ._errors import TransientError as TransientError
from .calibration import KOCH_ARM_JOINTS as KOCH_ARM_JOINTS
from .calibration import SO_ARM_JOINTS as SO_ARM_JOINTS
from .calibration import CalibrationError as CalibrationError
from .calibration import JointLayout as JointLayout
from .calibration import JointTransform as JointTransform
from .calibration import MotorCalibration as MotorCalibration
from .calibration import MotorNormMode as MotorNormMode
from .calibration import SimUnits as SimUnits
from .calibration import calibration_path as calibration_path
from .calibration import load_calibration as load_calibration
from .calibration import normalize as normalize
from .calibration import save_calibration as save_calibration
from .calibration import unnormalize as unnormalize
from .camera import Camera as Camera
from .camera import CameraConfigError as CameraConfigError
from .camera import CameraDisconnectedError as CameraDisconnectedError
from .camera import CameraError as CameraError
from .camera import CameraInfo as CameraInfo
from .camera import CameraTimeoutError as CameraTimeoutError
from .damiao import DAMIAO as DAMIAO
from .damiao import DAMIAO_LIMITS as DAMIAO_LIMITS
from .damiao import ROBSTRIDE_LIMITS as ROBSTRIDE_LIMITS
from .damiao import ROBSTRIDE_MIT as ROBSTRIDE_MIT
from .damiao import CanBusError as CanBusError
from .damiao import CanMotor as CanMotor
from .damiao import CanMotorError as CanMotorError
from .damiao import CanMotorFaultError as CanMotorFaultError
from .damiao import CanMotorNotRespondingError as CanMotorNotRespondingError
from .damiao import MitCommand as MitCommand
from .damiao import MitFeedback as MitFeedback
from .damiao import MitLimits as MitLimits
from .damiao import MitMotorBus as MitMotorBus
from .dynamixel import DynamixelBus as DynamixelBus
from .dynamixel import koch_follower_motors as koch_follower_motors
from .dynamixel import koch_leader_motors as koch_leader_motors
from .fake import FakeCamera as FakeCamera
from .fake import FakeCanMotor as FakeCanMotor
from .fake import FakeMotorBus as FakeMotorBus
from .fake import serve_can_motors as serve_can_motors
from .feetech import FeetechBus as FeetechBus
from .feetech import configure_so_follower as configure_so_follower
from .feetech import so_follower_motors as so_follower_motors
from .motor_bus import BusStatistics as BusStatistics
from .motor_bus import BusTimeoutError as BusTimeoutError
from .motor_bus import ChecksumError as ChecksumError
from .motor_bus import HandshakeError as HandshakeError
from .motor_bus import ModelSpec as ModelSpec
from .motor_bus import Motor as Motor
from .motor_bus import MotorBus as MotorBus
from .motor_bus import MotorBusError as MotorBusError
from .motor_bus import NamedMotorBus as NamedMotorBus
from .motor_bus import PortError as PortError
from .motor_bus import Register as Register
from .motor_bus import ServoError as ServoError
from .mujoco_so101 import SO101_JOINTS as SO101_JOINTS
from .mujoco_so101 import MujocoCamera as MujocoCamera
from .mujoco_so101 import SimError as SimError
from .mujoco_so101 import SimRenderError as SimRenderError
from .mujoco_so101 import SimUnavailableError as SimUnavailableError
from .mujoco_so101 import SO101Plant as SO101Plant
from .opencv_camera import OpenCVCamera as OpenCVCamera
from .synthetic_camera import FrameCounterError as FrameCounterError
from .synthetic_camera import SyntheticCamera as SyntheticCamera
from .synthetic_camera import decode_frame_counter as decode_frame_counter
from .synthetic_camera import render_frame as render_frame

__all__ = [
    "DAMIAO",
    "DAMIAO_LIMITS",
    "KOCH_ARM_JOINTS",
    "ROBSTRIDE_LIMITS",
    "ROBSTRIDE_MIT",
    "SO101_JOINTS",
    "SO_ARM_JOINTS",
    "BusStatistics",
    "BusTimeoutError",
    "CalibrationError",
    "Camera",
    "CameraConfigError",
    "CameraDisconnectedError",
    "CameraError",
    "CameraInfo",
    "CameraTimeoutError",
    "CanBusError",
    "CanMotor",
    "CanMotorError",
    "CanMotorFaultError",
    "CanMotorNotRespondingError",
    "ChecksumError",
    "DynamixelBus",
    "FakeCamera",
    "FakeCanMotor",
    "FakeMotorBus",
    "FeetechBus",
    "FrameCounterError",
    "HandshakeError",
    "JointLayout",
    "JointTransform",
    "MitCommand",
    "MitFeedback",
    "MitLimits",
    "MitMotorBus",
    "ModelSpec",
    "Motor",
    "MotorBus",
    "MotorBusError",
    "MotorCalibration",
    "MotorNormMode",
    "MujocoCamera",
    "NamedMotorBus",
    "OpenCVCamera",
    "PortError",
    "Register",
    "SO101Plant",
    "ServoError",
    "SimError",
    "SimRenderError",
    "SimUnavailableError",
    "SimUnits",
    "SyntheticCamera",
    "TransientError",
    "calibration_path",
    "configure_so_follower",
    "decode_frame_counter",
    "koch_follower_motors",
    "koch_leader_motors",
    "load_calibration",
    "normalize",
    "render_frame",
    "save_calibration",
    "serve_can_motors",
    "so_follower_motors",
    "unnormalize",
]
