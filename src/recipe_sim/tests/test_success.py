"""Success/failure detectors on scripted trajectories: fire on success, not on the failure modes."""

import math

import numpy as np
import pytest
import torch

from recipe_sim import success

TABLE_Z = 0.75
REST_Z = 0.80  # object centre while lying on the table
GOAL = torch.tensor([[0.30, 0.10, 0.95]])
PARAMS = success.SuccessParams(goal_tolerance=0.05, lift_height=0.05, hold_steps=3)


def run_grasp(trajectory, goal=GOAL, params=PARAMS):
    """Feed positions (T, 3) one step at a time; return the per-step success flags."""
    counter = torch.zeros(1, dtype=torch.long)
    flags = []
    for p in trajectory:
        ok, counter = success.grasp_reach_success(torch.tensor([p]), goal, REST_Z, counter, params)
        flags.append(bool(ok[0]))
    return flags


def carry_to(goal_xyz, hold):
    """Rest on the table, lift, carry in 3 steps to goal_xyz, stay there for `hold` steps."""
    start = np.array([0.0, 0.0, REST_Z])
    lifted = start + np.array([0.0, 0.0, 0.10])
    path = [start, start, lifted]
    path += [lifted + (np.asarray(goal_xyz) - lifted) * k / 3 for k in (1, 2, 3)]
    path += [np.asarray(goal_xyz)] * (hold - 1)
    return [list(map(float, p)) for p in path]


def test_grasp_reach_fires_after_hold_steps_at_goal():
    flags = run_grasp(carry_to([0.30, 0.10, 0.95], hold=5))
    # goal first reached at step 5 (index), held at 5, 6, 7 -> success from step 7 on
    assert flags == [False] * 7 + [True] * 3


def test_grasp_reach_not_when_held_too_briefly():
    path = carry_to([0.30, 0.10, 0.95], hold=2) + [[0.30, 0.30, 0.95]] + [[0.30, 0.10, 0.95]] * 2
    assert not any(run_grasp(path))


def test_grasp_reach_not_at_wrong_place():
    assert not any(run_grasp(carry_to([0.30, 0.17, 0.95], hold=10)))  # 7 cm off


def test_grasp_reach_not_when_not_lifted():
    goal_on_table = torch.tensor([[0.30, 0.10, REST_Z + 0.02]])  # near goal but only 2 cm up
    path = [[0.30, 0.10, REST_Z + 0.02]] * 10
    assert not any(run_grasp(path, goal=goal_on_table))


def test_grasp_reach_not_when_dropped():
    path = carry_to([0.30, 0.10, 0.95], hold=2) + [[0.30, 0.10, REST_Z]] * 5  # falls back on the table
    assert not any(run_grasp(path))
    fell = success.object_fell(torch.tensor([[0.3, 0.1, TABLE_Z - 0.2], [0.3, 0.1, REST_Z]]), TABLE_Z, 0.05)
    assert fell.tolist() == [True, False]


def test_hold_counter_counts_consecutive_steps_only():
    c = torch.tensor([0, 4, 2])
    c = success.update_hold_counter(c, torch.tensor([True, True, False]))
    assert c.tolist() == [1, 5, 0]
    with pytest.raises(ValueError, match="integer"):
        success.update_hold_counter(torch.zeros(3), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"condition must have shape \(3,\)"):
        success.update_hold_counter(c, torch.ones(2, dtype=torch.bool))


