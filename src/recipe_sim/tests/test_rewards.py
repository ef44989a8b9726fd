"""Rewards: hand-computed values of Eq. 1/3/4 and regularizers, and the rewards.yaml loader."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from recipe_common import paths, robot_spec
from recipe_sim import rewards

D = torch.float64


def tips_at(distances, axis=0):
    """(1, 4, 3) fingertips on one axis at the given distances from the origin."""
    t = torch.zeros(1, len(distances), 3, dtype=D)
    t[0, :, axis] = torch.tensor(distances, dtype=D)
    return t


ORIGIN_STICKER = torch.zeros(1, 1, 3, dtype=D)


def test_min_dist_picks_nearest_sticker():
    stickers = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], dtype=D)
    tips = torch.tensor([[[0.0, 0.0, 0.9], [3.0, 4.0, 0.0], [0.0, 0.0, -2.0], [0.0, 0.0, 0.5]]], dtype=D)
    expected = torch.tensor([[0.1, 5.0, 2.0, 0.5]], dtype=D)
    torch.testing.assert_close(rewards.min_dist(stickers, tips), expected)


def test_contact_reward_one_tip_distance_one_alpha_one_is_half():
    r = rewards.hand_contact_reward(ORIGIN_STICKER, tips_at([1.0]), coef=1.0)
    torch.testing.assert_close(r, torch.tensor([0.5], dtype=D))


def test_contact_reward_eq1_both_hands():
    # left: d = 0, 1, 3, 9 with alpha 1 -> 1 + 1/2 + 1/4 + 1/10 = 1.85
    # right: d = 0.5 for all four tips with beta 2 -> 4 * 1/(1 + 1) = 2
    left = tips_at([0.0, 1.0, 3.0, 9.0])
    right = tips_at([0.5, 0.5, 0.5, 0.5], axis=1)
    r = rewards.contact_reward(ORIGIN_STICKER, left, ORIGIN_STICKER, right, alpha=1.0, beta=2.0)
    torch.testing.assert_close(r, torch.tensor([3.85], dtype=D))


def test_contact_reward_one_handed_and_batched():
    left = torch.cat([tips_at([0.0, 1.0, 3.0, 9.0]), tips_at([1.0, 1.0, 1.0, 1.0])])
    stickers = ORIGIN_STICKER.expand(2, 1, 3)
    r = rewards.contact_reward(stickers, left, None, None, alpha=1.0, beta=5.0)
    torch.testing.assert_close(r, torch.tensor([1.85, 2.0], dtype=D))
    r_right_only = rewards.contact_reward(None, None, stickers, left, alpha=5.0, beta=1.0)
    torch.testing.assert_close(r_right_only, torch.tensor([1.85, 2.0], dtype=D))


def test_contact_reward_argument_errors():
    with pytest.raises(ValueError, match="at least one hand"):
        rewards.contact_reward(None, None, None, None, 1.0, 1.0)
    with pytest.raises(ValueError, match="left hand: pass both"):
        rewards.contact_reward(ORIGIN_STICKER, None, None, None, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"fingertips has 1 envs, expected 2"):
        rewards.contact_reward(ORIGIN_STICKER.expand(2, 1, 3), tips_at([1.0]), None, None, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"stickers must have shape \(N, k, 3\)"):
        rewards.contact_reward(torch.zeros(1, 3), tips_at([1.0]), None, None, 1.0, 1.0)


def test_goal_reward_is_negative_scaled_distance():
    obj = torch.tensor([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]], dtype=D)
    goal = torch.tensor([0.0, 0.0, 0.0], dtype=D)  # one goal shared by both envs
    expected = torch.tensor([-10.0, -2 * 3**0.5], dtype=D)
    torch.testing.assert_close(rewards.goal_reward(obj, goal, scale=2.0), expected)
    torch.testing.assert_close(rewards.goal_reward(obj, obj, scale=2.0), torch.zeros(2, dtype=D))


def test_grasp_lift_reward_eq3_is_contact_plus_goal():
    left = tips_at([0.0, 1.0, 3.0, 9.0])
    obj = torch.tensor([[3.0, 4.0, 0.0]], dtype=D)
    goal = torch.zeros(1, 3, dtype=D)
    r = rewards.grasp_lift_reward(ORIGIN_STICKER, left, None, None, obj, goal,
                                  alpha=1.0, beta=1.0, goal_scale=2.0)
    torch.testing.assert_close(r, torch.tensor([1.85 - 10.0], dtype=D))


def test_lift_reward_pays_only_a_held_lifted_object():
    z = torch.tensor([0.80, 0.825, 0.90, 0.90, 0.70], dtype=D)
    pos = torch.stack([torch.full_like(z, 0.3), torch.zeros_like(z), z], dim=1)
    held = torch.tensor([True, True, True, False, True])
    r = rewards.lift_reward(pos, 0.80, held, lift_height=0.05, weight=8.0)
    # at rest, half the lift height, above it (clipped), not held, below the rest height
    assert r.tolist() == pytest.approx([0.0, 4.0, 8.0, 0.0, 0.0])
    assert rewards.lift_reward(pos, 0.80, held, 0.05, 0.0).abs().sum() == 0  # weight 0: the paper's reward
    with pytest.raises(ValueError, match="held must have shape"):
        rewards.lift_reward(pos, 0.80, held[:2], 0.05, 8.0)
    with pytest.raises(ValueError, match="lift weight"):
        rewards.lift_reward(pos, 0.80, held, 0.05, -1.0)


def test_the_lift_terms_goal_factor_pays_most_at_the_goal():
    pos = torch.tensor([[0.3, 0.0, 0.90], [0.3, 0.1, 0.90], [0.3, 0.3, 0.90]], dtype=D)
    held = torch.ones(3, dtype=torch.bool)
    goal = torch.tensor([0.3, 0.0, 0.90], dtype=D)
    r = rewards.lift_reward(pos, 0.80, held, 0.05, 8.0, goal_pos=goal, goal_distance=0.1)
    # at the goal, 10 cm and 30 cm away: 8, 8/e, 8/e^3
    assert r.tolist() == pytest.approx([8.0, 8.0 * math.exp(-1.0), 8.0 * math.exp(-3.0)])
    assert rewards.lift_reward(pos, 0.80, held, 0.05, 8.0, goal_pos=goal).tolist() == pytest.approx([8.0] * 3)
    with pytest.raises(ValueError, match="goal factor needs goal_pos"):
        rewards.lift_reward(pos, 0.80, held, 0.05, 8.0, goal_distance=0.1)
    with pytest.raises(ValueError, match="goal factor"):
        rewards.lift_reward(pos, 0.80, held, 0.05, 8.0, goal_pos=goal, goal_distance=0.0)


def test_newly_completed_stages_flags_each_stage_once():
    prev = torch.tensor([0, 0, 1, 0, 2])
    cur = torch.tensor([0, 1, 1, 2, 2])
    expected = torch.tensor([[False, False], [True, False], [False, False], [True, True], [False, False]])
    assert torch.equal(rewards.newly_completed_stages(prev, cur), expected)


def test_handover_reward_eq4():
    stage = torch.tensor([0, 1, 1, 0])
    ca = torch.tensor([1.0, 1.0, 1.0, 2.0], dtype=D)
    ga = torch.tensor([-0.5, -0.5, -0.5, -1.0], dtype=D)
    cb = torch.tensor([3.0, 3.0, 3.0, 0.0], dtype=D)
    gb = torch.tensor([-0.25, -0.25, -0.25, 0.0], dtype=D)
    completed = torch.tensor([[False, False], [True, False], [False, True], [False, False]])
    r = rewards.handover_reward(stage, ca, ga, cb, gb, stage_bonuses=[10.0, 20.0], completed=completed)
    # env0: stage 0 -> 1 - 0.5; env1: stage 1 -> 3 - 0.25 + 10; env2: 3 - 0.25 + 20; env3: 2 - 1
    torch.testing.assert_close(r, torch.tensor([0.5, 12.75, 22.75, 1.0], dtype=D))


def test_handover_reward_rejects_bad_stage_and_shapes():
    z = torch.zeros(2, dtype=D)
    none = torch.zeros(2, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="stage must be 0 or 1"):
        rewards.handover_reward(torch.tensor([0, 2]), z, z, z, z, [1.0, 2.0], none)
    with pytest.raises(ValueError, match="completed must have shape"):
        three = torch.zeros(2, 3, dtype=torch.bool)
        rewards.handover_reward(torch.tensor([0, 1]), z, z, z, z, [1.0, 2.0], three)
    with pytest.raises(ValueError, match="goal_b must have shape"):
        rewards.handover_reward(torch.tensor([0, 1]), z, z, z, torch.zeros(3, dtype=D), [1.0, 2.0], none)


def test_action_rate_penalty():
    a = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=D)
    prev = torch.zeros(2, 2, dtype=D)
    r = rewards.action_rate_penalty(a, prev, weight=0.5)
    torch.testing.assert_close(r, torch.tensor([-2.5, 0.0], dtype=D))
    with pytest.raises(ValueError, match="equal"):
        rewards.action_rate_penalty(a, torch.zeros(2, 3), 0.5)


def test_joint_limit_penalty_hand_computed():
    lower, upper = np.array([0.0, -1.0]), np.array([1.0, 1.0])
    # margin 0.1 -> bands 0.1 and 0.2 wide
    q = torch.tensor([
        [0.5, 0.0],     # interior: 0
        [0.05, 0.0],    # depth 0.05 of 0.1 -> 0.25
        [1.0, -1.0],    # both at a limit -> 1 + 1
        [1.1, 0.9],     # 0.2/0.1 -> 4 ; 0.1/0.2 -> 0.25
    ], dtype=D)
    r = rewards.joint_limit_penalty(q, lower, upper, margin=0.1, weight=2.0)
    torch.testing.assert_close(r, torch.tensor([0.0, -0.5, -4.0, -8.5], dtype=D))
    with pytest.raises(ValueError, match="margin"):
        rewards.joint_limit_penalty(q, lower, upper, margin=0.6, weight=1.0)
    with pytest.raises(ValueError, match="upper > lower"):
        rewards.joint_limit_penalty(q, upper, lower, margin=0.1, weight=1.0)


def test_arm_joint_limits_come_from_robot_spec():
    lo, hi = rewards.arm_joint_limits()
    names = robot_spec.arm_joint_names()
    limits = robot_spec.joint_limits()
    assert lo.shape == hi.shape == (14,)
    np.testing.assert_array_equal(lo, [limits[n].lower for n in names])
    np.testing.assert_array_equal(hi, [limits[n].upper for n in names])


def test_object_dropped_penalty():
    r = rewards.object_dropped_penalty(torch.tensor([True, False]), penalty=10.0)
    torch.testing.assert_close(r, torch.tensor([-10.0, 0.0]))


# --------------------------------------------------------------------------- config


def test_shipped_config_loads_for_every_task():
    cfgs = rewards.load_reward_configs()
    assert set(cfgs) == set(rewards.TASKS)
    assert cfgs["handover"].stage_bonuses[0] < cfgs["handover"].stage_bonuses[1]
    assert cfgs["grasp_reach"].stage_bonuses == ()
    assert cfgs["grasp_reach"].success.goal_tolerance == pytest.approx(0.05)
    assert rewards.RewardConfig.load("box_lift") == cfgs["box_lift"]


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(paths.config_path("rewards.yaml").read_text())
    mutate(data)
    path = tmp_path / "rewards.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def set_key(task, **kw):
    return lambda d: d["tasks"][task].update(kw)


def set_success(task, **kw):
    return lambda d: d["tasks"][task]["success"].update(kw)


@pytest.mark.parametrize(("mutate", "match"), [
    (set_key("grasp_reach", contact_gamma=1.0), r"tasks\.grasp_reach: unknown key 'contact_gamma'"),
    (lambda d: d["tasks"]["box_lift"].pop("goal_scale"), r"box_lift: missing required key 'goal_scale'"),
    (set_key("box_lift", goal_scale=-1.0), r"tasks\.box_lift\.goal_scale must be >= 0"),
    (set_key("box_lift", goal_scale="big"), r"tasks\.box_lift\.goal_scale must be a number"),
    (set_key("box_lift", contact_alpha=float("nan")), r"contact_alpha must be finite"),
    (set_key("handover", stage_bonuses=[20.0, 10.0]), r"stage_bonuses must grow"),
    (set_key("handover", stage_bonuses=[1.0]), r"stage_bonuses must be a list of 2"),
    (set_key("grasp_reach", stage_bonuses=[1.0, 2.0]), r"only meaningful for the handover"),
    (set_key("handover", lift_weight=1.0), r"handover\.lift_weight: handover pays stage bonuses"),
    (set_key("grasp_reach", lift_weight=-1.0), r"grasp_reach\.lift_weight must be >= 0"),
    (set_key("grasp_reach", lift_goal_distance=0.0), r"grasp_reach\.lift_goal_distance must be > 0"),
    (set_key("handover", lift_goal_distance=0.1), r"handover\.lift_goal_distance: handover has no lift"),
    (set_success("grasp_reach", hold=3), r"tasks\.grasp_reach\.success: unknown key 'hold'"),
    (set_success("grasp_reach", hold_steps=0), r"tasks\.grasp_reach\.success\.hold_steps must be >= 1"),
    (lambda d: d["tasks"].pop("handover"), r"tasks: missing required key 'handover'"),
    (lambda d: d["tasks"].update(pour={}), r"tasks: unknown key 'pour'"),
    (lambda d: d.update(format="v0"), r"key 'format' must be"),
])
def test_config_errors_name_the_bad_key(tmp_path, mutate, match):
    path = _write(tmp_path, mutate)
    with pytest.raises(ValueError, match=match):
        rewards.load_reward_configs(path)


def test_malformed_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [unclosed\n")
    with pytest.raises(ValueError, match="malformed YAML"):
        rewards.load_reward_configs(bad)
    with pytest.raises(FileNotFoundError):
        rewards.load_reward_configs(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="unknown task 'pour'"):
        rewards.RewardConfig.load("pour")


def test_config_round_trip():
    for task in ("handover", "grasp_reach"):
        cfg = rewards.load_reward_configs()[task]
        assert rewards.RewardConfig.from_dict(task, cfg.to_dict()) == cfg
    assert rewards.load_reward_configs()["grasp_reach"].lift_weight > 0
    assert rewards.load_reward_configs()["grasp_reach"].lift_goal_distance == pytest.approx(0.1)
