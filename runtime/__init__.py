"""rtrun: a supervised async actor runtime for robot control (the kernel).

The public API is this façade: explicit re-exports, listed in ``__all__``. Everything else lives
in underscored modules. The kernel knows nothing about robots; it never imports
``rtrun.actors``, ``rtrun.drivers`` or ``rtrun.models``, nor torch or zenoh at import time.
"""

from ._channel import ChannelStatistics as ChannelStatistics
from ._channel import Policy as Policy
from ._channel import ReceivePort as ReceivePort
from ._channel import SendPort as SendPort
from ._channel import open_channel as open_channel
from ._errors import ActorError as ActorError
from ._errors import ActorStateError as ActorStateError
from ._errors import ChannelError as ChannelError
from ._errors import CodecError as CodecError
from ._errors import DecodeError as DecodeError
from ._errors import EncodeError as EncodeError
from ._errors import EscalationError as EscalationError
from ._errors import GraphError as GraphError
from ._errors import GraphProblem as GraphProblem
from ._errors import InternalError as InternalError
from ._errors import MessageDefinitionError as MessageDefinitionError
from ._errors import ParamsError as ParamsError
from ._errors import RtrunError as RtrunError
from ._errors import SupervisionError as SupervisionError
from ._errors import TransportError as TransportError

__version__ = "0.1.0"

__all__ = [
    "ActorError",
    "ActorStateError",
    "ChannelError",
    "ChannelStatistics",
    "CodecError",
    "DecodeError",
    "EncodeError",
    "EscalationError",
    "GraphError",
    "GraphProblem",
    "InternalError",
    "MessageDefinitionError",
    "ParamsError",
    "Policy",
    "ReceivePort",
    "RtrunError",
    "SendPort",
    "SupervisionError",
    "TransportError",
    "open_channel",
]
