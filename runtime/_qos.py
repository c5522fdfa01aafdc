"""Quality of service of a cross-host channel: one type for the graph and the Zenoh transport.

A graph declares :class:`QoS` per input (``qos = { reliability = "reliable", ... }``); the
launcher hands the same value to the Zenoh sender of that edge, and rtrun's own publishers
(end-of-stream, credits) use it too. The type is sans-io and knows nothing of zenoh: ``_zenoh``
maps it onto zenoh's enums.

Construction does not validate, so the graph validator can collect every problem of a file in
one pass (:meth:`QoS.problems`, reported as ``GraphError`` lines); the transport refuses an
invalid value when a publisher is declared (``TransportError``). The rule both enforce: a data
key never uses congestion ``block`` -- one dead or slow peer would stall the publishing actor
(and Zenoh's TX thread); ``block`` channels get end-to-end credits instead. Only rtrun's own
one-shot control puts may block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["CONGESTIONS", "PRIORITIES", "RELIABILITIES", "QoS"]

RELIABILITIES: Final = ("best_effort", "reliable")
"""``reliable``: retransmitted on link errors; ``best_effort``: may be lost."""
CONGESTIONS: Final = ("drop", "block")
"""What a publisher does when the link is congested (data keys: ``drop`` only)."""
PRIORITIES: Final = (
    "real_time", "interactive_high", "interactive_low", "data_high", "data", "data_low", "background",
)  # fmt: skip
"""Zenoh priority lanes, highest first; higher lanes overtake lower ones under load."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QoS:
    """Zenoh quality of service of one cross-host channel (ignored in-process)."""

    reliability: str = "best_effort"
    """``best_effort`` (frames, observations) or ``reliable`` (action chunks, control)."""
    congestion: str = "drop"
    """Always ``drop`` on data: a data publisher never blocks on one slow or dead peer."""
    priority: str = "data"
    """Zenoh priority: ``real_time``, ``interactive_high``, ``interactive_low``, ``data_high``, ``data``, ``data_low``, ``background``."""
    express: bool = False
    """Send without batching (lower latency, more packets)."""

    def problems(self, *, data: bool = True) -> list[str]:
        """The rules this value breaks (empty: valid); ``data=False`` for rtrun's control puts."""
        out: list[str] = []
        if self.reliability not in RELIABILITIES:
            out.append(f"qos.reliability must be one of {', '.join(RELIABILITIES)}, got {self.reliability!r}")
        if data and self.congestion != "drop":
            out.append(
                "qos.congestion must be 'drop': a data channel never blocks a publisher "
                f"(got {self.congestion!r}; 'block' channels get end-to-end credits instead)"
            )
        elif self.congestion not in CONGESTIONS:
            out.append(f"qos.congestion must be one of {', '.join(CONGESTIONS)}, got {self.congestion!r}")
        if self.priority not in PRIORITIES:
            out.append(f"qos.priority must be one of {', '.join(PRIORITIES)}, got {self.priority!r}")
        return out
