"""Scene variations as data: a YAML file -> ``VariationSpec`` (validated) -> seeded ``SceneVariation``.

A spec gives distributions: table and floor appearance (MuJoCo builtin textures ``flat``/``checker``/
``gradient`` with colour palettes), lighting (number of lights, direction, diffuse and ambient levels,
tint), distractor objects (count range, shapes, sizes, palette, region), the task's manipulated
objects and targets (shapes, size ranges, palettes, yaw range, spawn rectangle). Positions are metres
in the robot base frame (the arm reaches along +x, the table top is z = 0); angles are degrees in
files and radians in ``SceneVariation``.

A spawn rectangle can be restricted to the cells of a checkerboard: ``region: {x: [..], y: [..], cells:
{nx: 3, ny: 4, parity: even}}`` divides it into nx x ny equal cells, cell (i, j) (i along x, j along y,
from the low corner) being used when (i + j) % 2 is 0 (``even``) or 1 (``odd``); positions are then
uniform over the used cells. Demonstrations on the even cells and evaluation on the odd ones give
spawn points no demonstration used, each surrounded by ones that were, inside the same rectangle.

``sample_variation(spec, seed, ...)`` draws everything from one ``numpy.random.Generator`` in a fixed
order, so a (spec, seed) pair always gives the same scene. ``SceneVariation.apply`` is a spec edit for
``scene.load_scene(extra=[...])``: it recolours the table and floor, replaces the lights and adds the
distractors (static, colliding); the task adds its own objects from ``variation.objects/targets``.

Named specs ship in ``hardware/sim/variations/<task>/<name>.yaml``: ``in_domain`` and the HarmoWAM
out-of-domain axes ``background``, ``position`` and ``object``, plus ``position_far``. ``in_domain``,
``background`` and ``object`` spawn objects and targets on the even cells of their rectangles,
``position`` on the odd cells of the same rectangles (unseen positions between seen ones);
``position_far`` mirrors the layout across the x axis (rectangles no demonstration came near: an
extrapolation a learned policy is not expected to manage). ``load_variations(name_or_path, task)``
loads one; any error (YAML syntax, a field out of range, a field the schema does not know, an object
the task does not have) is a ``VariationError`` naming the file and the field path, e.g.
``in_domain.yaml: objects.cube.size[1]: Input should be less than or equal to 0.04``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import mujoco
import numpy as np
import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

SPEC_DIR = Path(__file__).with_name("variations")
AXES = ("in_domain", "background", "position", "position_far", "object")
Shape = Literal["box", "cylinder", "sphere", "capsule"]
Texture = Literal["flat", "checker", "gradient"]
# Sliding friction of objects and of the table top (MuJoCo takes the larger of two geoms' values: the
# jaws keep MuJoCo's default 1.0, so a grasp holds at 1.0 while things slide on the table at 0.5).
OBJECT_FRICTION = 0.5
TABLE_FRICTION = 0.5
# Stiffer contacts than MuJoCo's default (0.02 s, 0.9-0.95): with the default the jaws sink ~4 mm into
# a held object and it pivots between them.
OBJECT_SOLREF = (0.005, 1.0)
OBJECT_SOLIMP = (0.95, 0.99, 0.001, 0.5, 2.0)


class VariationError(ValueError):
    """A variation file cannot be used; the message names the file and the field."""


# --- schema ----------------------------------------------------------------------------------------------


def _ordered(v: tuple) -> tuple:
    if v[0] > v[1]:
        raise ValueError(f"range must be [low, high] with low <= high, got [{v[0]}, {v[1]}]")
    return v


def _color(v: object) -> object:
    """'#rrggbb' -> (r, g, b) in 0..1; anything else is left to the tuple validation."""
    if isinstance(v, str):
        s = v.strip().lstrip("#")
        if len(s) != 6:
            raise ValueError(f"colour must be '#rrggbb' or [r, g, b] in 0..1, got {v!r}")
        try:
            return tuple(int(s[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
        except ValueError:
            raise ValueError(f"colour must be '#rrggbb' or [r, g, b] in 0..1, got {v!r}") from None
    return v


def _listify(v: object) -> object:
    return [v] if isinstance(v, str) else v


Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Color = Annotated[tuple[Unit, Unit, Unit], BeforeValidator(_color)]
Palette = Annotated[list[Color], Field(min_length=1)]
Range = Annotated[tuple[float, float], AfterValidator(_ordered)]
HalfSize = Annotated[float, Field(ge=0.004, le=0.06)]
SizeRange = Annotated[tuple[HalfSize, HalfSize], AfterValidator(_ordered)]
Height = Annotated[float, Field(ge=0.004, le=0.15)]
HeightRange = Annotated[tuple[Height, Height], AfterValidator(_ordered)]
UnitRange = Annotated[tuple[Unit, Unit], AfterValidator(_ordered)]
Coord = Annotated[float, Field(ge=-0.6, le=0.6)]
CoordRange = Annotated[tuple[Coord, Coord], AfterValidator(_ordered)]
Degrees = Annotated[float, Field(ge=-180.0, le=180.0)]
YawRange = Annotated[tuple[Degrees, Degrees], AfterValidator(_ordered)]
Count = Annotated[int, Field(ge=0, le=12)]
CountRange = Annotated[tuple[Count, Count], AfterValidator(_ordered)]
LightCount = Annotated[int, Field(ge=1, le=4)]
Shapes = Annotated[list[Shape], BeforeValidator(_listify), Field(min_length=1)]
Textures = Annotated[list[Texture], BeforeValidator(_listify), Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


CellCount = Annotated[int, Field(ge=1, le=20)]


class Cells(_Model):
    """A checkerboard over a region (see the module doc): ``nx`` x ``ny`` equal cells, those with
    (i + j) % 2 == 0 (``even``) or 1 (``odd``) used."""

    nx: CellCount
    ny: CellCount
    parity: Literal["even", "odd"]

    @model_validator(mode="after")
    def _has_both_colours(self) -> Cells:
        if self.nx * self.ny < 2:
            raise ValueError(f"a checkerboard needs at least 2 cells (nx * ny >= 2), got nx={self.nx}, ny={self.ny}")
        return self


class Region(_Model):
    """An x/y rectangle (metres, robot base frame), optionally only the ``cells`` of a checkerboard."""

    x: CoordRange
    y: CoordRange
    cells: Cells | None = None

    @model_validator(mode="after")
    def _cells_fit(self) -> Region:
        c = self.cells
        if c is not None:
            for axis, n, (lo, hi) in (("x", c.nx, self.x), ("y", c.ny, self.y)):
                if n > 1 and hi - lo < 0.002 * n:
                    raise ValueError(
                        f"cells.n{axis}: {n} cells along {axis} need [{lo}, {hi}] to be at least {0.002 * n:.3f} m wide "
                        f"(2 mm a cell)"
                    )
        return self

    def cell_bounds(self, i: int, j: int) -> tuple[tuple[float, float], tuple[float, float]]:
        """The x and y ranges of cell (i, j) (the whole rectangle without ``cells``)."""
        nx, ny = (self.cells.nx, self.cells.ny) if self.cells is not None else (1, 1)

        def edge(r: tuple[float, float], k: int, n: int) -> float:  # the outer edges exactly the region's
            return r[0] if k == 0 else r[1] if k == n else r[0] + (r[1] - r[0]) * k / n

        return (edge(self.x, i, nx), edge(self.x, i + 1, nx)), (edge(self.y, j, ny), edge(self.y, j + 1, ny))

    def used_cells(self) -> list[tuple[int, int]]:
        """The (i, j) of the cells positions are drawn from, in a fixed order; [(0, 0)] without ``cells``."""
        if self.cells is None:
            return [(0, 0)]
        bit = 0 if self.cells.parity == "even" else 1
        return [(i, j) for i in range(self.cells.nx) for j in range(self.cells.ny) if (i + j) % 2 == bit]

    def contains(self, xy: tuple[float, float], tol: float = 1e-9) -> bool:
        """Whether ``xy`` lies in a used cell (closed, within ``tol`` metres)."""
        for i, j in self.used_cells():
            (x0, x1), (y0, y1) = self.cell_bounds(i, j)
            if x0 - tol <= xy[0] <= x1 + tol and y0 - tol <= xy[1] <= y1 + tol:
                return True
        return False


class SurfaceSpec(_Model):
    texture: Textures = ["flat"]
    rgb1: Palette
    rgb2: Palette | None = None  # second colour of checker/gradient; default: rgb1 darkened
    repeat: Annotated[tuple[Annotated[float, Field(gt=0, le=50)], Annotated[float, Field(gt=0, le=50)]], AfterValidator(_ordered)] = (4.0, 4.0)


class Direction(_Model):
    x: Annotated[tuple[Annotated[float, Field(ge=-1, le=1)], Annotated[float, Field(ge=-1, le=1)]], AfterValidator(_ordered)] = (0.0, 0.0)
    y: Annotated[tuple[Annotated[float, Field(ge=-1, le=1)], Annotated[float, Field(ge=-1, le=1)]], AfterValidator(_ordered)] = (0.0, 0.0)
    z: Annotated[tuple[Annotated[float, Field(ge=-1, le=-0.1)], Annotated[float, Field(ge=-1, le=-0.1)]], AfterValidator(_ordered)] = (-1.0, -1.0)


class LightingSpec(_Model):
    count: Annotated[tuple[LightCount, LightCount], AfterValidator(_ordered)] = (1, 1)
    direction: Direction = Direction()
    diffuse: UnitRange = (0.6, 0.6)
    ambient: UnitRange = (0.35, 0.35)  # the headlight's ambient level
    tint: Palette = [(1.0, 1.0, 1.0)]


class DistractorSpec(_Model):
    count: CountRange = (0, 0)
    shapes: Shapes = ["box"]
    size: SizeRange = (0.01, 0.02)
    height: HeightRange | None = None
    colors: Palette = [(0.5, 0.5, 0.5)]
    region: Region = Region(x=(0.05, 0.35), y=(-0.3, 0.3))
    clearance: Annotated[float, Field(ge=0.0, le=0.2)] = 0.05  # to task objects/targets (footprint gap)


class ObjectSpec(_Model):
    """A task object or target. ``size``: half-width (box half side, radius) in metres; ``height``:
    full extent along the shape's axis (box/cylinder vertical, capsule lying: its length); default
    2 * size (a cube, a squat cylinder) and 4 * size for a capsule."""

    shape: Shapes = ["box"]
    size: SizeRange
    height: HeightRange | None = None
    colors: Palette
    region: Region
    yaw: YawRange = (0.0, 0.0)
    clearance: Annotated[tuple[Annotated[float, Field(ge=0, le=0.03)], Annotated[float, Field(ge=0, le=0.03)]], AfterValidator(_ordered)] | None = None


class VariationSpec(_Model):
    task: str | None = None
    description: str = ""
    table: SurfaceSpec
    floor: SurfaceSpec
    lighting: LightingSpec = LightingSpec()
    distractors: DistractorSpec = DistractorSpec()
    objects: dict[str, ObjectSpec]
    targets: dict[str, ObjectSpec] = {}
    spacing: Annotated[float, Field(ge=0.0, le=0.2)] = 0.03  # min gap between object/target footprints
    home_jitter_deg: Annotated[float, Field(ge=0.0, le=10.0)] = 0.0  # the arm's start pose, per joint


# --- concrete, sampled -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Surface:
    texture: str
    rgb1: tuple[float, float, float]
    rgb2: tuple[float, float, float]
    repeat: float


@dataclass(frozen=True, slots=True)
class Light:
    direction: tuple[float, float, float]
    diffuse: tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Prop:
    """One sampled object: ``half_width``/``height`` as in ``ObjectSpec``; ``xy`` its centre."""

    name: str
    shape: str
    half_width: float
    height: float
    rgba: tuple[float, float, float, float]
    xy: tuple[float, float]
    yaw: float  # radians about z
    clearance: float = 0.0

    @property
    def z(self) -> float:
        """Height of the centre when resting on the table."""
        return self.half_width if self.shape in ("sphere", "capsule") else self.height / 2.0

    @property
    def top(self) -> float:
        return 2.0 * self.z

    @property
    def footprint(self) -> float:
        """Radius of a circle around ``xy`` covering the object seen from above."""
        if self.shape == "box":
            return self.half_width * math.sqrt(2.0)
        if self.shape == "capsule":
            return self.height / 2.0
        return self.half_width

    @property
    def mj_size(self) -> list[float]:
        hw, h = self.half_width, self.height
        if self.shape == "box":
            return [hw, hw, h / 2.0]
        if self.shape == "cylinder":
            return [hw, h / 2.0, 0.0]
        if self.shape == "sphere":
            return [hw, 0.0, 0.0]
        return [hw, max(h / 2.0 - hw, 1e-4), 0.0]  # capsule: radius, half-length of the segment

    def quat(self) -> list[float]:
        """Orientation at rest: yaw about z; a capsule lies with its axis horizontal along the yaw."""
        qz = [math.cos(self.yaw / 2), 0.0, 0.0, math.sin(self.yaw / 2)]
        if self.shape != "capsule":
            return qz
        qy = [math.cos(math.pi / 4), 0.0, math.sin(math.pi / 4), 0.0]  # z axis -> x axis
        out = np.zeros(4)
        mujoco.mju_mulQuat(out, np.array(qz), np.array(qy))
        return out.tolist()


@dataclass(frozen=True)
class SceneVariation:
    spec_name: str
    seed: int
    table: Surface
    floor: Surface
    lights: tuple[Light, ...]
    ambient: float
    distractors: tuple[Prop, ...]
    objects: Mapping[str, Prop]
    targets: Mapping[str, Prop]
    home_offset_rad: tuple[float, ...] = field(default=(0.0,) * 6)

    def apply(self, spec: mujoco.MjSpec) -> None:
        """Spec edit: table/floor appearance, lights, distractors (see the module doc)."""
        _surface(spec, "table_top", "table_tex", self.table, table=True)
        for g in spec.geoms:
            if g.name == "table":
                g.friction = [TABLE_FRICTION, 0.005, 0.0001]
        _surface(spec, "floor", "floor_grid", self.floor, table=False)
        spec.visual.headlight.ambient = [self.ambient] * 3
        for light in list(spec.lights):
            spec.delete(light)
        for i, lt in enumerate(self.lights):
            li = spec.worldbody.add_light()
            li.name = f"light{i}"
            li.type = mujoco.mjtLightType.mjLIGHT_DIRECTIONAL
            d = np.asarray(lt.direction)
            li.dir = d.tolist()
            li.pos = (np.array([0.2, 0.0, 0.0]) - 1.5 * d).tolist()
            li.diffuse = list(lt.diffuse)
            li.specular = [0.1, 0.1, 0.1]
            li.castshadow = False
        for p in self.distractors:
            add_prop(spec, p, free=False)


def add_prop(spec: mujoco.MjSpec, p: Prop, *, free: bool, mass: float | None = None, pads: bool = True) -> mujoco.MjsBody:
    """Add ``p`` resting on the table: a body named ``p.name`` with one geom of the same name. ``free``:
    a free joint (a movable object); else static. ``pads``: collide with the gripper's fingertip pads
    too (collision bit 2, see the arm's MJCF)."""
    body = spec.worldbody.add_body()
    body.name = p.name
    body.pos = [p.xy[0], p.xy[1], p.z]
    body.quat = p.quat()
    if free:
        j = body.add_freejoint()
        j.name = p.name
    g = body.add_geom()
    g.name = p.name
    g.type = getattr(mujoco.mjtGeom, f"mjGEOM_{p.shape.upper()}")
    g.size = p.mj_size
    g.rgba = list(p.rgba)
    g.contype = g.conaffinity = 3 if pads else 1
    g.condim = 6 if p.shape in ("sphere", "capsule") else 4  # rolling friction for what rolls
    g.friction = [OBJECT_FRICTION, 0.01, 0.001]
    g.solref = list(OBJECT_SOLREF)
    g.solimp = list(OBJECT_SOLIMP)
    g.solmix = 100.0  # these contact parameters win over the other geom's (friction still takes the max)
    if mass is not None:
        g.mass = mass
    return body


def _surface(spec: mujoco.MjSpec, material: str, texname: str, s: Surface, *, table: bool) -> None:
    mat = next((m for m in spec.materials if m.name == material), None)
    if mat is None:
        return  # the scene was built without a table/floor
    tex = next((t for t in spec.textures if t.name == texname), None)
    if s.texture == "flat" and table:
        mat.rgba = [*s.rgb1, 1.0]
        return
    if tex is None:
        tex = spec.add_texture()
        tex.name = texname
        tex.type = mujoco.mjtTexture.mjTEXTURE_2D
        tex.width = tex.height = 256
    tex.builtin = getattr(mujoco.mjtBuiltin, f"mjBUILTIN_{s.texture.upper()}")
    tex.rgb1 = list(s.rgb1)
    tex.rgb2 = list(s.rgb2)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = texname
    mat.texrepeat = [s.repeat, s.repeat]
    mat.rgba = [1.0, 1.0, 1.0, 1.0]


# --- loading ---------------------------------------------------------------------------------------------


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format(where: str, e: ValidationError) -> str:
    lines = []
    for err in e.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        got = err.get("input")
        msg = err["msg"].removeprefix("Value error, ")
        quiet = isinstance(got, dict | list) or err["type"] in ("missing", "value_error")
        shown = "" if quiet else f" (got {got!r})"
        lines.append(f"{where}: {_loc(loc)}: {msg}{shown}")
    return "\n".join(lines)


def spec_path(name_or_path: str | Path, task: str) -> Path:
    """``in_domain`` -> the shipped file for ``task``; a path (has a suffix or a separator) as given."""
    s = str(name_or_path)
    if s.endswith((".yaml", ".yml")) or "/" in s or "\\" in s:
        return Path(s)
    return SPEC_DIR / task / f"{s}.yaml"


def parse_variations(data: object, *, source: str = "<data>") -> VariationSpec:
    try:
        return VariationSpec.model_validate(data)
    except ValidationError as e:
        raise VariationError(_format(source, e)) from None


def load_variations(name_or_path: str | Path, task: str | None = None) -> VariationSpec:
    """Load and validate a spec: a shipped name (``in_domain``/``background``/``position``/``position_far``/
    ``object``, needs ``task``) or a YAML path. With ``task``, the spec's objects and targets are checked
    against the task's (``hardware.sim.tasks``) as well."""
    if task is None and spec_path(name_or_path, "_") == SPEC_DIR / "_" / f"{name_or_path}.yaml":
        raise VariationError(f"{name_or_path!r}: a named variation spec needs the task name")
    path = spec_path(name_or_path, task or "")
    shipped_file = path.parent.parent == SPEC_DIR
    where = f"{path.parent.name}/{path.name}" if shipped_file else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        shipped = sorted(p.stem for p in (SPEC_DIR / (task or "")).glob("*.yaml")) if task else []
        hint = f" (shipped for {task}: {', '.join(shipped)})" if shipped else ""
        raise VariationError(f"{where}: no such variation file{hint}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise VariationError(f"{where}:{at}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise VariationError(f"{where}: the top level must be a mapping of fields, got {type(data).__name__}")
    spec = parse_variations(data, source=where)
    if task is not None:
        if spec.task is not None and spec.task != task:
            raise VariationError(f"{where}: task: the file is for {spec.task!r}, not {task!r}")
        from hardware.sim.tasks import get_task  # the tasks import this module

        get_task(task).check_spec(spec, where)
    return spec


# --- sampling --------------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(r[0], r[1]))


def _choice(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _surface_sample(rng: np.random.Generator, s: SurfaceSpec) -> Surface:
    tex = _choice(rng, s.texture)
    c1 = _choice(rng, s.rgb1)
    c2 = _choice(rng, s.rgb2) if s.rgb2 else tuple(0.7 * c for c in c1)
    return Surface(tex, tuple(c1), tuple(c2), _uniform(rng, s.repeat))


def _prop(rng: np.random.Generator, name: str, o: ObjectSpec | DistractorSpec, xy: tuple[float, float] = (0.0, 0.0)) -> Prop:
    shape = _choice(rng, o.shape if isinstance(o, ObjectSpec) else o.shapes)
    hw = _uniform(rng, o.size)
    if o.height is not None:
        h = _uniform(rng, o.height)
    else:
        h = 4.0 * hw if shape == "capsule" else 2.0 * hw
    if shape == "capsule":
        h = max(h, 2.0 * hw + 1e-3)
    if shape == "sphere":
        h = 2.0 * hw
    rgb = _choice(rng, o.colors)
    yaw = math.radians(_uniform(rng, o.yaw)) if isinstance(o, ObjectSpec) else float(rng.uniform(-math.pi, math.pi))
    clear = _uniform(rng, o.clearance) if isinstance(o, ObjectSpec) and o.clearance is not None else 0.0
    return Prop(name, shape, hw, h, (*rgb, 1.0), xy, yaw, clear)


def _spawn_xy(rng: np.random.Generator, region: Region) -> tuple[float, float]:
    """Uniform over the region, or over its used cells (equal areas: a cell, then a point in it)."""
    if region.cells is None:
        return (_uniform(rng, region.x), _uniform(rng, region.y))  # the draws of specs without cells
    cells = region.used_cells()
    xs, ys = region.cell_bounds(*cells[int(rng.integers(len(cells)))])
    return (_uniform(rng, xs), _uniform(rng, ys))


def _place(rng: np.random.Generator, p: Prop, region: Region, placed: list[Prop], gap: float, tries: int = 200) -> Prop | None:
    for _ in range(tries):
        xy = _spawn_xy(rng, region)
        if all(math.dist(xy, q.xy) >= p.footprint + q.footprint + gap for q in placed):
            return Prop(p.name, p.shape, p.half_width, p.height, p.rgba, xy, p.yaw, p.clearance)
    return None


def _seg_dist(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    pa, ba = np.subtract(p, a), np.subtract(b, a)
    t = float(np.clip(pa @ ba / max(ba @ ba, 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(pa - t * ba))


def sample_variation(
    spec: VariationSpec,
    seed: int,
    *,
    order: tuple[str, ...] | None = None,
    spec_name: str = "",
    footprint_pad: Mapping[str, float] | None = None,
    corridors: tuple[tuple[str, str], ...] = (),
) -> SceneVariation:
    """A concrete scene from ``spec`` and ``seed`` (deterministic). ``order``: the object/target names
    in the order they are drawn (default: objects then targets, sorted), so the YAML's key order does
    not matter. ``footprint_pad``: extra radius to keep free around a named prop (e.g. a target that
    is larger than its geom, or room for the fingers). ``corridors``: pairs of props whose connecting
    segment distractors keep clear of (the path an object is carried or pushed along)."""
    rng = np.random.default_rng(seed)
    table = _surface_sample(rng, spec.table)
    floor = _surface_sample(rng, spec.floor)
    lt = spec.lighting
    lights = []
    for _ in range(int(rng.integers(lt.count[0], lt.count[1] + 1))):
        d = np.array([_uniform(rng, lt.direction.x), _uniform(rng, lt.direction.y), _uniform(rng, lt.direction.z)])
        level = _uniform(rng, lt.diffuse)
        tint = _choice(rng, lt.tint)
        lights.append(Light(tuple((d / np.linalg.norm(d)).tolist()), tuple(level * c for c in tint)))
    ambient = _uniform(rng, lt.ambient)
    roles = {**{k: v for k, v in spec.objects.items()}, **{k: v for k, v in spec.targets.items()}}
    names = order or (*sorted(spec.objects), *sorted(spec.targets))
    pad = dict(footprint_pad or {})
    placed: list[Prop] = []
    for name in names:
        o = roles[name]
        p = _prop(rng, name, o)
        grown = Prop(p.name, p.shape, p.half_width + pad.get(name, 0.0), p.height, p.rgba, p.xy, p.yaw, p.clearance)
        got = _place(rng, grown, o.region, placed, spec.spacing)
        if got is None:
            raise VariationError(f"{spec_name or 'spec'}: cannot place {name!r} in its region without overlapping (seed {seed})")
        placed.append(got)
    final = {q.name: Prop(q.name, q.shape, q.half_width - pad.get(q.name, 0.0), q.height, q.rgba, q.xy, q.yaw, q.clearance) for q in placed}
    ds = spec.distractors
    distractors: list[Prop] = []
    keep_out = list(placed)
    for i in range(int(rng.integers(ds.count[0], ds.count[1] + 1))):
        p = _prop(rng, f"distractor{i}", ds)
        got = _place(rng, p, ds.region, keep_out, ds.clearance, tries=50)
        if got is not None and any(
            _seg_dist(got.xy, final[a].xy, final[b].xy) < got.footprint + ds.clearance for a, b in corridors
        ):
            got = None
        if got is not None:
            distractors.append(got)
            keep_out.append(got)
    jitter = math.radians(spec.home_jitter_deg)
    home = tuple(float(x) for x in rng.uniform(-jitter, jitter, 6)) if jitter > 0 else (0.0,) * 6
    return SceneVariation(
        spec_name=spec_name,
        seed=int(seed),
        table=table,
        floor=floor,
        lights=tuple(lights),
        ambient=ambient,
        distractors=tuple(distractors),
        objects={k: final[k] for k in names if k in spec.objects},
        targets={k: final[k] for k in names if k in spec.targets},
        home_offset_rad=home,
    )
