"""The policy node's handover goal swap: the transfer point first, the final goal once reached lifted."""

import numpy as np
import pytest

from recipe_common.config import ConfigError
from recipe_common.handover_stages import TO_FINAL, TO_TRANSFER, HandoverGoals, TransferRule

REST_Z = 0.85
TRANSFER = np.array([0.3, 0.0, REST_Z + 0.12])
FINAL = np.array([0.3, -0.2, REST_Z + 0.15])


def test_swaps_once_when_lifted_at_the_transfer_point_and_never_back():
    goals = HandoverGoals(TRANSFER, FINAL, REST_Z, TransferRule(lift_height=0.05, goal_tolerance=0.05))
    assert goals.stage == TO_TRANSFER and np.array_equal(goals.update([0.3, 0.1, REST_Z]), TRANSFER)
    # within tolerance of the point but not lifted (a transfer point low over the table): no swap
    low = HandoverGoals([0.3, 0.0, REST_Z + 0.02], FINAL, REST_Z, goals.rule)
    assert np.array_equal(low.update([0.3, 0.0, REST_Z + 0.02]), low.transfer_goal)
    assert np.array_equal(goals.update(TRANSFER + np.array([0.0, 0.06, 0.0])), TRANSFER)  # lifted, 6 cm off
    assert np.array_equal(goals.update(TRANSFER + np.array([0.0, 0.04, 0.0])), FINAL)
    assert goals.stage == TO_FINAL
    assert np.array_equal(goals.update([0.3, 0.1, REST_Z]), FINAL)  # dropped: the final goal stays


def test_thresholds_come_from_rewards_yaml_and_bad_values_name_file_and_key(tmp_path):
    rule = TransferRule.load()
    assert rule.lift_height > 0 and rule.goal_tolerance > 0
    bad = tmp_path / "rewards.yaml"
    bad.write_text("tasks:\n  handover:\n    success: {lift_height: -1}\n")
    with pytest.raises(ConfigError, match=r"rewards.yaml.*tasks.handover.success.lift_height"):
        TransferRule.load(bad)
    bad.write_text("tasks:\n  handover:\n    success: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"tasks.handover.success must be a mapping"):
        TransferRule.load(bad)
