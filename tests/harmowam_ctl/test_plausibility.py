"""The action chunk plausibility check (``harmowam_ctl.plausibility``): pure checks on chunks, the config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration import ArmCalibration
from hardware.arms import JOINT_NAMES
from hardware.arms import arm as arm_by_name
from harmowam_ctl.config import ConfigError
from harmowam_ctl.plausibility import (
    UNITS_HINT,
    ChunkCheck,
    ImplausibleChunk,
    PlausibilityConfig,
    calibrated_limits,
    check_chunk,
)
from harmowam_ctl.runconfig import RunConfig, load
from harmowam_ctl.safety import SafetyFilter
from harmowam_ctl.setup import safety_config
from harmowam_ctl.types import ActionChunk

PROFILE = arm_by_name("so101")
CAL = ArmCalibration.centered(PROFILE).for_profile(PROFILE)
LO, HI = CAL.limits_rad_arrays()
SPAN = HI - LO
SPEEDS = PlausibilityConfig().speeds()  # 10 rad/s for the arm joints, the gripper not speed-checked
DT = 1 / 30
PRESENT = np.array([0.1, -0.2, 0.3, -0.1, 0.05, 0.4])
LEROBOT_DEGREES = [37.0, -28.0, 45.0, 73.0, 72.0, 68.0]  # measured: a degrees policy driven as radians


def chunk(actions: np.ndarray | list[list[float]], t0: float = 100.0, dt: float = DT) -> ActionChunk:
    return ActionChunk(t0=t0, dt=dt, actions=np.asarray(actions, dtype=float), t_obs=t0)


def check(c: ActionChunk, present: np.ndarray | None = PRESENT, t_present: float | None = 100.0, **kw):  # noqa: ANN201
    return check_chunk(c, present, t_present, LO, HI, SPEEDS, 0.10, **kw)


def smooth(start: np.ndarray, velocity: np.ndarray, horizon: int = 30, dt: float = DT) -> np.ndarray:
    return start + np.outer(np.arange(horizon) * dt, velocity)


def test_an_in_range_chunk_passes() -> None:
    a = smooth(PRESENT, np.array([0.5, -0.3, 0.2, 0.4, -0.6, 0.8]))
    assert check(chunk(a)) is None
    assert check(chunk(a), present=None, t_present=None) is None  # no measurement: (c) is skipped


@pytest.mark.parametrize("joint", range(6))
@pytest.mark.parametrize("side", ["hi", "lo"])
def test_the_range_margin_is_ten_percent_of_the_calibrated_range(joint: int, side: str) -> None:
    def at(frac: float) -> ActionChunk:
        a = np.tile(np.clip(PRESENT, LO, HI), (3, 1))
        a[:, joint] = HI[joint] + frac * SPAN[joint] if side == "hi" else LO[joint] - frac * SPAN[joint]
        return chunk(a)

    # (check (c) is off for this: the target may be a whole range from present)
    assert check(at(0.0), present=None) is None  # at the limit
    assert check(at(0.09), present=None) is None  # 9 % beyond: a genuine overshoot
    bad = check(at(0.11), present=None)
    assert bad is not None and bad.kind == "range"
    assert bad.joint == JOINT_NAMES[joint] and bad.index == joint and bad.step == 0
    assert bad.limit_rad == pytest.approx(HI[joint] if side == "hi" else LO[joint])
    assert bad.value_rad == pytest.approx(at(0.11).actions[0, joint])
    assert bad.others == ()
    # the margin is a parameter
    assert check_chunk(at(0.11), None, None, LO, HI, SPEEDS, margin_frac=0.12) is None
    assert check_chunk(at(0.09), None, None, LO, HI, SPEEDS, margin_frac=0.08) is not None


def test_degrees_as_radians_fails_naming_shoulder_pan_the_value_and_wrong_units() -> None:
    bad = check(chunk(np.tile(LEROBOT_DEGREES, (10, 1))))
    assert bad is not None and bad.kind == "range"
    assert bad.joint == "shoulder_pan" and bad.step == 0 and bad.value_rad == 37.0
    assert bad.limit_rad == pytest.approx(HI[0])
    assert set(bad.others) == set(JOINT_NAMES[1:])  # every joint is out: all listed
    m = bad.message
    assert m.startswith("shoulder_pan target 37.000 rad (2119.9 deg)")
    assert f"{HI[0]:.3f} rad ({math.degrees(HI[0]):.1f} deg)" in m  # the limit, in rad and degrees
    assert UNITS_HINT in m and "wrong units?" in m and "--policy-units" in m and "LeRobot degrees" in m
    assert "never clamped" in m
    assert bad.summary.startswith("shoulder_pan target 37.000 rad") and bad.summary.endswith("wrong units?")
    # as the runtime reports it (the policy watchdog keeps the first 200 characters of its text)
    e = ImplausibleChunk(bad)
    assert isinstance(e, ValueError) and e.finding is bad and str(e) == m
    text = f"policy act failed: {type(e).__name__}: {e}"[:200]
    assert "shoulder_pan" in text and "37.000 rad" in text and "wrong units?" in text


def test_a_degrees_pose_of_the_measured_arm_fails() -> None:
    """What a degrees policy does near where the arm is: the observed pose in degrees, slowly moving."""
    a = smooth(np.degrees(PRESENT), np.array([3.0, -2.0, 1.0, 0.5, 0.0, -5.0]))  # deg/s, as "rad"
    bad = check(chunk(a))
    assert bad is not None and bad.kind == "range" and bad.joint == "shoulder_pan"


def test_a_big_jump_between_consecutive_steps_fails() -> None:
    a = np.tile(PRESENT, (8, 1))
    a[4:, 3] += 0.8  # wrist_flex: 0.8 rad in one 1/30 s step = 24 rad/s, all inside the range
    bad = check(chunk(a))
    assert bad is not None and bad.kind == "step"
    assert bad.joint == "wrist_flex" and bad.step == 4
    assert bad.speed_rad_s == pytest.approx(24.0) and bad.limit_rad == 10.0
    assert bad.value_rad == pytest.approx(PRESENT[3] + 0.8)
    assert "wrist_flex" in bad.message and "24.0 rad/s" in bad.message and "wrong units?" in bad.message
    assert "deg" in bad.message


def test_a_fast_but_possible_chunk_passes() -> None:
    # 6 rad/s on every arm joint (4x the safety filter's speed, faster than any demonstration), and the
    # gripper snapping shut in one step (open/close is a step by design: not speed-checked)
    a = smooth(np.zeros(6), np.array([6.0, -6.0, 6.0, -6.0, 6.0, 0.0]), horizon=8)
    a[:4, 5], a[4:, 5] = 1.5, -0.1
    assert check(chunk(a), present=np.zeros(6) + np.array([0, 0, 0, 0, 0, 1.5])) is None
    # the same with a 100 Hz chunk
    b = smooth(np.zeros(6), np.array([9.0, 0.0, 0.0, 0.0, 0.0, 0.0]), horizon=20, dt=0.01)
    assert check(chunk(b, dt=0.01), present=np.zeros(6)) is None


def test_the_gripper_speed_can_be_checked_too() -> None:
    a = np.tile(PRESENT, (4, 1))
    a[2:, 5] = -0.1  # 0.5 rad in 1/30 s = 15 rad/s
    speeds = PlausibilityConfig(gripper_max_speed_rad_s=10.0).speeds()
    bad = check_chunk(chunk(a), PRESENT, 100.0, LO, HI, speeds)
    assert bad is not None and bad.kind == "step" and bad.joint == "gripper"
    assert check_chunk(chunk(a), PRESENT, 100.0, LO, HI, [10, 10, 10, 10, 10, None]) is None


def test_the_first_step_far_from_present_after_a_pause_passes() -> None:
    """After a hold or a take-over the policy's first target can be a radian from where the arm is (a
    joint held back, the plan resuming): allowed, the safety filter moves there slowly."""
    first = PRESENT + np.array([1.0, -1.0, 0.9, 1.2, -2.0, -0.5])
    a = np.tile(first, (10, 1))
    # the measurement is 0.3 s older than the chunk (the arm was held): even more time to get there
    assert check(chunk(a, t0=100.3), t_present=100.0) is None
    assert check(chunk(a, t0=100.0), t_present=100.0, now=100.0) is None


def test_a_first_step_beyond_reach_of_the_measured_position_fails() -> None:
    a = np.tile(PRESENT, (5, 1))
    a[:, 4] = 3.4  # wrist_roll from -3.0 to 3.4: 6.4 rad, more than 10 rad/s covers in 0.5 s
    present = PRESENT.copy()
    present[4] = -3.0
    bad = check(chunk(a), present=present)
    assert bad is not None and bad.kind == "from_present" and bad.joint == "wrist_roll" and bad.step == 0
    assert "wrist_roll" in bad.message and "from the measured -3.000 rad" in bad.message
    assert "wrong units?" in bad.message
    # a tighter allowance catches smaller jumps: 1 rad in (0 + 0.05) s is 20 rad/s
    b = np.tile(PRESENT + np.array([1.0, 0, 0, 0, 0, 0]), (5, 1))
    assert check(chunk(b)) is None
    tight = check(chunk(b), first_step_grace_s=0.05)
    assert tight is not None and tight.kind == "from_present" and tight.joint == "shoulder_pan"
    # a NaN in the measurement skips that joint
    nan = present.copy()
    nan[4] = np.nan
    assert check(chunk(a), present=nan) is None


def test_the_first_due_step_is_the_one_the_buffer_keeps() -> None:
    """A chunk arriving late: its past steps are not compared with the present position (they are cut)."""
    a = smooth(np.zeros(6), np.array([1.0, 0, 0, 0, 0, 0]), horizon=30, dt=0.1)  # 1 rad/s, 0 .. 2.9
    present = a[20].copy()  # the arm is at step 20
    kw = {"first_step_grace_s": 0.0}
    speeds = np.full(6, 1.5)
    assert check_chunk(chunk(a, t0=100.0, dt=0.1), present, 102.0, LO * 2, HI * 2, speeds, now=102.0, **kw) is None
    bad = check_chunk(chunk(a, t0=100.0, dt=0.1), present, 100.0, LO * 2, HI * 2, speeds, now=100.0, **kw)
    assert bad is not None and bad.kind == "from_present" and bad.step == 0


def test_calibrated_limits_are_the_calibration_not_the_safety_margin() -> None:
    class Arm:
        cal = CAL

    lo, hi, source = calibrated_limits(Arm())
    assert source == "calibration"
    np.testing.assert_allclose(lo, LO)
    np.testing.assert_allclose(hi, HI)
    safety = SafetyFilter(safety_config(RunConfig(sim=True), PROFILE, CAL))
    assert np.all(lo < np.array(safety.config.lower_rad)) and np.all(hi > np.array(safety.config.upper_rad))
    assert hi[4] == pytest.approx(math.pi, abs=0.01)  # full-turn wrist_roll: its calibrated range, not the URDF's

    class Fake:  # a converter without a calibration (test fakes): the safety filter's limits
        cal = object()

    lo2, hi2, source2 = calibrated_limits(Fake(), safety)
    assert source2 == "safety filter" and tuple(lo2) == safety.config.lower_rad
    with pytest.raises(ValueError, match="no joint limits"):
        calibrated_limits(Fake())


def test_chunk_check_uses_its_config_and_can_only_be_turned_off_explicitly() -> None:
    class Arm:
        cal = CAL

    degrees = chunk(np.tile(LEROBOT_DEGREES, (5, 1)))
    on = ChunkCheck.for_arm(None, Arm())
    assert on.enabled and on.check(degrees, PRESENT, 100.0, 100.0).joint == "shoulder_pan"
    off = ChunkCheck.for_arm(PlausibilityConfig(enabled=False), Arm())
    assert not off.enabled and off.check(degrees, PRESENT, 100.0, 100.0) is None
    wide = ChunkCheck.for_arm(PlausibilityConfig(range_margin_frac=1.0, max_speed_rad_s=100.0), Arm())
    a = np.tile(PRESENT, (3, 1))
    a[:, 0] = HI[0] + 0.5 * SPAN[0]
    assert wide.check(chunk(a), None, None) is None and on.check(chunk(a), None, None).kind == "range"


def test_run_config_has_the_section_on_by_default() -> None:
    cfg = RunConfig(sim=True)
    assert cfg.plausibility.enabled and cfg.plausibility.range_margin_frac == 0.10
    assert cfg.plausibility.max_speed_rad_s == 10.0 and cfg.plausibility.gripper_max_speed_rad_s is None
    off = load(None, {"sim": True}, ["plausibility.enabled=false", "plausibility.max_speed_rad_s=8"])
    assert not off.plausibility.enabled and off.plausibility.max_speed_rad_s == 8.0
    with pytest.raises(ConfigError, match="plausibility"):
        load(None, {"sim": True}, ["plausibility.range_margin_frac=-0.1"])
    with pytest.raises(ConfigError, match="plausibility"):
        load(None, {"sim": True}, ["plausibility.margin=0.2"])
    for name, f in PlausibilityConfig.model_fields.items():
        assert f.description, f"plausibility.{name} has no description"


def test_no_grace_and_an_unchecked_gripper_give_no_warning() -> None:
    a = np.tile(PRESENT, (3, 1))
    with np.errstate(all="raise"):
        assert check(chunk(a, t0=99.0), t_present=100.0, now=99.0, first_step_grace_s=0.0) is None
