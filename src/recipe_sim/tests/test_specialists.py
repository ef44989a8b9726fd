"""Every committed packaged specialist (recipe_sim/data/specialists/*): loads, acts, says what it is, has an
eval.

The distillation stage and the deployment demo start from these folders through ``load_specialist``; this
checks the contract they rely on: ``metadata.json`` names task, objects and randomization, the exported actor
takes that task's observation and returns 26 finite actions, ``eval.json`` reports success per object from
the ready pose on a seed the run did not train on, and each folder stays under 5 MB.
"""

from __future__ import annotations

import numpy as np
import pytest

from recipe_common import robot_spec
from recipe_sim.objects import load_catalog
from recipe_sim.ppo.envs import SubTask, make_env, randomization_config, recorded_task_overrides
from recipe_sim.ppo.packaged import SPECIALISTS_DIR, available, load_specialist

MAX_BYTES = 5 * 1024 * 1024


def test_specialists_are_committed():
    assert available(), f"no packaged specialist in {SPECIALISTS_DIR}"


@pytest.mark.parametrize("name", available())
def test_packaged_specialist_contract(name):
    spec = load_specialist(name)
    meta, report = spec.metadata, spec.eval_report
    size = sum(p.stat().st_size for p in spec.path.iterdir() if p.is_file())
    assert size < MAX_BYTES, f"{name}: {size / 1e6:.1f} MB"
    catalog = load_catalog()
    assert meta["task"] in ("grasp_reach", "box_lift", "handover")
    assert meta["objects"] and all(o in catalog.objects for o in meta["objects"])
    assert meta.get("randomization_values"), "metadata must carry the training randomization"
    # The eval: from the ready pose, every object, at least one condition, a seed training did not use.
    assert report["start"] == "ready" and report["iteration"] == meta["iteration"]
    assert report["seed"] not in (meta["seed"], meta["seed"] + 1)
    for condition, rows in report["conditions"].items():
        assert set(meta["objects"]) <= set(rows), (condition, rows)
        assert 0.0 <= rows["_overall"]["success_rate"] <= 1.0
    sub = SubTask(meta["task"], f"single:{meta['objects'][0]}", 0, (meta["objects"][0],))
    env = make_env(sub, 2, 0, randomization_config(False), no_init_states=True,
                   task_overrides=recorded_task_overrides(meta))
    try:
        obs = env.get_observations()["policy"].numpy()
    finally:
        env.close()
    ts, onnx = spec.policy("ts")(obs), spec.policy("onnx")(obs)
    assert ts.shape == (2, robot_spec.ACTION_DIM) and np.isfinite(ts).all()
    np.testing.assert_allclose(onnx, ts, atol=1e-4)
