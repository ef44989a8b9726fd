"""The object catalog: specs, randomization ranges, divide-and-conquer groupings, and objects in the scene."""

from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest

from recipe_common import config, paths
from recipe_common.config import ConfigError
from recipe_sim.model.builder import build_model
from recipe_sim.model.scene import load_scene
from recipe_sim.objects import STICKER_PLACEMENTS, ObjectSpec, catalog_from_dict, load_catalog


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def raw():
    return config.load_yaml(paths.config_dir() / "objects.yaml")


def test_catalog_contents(catalog):
    objs = catalog.objects
    assert len(objs) >= 10
    assert {o.shape for o in objs.values()} == {"box", "cylinder", "sphere"}
    for o in objs.values():
        assert o.sticker_placement in STICKER_PLACEMENTS
        assert 0.5 <= o.friction_range[0] <= o.friction_range[1] <= 1.5
    tabletop = catalog.group("all")[0]
    for name in tabletop:
        assert objs[name].mass_range == (0.03, 0.1), name
    # box lift: a box wider than one hand can span (the open hand spans ~0.15 m thumb to little finger)
    box = objs["lift_box"]
    assert box.shape == "box" and 2 * min(box.size[:2]) >= 0.18
    assert objs["handover_block"].shape == "box"


def test_groupings_partition_the_tabletop_objects(catalog):
    (all_objects,) = catalog.group("all")
    assert len(all_objects) == 10
    for grouping in ("shape", "mix", "single"):
        groups = catalog.group(grouping)
        flat = [n for g in groups for n in g]
        assert sorted(flat) == sorted(all_objects), grouping
        assert len(flat) == len(set(flat)), grouping
    assert len(catalog.group("shape")) == 3 and len(catalog.group("mix")) == 3
    assert len(catalog.group("single")) == 10
    for g in catalog.group("shape"):  # similar shapes together
        assert len({catalog.objects[n].shape for n in g}) == 1
    for g in catalog.group("mix"):  # mixed shapes in every group
        assert len({catalog.objects[n].shape for n in g}) >= 2
    assert catalog.group("single:lift_box") == [["lift_box"]]
    with pytest.raises(KeyError, match="unknown object"):
        catalog.group("single:teapot")
    with pytest.raises(KeyError, match="unknown grouping"):
        catalog.group("colour")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["objects"]["can_small"].update(shape="cone"), "shape"),
        (lambda d: d["objects"]["can_small"].update(size=[0.02]), "list of 2 numbers"),
        (lambda d: d["objects"]["ball_small"].update(size=[float("nan")]), "finite"),
        (lambda d: d["objects"]["can_small"].update(sticker_placement="everywhere"), "sticker_placement"),
        (lambda d: d["objects"]["can_small"].update(mass_range=[0.1, 0.03]), "mass_range"),
        (lambda d: d["objects"]["can_small"].update(colour="red"), "unknown key"),
        (lambda d: d["groupings"]["shape"][0].remove("can_small"), "must partition 'all'"),
        (lambda d: d["groupings"]["mix"][0].append("lift_box"), "must partition 'all'"),
        (lambda d: d["groupings"]["mix"][0].append("teapot"), "unknown object 'teapot'"),
        (lambda d: d["groupings"].pop("shape"), "groupings.shape: missing"),
        (lambda d: d["groupings"]["all"].append(["lift_box"]), "exactly one group"),
        (lambda d: d.update(format="recipe_sim/objects/v0"), "format"),
    ],
)
def test_invalid_catalogs_raise_clear_errors(raw, edit, message):
    data = copy.deepcopy(raw)
    edit(data)
    with pytest.raises(ConfigError, match=message):
        catalog_from_dict(data)


def test_object_spec_validates_itself():
    with pytest.raises(ConfigError, match="needs 3 size values"):
        ObjectSpec("x", "box", (0.1, 0.1))
    with pytest.raises(ConfigError, match="positive"):
        ObjectSpec("x", "sphere", (-0.1,))
    assert ObjectSpec("x", "cylinder", (0.03, 0.05)).resting_height == 0.05
    assert ObjectSpec("x", "sphere", (0.04,)).resting_height == 0.04


def test_every_object_rests_on_the_table(catalog):
    """Each catalog object builds into the scene, lands on the table top and stays put."""
    top = load_scene().table_top_height
    for name, spec in catalog.objects.items():
        model, index = build_model(obj=spec)
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        z0 = data.xpos[index.object_body][2]
        assert z0 == pytest.approx(top + spec.resting_height, abs=1e-6), name
        assert model.body_mass[index.object_body] == pytest.approx(np.mean(spec.mass_range)), name
        mujoco.mj_step(model, data, nstep=60)
        assert abs(data.xpos[index.object_body][2] - z0) < 0.003, name
        assert np.linalg.norm(data.qvel[index.object_dof_adr:index.object_dof_adr + 3]) < 0.02, name
