"""The error base shared by every driver family: :class:`TransientError`.

Each device family keeps its own error tree (``MotorBusError``, ``CameraError``,
``CanMotorError``...). Some of those errors are *transient*: the device is still there and the
next call may well succeed (a bus reply that timed out or arrived corrupt, a camera frame that
did not come in time, a CAN motor that missed one exchange). They inherit from
:class:`TransientError` as a second base, so an actor decides retry-vs-fail with one
``isinstance`` check instead of a list of class names::

    MotorBusError ─┬─ BusTimeoutError        (TransientError)
                   └─ ChecksumError          (TransientError)
    CameraError   ─── CameraTimeoutError     (TransientError)
    CanMotorError ─── CanMotorNotRespondingError (TransientError)

Retrying is still bounded by the actor (``max_consecutive_errors`` /
``max_consecutive_timeouts``): a transient error that keeps coming fails the actor. A new driver
marks its own transient errors the same way; everything else fails the actor at once.
"""

from __future__ import annotations

__all__ = ["TransientError"]


class TransientError(Exception):
    """A driver failure after which the device stays usable: the actor may retry the call.

    A mix-in base (it adds no state): the concrete error also derives from its family's base,
    e.g. ``class BusTimeoutError(MotorBusError, TransientError)``.
    """
