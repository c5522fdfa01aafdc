"""Supervisor reports: the structured events a supervisor emits and how they reach the log.

Theory of operation
-------------------
Every supervision decision is a :class:`SupervisorEvent` (telemetry keeps them all). The log is
for a person reading a terminal, so it follows OTP's SASL reports (context, reason, offender)
with two rules against noise:

* **A failure's traceback is logged once**, at ERROR, with the actor id: the first time a child
  fails in a given way (same exception type, message and raising location: its *fingerprint*).
* **Identical repeats are summarised**: a crash-looping child that fails again the same way is
  counted, not printed; one WARNING line ``failed again the same way (3x in 0.2 s)`` appears at
  most every :data:`REPEAT_SUMMARY_S` seconds, and when the supervisor escalates or stops (so a
  count is never lost). A *different* failure of the same child is a new streak: its traceback
  is logged (after the summary of the previous streak).

The exception text is shown as ``Type: message`` (``str``), never as an escaped ``repr``; the
event's ``reason`` keeps the ``repr`` for telemetry. An exception already reported (a
``ConfigurationError`` travelling up through nested supervisors) is not reported again.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Final, final

__all__ = ["REPEAT_SUMMARY_S", "FailureLog", "SupervisorEvent", "describe", "format_tb", "leaf"]

REPEAT_SUMMARY_S: Final = 10.0
"""At most one summary line per streak of identical failures in this many seconds (a crash loop
at OTP's default pace, 1 restart/5 s, then prints one line per 10 s instead of one per crash)."""

log = logging.getLogger("rtrun.supervisor")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorEvent:
    """One supervision decision, for telemetry and logs."""

    kind: str
    """``started`` | ``exited`` | ``restarting`` | ``start_failed`` | ``killed`` | ``escalated`` |
    ``gave_up`` (a ``ConfigurationError``: not restarted, the supervisor stops) | ``stopped`` |
    ``terminated``."""
    supervisor: str
    """Id of the supervisor that decided."""
    child: str | None
    """Child concerned (None for supervisor-wide events)."""
    reason: str
    """``normal``, ``shutdown``, or the exception's repr."""
    traceback: str | None
    """Formatted traceback of a failure, else None."""
    restarts: int
    """The child's restart count after this event."""
    time: float
    """Runtime clock (``anyio.current_time()``)."""


def leaf(exc: BaseException) -> BaseException:
    """The exception inside exception groups that hold a single exception."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException) -> str:
    """repr of the exception, looking through exception groups that hold a single exception."""
    return repr(leaf(exc))


def format_tb(exc: BaseException) -> str:
    """The formatted traceback of ``exc`` (groups included)."""
    return "".join(traceback.format_exception(exc))


def event_level(event: SupervisorEvent) -> int:
    """Log level of an event that is not a failure report."""
    if event.kind in ("escalated", "gave_up"):
        return logging.ERROR
    if event.kind in ("exited", "start_failed", "killed") and event.reason != "normal":
        return logging.WARNING
    return logging.INFO


def _fingerprint(exc: BaseException) -> tuple[str, str, str]:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    return (type(exc).__qualname__, str(exc), where)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(slots=True)
class _Streak:
    """Identical failures of one child since its last report."""

    fingerprint: tuple[str, str, str]
    text: str
    since: float
    """When the last line about this streak was logged."""
    unreported: int = 0


@final
class FailureLog:
    """Logs child failures: first of a kind with its traceback, identical repeats summarised."""

    def __init__(self, period: float = REPEAT_SUMMARY_S) -> None:
        self._period = period
        self._streaks: dict[str, _Streak] = {}

    def report(self, event: SupervisorEvent, exc: BaseException | None = None) -> None:
        """Log ``event``: a failure (``exc`` given) through :meth:`failure`, else one line."""
        if exc is not None:
            self.failure(event, exc)
            return
        log.log(event_level(event), "%s/%s %s: %s", event.supervisor, event.child or "-", event.kind,
                event.reason, extra={"rtrun_event": event})  # fmt: skip

    def failure(self, event: SupervisorEvent, exc: BaseException) -> None:
        """Report the failure ``exc`` described by ``event`` (``exited`` or ``start_failed``)."""
        exc = leaf(exc)
        where = f"{event.supervisor}/{event.child}"
        if getattr(exc, "_rtrun_reported", False):
            log.info(
                "%s %s: %s (reported above)", where, event.kind, _text(exc), extra={"rtrun_event": event}
            )
            return
        fingerprint = _fingerprint(exc)
        streak = self._streaks.get(where)
        if streak is not None and streak.fingerprint == fingerprint:
            streak.unreported += 1
            if event.time - streak.since >= self._period:
                self._summarise(where, streak, event.time)
            return
        self.flush(where, event.time)
        self._streaks[where] = _Streak(fingerprint, _text(exc), event.time)
        _mark_reported(exc)
        verb = "failed to start" if event.kind == "start_failed" else "crashed"
        log.error("%s %s: %s", where, verb, _text(exc), exc_info=exc, extra={"rtrun_event": event})

    def flush(self, where: str, now: float) -> None:
        """Log the pending summary of ``where``'s streak, if any."""
        streak = self._streaks.get(where)
        if streak is not None and streak.unreported:
            self._summarise(where, streak, now)

    def flush_all(self, now: float) -> None:
        """Log every pending summary (the supervisor escalates or stops)."""
        for where in list(self._streaks):
            self.flush(where, now)

    @staticmethod
    def _summarise(where: str, streak: _Streak, now: float) -> None:
        log.warning(
            "%s failed again the same way (%dx in %.3g s): %s",
            where,
            streak.unreported,
            now - streak.since,
            streak.text,
        )
        streak.unreported, streak.since = 0, now


def _mark_reported(exc: BaseException) -> None:
    try:
        exc._rtrun_reported = True  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - exceptions with __slots__ and no __dict__
        pass