def _hand(contact: bool, centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stickers (1, 2, 3) around centre and 4 fingertips on them (contact) or 10 cm away."""
    stickers = centre + torch.tensor([[[0.0, 0.05, 0.0], [0.0, -0.05, 0.0]]])
    offset = 0.0 if contact else 0.10
    tips = stickers[:, [0, 0, 1, 1]] + torch.tensor([offset, 0.0, 0.0])
    return stickers, tips


def test_box_lift_needs_both_hands_touching_and_lift_for_hold_steps():
    def run(left, right, z_seq):
        counter = torch.zeros(1, dtype=torch.long)
        out = []
        for z in z_seq:
            pos = torch.tensor([[0.0, 0.0, z]])
            touching = torch.tensor([[left, right]])
            ok, counter = success.box_lift_success(pos, REST_Z, touching, counter, PARAMS)
            out.append(bool(ok[0]))
        return out

    lifted = [REST_Z, REST_Z + 0.06, REST_Z + 0.08, REST_Z + 0.08, REST_Z + 0.08]
    assert run(True, True, lifted) == [False, False, False, True, True]
    assert not any(run(True, False, lifted))  # one hand only
    assert not any(run(False, True, lifted))
    assert not any(run(True, True, [REST_Z + 0.03] * 6))  # not high enough
    with pytest.raises(ValueError, match=r"hands_touching must have shape \(1, 2\)"):
        success.box_lift_success(torch.tensor([[0.0, 0.0, REST_Z]]), REST_Z, torch.tensor([True, True]),
                                 torch.zeros(1, dtype=torch.long), PARAMS)


def test_box_lift_tipped_up_on_an_edge_is_not_a_lift():
    """A box whose centre is raised by lift_height while one end still rests on the table is not lifted."""
    half = torch.tensor([[0.09, 0.17, 0.10]])
    table = 0.9
    tilt = 0.6  # rad about x: the +-y ends of the 34 cm box go up and down
    quat = torch.tensor([[math.cos(tilt / 2), math.sin(tilt / 2), 0.0, 0.0]])
    below = 0.17 * math.sin(tilt) + 0.10 * math.cos(tilt)  # the lowest corner under the centre
    on_edge = torch.tensor([[0.4, 0.0, table + below]])  # that corner on the table
    assert not success.lowest_point_clear(on_edge, quat, half, table, 0.005)[0]
    assert success.lowest_point_clear(on_edge + torch.tensor([0.0, 0.0, 0.02]), quat, half, table, 0.005)[0]
    flat = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    lifted_flat = torch.tensor([[0.4, 0.0, table + 0.10 + 0.08]])
    assert success.lowest_point_clear(lifted_flat, flat, half, table, 0.005)[0]
    # the detector: both hands on and the centre 8 cm up, but tipped on an edge -> never a success
    rest = table + 0.10
    assert on_edge[0, 2] - rest > PARAMS.lift_height
    counter = torch.zeros(1, dtype=torch.long)
    both = torch.tensor([[True, True]])
    for _ in range(PARAMS.hold_steps + 2):
        clear = success.lowest_point_clear(on_edge, quat, half, table, 0.005)
        ok, counter = success.box_lift_success(on_edge, rest, both, counter, PARAMS, clear=clear)
        assert not ok[0]


def test_hand_in_contact_counts_tips():
    stickers = torch.zeros(1, 1, 3)
    tips = torch.tensor([[[0.01, 0, 0], [0.02, 0, 0], [0.2, 0, 0], [0.3, 0, 0]]])
    assert success.hand_in_contact(stickers, tips, 0.03, 2).tolist() == [True]
    assert success.hand_in_contact(stickers, tips, 0.03, 3).tolist() == [False]


def test_handover_stage_machine():
    transfer = torch.tensor([[0.0, 0.0, 0.95]])
    final = torch.tensor([[0.0, -0.3, 0.95]])

    def step(progress, counter, pos, b_contact):
        p = torch.tensor([pos])
        sb, tb = _hand(b_contact, p[:, None])
        return success.handover_step(progress, counter, p, REST_Z, transfer, final, sb, tb, PARAMS)

    prog, cnt = torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long)
    prog, cnt, done = step(prog, cnt, [0.0, 0.0, REST_Z], False)
    assert (prog.item(), done.item()) == (0, False)
    prog, cnt, done = step(prog, cnt, [0.0, 0.0, 0.95], False)  # hand A brings it to the transfer point
    assert (prog.item(), done.item()) == (1, False)
    history = []
    for _ in range(4):  # hand B holds it at the final goal
        prog, cnt, done = step(prog, cnt, [0.0, -0.3, 0.95], True)
        history.append((prog.item(), done.item()))
    assert history == [(1, False), (1, False), (2, True), (2, True)]


def test_handover_fails_without_transfer_or_without_hand_b():
    transfer = torch.tensor([[0.0, 0.0, 0.95]])
    final = torch.tensor([[0.0, -0.3, 0.95]])
    p = torch.tensor([[0.0, -0.3, 0.95]])
    for start_progress, b_contact in ((0, True), (1, False)):
        prog = torch.tensor([start_progress])
        cnt = torch.zeros(1, dtype=torch.long)
        sb, tb = _hand(b_contact, p[:, None])
        for _ in range(6):
            prog, cnt, done = success.handover_step(prog, cnt, p, REST_Z, transfer, final, sb, tb, PARAMS)
            assert not done.item()
        assert prog.item() == start_progress
    with pytest.raises(ValueError, match=r"progress must be in 0\.\.2"):
        success.handover_step(torch.tensor([3]), cnt, p, REST_Z, transfer, final, sb, tb, PARAMS)


def test_failure_helpers():
    pos = torch.tensor([[0.0, 0.0, REST_Z], [0.0, 0.0, 0.5], [2.0, 0.0, 1.0], [float("nan"), 0.0, 0.8]])
    anchor = torch.tensor([0.0, 0.0, REST_Z])
    assert success.object_flew_away(pos, anchor, 1.0).tolist() == [False, False, True, False]
    q = torch.zeros(4, 26)
    q[0, 3] = float("inf")
    assert success.nonfinite_state(pos, q).tolist() == [True, False, False, True]
    assert success.failed(pos, TABLE_Z, anchor, q).tolist() == [True, True, True, True]
    assert success.failed(pos[1:3], TABLE_Z, anchor).tolist() == [True, True]
    assert success.failed(pos[:1], TABLE_Z, anchor).tolist() == [False]
    with pytest.raises(ValueError, match="leading dim"):
        success.nonfinite_state(pos, torch.zeros(3, 2))


def test_success_params_validation():
    assert success.SuccessParams.from_dict({"hold_steps": 8}).hold_steps == 8
    assert success.SuccessParams.from_dict(None) == success.SuccessParams()
    with pytest.raises(ValueError, match="success: unknown key 'tolerance'"):
        success.SuccessParams.from_dict({"tolerance": 0.1})
    with pytest.raises(ValueError, match=r"success\.goal_tolerance must be > 0"):
        success.SuccessParams.from_dict({"goal_tolerance": 0.0})
    with pytest.raises(ValueError, match="min_tips_in_contact must be <= 4"):
        success.SuccessParams.from_dict({"min_tips_in_contact": 5})
    with pytest.raises(ValueError, match="hold_steps must be an integer"):
        success.SuccessParams.from_dict({"hold_steps": 2.5})


def test_shape_errors_name_the_argument():
    counter = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="obj_pos must have shape"):
        success.grasp_reach_success(torch.zeros(2, 4), GOAL, REST_Z, counter)
    with pytest.raises(ValueError, match="goal_pos has 1 envs, expected 2"):
        success.grasp_reach_success(torch.zeros(2, 3), GOAL, REST_Z, counter)
    with pytest.raises(ValueError, match="rest_z must be a scalar"):
        success.grasp_reach_success(torch.zeros(2, 3), GOAL[0], torch.zeros(3), counter)
    with pytest.raises(ValueError, match="counter must be an integer"):
        success.grasp_reach_success(torch.zeros(2, 3), GOAL[0], REST_Z, torch.zeros(2))


def test_the_policy_nodes_handover_goal_swap_is_the_training_detectors():
    """recipe_common.handover_stages (the node's goal swap, on perceived positions) fires exactly where
    the sim's handover detector marks the transfer done, both with the thresholds of config/rewards.yaml."""
    from recipe_common.handover_stages import TransferRule
    from recipe_sim.rewards import load_reward_configs

    params = load_reward_configs()["handover"].success
    rule = TransferRule.load()
    assert (rule.lift_height, rule.goal_tolerance) == (params.lift_height, params.goal_tolerance)
    rng = np.random.default_rng(0)
    transfer = torch.tensor([[0.30, 0.0, REST_Z + 0.12]])
    final = torch.tensor([[0.30, -0.2, REST_Z + 0.12]])
    n = 2000
    pos = transfer + torch.as_tensor(rng.normal(0.0, 0.04, size=(n, 3)), dtype=torch.float32)
    sb, tb = torch.zeros(n, 1, 3), torch.full((n, 4, 3), 5.0)
    prog, _, _ = success.handover_step(torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long),
                                       pos, REST_Z, transfer.expand(n, 3), final.expand(n, 3), sb, tb, params)
    sim = (prog == success.HANDOVER_TRANSFER_DONE).numpy()
    node = np.array([rule.transfer_done(p, REST_Z, transfer[0].numpy()) for p in pos.double().numpy()])
    assert 0.1 < sim.mean() < 0.9  # both outcomes sampled
    assert (sim == node).mean() > 0.998  # float32 vs float64 on the boundary
