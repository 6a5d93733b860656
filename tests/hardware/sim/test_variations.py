"""Scene variations as data: shipped specs load, sampling is seeded, scenes differ, errors name fields."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("mujoco")

from hardware.sim.tasks import get_task, task_names  # noqa: E402
from hardware.sim.variations import (  # noqa: E402
    AXES,
    SPEC_DIR,
    VariationError,
    load_variations,
    parse_variations,
    sample_variation,
)

IN_DOMAIN = SPEC_DIR / "pick_place" / "in_domain.yaml"


@pytest.mark.parametrize("task", task_names())
def test_every_task_ships_the_named_specs_and_they_load(task: str) -> None:
    names = sorted(p.stem for p in (SPEC_DIR / task).glob("*.yaml"))
    assert names == sorted(AXES)
    for axis in AXES:
        spec = load_variations(axis, task)
        assert spec.task == task
        v = get_task(task).sample(spec, 0)
        assert set(v.objects) == set(get_task(task).objects) and set(v.targets) == set(get_task(task).targets)


def test_sampling_is_deterministic_per_seed() -> None:
    spec = load_variations("background", "pick_place")
    a, b, c = (sample_variation(spec, s, order=("cube", "plate")) for s in (7, 7, 8))
    assert a == b
    assert a != c and a.objects["cube"].xy != c.objects["cube"].xy


def test_key_order_in_the_file_does_not_change_the_scene(tmp_path: Path) -> None:
    data = yaml.safe_load(IN_DOMAIN.read_text())
    data["objects"] = dict(reversed(list(data["objects"].items())))
    data = dict(reversed(list(data.items())))
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(data))
    task = get_task("pick_place")
    a = task.sample(load_variations(tmp_path / "x.yaml", "pick_place"), 3)
    assert replace(a, spec_name="in_domain") == task.sample("in_domain", 3)


def test_ood_specs_differ_from_in_domain_as_the_paper_says() -> None:
    for name in task_names():
        task = get_task(name)
        ind = [task.sample("in_domain", s) for s in range(10)]
        pos = [task.sample("position", s) for s in range(10)]
        far = [task.sample("position_far", s) for s in range(10)]
        obj = [task.sample("object", s) for s in range(10)]
        bg = [task.sample("background", s) for s in range(10)]
        moved = next(iter(task.objects))
        # position: the other cells of the same spawn rectangle (test_variations_cells.py); position_far:
        # disjoint rectangles. Either way no sampled position is shared.
        ys_in = {round(v.objects[moved].xy[1], 4) for v in ind}
        spec_in, spec_pos, spec_far = task.spec("in_domain"), task.spec("position"), task.spec("position_far")
        reg_in, reg_pos = spec_in.objects[moved].region, spec_pos.objects[moved].region
        assert (reg_in.x, reg_in.y) == (reg_pos.x, reg_pos.y), name
        assert set(reg_in.used_cells()).isdisjoint(reg_pos.used_cells()), name
        ry_in, ry_far = reg_in.y, spec_far.objects[moved].region.y
        assert ry_in[1] < ry_far[0] or ry_far[1] < ry_in[0], name
        assert not ys_in & {round(v.objects[moved].xy[1], 4) for v in pos}
        assert not ys_in & {round(v.objects[moved].xy[1], 4) for v in far}
        # object: unseen shape and colour
        assert {v.objects[moved].shape for v in obj}.isdisjoint({v.objects[moved].shape for v in ind}), name
        assert {v.objects[moved].rgba for v in obj}.isdisjoint({v.objects[moved].rgba for v in ind}), name
        # background: distractors and more, differently coloured light; in domain has neither
        assert all(len(v.distractors) == 0 and len(v.lights) == 1 for v in ind)
        assert all(len(v.distractors) >= 3 and len(v.lights) >= 2 for v in bg), name
        assert {v.table.rgb1 for v in bg}.isdisjoint({v.table.rgb1 for v in ind})


def test_distractors_keep_clear_of_objects_and_the_carry_path() -> None:
    task = get_task("push")
    spec = task.spec("background")
    for seed in range(15):
        v = task.sample(spec, seed)
        a, b = np.array(v.objects["block"].xy), np.array(v.targets["zone"].xy)
        for d in v.distractors:
            p = np.array(d.xy)
            t = np.clip((p - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
            assert np.linalg.norm(p - (a + t * (b - a))) >= d.footprint + spec.distractors.clearance - 1e-9
            for o in (*v.objects.values(), *v.targets.values()):
                assert math.dist(d.xy, o.xy) >= d.footprint + o.footprint


def test_the_compiled_scene_uses_the_sampled_values() -> None:
    task = get_task("pick_place")
    v = task.sample("background", 2)
    env = task.reset(2, v, cameras=False)
    m = env.model
    cube = m.geom("cube")
    assert np.allclose(m.geom_rgba[cube.id], v.objects["cube"].rgba)
    assert np.allclose(env.pos("cube")[:2], v.objects["cube"].xy)
    assert sum(1 for g in range(m.ngeom) if (m.geom(g).name or "").startswith("distractor")) == len(v.distractors)
    assert m.nlight == len(v.lights)
    assert np.allclose(m.light_dir[0], v.lights[0].direction)
    other = task.reset(3, "in_domain", cameras=False)
    assert not np.allclose(other.model.geom_rgba[other.model.geom("cube").id], m.geom_rgba[cube.id]) or not np.allclose(
        other.pos("cube"), env.pos("cube")
    )


def _bad(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(IN_DOMAIN.read_text())
    edit(data)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["objects"]["cube"].update(size=[0.012, 0.5]), r"bad\.yaml: objects\.cube\.size\[1\]: .*less than or equal to 0\.06"),
        (lambda d: d["objects"]["cube"].update(size=[0.015, 0.012]), r"objects\.cube\.size: range must be \[low, high\]"),
        (lambda d: d["objects"]["cube"].update(colour="red"), r"objects\.cube\.colour: Extra inputs are not permitted"),
        (lambda d: d["objects"]["cube"].update(colors=["#d62828", [1.2, 0, 0]]), r"objects\.cube\.colors\[1\]\[0\]"),
        (lambda d: d["table"].update(texture="marble"), r"table\.texture\[0\]: Input should be 'flat', 'checker' or 'gradient'"),
        (lambda d: d["lighting"].update(count=[0, 2]), r"lighting\.count\[0\]"),
        (lambda d: d.pop("floor"), r"floor: Field required"),
        (lambda d: d["objects"].update(ball=d["objects"].pop("cube")), r"objects\.ball: task pick_place has no such object"),
        (lambda d: d["targets"].pop("plate"), r"targets\.plate: required by task pick_place"),
        (lambda d: d["objects"]["cube"]["region"].update(x=[0.15, 0.34]), r"objects\.cube\.region: .*beyond the top-down reach"),
        (lambda d: d["targets"]["plate"].update(shape="sphere"), r"targets\.plate\.shape\[0\]: 'sphere' is not usable"),
    ],
)
def test_a_bad_file_names_the_file_and_the_field(tmp_path: Path, edit, expected: str) -> None:
    with pytest.raises(VariationError, match=expected):
        load_variations(_bad(tmp_path, edit), "pick_place")


def test_yaml_syntax_errors_and_missing_files_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text("table:\n  rgb1: [[0.5, 0.5, 0.5]\nfloor: {}\n")
    with pytest.raises(VariationError, match=r"broken\.yaml: line \d+, column \d+: not valid YAML"):
        load_variations(p, "pick_place")
    with pytest.raises(VariationError, match=r"pick_place/nope\.yaml: no such variation file \(shipped for pick_place: background, in_domain"):
        load_variations("nope", "pick_place")


def test_task_specific_checks_name_the_field() -> None:
    data = yaml.safe_load((SPEC_DIR / "insert" / "in_domain.yaml").read_text())
    data["targets"]["hole"]["clearance"] = [0.003, 0.03]
    with pytest.raises(VariationError, match=r"targets\.hole\.size\[0\]"):
        get_task("insert").check_spec(parse_variations(data), "x.yaml")


def test_an_impossible_layout_is_an_error_not_a_hang() -> None:
    data = yaml.safe_load(IN_DOMAIN.read_text())
    data["targets"]["plate"]["region"] = data["objects"]["cube"]["region"] = {"x": [0.2, 0.2], "y": [0.0, 0.0]}
    with pytest.raises(VariationError, match="cannot place"):
        sample_variation(parse_variations(data), 0)
