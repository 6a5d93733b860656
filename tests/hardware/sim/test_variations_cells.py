"""Checkerboard spawn cells: sampling stays in the used cells, even and odd cells tile the region, bad
entries name the field, every task trains on even cells and evaluates ``position`` on the odd cells of
the same rectangles, and specs without cells sample exactly the scenes they sampled before cells existed."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("mujoco")

from hardware.sim.tasks import get_task, task_names  # noqa: E402
from hardware.sim.variations import (  # noqa: E402
    SPEC_DIR,
    Region,
    VariationError,
    _spawn_xy,
    load_variations,
    parse_variations,
)

# Specs as shipped before cells existed (pick_place in domain; push background: distractors, a footprint pad
# and a corridor), and the digests of their scenes for seeds 0-39, computed with the sampler before cells were
# added. Specs without cells must keep sampling these scenes (existing seeds, existing datasets).
OLD_PICK_PLACE_IN_DOMAIN = """
task: pick_place
description: pick_place in domain
table: {texture: flat, rgb1: [[0.55, 0.42, 0.30], [0.58, 0.45, 0.32], [0.52, 0.40, 0.28]]}
floor: {texture: checker, rgb1: [[0.25, 0.27, 0.30]], rgb2: [[0.32, 0.34, 0.37]], repeat: [8, 8]}
lighting: {count: [1, 1], direction: {x: [-0.1, 0.1], y: [-0.1, 0.1], z: [-1.0, -1.0]}, diffuse: [0.55, 0.65], ambient: [0.33, 0.37]}
distractors: {count: [0, 0]}
objects:
  cube: {shape: box, size: [0.012, 0.015], colors: ["#d62828", "#e85d04", "#c1121f"], region: {x: [0.15, 0.22], y: [0.02, 0.12]}, yaw: [-35, 35]}
targets:
  plate: {shape: cylinder, size: [0.042, 0.05], height: [0.006, 0.006], colors: ["#f1faee", "#e9ecef"], region: {x: [0.16, 0.21], y: [-0.12, -0.05]}}
spacing: 0.03
home_jitter_deg: 2.0
"""
OLD_PUSH_BACKGROUND = """
task: push
description: push background
table: {texture: [checker, gradient, flat], rgb1: ["#8d99ae", "#52796f", "#6c757d", "#b08968", "#3d405b"], rgb2: ["#edf2f4", "#2f3e46", "#ced4da", "#7f5539"], repeat: [3, 10]}
floor: {texture: [checker, gradient], rgb1: [[0.45, 0.35, 0.25], [0.15, 0.2, 0.35], [0.5, 0.5, 0.5]], rgb2: [[0.2, 0.2, 0.2], [0.6, 0.55, 0.5]], repeat: [4, 12]}
lighting: {count: [2, 3], direction: {x: [-0.6, 0.6], y: [-0.6, 0.6], z: [-1.0, -0.5]}, diffuse: [0.25, 0.55], ambient: [0.15, 0.5], tint: [[1.0, 0.85, 0.7], [0.75, 0.85, 1.0], [1.0, 1.0, 1.0]]}
distractors: {count: [5, 8], shapes: [box, cylinder, sphere], size: [0.01, 0.015], height: [0.012, 0.03], colors: ["#7209b7", "#ffd60a", "#8338ec", "#ff70a6", "#3a86ff", "#f8f9fa", "#212529"], region: {x: [0.1, 0.32], y: [-0.24, 0.24]}, clearance: 0.04}
objects:
  block: {shape: box, size: [0.013, 0.016], colors: ["#d62828", "#e85d04"], region: {x: [0.16, 0.22], y: [0.0, 0.08]}, yaw: [-30, 30]}
targets:
  zone: {shape: cylinder, size: [0.03, 0.035], height: [0.004, 0.004], colors: ["#2a9d8f", "#38b000"], region: {x: [0.15, 0.23], y: [-0.12, -0.04]}}
