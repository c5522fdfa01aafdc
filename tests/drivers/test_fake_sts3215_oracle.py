"""LeRobot's own ``FeetechMotorsBus`` drives the fake STS3215 bus over a socat pty pair.

This validates the fake with an implementation rtrun did not write (hardware.md §4.2): LeRobot
0.4.4 completes its handshake (ping + model + firmware), ``sync_read``, ``sync_write`` and
``disconnect(disable_torque=True)`` against it.
"""

from __future__ import annotations

import os
import shutil
import sys
import types

import pytest
from rtrun.drivers.fake_sts3215 import FakeSTS3215Bus, FakeSTS3215Server, socat_pty_pair

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed"),
]

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hub
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
pytest.importorskip("serial")
pytest.importorskip("lerobot")
lerobot_bus = pytest.importorskip("lerobot.motors.motors_bus")
lerobot_feetech = pytest.importorskip("lerobot.motors.feetech")


def test_lerobot_session_against_the_fake() -> None:
    fake = FakeSTS3215Bus([1, 2, 3])
    motors = {
        f"j{i}": lerobot_bus.Motor(i, "sts3215", lerobot_bus.MotorNormMode.RANGE_M100_100) for i in (1, 2, 3)
    }
    calibration = {f"j{i}": lerobot_bus.MotorCalibration(i, 0, 0, 500, 3500) for i in (1, 2, 3)}
    with socat_pty_pair() as pair, FakeSTS3215Server(pair.b, fake):
        bus = lerobot_feetech.FeetechMotorsBus(pair.a, motors, calibration=calibration)
        bus.connect()
        try:
            raw = bus.sync_read("Present_Position", normalize=False)
            assert raw == {"j1": 2048, "j2": 2048, "j3": 2048}
            assert bus.sync_read("Present_Position")["j1"] == pytest.approx(3.2, abs=0.01)
            bus.sync_write("Goal_Position", {"j1": 100, "j2": 2048, "j3": 4095}, normalize=False)
            bus.enable_torque()
            assert [fake.get_register(i, "Lock") for i in (1, 2, 3)] == [1, 1, 1]
        finally:
            bus.disconnect(disable_torque=True)
    assert [fake.get_register(i, "Goal_Position") for i in (1, 2, 3)] == [100, 2048, 4095]
    assert [fake.get_register(i, "Torque_Enable") for i in (1, 2, 3)] == [0, 0, 0]
