"""The configuration of ``harmowam run`` / ``teleop`` / ``record``: one pydantic model, from a YAML file
(``--config FILE``), flags, and ``--set section.field=value`` for everything else.

Errors name the field as a flag (``--watchdogs.camera.reaction: Input should be 'hold' or 'safe_stop'``)
through ``harmowam_ctl.config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hardware.arms import ARMS
from harmowam_ctl.arbiter import ArbiterConfig
from harmowam_ctl.buffer import BufferConfig
from harmowam_ctl.config import ConfigError, build
from harmowam_ctl.plausibility import PlausibilityConfig
from harmowam_ctl.safestop import SafeStopConfig
from harmowam_ctl.teleop import TeleopConfig
from harmowam_ctl.telemetry import TelemetryConfig
from harmowam_ctl.watchdogs import WatchdogConfig


class CameraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("front", pattern=r"^[A-Za-z0-9_]+$")
    source: int | str = Field(0, description="OpenCV index (0 = /dev/video0) or a device path")
    fps: float = Field(30.0, gt=0, le=240)
    width: int = Field(640, gt=0)
    height: int = Field(480, gt=0)


class SafetyLimits(BaseModel):
    """Overrides of the safety filter's defaults (None keeps the arm's default)."""

    model_config = ConfigDict(extra="forbid")

    max_velocity_rad_s: float | None = Field(None, gt=0, le=10)
    max_accel_rad_s2: float | None = Field(None, gt=0, le=200)
    max_step_from_present_rad: float | None = Field(None, gt=0, le=1.5)
    margin_rad: float = Field(0.02, ge=0, le=0.3)
    stall_load: float | None = Field(None, gt=0, le=1)


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: str = Field("so101", description="arm profile")
    port: str | None = Field(None, description="the follower's serial port (not with --sim)")
    calibration: str | None = Field(None, description="calibration name (LeRobot's id) of the follower")
    sim: bool = Field(False, description="drive the simulated arm (starts the emulator itself)")
    task: str = Field("pick_place", description="simulated task (with --sim)")
    seed: int = Field(0, ge=0)
    spec: str = Field("in_domain", description="variation spec of the simulated task")
    sim_faults: str | None = Field(None, description="emulator faults for --sim, e.g. 'corrupt=0.01'")
    policy: str | None = Field(None, description="policy: scripted, synthetic, or a checkpoint directory")
    policy_mode: Literal["auto", "thread", "process"] = "auto"
    policy_overlap: bool = Field(True, description=(
        "predict the next observation while act works on the last (two stages at once: more chunks per second); "
        "False: one observation at a time through predict then act (less latency when CPU is short)"))
    policy_nice: int | None = Field(None, ge=0, le=19, description=(
        "how much lower the policy workers' CPU priority is (0..19); default: 0 when the tick's threads get "
        "real-time priority (they no longer need it), else 10"))
    policy_options: dict[str, Any] = Field(default_factory=dict)
    policy_units: Literal["rad", "lerobot", "lerobot-degrees", "lerobot-range"] | None = Field(None, description=(
        "the units of a checkpoint that does not record them (calibration.units): rad, lerobot (LeRobot's default "
        "for the arm: SO degrees, Koch -100..100, gripper 0..100), lerobot-degrees, lerobot-range; a checkpoint "
        "that records its units never needs it, and one that contradicts it is refused"))
    torch_threads: int = Field(1, ge=1, le=64)
    cameras: list[CameraConfig] = Field(default_factory=list)
    rate_hz: float = Field(100.0, ge=10.0, le=500.0, description="servo tick rate")
    lookahead_s: float = Field(0.0, ge=0.0, le=0.2, description="sample actions this far ahead (latency compensation)")
    duration_s: float | None = Field(None, gt=0, description="end (with a safe stop) after this long")
    leader_arm: str | None = Field(None, description="leader arm profile for teleop override")
    leader_port: str | None = None
    leader_calibration: str | None = None
    leader_sim: bool = Field(False, description="an emulated leader arm (moved with the sim keys)")
    keyboard: bool = Field(True, description="read keys from the terminal (t take over, h hold, s stop, q quit)")
    status: bool = True
    realtime: bool = Field(True, description=(
        "run the servo tick's threads (event loop, metronome, bus I/O) at real-time priority (Linux SCHED_FIFO) "
        "when the system allows it; otherwise a warning says how to allow it (hardware.realtime)"))
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    arbiter: ArbiterConfig = Field(default_factory=ArbiterConfig)
    safety: SafetyLimits = Field(default_factory=SafetyLimits)
    watchdogs: WatchdogConfig = Field(default_factory=WatchdogConfig)
    plausibility: PlausibilityConfig = Field(default_factory=PlausibilityConfig, description=(
        "every action chunk is checked before it is driven: targets more than 10 % of a joint's calibrated "
        "range beyond a limit, or faster than any arm moves (wrong units?), are a policy error (hold, then "
        "safe stop), never clamped; turn off only explicitly (plausibility.enabled=false)"))
    teleop: TeleopConfig = Field(default_factory=TeleopConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    safe_stop: SafeStopConfig = Field(default_factory=SafeStopConfig)

    @field_validator("arm", "leader_arm")
    @classmethod
    def _known_arm(cls, v: str | None) -> str | None:
        if v is not None and v not in ARMS:
            raise ValueError(f"unknown arm {v!r}; allowed: {', '.join(sorted(ARMS))}")
        return v

    def check(self) -> RunConfig:
        """Cross-field rules, as ConfigErrors naming the flags."""
        if self.sim and self.port:
            raise ConfigError("--port: not with --sim (the simulated arm brings its own emulated port)")
        if not self.sim and not self.port:
            raise ConfigError("--port: required (the follower's serial port, e.g. /dev/ttyACM0), or use --sim")
        if self.sim and self.arm not in ("so100", "so101"):
            raise ConfigError(f"--arm: --sim simulates so100/so101 only, not {self.arm!r}")
        if self.policy == "scripted" and not self.sim:
            raise ConfigError("--policy: 'scripted' uses the simulated task's expert: it needs --sim")
        if self.leader_arm and not (self.leader_port or self.leader_sim):
            raise ConfigError("--leader-port: required with --leader-arm (or --leader-sim for an emulated one)")
        return self


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.replace("-", "_").split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {k} is not a section")
    node[keys[-1]] = value


def load(config_file: str | None, flags: dict[str, Any], sets: list[str] | None = None) -> RunConfig:
    """File, then flags (None = not given), then ``--set a.b=value`` (YAML-parsed values)."""
    tree: dict[str, Any] = {}
    if config_file:
        path = Path(config_file)
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as e:
            raise ConfigError(f"--config: cannot read {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"--config: {path} is not valid YAML: {e}") from None
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"--config: {path} must hold a mapping of settings, not {type(data).__name__}")
        tree.update(data or {})
    for k, v in flags.items():
        if v is not None:
            tree[k] = v
    for item in sets or []:
        if "=" not in item:
            raise ConfigError(f"--set {item}: write it as section.field=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        _set(tree, key.strip(), value)
    return build(RunConfig, tree).check()