spacing: 0.01
home_jitter_deg: 2.0
"""
OLD_DIGESTS = {
    "pick_place in_domain": "d736dc6d7a0a00de2bec133b4ed019f898d1bc7d8b526cc01ba32a42056475c5",
    "push background": "e5628ab77c045edbb720d6869386cea6f198833cf216a782f475b9ab2a6cc94e",
}
# The old mirrored ``position`` files, now ``position_far``: the digests of their scenes before the rename.
OLD_POSITION_DIGESTS = {
    "pick_place": "ba48d4c1529046ab9727c996c21b41121cf1287c503cd906dabe78b3c5c6ff54",
    "stack": "09bb7d0ad0d38c68707a6498e94bdbdb66244fc2be88c5799c2f20e182998943",
    "push": "a7dda20f933f630670e734fe8d97978279f13eaa5ee7909b653d97cba7add039",
    "insert": "ef8715a58b6cf3daa44c39f0143541adf9b87be088b850b1cd4b926009e706b1",
}


def _digest(task: str, spec, seeds: range = range(40)) -> str:
    """sha256 of the exact repr (every float to the last bit) of the sampled scenes, spec name blanked."""
    t = get_task(task)
    scenes = [asdict(replace(t.sample(spec, s), spec_name="")) for s in seeds]
    return hashlib.sha256(repr(scenes).encode()).hexdigest()


def _props(spec):
    return {**spec.objects, **spec.targets}


def _cell_of(region: Region, xy: tuple[float, float], tol: float = 1e-9) -> set[tuple[int, int]]:
    """Every cell of the full grid whose closed rectangle holds ``xy`` (two or more on a shared edge); a
    negative ``tol``: the cells whose interior holds it."""
    c = region.cells
    out = set()
    for i in range(c.nx):
        for j in range(c.ny):
            (x0, x1), (y0, y1) = region.cell_bounds(i, j)
            if x0 - tol <= xy[0] <= x1 + tol and y0 - tol <= xy[1] <= y1 + tol:
                out.add((i, j))
    return out


# --- specs without cells: unchanged --------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "text"), [("pick_place in_domain", OLD_PICK_PLACE_IN_DOMAIN), ("push background", OLD_PUSH_BACKGROUND)])
def test_a_spec_without_cells_samples_the_same_scenes_as_before(key: str, text: str) -> None:
    task = key.split()[0]
    spec = parse_variations(yaml.safe_load(text))
    assert all(o.region.cells is None for o in _props(spec).values())
    assert _digest(task, spec) == OLD_DIGESTS[key]
    if task == "pick_place":  # two values in the clear, from before the change
        v = get_task(task).sample(spec, 0)
        assert v.objects["cube"].xy == (0.2010647592688799, 0.07436249914654228)
        assert v.targets["plate"].xy == (0.1601369250085074, -0.05998170063887015)


@pytest.mark.parametrize("task", task_names())
def test_position_far_is_the_old_mirrored_position_layout(task: str) -> None:
    assert _digest(task, load_variations("position_far", task)) == OLD_POSITION_DIGESTS[task]
    far, ind = get_task(task).spec("position_far"), get_task(task).spec("in_domain")
    for name, o in _props(far).items():
        a, b = o.region, _props(ind)[name].region
        assert a.cells is None
        assert a.y[1] < b.y[0] or b.y[1] < a.y[0], f"{task}: {name}: position_far overlaps the in-domain rectangle"


# --- the checkerboard ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("nx", "ny"), [(1, 2), (2, 1), (2, 2), (3, 4), (4, 4), (5, 3), (20, 20)])
def test_even_and_odd_cells_are_disjoint_and_tile_the_region(nx: int, ny: int) -> None:
    box = {"x": (0.15, 0.22), "y": (-0.12, -0.05)}
    even = Region(**box, cells={"nx": nx, "ny": ny, "parity": "even"})
    odd = Region(**box, cells={"nx": nx, "ny": ny, "parity": "odd"})
    e, o = set(even.used_cells()), set(odd.used_cells())
    assert e and o and not e & o
    assert e | o == {(i, j) for i in range(nx) for j in range(ny)}
    assert len(e) - len(o) in (0, 1)
    # a checkerboard: no two cells of one colour share an edge
    for i, j in e:
        assert not {(i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)} & e
    # the cells tile the rectangle: edges meet exactly, areas add up
    area = sum((xs[1] - xs[0]) * (ys[1] - ys[0]) for r in (even, odd) for xs, ys in (r.cell_bounds(*c) for c in r.used_cells()))
    assert area == pytest.approx(0.07 * 0.07)
    for i in range(nx):
        for j in range(ny):
            (x0, x1), (y0, y1) = even.cell_bounds(i, j)
            assert x1 > x0 and y1 > y0
            if i + 1 < nx:
                assert even.cell_bounds(i + 1, j)[0][0] == x1
            if j + 1 < ny:
                assert even.cell_bounds(i, j + 1)[1][0] == y1
    assert even.cell_bounds(0, 0)[0][0] == 0.15 and even.cell_bounds(0, 0)[1][0] == -0.12
    assert even.cell_bounds(nx - 1, ny - 1)[0][1] == 0.22 and even.cell_bounds(nx - 1, ny - 1)[1][1] == -0.05


@pytest.mark.parametrize("parity", ["even", "odd"])
def test_cells_sampling_never_leaves_the_used_cells_and_covers_them(parity: str) -> None:
    region = Region(x=(0.15, 0.22), y=(0.02, 0.12), cells={"nx": 3, "ny": 4, "parity": parity})
    used = set(region.used_cells())
    rng = np.random.default_rng(0)
    hits: dict[tuple[int, int], int] = {}
    for _ in range(6000):
        xy = _spawn_xy(rng, region)
        assert _cell_of(region, xy, tol=-1e-12) <= used, xy  # inside no unused cell (an edge touches both)
        cells = _cell_of(region, xy) & used
        assert cells and region.contains(xy), xy
        for c in cells:
            hits[c] = hits.get(c, 0) + 1
    # uniform over the used cells (equal areas): every used cell gets about its share
    assert set(hits) == used
    share = 6000 / len(used)
    assert all(abs(n - share) < 0.1 * share for n in hits.values()), hits


def test_cells_without_the_cells_entry_draw_as_before() -> None:
    plain = Region(x=(0.15, 0.22), y=(0.02, 0.12))
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(100):
        assert _spawn_xy(a, plain) == (float(b.uniform(0.15, 0.22)), float(b.uniform(0.02, 0.12)))
    assert plain.used_cells() == [(0, 0)] and plain.contains((0.2, 0.05)) and not plain.contains((0.2, 0.13))


# --- errors -------------------------------------------------------------------------------------------------


def _bad(tmp_path: Path, cells: object, region: dict | None = None) -> Path:
    data = yaml.safe_load((SPEC_DIR / "pick_place" / "in_domain.yaml").read_text())
    r = data["objects"]["cube"]["region"]
    r.update(region or {})
    r["cells"] = cells
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    ("cells", "region", "expected"),
    [
        ({"nx": 0, "ny": 4, "parity": "even"}, None, r"bad\.yaml: objects\.cube\.region\.cells\.nx: Input should be greater than or equal to 1"),
        ({"nx": 3, "ny": 21, "parity": "even"}, None, r"bad\.yaml: objects\.cube\.region\.cells\.ny: Input should be less than or equal to 20"),
        ({"nx": 3, "ny": 4, "parity": "red"}, None, r"bad\.yaml: objects\.cube\.region\.cells\.parity: Input should be 'even' or 'odd'"),
        ({"nx": 3, "ny": 4}, None, r"bad\.yaml: objects\.cube\.region\.cells\.parity: Field required"),
        ({"nx": 3, "ny": 4, "parity": "odd", "colour": 1}, None, r"bad\.yaml: objects\.cube\.region\.cells\.colour: Extra inputs"),
        ({"nx": 1, "ny": 1, "parity": "odd"}, None, r"bad\.yaml: objects\.cube\.region\.cells: a checkerboard needs at least 2 cells"),
        ({"nx": 2.5, "ny": 4, "parity": "even"}, None, r"bad\.yaml: objects\.cube\.region\.cells\.nx: Input should be a valid integer"),
        ([3, 4], None, r"bad\.yaml: objects\.cube\.region\.cells: Input should be a valid dictionary"),
        ({"nx": 3, "ny": 4, "parity": "even"}, {"x": [0.2, 0.2]}, r"bad\.yaml: objects\.cube\.region: cells\.nx: 3 cells along x need \[0\.2, 0\.2\]"),
    ],
)
def test_a_bad_cells_entry_names_the_file_and_the_field(tmp_path: Path, cells: object, region: dict | None, expected: str) -> None:
    with pytest.raises(VariationError, match=expected):
        load_variations(_bad(tmp_path, cells, region), "pick_place")


def test_one_cell_along_an_axis_needs_no_width(tmp_path: Path) -> None:
    spec = load_variations(_bad(tmp_path, {"nx": 1, "ny": 4, "parity": "odd"}, {"x": [0.2, 0.2]}), "pick_place")
    v = get_task("pick_place").sample(spec, 0)
    assert v.objects["cube"].xy[0] == 0.2 and spec.objects["cube"].region.contains(v.objects["cube"].xy)


# --- the shipped specs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", task_names())
def test_in_domain_and_position_use_disjoint_cells_of_the_same_box(task: str) -> None:
    t = get_task(task)
    ind, pos = t.spec("in_domain"), t.spec("position")
    assert set(t.objects) <= set(_props(ind))  # every manipulated object (both blocks of stack) has cells
    for name, o in _props(ind).items():
        p = _props(pos)[name]
        assert o.region.cells is not None, f"{task}: {name} has no cells in domain"
        assert (o.region.x, o.region.y) == (p.region.x, p.region.y), f"{task}: {name}: not the same box"
        assert (o.region.cells.nx, o.region.cells.ny) == (p.region.cells.nx, p.region.cells.ny)
        assert (o.region.cells.parity, p.region.cells.parity) == ("even", "odd")
        assert o.model_copy(update={"region": p.region}) == p, f"{task}: {name}: position changes more than the cells"
        (x0, x1), (y0, y1) = o.region.cell_bounds(0, 0)  # cells a few cm wide
        assert 0.015 <= x1 - x0 <= 0.03 and 0.015 <= y1 - y0 <= 0.03, (task, name, x1 - x0, y1 - y0)
    # background and object: the in-domain spawn cells, so that they change one thing only
    for axis in ("background", "object"):
        for name, o in _props(t.spec(axis)).items():
            assert o.region == _props(ind)[name].region, f"{task}/{axis}: {name}"
    # sampled scenes: training points on even cells, evaluation points on odd cells, never inside an even one
    for seed in range(150):
        vi, vp = t.sample(ind, seed), t.sample(pos, seed)
        for name, o in _props(ind).items():
            a = {**vi.objects, **vi.targets}[name].xy
            b = {**vp.objects, **vp.targets}[name].xy
            assert o.region.contains(a) and _props(pos)[name].region.contains(b), (task, name, seed, a, b)
            assert not _cell_of(o.region, b, tol=-1e-12) & set(o.region.used_cells()), (task, name, seed, b)
            assert not _cell_of(o.region, a, tol=-1e-12) - set(o.region.used_cells()), (task, name, seed, a)


@pytest.mark.parametrize("task", task_names())
def test_the_cells_specs_place_their_objects_every_time(task: str) -> None:
    t = get_task(task)
    for axis in ("in_domain", "position", "background", "object"):
        spec = t.spec(axis)
        for seed in range(300):
            v = t.sample(spec, seed)  # raises VariationError when it cannot place something
            props = [*v.objects.values(), *v.targets.values()]
            for i, p in enumerate(props):
                for q in props[i + 1 :]:
                    assert math.dist(p.xy, q.xy) >= p.footprint + q.footprint, (task, axis, seed)
