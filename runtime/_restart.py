"""Pure restart accounting for supervisors: OTP's intensity window and exponential backoff.

:func:`add_restart` is OTP ``supervisor.erl::add_restart`` verbatim: every restart is stamped
with the runtime clock; restarts older than ``period`` are forgotten (OTP keeps ``R >= Now -
Period``: the boundary is inclusive); when the number of restarts within the period would exceed
``intensity`` the supervisor gives up (escalates). :class:`RestartWindow` keeps one supervisor's
window; the decision itself is :func:`rtrun._restart_plan.plan_exit`.
So ``intensity=3, period=5`` allows three restarts within any 5 s, and the fourth escalates.
``intensity=0`` means "never restart: escalate on the first failure".

Times are passed in (sans-io), so the window is tested synchronously and runs identically on
virtual and real time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff", "RestartWindow", "add_restart"]


def add_restart(times: tuple[float, ...], now: float, period: float) -> tuple[float, ...]:
    """The restart window after a restart at ``now``: the ``times`` (oldest first) still within
    ``period`` of ``now``, then ``now`` (OTP ``add_restart/3``). Pure."""
    threshold = now - period
    return (*(t for t in times if t >= threshold), now)


@dataclass(slots=True)
class RestartWindow:
    """Sliding window of restart times (OTP restart intensity) of one supervisor run."""

    intensity: int
    """Maximum restarts allowed within ``period``."""
    period: float
    """Window length in seconds."""
    times: tuple[float, ...] = field(default=(), init=False)
    """Times of the restarts in the window, oldest first."""

    def add(self, now: float) -> bool:
        """Record a restart at ``now``; return False when it exceeds the intensity (escalate)."""
        self.times = add_restart(self.times, now, self.period)
        return len(self.times) <= self.intensity

    def __len__(self) -> int:
        return len(self.times)

    def reset(self) -> None:
        """Forget every recorded restart (a restarted supervisor starts afresh)."""
        self.times = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Exponential backoff with jitter between restarts of a child.

    The delay before the n-th consecutive restart (n counted inside the intensity window, from 0)
    is ``min(maximum, initial * multiplier**n)``, scaled by a random factor in
    ``[1 - jitter, 1 + jitter]`` from a seeded generator (deterministic in tests).
    """

    initial: float = 0.1
    """First delay, seconds (100 ms: long enough for a USB device to re-enumerate... sometimes)."""
    maximum: float = 5.0
    """Upper bound, seconds."""
    multiplier: float = 2.0
    """Growth factor per consecutive restart."""
    jitter: float = 0.1
    """Relative random spread, so restarting fleets do not synchronise."""
    seed: int | None = 0
    """Seed of the jitter generator (None: nondeterministic)."""

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.multiplier < 1 or not 0 <= self.jitter < 1:
            raise ValueError(
                "backoff needs 0 <= initial <= maximum, multiplier >= 1 and 0 <= jitter < 1, got "
                f"initial={self.initial}, maximum={self.maximum}, multiplier={self.multiplier}, jitter={self.jitter}"
            )

    def delays(self) -> BackoffDelays:
        """A fresh delay generator (one per supervisor run)."""
        return BackoffDelays(self)


class BackoffDelays:
    """Stateful delay sequence for one supervisor run."""

    __slots__ = ("_policy", "_rng")

    def __init__(self, policy: Backoff) -> None:
        self._policy = policy
        self._rng = random.Random(policy.seed)

    def delay(self, consecutive: int) -> float:
        """Delay before the restart numbered ``consecutive`` (0-based) within the window."""
        p = self._policy
        base = min(p.maximum, p.initial * p.multiplier ** max(0, consecutive))
        return base * (1.0 + self._rng.uniform(-p.jitter, p.jitter))
