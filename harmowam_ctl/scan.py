"""`harmowam scan`: which servos answer on a port, with their model, firmware, position and health."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hardware.arms import ARMS, arm
from hardware.bus import DynamixelBus, FeetechBus, open_bus
from hardware.tables import MODELS_BY_NUMBER, Family

_HEALTH = {
    Family.FEETECH: ("Present_Position", "Present_Voltage", "Present_Temperature"),
    Family.DYNAMIXEL: ("Present_Position", "Present_Input_Voltage", "Present_Temperature"),
}


class ScanConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: str
    arm: str | None = None
    family: Literal["feetech", "dynamixel"] | None = None
    baud: int = Field(1_000_000, gt=0)

    @model_validator(mode="after")
    def _family_known(self) -> "ScanConfig":
        if self.arm is not None:
            if self.arm not in ARMS:
                raise ValueError(f"arm must be one of {', '.join(ARMS)}")
            self.family = arm(self.arm).family.value
        if self.family is None:
            raise ValueError("give --arm or --family (feetech or dynamixel)")
        return self


async def scan(cfg: ScanConfig) -> list[dict[str, Any]]:
    family = Family(cfg.family)
    if cfg.arm:
        profile = arm(cfg.arm)
        bus = open_bus(profile, cfg.port, cfg.baud)
    else:
        profile = None
        bus = (FeetechBus if family is Family.FEETECH else DynamixelBus)(cfg.port, cfg.baud)
    rows = []
    async with bus:
        found = await bus.verify(profile) if profile else await bus.scan()
        pos_name, volt_name, temp_name = _HEALTH[family]
        for servo_id, number in sorted(found.items()):
            model = MODELS_BY_NUMBER.get((family, number))
            ping = await bus.ping(servo_id)
            pos = await bus.read(servo_id, pos_name)
            volt = await bus.read(servo_id, volt_name)
            temp = await bus.read(servo_id, temp_name)
            rows.append(
                {
                    "id": servo_id,
                    "joint": profile.motor(servo_id).joint if profile and servo_id in profile.ids else "",
                    "model": model.name if model else f"unknown ({number})",
                    "firmware": ".".join(str(v) for v in ping.firmware),
                    "position": pos.value,
                    "voltage_v": volt.value / 10.0,
                    "temperature_c": temp.value,
                    "faults": str(pos.faults) if pos.faults else "",
                }
            )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no servo answered"
    head = f"{'id':>3}  {'joint':<14}{'model':<12}{'fw':<8}{'position':>9}{'volts':>7}{'temp':>6}  faults"
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['id']:>3}  {r['joint']:<14}{r['model']:<12}{r['firmware']:<8}{r['position']:>9}"
            f"{r['voltage_v']:>7.1f}{r['temperature_c']:>6}  {r['faults']}"
        )
    return "\n".join(lines)
