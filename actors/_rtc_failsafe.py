"""The policy link's fail-safe (DESIGN §4): the transition table and a sans-io state machine.

Used by :mod:`rtrun.actors.rtc_merger` (which re-exports these names; import them from there).
Split out so the table and its machine read on their own; times are passed in, nothing here
does I/O or reads a clock.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["LINK_TRANSITIONS", "FailSafe", "FailSafeConfig", "LinkEvent", "LinkState"]


class LinkState(enum.Enum):
    """Robot-side view of the policy link (DESIGN §4)."""

    CONNECTING = "connecting"
    """No chunk merged yet."""
    STREAMING = "streaming"
    """The last request was answered and merged."""
    DEGRADED = "degraded"
    """Requests fail, but the queue still has actions."""
    STALLED = "stalled"
    """Requests fail and the queue is empty or stale: the fallback applies."""
    RECONNECTING = "reconnecting"
    """Offline for ``reconnect_after_s``: retrying with backoff, a new epoch per attempt."""
    DEAD = "dead"
    """Offline longer than ``max_offline_s`` or a contract violation: the path stops."""


class LinkEvent(enum.Enum):
    """What the merger observed."""

    MERGED = "merged"
    """A reply was accepted and merged."""
    FAILED_WITH_ACTIONS = "failed_with_actions"
    """A request timed out or failed while the queue held actions."""
    FAILED_EMPTY = "failed_empty"
    """A request timed out or failed with an empty queue."""
    QUEUE_EMPTY = "queue_empty"
    """A queue status showed no queued action."""
    OFFLINE = "offline"
    """No merge for ``reconnect_after_s`` since the first failure."""
    EXPIRED = "expired"
    """No merge for more than ``max_offline_s`` since the first failure."""
    VIOLATION = "violation"
    """The policy does not fit the robot (observation features, action dimension or names)."""


_S, _E = LinkState, LinkEvent


def _row(**changes: LinkState) -> dict[LinkEvent, LinkState]:
    return {_E[name.upper()]: state for name, state in changes.items()}


LINK_TRANSITIONS: Final[Mapping[LinkState, Mapping[LinkEvent, LinkState]]] = {
    _S.CONNECTING: _row(
        merged=_S.STREAMING, failed_with_actions=_S.CONNECTING, failed_empty=_S.CONNECTING,
        queue_empty=_S.CONNECTING, offline=_S.RECONNECTING, expired=_S.DEAD, violation=_S.DEAD,
    ),
    _S.STREAMING: _row(
        merged=_S.STREAMING, failed_with_actions=_S.DEGRADED, failed_empty=_S.STALLED,
        queue_empty=_S.STREAMING, offline=_S.RECONNECTING, expired=_S.DEAD, violation=_S.DEAD,
    ),
    _S.DEGRADED: _row(
        merged=_S.STREAMING, failed_with_actions=_S.DEGRADED, failed_empty=_S.STALLED,
        queue_empty=_S.STALLED, offline=_S.RECONNECTING, expired=_S.DEAD, violation=_S.DEAD,
    ),
    _S.STALLED: _row(
        merged=_S.STREAMING, failed_with_actions=_S.STALLED, failed_empty=_S.STALLED,
        queue_empty=_S.STALLED, offline=_S.RECONNECTING, expired=_S.DEAD, violation=_S.DEAD,
    ),
    _S.RECONNECTING: _row(
        merged=_S.STREAMING, failed_with_actions=_S.RECONNECTING, failed_empty=_S.RECONNECTING,
        queue_empty=_S.RECONNECTING, offline=_S.RECONNECTING, expired=_S.DEAD, violation=_S.DEAD,
    ),
    _S.DEAD: {event: _S.DEAD for event in LinkEvent},
}  # fmt: skip
"""``LINK_TRANSITIONS[state][event]`` is the next state; DEAD is terminal.

STREAMING with an empty queue stays STREAMING (the policy is merely late: lerobot-rtc.md §9.5);
the queue running dry only matters once requests fail. RECONNECTING leaves only on a merge."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailSafeConfig:
    """Timings of the fail-safe (defaults: LeRobot's remote client, lerobot-rtc.md §9.1, §13)."""

    reconnect_after_s: float = 10.0
    """Offline this long (since the first failure) -> RECONNECTING (LeRobot: 2 × request timeout)."""
    initial_backoff_s: float = 0.5
    """First wait between reconnect attempts."""
    max_backoff_s: float = 10.0
    """Backoff cap (0.5, 1, 2, 4, 8, 10, 10 ... s)."""
    max_offline_s: float = 60.0
    """Offline longer than this -> DEAD."""


class FailSafe:
    """Sans-io fail-safe state machine over :data:`LINK_TRANSITIONS` (times are passed in)."""

    def __init__(self, config: FailSafeConfig | None = None) -> None:
        self.config = config or FailSafeConfig()
        self.state = LinkState.CONNECTING
        self.reason = ""
        """Why the path is DEAD (empty otherwise)."""
        self.offline_since: float | None = None
        self.failures = 0
        self.reconnects = 0
        self._backoff = self.config.initial_backoff_s
        self._next_attempt = math.inf

    def handle(self, event: LinkEvent) -> LinkState:
        """Apply ``event`` through the table; return the new state."""
        self.state = LINK_TRANSITIONS[self.state][event]
        return self.state

    def on_merge(self) -> None:
        """A reply was merged: online again."""
        self.offline_since = None
        self._backoff = self.config.initial_backoff_s
        self._next_attempt = math.inf
        self.handle(LinkEvent.MERGED)

    def on_failure(self, now: float, queued_steps: int) -> None:
        """A request timed out or came back with a (transient) error."""
        self.failures += 1
        if self.offline_since is None:
            self.offline_since = now
        self.handle(LinkEvent.FAILED_WITH_ACTIONS if queued_steps > 0 else LinkEvent.FAILED_EMPTY)

    def on_queue(self, queued_steps: int) -> None:
        """A queue status arrived."""
        if queued_steps <= 0:
            self.handle(LinkEvent.QUEUE_EMPTY)

    def on_violation(self, reason: str) -> None:
        """The policy does not fit the robot: DEAD."""
        self.reason = reason
        self.handle(LinkEvent.VIOLATION)

    def poll(self, now: float) -> bool:
        """Advance the offline timers; return True when a reconnect attempt is due now."""
        if self.state is LinkState.DEAD or self.offline_since is None:
            return False
        offline = now - self.offline_since
        if offline > self.config.max_offline_s:
            self.reason = f"no chunk merged for {offline:.1f} s > max_offline_s={self.config.max_offline_s}"
            self.handle(LinkEvent.EXPIRED)
            return False
        if offline >= self.config.reconnect_after_s and self.state is not LinkState.RECONNECTING:
            self.handle(LinkEvent.OFFLINE)
            self._next_attempt = now
        if self.state is LinkState.RECONNECTING and now >= self._next_attempt:
            self._next_attempt = now + self._backoff
            self._backoff = min(2 * self._backoff, self.config.max_backoff_s)
            self.reconnects += 1
            return True
        return False
