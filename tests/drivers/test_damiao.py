"""Damiao / RobStride MIT mode, sans-io: byte-exact frames (goldens and the damiao-motor oracle).

The bus itself is tested in ``test_damiao_virtual.py`` (in-process) and ``test_damiao_slcan.py``
(across processes)."""

from __future__ import annotations

import math

import pytest
from rtrun.drivers.damiao import (
    DAMIAO_LIMITS,
    ROBSTRIDE_LIMITS,
    CanFrame,
    clear_fault_frame,
    decode_damiao_feedback,
    decode_robstride_feedback,
    disable_frame,
    enable_frame,
    pack_damiao_feedback,
    pack_mit_command,
    pack_robstride_feedback,
    param_query_frame,
    refresh_frame,
    set_zero_frame,
)

DM4310 = DAMIAO_LIMITS["DM4310"]

# ---------------------------------------------------------------------------------------------
# Sans-io core: goldens from hardware.md §5


def test_mit_golden_dm4310() -> None:
    data = pack_mit_command(DM4310, position=math.radians(45.0), kp=10.0, kd=0.5)
    assert data.hex(" ") == "88 0a 7f f0 51 19 97 ff"


def test_mit_golden_robstride_o2() -> None:
    data = pack_mit_command(ROBSTRIDE_LIMITS["O2"], position=math.radians(45.0), kp=10.0, kd=0.5)
    assert data.hex(" ") == "87 fe 7f f0 51 19 97 ff"


def test_special_frames() -> None:
    assert enable_frame(1) == CanFrame(0x01, bytes.fromhex("fffffffffffffffc"))
    assert disable_frame(2) == CanFrame(0x02, bytes.fromhex("fffffffffffffffd"))
    assert set_zero_frame(3) == CanFrame(0x03, bytes.fromhex("fffffffffffffffe"))
    assert clear_fault_frame(4) == CanFrame(0x04, bytes.fromhex("fffffffffffffffb"))
    assert refresh_frame(0x102) == CanFrame(0x7FF, bytes.fromhex("0201cc0000000000"))
    assert param_query_frame(1, 21) == CanFrame(0x7FF, bytes.fromhex("0100331500000000"))


def test_out_of_range_commands_clamp() -> None:
    top = pack_mit_command(DM4310, position=99.0, velocity=99.0, kp=999.0, kd=99.0, torque=99.0)
    assert top.hex() == "ffffffffffffffff"
    bottom = pack_mit_command(DM4310, position=-99.0, velocity=-99.0, kp=-1.0, kd=-1.0, torque=-99.0)
    assert bottom.hex() == "0000000000000000"


@pytest.mark.parametrize("field", ["position", "velocity", "kp", "kd", "torque"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_commands_are_rejected(field: str, value: float) -> None:
    args = {"position": 0.0, "velocity": 0.0, "kp": 10.0, "kd": 0.5, "torque": 0.0, field: value}
    with pytest.raises(ValueError, match=f"finite.*{field}"):
        pack_mit_command(DM4310, **args)


def test_damiao_feedback_decode_golden() -> None:
    fb = decode_damiao_feedback(DM4310, bytes.fromhex("11880a7ff7ff1e1f"))
    assert fb.status == 1 and fb.fault is None
    assert fb.position == pytest.approx(math.radians(45.0), abs=1e-3)
    assert (fb.temp_mos, fb.temp_rotor) == (30.0, 31.0)


def test_feedback_round_trips() -> None:
    data = pack_damiao_feedback(DM4310, motor_id=3, status=0xB, position=-1.25, velocity=2.0, torque=-3.0)
    assert data[0] == 0xB3
    fb = decode_damiao_feedback(DM4310, data)
    assert fb.fault == 0xB
    assert (fb.position, fb.velocity, fb.torque) == pytest.approx((-1.25, 2.0, -3.0), abs=0.02)
    o2 = ROBSTRIDE_LIMITS["O2"]
    rs = decode_robstride_feedback(o2, pack_robstride_feedback(o2, recv_id=0x21, position=0.5, temp_mos=41.3))
    assert (rs.position, rs.temp_mos, rs.temp_rotor, rs.status) == (
        pytest.approx(0.5, abs=1e-3),
        41.3,
        None,
        None,
    )


@pytest.mark.parametrize("bad", [b"", bytes(7), bytes(9)])
def test_feedback_must_be_8_bytes(bad: bytes) -> None:
    with pytest.raises(ValueError, match="8 bytes"):
        decode_damiao_feedback(DM4310, bad)


def test_can_frame_validation() -> None:
    with pytest.raises(ValueError, match="11-bit"):
        CanFrame(0x800, b"")
    with pytest.raises(ValueError, match="8 data bytes"):
        CanFrame(1, bytes(9))


# ---------------------------------------------------------------------------------------------
# damiao-motor as the oracle (test-oracles.md §8); compared only where the limit tables agree

AGREED_MODELS = {  # rtrun (LeRobot) name -> damiao-motor name; equal (PMAX, VMAX, TMAX)
    "DM4310": "4310",
    "DM4310_48V": "4310P",
    "DM6006": "6006",
    "DM8006": "8006",
    "DM8009": "8009",
    "DM10010L": "10010L",
    "DM10010": "10010",
    "DMH3510": "H3510",
}
SETPOINTS = [
    (math.radians(45.0), 0.0, 0.0, 10.0, 0.5),
    (0.0, 0.0, 0.0, 0.0, 0.0),
    (-3.3, 1.7, -0.4, 37.5, 1.25),
    (12.5, -30.0, 10.0, 500.0, 5.0),
    (-20.0, 400.0, -250.0, 600.0, -1.0),  # clamped everywhere
    (1e-3, -1e-3, 1e-3, 0.123, 4.999),
]


@pytest.mark.oracle
@pytest.mark.parametrize("model", sorted(AGREED_MODELS))
def test_packing_matches_damiao_motor(model: str) -> None:
    motor_mod = pytest.importorskip("damiao_motor.core.motor", reason="damiao-motor is not installed")
    oracle = motor_mod.DaMiaoMotor(1, 0x11, None, motor_type=AGREED_MODELS[model])
    for p, v, t, kp, kd in SETPOINTS:
        ours = pack_mit_command(DAMIAO_LIMITS[model], position=p, velocity=v, kp=kp, kd=kd, torque=t)
        assert ours == oracle.encode_cmd_msg(p, v, t, kp, kd), (model, p, v, t, kp, kd)


@pytest.mark.oracle
def test_special_frames_and_feedback_match_damiao_motor() -> None:
    motor_mod = pytest.importorskip("damiao_motor.core.motor", reason="damiao-motor is not installed")
    oracle = motor_mod.DaMiaoMotor(1, 0x11, None, motor_type="4310")
    assert enable_frame(1).data == oracle.encode_enable_msg()
    assert disable_frame(1).data == oracle.encode_disable_msg()
    assert set_zero_frame(1).data == oracle.encode_save_position_zero_msg()
    assert clear_fault_frame(1).data == oracle.encode_clear_error_msg()
    for payload in ("11880a7ff7ff1e1f", "b1000000000a2a2b", "01ffffffffff0000"):
        ours = decode_damiao_feedback(DM4310, bytes.fromhex(payload))
        theirs = oracle.decode_sensor_feedback(bytes.fromhex(payload))
        assert (ours.position, ours.velocity, ours.torque) == (theirs["pos"], theirs["vel"], theirs["torq"])
        assert (ours.status, ours.temp_mos, ours.temp_rotor) == (
            theirs["status_code"],
            theirs["t_mos"],
            theirs["t_rotor"],
        )
