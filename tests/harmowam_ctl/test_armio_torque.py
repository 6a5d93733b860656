"""``ArmIO.release_torque``: a sync write has no reply, so the release is read back and written again
to the servos that still report torque on; what never turned off is returned (the runtime reports it)."""

from __future__ import annotations

from types import SimpleNamespace

from hardware.arms import arm as arm_by_name
from hardware.errors import HardwareError
from harmowam_ctl.armio import ArmIO


class _Bus:
    """Servo torque registers; the first ``lose`` Torque_Enable writes are lost on the wire; ``stuck``
    servos never turn off; ``read_fails`` reads time out first."""

    def __init__(self, ids, lose: int = 0, stuck=(), read_fails: int = 0) -> None:
        self.torque = dict.fromkeys(ids, 1)
        self.lose, self.stuck, self.read_fails = lose, set(stuck), read_fails
        self.writes: list[dict[int, int]] = []

    async def sync_write(self, register: str, values: dict[int, int]) -> None:
        assert register == "Torque_Enable"
        self.writes.append(dict(values))
        if self.lose:
            self.lose -= 1
            return
        for i, v in values.items():
            if i not in self.stuck:
                self.torque[i] = v

    async def sync_read(self, register: str, ids) -> SimpleNamespace:
        if self.read_fails:
            self.read_fails -= 1
            raise HardwareError("no reply")
        return SimpleNamespace(values={i: self.torque[i] for i in ids})


def _arm(bus: _Bus) -> ArmIO:
    return ArmIO(bus, arm_by_name("so101"), calibration=None)


async def test_released_first_time_writes_once() -> None:
    bus = _Bus(range(1, 7))
    assert await _arm(bus).release_torque() == []
    assert len(bus.writes) == 1 and set(bus.torque.values()) == {0}


async def test_a_lost_write_is_sent_again_to_the_servos_still_on() -> None:
    bus = _Bus(range(1, 7), lose=1)
    assert await _arm(bus).release_torque() == []
    assert len(bus.writes) == 2 and set(bus.torque.values()) == {0}
    bus = _Bus(range(1, 7), read_fails=1)  # an unreadable answer counts as "not known to be off"
    assert await _arm(bus).release_torque() == [] and len(bus.writes) == 2


async def test_a_servo_that_never_turns_off_is_named_after_three_tries() -> None:
    bus = _Bus(range(1, 7), stuck={3})
    assert await _arm(bus).release_torque() == [3]
    assert len(bus.writes) == 3 and bus.writes[1] == {3: 0} and bus.writes[2] == {3: 0}
