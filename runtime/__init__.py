"""rtrun: a supervised async actor runtime for robot control (the kernel).

The public API is this façade: explicit re-exports, listed in ``__all__``. Everything else lives
in underscored modules. The kernel knows nothing about robots; it never imports
``rtrun.actors``, ``rtrun.drivers`` or ``rtrun.models``, nor torch or zenoh at import time.
"""

from . import abc as abc
from ._actor import Actor as Actor
from ._actor import ActorContext as ActorContext
from ._actor import ActorState as ActorState
from ._actor import NoParams as NoParams
from ._channel import ChannelStatistics as ChannelStatistics
from ._channel import ReceivePort as ReceivePort
from ._channel import SendPort as SendPort
from ._channel import open_channel as open_channel
from ._clock import ClockError as ClockError
from ._clock import Tick as Tick
from ._clock import Ticker as Ticker
from ._clock import TickerStatistics as TickerStatistics
from ._codec import decode as decode
from ._codec import encode as encode
from ._errors import ActorError as ActorError
from ._errors import ActorStateError as ActorStateError
from ._errors import ChannelError as ChannelError
from ._errors import CodecError as CodecError
from ._errors import ConfigurationError as ConfigurationError
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
from ._graph import ActorSpec as ActorSpec
from ._graph import GraphSpec as GraphSpec
from ._graph import HostSpec as HostSpec
from ._graph import InputSpec as InputSpec
from ._graph import QoS as QoS
from ._graph import SupervisorSpec as SupervisorSpec
from ._graph import load_graph as load_graph
from ._launch import ActorStatus as ActorStatus
from ._launch import Graph as Graph
from ._launch import GraphStatus as GraphStatus
from ._launch import open_graph as open_graph
from ._message import Message as Message
from ._message import message as message
from ._message import message_types as message_types
from ._overflow import OverflowPolicy as OverflowPolicy
from ._params import PathParam as PathParam
from ._ports import Input as Input
from ._ports import Output as Output
from ._ports import OutputPort as OutputPort
from ._ports import OutputStatistics as OutputStatistics
from ._restart import Backoff as Backoff
from ._supervisor import ChildSpec as ChildSpec
from ._supervisor import ChildStatus as ChildStatus
from ._supervisor import Supervisor as Supervisor
from ._supervisor import SupervisorEvent as SupervisorEvent
from ._supervisor import SupervisorFlags as SupervisorFlags
from ._validate import CompiledGraph as CompiledGraph
from ._validate import compile_graph as compile_graph

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "ActorContext",
    "ActorError",
    "ActorSpec",
    "ActorState",
    "ActorStateError",
    "ActorStatus",
    "Backoff",
    "ChannelError",
    "ChannelStatistics",
    "ChildSpec",
    "ChildStatus",
    "ClockError",
    "CodecError",
    "CompiledGraph",
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "EscalationError",
    "Graph",
    "GraphError",
    "GraphProblem",
    "GraphSpec",
    "GraphStatus",
    "HostSpec",
    "Input",
    "InputSpec",
    "InternalError",
    "Message",
    "MessageDefinitionError",
    "NoParams",
    "Output",
    "OutputPort",
    "OutputStatistics",
    "OverflowPolicy",
    "ParamsError",
    "PathParam",
    "QoS",
    "ReceivePort",
    "RtrunError",
    "SendPort",
    "SupervisionError",
    "Supervisor",
    "SupervisorEvent",
    "SupervisorFlags",
    "SupervisorSpec",
    "Tick",
    "Ticker",
    "TickerStatistics",
    "TransportError",
    "abc",
    "compile_graph",
    "decode",
    "encode",
    "load_graph",
    "message",
    "message_types",
    "open_channel",
    "open_graph",
]


def __getattr__(name: str) -> object:
    """Deprecated names, still resolved (with a ``DeprecationWarning``)."""
    if name == "Policy":  # renamed in issue 15: never to be confused with a robot policy
        import warnings

        warnings.warn(
            "rtrun.Policy is deprecated: use rtrun.OverflowPolicy (a channel's overflow policy)",
            DeprecationWarning,
            stacklevel=2,
        )
        return OverflowPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
