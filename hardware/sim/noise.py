"""Action noise for recovery demonstrations (DART-style): an Ornstein-Uhlenbeck offset on the arm joints.

A clean scripted episode only ever shows states on the expert's own path, so a policy trained on it has
never seen how to get back once it is a little off (its own errors compound). A *noisy* episode
(``run_episode(..., noise=ActionNoise(sigma_rad=0.03))``) sends the servos the expert's joint targets
plus a slowly drifting offset, so the arm wanders off the path, while the label stored for each step
stays the expert's own noise-free target, computed from the state the arm is really in: the way back.

**The process.** Independent per arm joint (the gripper is never perturbed), discretised exactly at the
control rate::

    x[0] = 0,   x[k+1] = a x[k] + sigma_rad * sqrt(1 - a^2) * N(0, 1),   a = exp(-dt / tau_s)

so its stationary standard deviation is ``sigma_rad`` (radians, per joint) and its autocorrelation
``exp(-|t| / tau_s)``. It starts at 0 (from the expert's start pose) and reaches its stationary spread
after about ``tau_s``. Near a grasp, 0.03 rad on one of the first four joints moves the gripper by 5-8 mm
(wrist roll: 0.5 mm), about 1 cm for all of them together.

**Why ``tau_s`` = 0.4 s** (12 control steps at 30 Hz): slow enough for the servos to follow (the
simulated STS3215s, speed- and acceleration-limited, cover 90 % of a 0.03 rad step in ~0.17 s; a faster
offset would mostly jitter the commands and be filtered out by the arm), yet it changes several times
within one phase of the expert (an approach or a carry lasts 1-2 s), so one episode shows several
different excursions and corrections rather than one constant bias.

**Quiet at the gripper events** (``at_grip=False``, the default): the offset is scaled by a gain that
ramps linearly to 0 within ``fade_s`` once the expert starts the last move before it closes or opens the
gripper (pick_place, stack, insert: the descent to the grasp and the lowering to the release), stays 0
while the gripper moves, and ramps back to 1 within ``fade_s`` after. The underlying process keeps
running. Measured (pick_place, in-domain seeds 0-19, 2026-12): with noise at the grasp the expert
succeeds in 15 of 20 at 0.03 and at 0.045 rad; in every failure a jaw came down on the cube during the
descent (the fixed jaw passes 4 mm from it): the gripper stopped ~25 mm above its grasp height with the
cube pushed 5-45 mm, and closed on nothing. With the fade: 20 of 20 at both (``hardware.sim.dataset``
has the table up to 0.09). ``at_grip=True`` keeps the noise everywhere (what the learning anchors did;
failed episodes are not saved, so it costs attempts and biases the kept ones toward lucky noise). Tasks
without gripper events (push) are perturbed throughout.

**The expert's settling integral** is made phase-local in a noisy episode (``Expert.phase_local_integral``):
it would otherwise carry what it integrated against the noise into the next phase as an offset (measured
up to 17 mm at the start of a descent, where it is ~0 in clean runs); with the fade but without this, 17
and 16 of 20 at 0.03 and 0.045.

**Reproducibility**: the offsets of an episode come from ``numpy.random.default_rng([NOISE_STREAM, seed])``,
``seed`` the episode's seed unless ``ActionNoise.seed`` overrides it; the same task, spec, seed and
``ActionNoise`` replay an episode exactly. ``ActionNoise.record(seed)`` is what provenance stores and
``ActionNoise.from_record`` reads it back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from hardware.arms import JOINT_NAMES

if TYPE_CHECKING:
    from hardware.sim.tasks.expert import Expert

ARM_JOINTS = JOINT_NAMES[:5]  # the gripper (JOINT_NAMES[5]) is never perturbed
NOISE_STREAM = 0xDA27  # keeps the noise's random stream apart from the scene sampler's (same seed)
DEFAULT_TAU_S = 0.4
DEFAULT_FADE_S = 0.2
MAX_SIGMA_RAD = 0.2  # ~11 degrees per joint, centimetres at the gripper: anything above is a mistake
MIN_TAU_S, MAX_TAU_S = 0.05, 10.0
MAX_FADE_S = 5.0


class NoiseError(ValueError):
    """An ``ActionNoise`` setting is out of range; the message names the setting."""


@dataclass(frozen=True)
class ActionNoise:
    """The executed-action perturbation of a recovery demonstration (module doc).

    ``sigma_rad``: stationary standard deviation of the offset on each perturbed joint (radians; 0 =
    clean). ``tau_s``: its correlation time (seconds). ``joints``: which arm joints are perturbed (names
    from ``hardware.arms.JOINT_NAMES``, never the gripper). ``seed``: the noise's seed; ``None`` = the
    episode's seed. ``at_grip``: keep the noise while the expert closes in on a gripper event and
    while the gripper moves (default: fade it out there, within ``fade_s`` seconds).
    """

    sigma_rad: float = 0.0
    tau_s: float = DEFAULT_TAU_S
    joints: tuple[str, ...] = field(default=ARM_JOINTS)
    seed: int | None = None
    at_grip: bool = False
    fade_s: float = DEFAULT_FADE_S

    def __post_init__(self) -> None:
        s, t, f = float(self.sigma_rad), float(self.tau_s), float(self.fade_s)
        if not math.isfinite(s) or not 0.0 <= s <= MAX_SIGMA_RAD:
            raise NoiseError(f"sigma_rad must be between 0 and {MAX_SIGMA_RAD} rad, got {self.sigma_rad!r}")
        if not math.isfinite(t) or not MIN_TAU_S <= t <= MAX_TAU_S:
            raise NoiseError(f"tau_s must be between {MIN_TAU_S} and {MAX_TAU_S} s, got {self.tau_s!r}")
        if not math.isfinite(f) or not 0.0 <= f <= MAX_FADE_S:
            raise NoiseError(f"fade_s must be between 0 and {MAX_FADE_S} s, got {self.fade_s!r}")
        joints = (self.joints,) if isinstance(self.joints, str) else tuple(self.joints)
        bad = [j for j in joints if j not in ARM_JOINTS]
        if bad:
            raise NoiseError(f"joints: {', '.join(map(repr, bad))} cannot be perturbed (arm joints: "
                             f"{', '.join(ARM_JOINTS)}; the gripper never is)")
        if not joints or len(set(joints)) != len(joints):
            raise NoiseError(f"joints: give at least one arm joint, each once, got {joints!r}")
        object.__setattr__(self, "sigma_rad", s)
        object.__setattr__(self, "tau_s", t)
        object.__setattr__(self, "fade_s", f)
        object.__setattr__(self, "joints", joints)
        object.__setattr__(self, "at_grip", bool(self.at_grip))
        if self.seed is not None:
            object.__setattr__(self, "seed", int(self.seed))

    @property
    def active(self) -> bool:
        return self.sigma_rad > 0.0

    def mask(self) -> np.ndarray:
        """6 floats: 1 for a perturbed joint, 0 otherwise (always 0 for the gripper)."""
        return np.array([1.0 if j in self.joints else 0.0 for j in JOINT_NAMES])

    def noise_seed(self, episode_seed: int) -> int:
        return int(episode_seed if self.seed is None else self.seed)

    def record(self, episode_seed: int) -> dict:
        """What provenance stores to replay an episode: every setting, the noise seed actually used."""
        d = asdict(self)
        d["joints"] = list(self.joints)
        d["seed"] = self.noise_seed(episode_seed)
        d["process"] = "ornstein-uhlenbeck"
        return d

    @classmethod
    def from_record(cls, record: dict) -> ActionNoise:
        """The ``ActionNoise`` that replays an episode from its provenance ``record`` (``record()``'s
        dict; ``settings()`` plus a ``seed`` works too)."""
        d = {k: v for k, v in record.items() if k != "process"}
        if "joints" in d:
            d["joints"] = tuple(d["joints"])
        return cls(**d)

    def settings(self) -> dict:
        """The settings without the seed (a run's record; each episode has its own seed)."""
        d = asdict(self)
        d["joints"] = list(self.joints)
        del d["seed"]
        return d

    def for_episode(self, episode_seed: int, fps: float) -> EpisodeNoise:
        """The offset generator for one episode at ``fps`` control steps per second."""
        rng = np.random.default_rng([NOISE_STREAM, self.noise_seed(episode_seed)])
        ou = OUProcess(self.sigma_rad, self.tau_s, 1.0 / float(fps), self.mask(), rng)
        fade_steps = self.fade_s * float(fps)
        return EpisodeNoise(ou, None if self.at_grip else (1.0 / fade_steps if fade_steps > 0 else 1.0))


class OUProcess:
    """A running OU offset (module doc): ``next()`` gives the 6 offsets (radians) for one control step."""

    def __init__(self, sigma: float, tau_s: float, dt: float, mask: np.ndarray, rng: np.random.Generator) -> None:
        self.a = math.exp(-dt / tau_s)
        self.b = sigma * math.sqrt(1.0 - self.a * self.a)
        self.mask = np.asarray(mask, dtype=float)
        self.rng = rng
        self.x = np.zeros(len(self.mask))

    def next(self) -> np.ndarray:
        """The offset for this step (the first is 0), then advance one step."""
        out = self.x * self.mask
        self.x = self.a * self.x + self.b * self.rng.standard_normal(len(self.mask))
        return out


class EpisodeNoise:
    """One episode's offsets: the OU process times the gripper-event gain (module doc). ``rate``: the
    gain's change per step (``None``: always 1, ``ActionNoise.at_grip``)."""

    def __init__(self, ou: OUProcess, rate: float | None) -> None:
        self.ou = ou
        self.rate = rate
        self.gain = 1.0

    def next(self, expert: Expert) -> np.ndarray:
        """The offset to add to the expert's targets of this step (call after ``expert.act()``)."""
        x = self.ou.next()
        if self.rate is not None:
            step = -self.rate if near_gripper_event(expert) else self.rate
            self.gain = min(1.0, max(0.0, self.gain + step))
        return self.gain * x


def near_gripper_event(expert: Expert) -> bool:
    """The expert is moving the gripper (a ``Grip`` that opens or closes it) or on the move that leads
    to one (a descent to a grasp, the lowering to a release)."""
    from hardware.sim.tasks.expert import Grip

    if expert.done:
        return False
    ph = expert.phases
    i = expert.i
    return isinstance(ph[i], Grip) or (i + 1 < len(ph) and isinstance(ph[i + 1], Grip))


def ou_path(steps: int, sigma: float, tau_s: float, dt: float, dims: int = 1, seed: int = 0) -> np.ndarray:
    """``steps x dims`` offsets of the OU process (module doc), starting at 0: the pure form of
    ``OUProcess`` (its statistics are tested on it)."""
    p = OUProcess(sigma, tau_s, dt, np.ones(dims), np.random.default_rng(seed))
    return np.array([p.next() for _ in range(int(steps))]).reshape(int(steps), dims)
