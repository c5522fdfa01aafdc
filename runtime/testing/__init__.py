"""Public test kit for rtrun: conformance suites and helpers for testing actors and transports.

Importing this package is cheap; hypothesis is only imported by the strategy helpers.
"""

from ._conformance import SCENARIOS as SCENARIOS
from ._conformance import ChannelFactory as ChannelFactory
from ._conformance import ConformanceOptions as ConformanceOptions
from ._conformance import check_channel as check_channel
from ._conformance import memory_channel_factory as memory_channel_factory

__all__ = ["SCENARIOS", "ChannelFactory", "ConformanceOptions", "check_channel", "memory_channel_factory"]
from ._actors import JOURNAL as JOURNAL
from ._actors import Collector as Collector
from ._actors import Count as Count
from ._actors import CounterSource as CounterSource
from ._actors import Crasher as Crasher
from ._actors import Relay as Relay

__all__ += ["JOURNAL", "Collector", "Count", "CounterSource", "Crasher", "Relay"]
from ._strategies import message_strategy as message_strategy

__all__ += ["message_strategy"]
