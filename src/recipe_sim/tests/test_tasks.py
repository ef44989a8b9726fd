"""Tasks: config validation, the closer-hand rule, goals, stickers, stages, and each success detector
firing on a scripted success in the simulator (and not on a failure)."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
import yaml

from recipe_common import robot_spec
from recipe_common.paths import config_path
from recipe_common.robot_spec import side_action_mask
from recipe_sim.objects import load_catalog
from recipe_sim.randomization import RandomizationConfig
from recipe_sim.rewards import load_reward_configs
from recipe_sim.tasks import Frame, make_task
from recipe_sim.tasks.box_lift import facing_halves
from recipe_sim.tasks.config import load_task_configs, parse_task
from recipe_sim.tasks.poses import palm_frame, set_coupled, solve_palm_pose
from recipe_sim.tasks.scripted import plan_side_grasp
from recipe_sim.vec_env import RecipeVecEnv

TABLE = 0.9


def frame(n: int, obj_pos, palms=None, tips=None) -> Frame:
    z = torch.zeros
    obj = torch.as_tensor(np.asarray(obj_pos, dtype=np.float32)).reshape(n, 3)
    return Frame(
        q=z(n, 26),
        qd=z(n, 26),
        obj_pos=obj,
        obj_quat=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        obj_linvel=z(n, 3),
        obj_angvel=z(n, 3),
        tips=z(n, 2, 4, 3) + 5.0 if tips is None else torch.as_tensor(tips, dtype=torch.float32),
        palms=z(n, 2, 3) if palms is None else torch.as_tensor(palms, dtype=torch.float32),
        actions=z(n, 26),
        prev_actions=z(n, 26),
    )


def task_for(name: str, n: int, max_stickers: int = 16, **overrides):
    cfg = load_task_configs().get(name).with_overrides(overrides)
    return make_task(cfg, load_reward_configs()[cfg.reward_config], n, TABLE, max_stickers=max_stickers)


# --- configuration --------------------------------------------------------------------------------------


def test_all_tasks_load_with_both_handover_directions():
    suite = load_task_configs()
    assert {"grasp_reach", "box_lift", "handover", "handover_left_to_right", "handover_right_to_left"} <= set(
        suite.tasks
    )
    assert suite.get("handover_right_to_left").direction == "right_to_left"
    assert all(t.episode_length > 0 for t in suite.tasks.values())


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"goal": {"x": [0.3], "y": [0, 0.2], "z_above_table": [0.1, 0.2]}}, "tasks.grasp_reach.goal.x"),
        ({"episode_length": 0}, "tasks.grasp_reach.episode_length"),
        ({"idle_arm": "wave"}, "tasks.grasp_reach.idle_arm"),
        ({"reward_config": "juggle"}, "tasks.grasp_reach.reward_config"),
        ({"lift_goal_height": 0.1}, "unknown key 'lift_goal_height'"),
    ],
)
def test_bad_task_config_names_the_key(patch, message):
    raw = copy.deepcopy(yaml.safe_load(config_path("tasks.yaml").read_text())["tasks"]["grasp_reach"])
    raw.update(patch)
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("[", r"\[")):
        parse_task("grasp_reach", raw, base_dir=None)


def test_the_file_is_parsed_once_per_version(tmp_path):
    path = tmp_path / "config" / "tasks.yaml"
    path.parent.mkdir()
    text = config_path("tasks.yaml").read_text()
    path.write_text(text)
    first = load_task_configs(path)
    assert load_task_configs(path) is first  # the env, its task and the trials share one parse
    path.write_text(text.replace("episode_length: 100", "episode_length: 90", 1) + "\n")
    again = load_task_configs(path)
    assert again is not first and again.get("grasp_reach").episode_length == 90
    path.write_text("tasks: [\n")
    with pytest.raises(Exception, match=r"tasks\.yaml"):
        load_task_configs(path)


def test_overrides_are_validated():
    cfg = load_task_configs().get("box_lift")
    assert cfg.with_overrides({"episode_length": 7}).episode_length == 7
    with pytest.raises(ValueError, match="lift_goal_height"):
        cfg.with_overrides({"lift_goal_height": -1.0})


# --- pure task logic ------------------------------------------------------------------------------------


def test_closer_hand_rule_and_goal_side():
    task = task_for("grasp_reach", 2)
    palms = np.array([[[0.3, 0.2, 1.1], [0.3, -0.2, 1.1]]] * 2)
    f = frame(2, [[0.35, 0.05, 0.95], [0.35, -0.08, 0.95]], palms=palms)
    task.finish_reset(np.arange(2), f, np.full(2, 0.95), np.random.default_rng(0))
    assert task.side.tolist() == [0, 1]  # left is closer to y=+0.05, right to y=-0.08
    assert task.goal[0, 1] >= 0 and task.goal[1, 1] <= 0  # goal on the grasping hand's side
    assert torch.all(task.goal[:, 2] >= TABLE + 0.10 - 1e-6)
    mask = task.hold_mask()
    assert torch.equal(mask[0], torch.as_tensor(side_action_mask(1)))  # env 0: right arm+hand held
    assert int(mask[0].sum()) == 13 and not bool((mask[0] & mask[1]).any())


def test_grasp_reach_success_needs_lift_and_goal_for_hold_steps():
    task = task_for("grasp_reach", 2)
    f0 = frame(
        2, [[0.35, 0.05, 0.95], [0.35, 0.05, 0.95]], palms=np.array([[[0.3, 0.2, 1.1], [0.3, -0.2, 1.1]]] * 2)
    )
    task.finish_reset(np.arange(2), f0, np.full(2, 0.95), np.random.default_rng(0))
    goal = task.goal.clone()
    on_table_below_goal = goal[1].clone()
    on_table_below_goal[2] = 0.95  # right x/y but resting: not lifted
    hold = task.success_params.hold_steps
    fired = []
    for _ in range(hold):
        out = task.evaluate(frame(2, torch.stack([goal[0], on_table_below_goal])))
        fired.append(out.success.tolist())
    assert fired[-1] == [True, False] and not any(f[0] for f in fired[:-1])
    assert not out.failure.any()


def test_failure_when_object_falls_or_flies_away():
    task = task_for("grasp_reach", 3)
    f0 = frame(3, [[0.35, 0.0, 0.95]] * 3)
    task.finish_reset(np.arange(3), f0, np.full(3, 0.95), np.random.default_rng(0))
    out = task.evaluate(frame(3, [[0.35, 0.0, 0.95], [0.35, 0.0, 0.5], [2.0, 0.0, 0.95]]))
    assert out.failure.tolist() == [False, True, True]
    assert out.terms["drop"][1] < 0 and out.terms["drop"][0] == 0


def _yaw_quat(yaw: float) -> torch.Tensor:
    return torch.tensor([[math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]])


def test_box_lift_stickers_split_by_the_side_facing_each_hand():
    pts = torch.tensor(
        [[0.1, 0.0, 0.0], [0.0, 0.16, 0.0], [-0.1, 0.0, 0.0], [0.0, -0.16, 0.0], [0.05, 0.16, 0.0]]
    )[None]
    for yaw in (0.0, 0.7, -0.7):  # within 45 degrees of square: the box's own +-y
        left, right = facing_halves(pts, _yaw_quat(yaw))
        assert left[0].tolist() == [False, True, False, False, True]
        assert right[0].tolist() == [False, False, False, True, False]
    # a quarter turn (the squeeze turns a wide box so): its +-x faces now face the hands
    left, right = facing_halves(pts, _yaw_quat(math.pi / 2))
    assert left[0].tolist() == [True, False, False, False, True]
    assert right[0].tolist() == [False, False, True, False, False]
    left, right = facing_halves(pts, _yaw_quat(-math.pi / 2))
    assert left[0].tolist() == [False, False, True, False, False]
    ring = torch.tensor([[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]])[None]  # no point on either side: both get all
    assert facing_halves(ring, _yaw_quat(0.0))[0].all() and facing_halves(ring, _yaw_quat(0.0))[1].all()


def test_box_lift_quarter_turned_box_held_on_the_faces_facing_the_hands_pays_the_lift():
    """The squeeze turns a wide box spawned beyond its peak-width yaw a quarter turn; both palms then hold
    its +-x faces near one end, where a split fixed to the box's own y put both hands on one half. The lift
    reward (fingertips on each hand's half) pays for that hold; success reads the hands' contacts."""
    task = task_for("box_lift", 1, max_stickers=32)
    spec = load_catalog().objects["lift_box_wide"]
    task.set_objects(np.array([0]), [spec], np.array([1.0]))
    hx = spec.size[0]
    center = torch.tensor([0.42, 0.0, TABLE + 0.10 + 0.10])
    task.rest_z[0] = TABLE + 0.10
    both = torch.tensor([[True, True]])
    turned = dataclasses.replace(frame(1, center.numpy()[None]), obj_quat=_yaw_quat(math.pi / 2),
                                 hands_touching=both)
    # local (+-hx, 0.12): the +y end of the box's x faces, which now face left (+y) and right (-y)
    tips = torch.zeros(1, 2, 4, 3)
    tips[0, 0] = center + torch.tensor([-0.12, hx + 0.01, 0.0])
    tips[0, 1] = center + torch.tensor([-0.12, -hx - 0.01, 0.0])
    held = dataclasses.replace(turned, tips=tips)
    hold = task.success_params.hold_steps
    outs = [task._evaluate(held) for _ in range(hold)]
    assert outs[-1].success[0] and not outs[0].success[0]
    assert outs[-1].demo_success[0] and not outs[0].demo_success[0]  # a demonstration of the intended grasp
    assert outs[0].terms["lift"][0] > 0
    one_hand = tips.clone()
    one_hand[0, 1] = center + torch.tensor([0.0, -0.40, 0.2])
    task.counter.zero_()
    task.demo_counter.zero_()
    outs = [task._evaluate(dataclasses.replace(turned, tips=one_hand)) for _ in range(hold + 2)]
    assert outs[0].terms["lift"][0] == 0  # the right hand's fingertips are off its half
    # both hands touch the lifted box (a palm on the right face, say): a lift, not a demonstration to clone
    assert outs[-1].success[0] and not any(bool(o.demo_success[0]) for o in outs)
    task.counter.zero_()
    one_touching = dataclasses.replace(held, hands_touching=torch.tensor([[True, False]]))
    assert not any(bool(task._evaluate(one_touching).success[0]) for _ in range(8))
    with pytest.raises(ValueError, match="hands_touching"):
        task._evaluate(dataclasses.replace(held, hands_touching=None))


def test_handover_directions_stage_and_bonus_once():
    task = task_for("handover", 64)
    spawn = task.spawn_positions(np.arange(64), np.random.default_rng(1))
    a_left = (task.side_a == 0).numpy()
    assert 0 < a_left.sum() < 64  # "both": some envs each way
    assert np.all(spawn[a_left, 1] > 0) and np.all(spawn[~a_left, 1] < 0)  # block on hand A's side
    one = task_for("handover_right_to_left", 1)
    one.spawn_positions(np.arange(1), np.random.default_rng(0))
    f0 = frame(1, [[0.4, -0.13, 0.93]])
    one.finish_reset(np.arange(1), f0, np.array([0.93]), np.random.default_rng(0))
    assert one.side_a.item() == 1 and one.final_goal[0, 1] > 0  # A = right, so B's goal is on the left
    bonus = []
    for _ in range(3):
        out = one.evaluate(frame(1, one.transfer_goal))
        bonus.append(float(out.terms["stage_bonus"][0]))
    assert one.progress.item() == 1 and torch.allclose(one.goal, one.final_goal)
    assert bonus[0] == pytest.approx(one.reward_cfg.stage_bonuses[0]) and bonus[1:] == [0.0, 0.0]
    assert not out.success.any()


# --- scripted successes in the simulator ----------------------------------------------------------------


def _hold_actions(env: RecipeVecEnv, q: np.ndarray) -> torch.Tensor:
    """Policy actions that command joint targets q ((26,) for every env, or (N, 26))."""
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), (env.num_envs, robot_spec.ACTION_DIM))
    return torch.as_tensor(robot_spec.joint_targets_to_action(q, env.hand), dtype=torch.float32)


def _float(env: RecipeVecEnv, i: int) -> None:
    """No gravity in env i: a teleported object stays where it is put, as if held (the PD-held arms too)."""
    env.physics.models[i].opt.gravity[:] = 0.0


def _run(
    env: RecipeVecEnv, actions: list[torch.Tensor], outcomes: dict[int, tuple[bool, bool, bool]]
) -> None:
    """Step through actions, recording each env's first episode end as (success, failure, time_out)."""
    for a in actions:
        _, _, dones, extras = env.step(a)
        ids = np.flatnonzero(dones.numpy())
        if len(ids):
            log = extras["log"]
            for k, i in enumerate(ids):
                outcomes.setdefault(
                    int(i),
                    (
                        bool(log["/episode/success"][k]),
                        bool(log["/episode/failure"][k]),
                        bool(extras["time_outs"][i]),
                    ),
                )


def _palm_targets(env: RecipeVecEnv, targets: dict[str, np.ndarray]) -> np.ndarray:
    """Ready pose with the given palms moved (keeping the ready orientation) by IK."""
    import mujoco

    model, index = env.physics.models[0], env.index
    data = mujoco.MjData(model)
    data.qpos[index.actuated_qpos_adr] = env.ready_q
    set_coupled(model, data, index)
    q = env.ready_q.copy()
    for side, target in targets.items():
        _, rot = palm_frame(model, data, index, side)
        arm, e_pos, _ = solve_palm_pose(model, data, index, side, np.asarray(target, dtype=np.float64), rot)
        assert e_pos < 5e-3, f"{side} palm cannot reach {target}"
        s = 0 if side == "left" else 1
        q[7 * s : 7 * s + 7] = arm
    return q


def test_grasp_reach_scripted_grasp_succeeds_and_a_drop_fails():
    env = RecipeVecEnv(
        "grasp_reach",
        2,
        objects=["bottle"],
        randomization=RandomizationConfig.disabled(),
        task_overrides={"spawn": {"x": [0.339, 0.341], "y": [0.099, 0.101]}, "terminate_on_success": True},
    )
    assert env.task.side.tolist() == [0, 0]  # the object is nearer the left hand
    obj = np.array([0.34, 0.10, env.table_top + env.object_specs[0].resting_height + 0.001])
    plan = plan_side_grasp(env.physics.models[0], env.index, env.ready_q, obj, side="left", lift=0.10)
    env.teleport([0, 1], q=np.tile(plan.approach, (2, 1)), object_pose=np.tile([*obj, 1, 0, 0, 0], (2, 1)))
    env.task.goal[:] = torch.as_tensor(obj + np.array([0.0, 0.0, 0.10]), dtype=torch.float32)
    outcomes: dict[int, tuple[bool, bool, bool]] = {}
    _run(
        env,
        [_hold_actions(env, plan.approach + (plan.closed - plan.approach) * k / 10) for k in range(1, 11)],
        outcomes,
    )
    assert not outcomes  # closing the hand ends nothing
    env.teleport([1], object_pose=[[0.34, 0.10, env.table_top - 0.3, 1, 0, 0, 0]])  # env 1: the bottle drops
    lift = [_hold_actions(env, plan.closed + (plan.lifted - plan.closed) * k / 10) for k in range(1, 11)]
    _run(env, lift + [_hold_actions(env, plan.lifted)] * (env.task.success_params.hold_steps + 3), outcomes)
    assert outcomes[0] == (True, False, False)  # lifted 10 cm to the goal and held there
    assert outcomes[1] == (False, True, False)  # fell off the table


def test_box_lift_success_with_both_hands_and_not_with_one_or_none():
    env = RecipeVecEnv(
        "box_lift",
        3,
        randomization=RandomizationConfig.disabled(),
        task_overrides={"terminate_on_success": True},
    )
    box = env.object_specs[0]
    center = np.array([0.42, 0.0, env.table_top + box.resting_height + 0.10])  # lifted 10 cm
    beside = {
        s: [center[0] - 0.12, sign * (box.size[1] + 0.02), center[2] + 0.01]
        for s, sign in (("left", 1.0), ("right", -1.0))
    }  # each hand against its side of the box (MuJoCo contacts; 4.5 cm out, the hands do not touch it)
    away = {s: [0.20, sign * 0.34, center[2] + 0.05] for s, sign in (("left", 1.0), ("right", -1.0))}
    q = np.stack(
        [
            _palm_targets(env, beside),
            _palm_targets(env, {"left": beside["left"], "right": away["right"]}),
            _palm_targets(env, away),
        ]
    )
    env.teleport([0, 1, 2], q=q, object_pose=np.tile([*center, 1, 0, 0, 0], (3, 1)))
    for i in range(3):
        _float(env, i)
    outcomes: dict[int, tuple[bool, bool, bool]] = {}
    _run(env, [_hold_actions(env, q)] * (env.task.success_params.hold_steps + 2), outcomes)
    assert outcomes == {0: (True, False, False)}  # one hand, or none, is not a box lift


def test_handover_scripted_stages_and_success():
    env = RecipeVecEnv(
        "handover_left_to_right",
        2,
        randomization=RandomizationConfig.disabled(),
        task_overrides={"terminate_on_success": True},
    )
    for i in range(2):
        _float(env, i)
    hold = _hold_actions(env, env._reset_targets.copy())
    transfer = env.task.transfer_goal.numpy().astype(np.float64)
    env.teleport([0, 1], object_pose=np.concatenate([transfer, np.tile([1.0, 0, 0, 0], (2, 1))], axis=1))
    outcomes: dict[int, tuple[bool, bool, bool]] = {}
    _run(env, [hold], outcomes)
    assert env.task.progress.tolist() == [1, 1] and not outcomes
    assert env.get_observations()["policy"][:, 29:32].numpy() == pytest.approx(env.task.final_goal.numpy())
    # Env 0: the block's lower half sits against hand B's (right) index and middle fingertips, where its final
    # goal is put; env 1: the block at its final goal with hand B far away.
    tips = env.physics.tips()[0, 1]
    block = env.object_specs[0]
    # Hand B's stickers are the block's lower half: its fingertips face the middle of that half.
    spot = 0.5 * (tips[1] + tips[2]) + np.array([0.0, block.size[1] + 0.012, 0.5 * block.size[2]])
    env.task.final_goal[0] = torch.as_tensor(spot, dtype=torch.float32)
    far = env.task.final_goal[1].numpy().astype(np.float64)
    env.teleport([0, 1], object_pose=np.array([[*spot, 1, 0, 0, 0], [*far, 1, 0, 0, 0]]))
    _run(env, [hold] * (env.task.success_params.hold_steps + 2), outcomes)
    assert outcomes == {0: (True, False, False)}
