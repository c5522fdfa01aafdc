"""Public test kit for rtrun: conformance suites, generic test actors, hypothesis strategies and
an in-memory transport (MockNetwork) for the cross-host channel ports.

Importing this package is cheap; hypothesis is only imported when a strategy is built.
"""

from ._actors import JOURNAL as JOURNAL
from ._actors import Collector as Collector
from ._actors import Count as Count
from ._actors import CounterSource as CounterSource
from ._actors import Crasher as Crasher
from ._actors import Relay as Relay
from ._actors import SlowStart as SlowStart
from ._conformance import SCENARIOS as SCENARIOS
from ._conformance import ChannelFactory as ChannelFactory
from ._conformance import ConformanceOptions as ConformanceOptions
from ._conformance import check_channel as check_channel
from ._conformance import memory_channel_factory as memory_channel_factory
from ._mock_transport import MockNetwork as MockNetwork
from ._mock_transport import MockSession as MockSession
from ._strategies import message_strategy as message_strategy

__all__ = [
    "JOURNAL",
    "SCENARIOS",
    "ChannelFactory",
    "Collector",
    "ConformanceOptions",
    "Count",
    "CounterSource",
    "Crasher",
    "MockNetwork",
    "MockSession",
    "Relay",
    "SlowStart",
    "check_channel",
    "memory_channel_factory",
    "message_strategy",
]
