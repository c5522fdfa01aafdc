"""Which driver errors are transient: the one type actors check to decide retry-vs-fail."""

from __future__ import annotations

import pytest
from rtrun import drivers
from rtrun.drivers import (
    BusTimeoutError,
    CameraConfigError,
    CameraDisconnectedError,
    CameraTimeoutError,
    CanBusError,
    CanMotorFaultError,
    CanMotorNotRespondingError,
    ChecksumError,
    HandshakeError,
    PortError,
    ServoError,
    SimError,
    TransientError,
)


@pytest.mark.parametrize(
    "cls", [BusTimeoutError, ChecksumError, CameraTimeoutError, CanMotorNotRespondingError]
)
def test_transient_errors(cls: type[Exception]) -> None:
    assert issubclass(cls, TransientError)


@pytest.mark.parametrize(
    "cls",
    [
        ServoError,
        PortError,
        HandshakeError,
        CameraDisconnectedError,
        CameraConfigError,
        CanBusError,
        CanMotorFaultError,
        SimError,
    ],
)
def test_permanent_errors_are_not_transient(cls: type[Exception]) -> None:
    assert not issubclass(cls, TransientError)


def test_transient_errors_keep_their_family_base() -> None:
    assert issubclass(BusTimeoutError, drivers.MotorBusError)
    assert issubclass(CameraTimeoutError, drivers.CameraError)
    assert issubclass(CanMotorNotRespondingError, drivers.CanMotorError)
    err = BusTimeoutError("no reply", motor_id=3, operation="read")
    assert isinstance(err, TransientError) and str(err) == "motor 3: no reply during read"
