"""gr1_mapping: arm indices/degrees and DexHand slots/strokes agree with robot_spec and the SDKs."""

import numpy as np
import pytest
from fourier_grx_client import ControlGroup

from recipe_common import robot_spec
from recipe_gr1_driver.backends import gr1_mapping as gm


def test_arm_table_covers_robot_spec_arms_in_grx_arm_groups():
    assert list(gm.GRX_ARM_INDEX) == robot_spec.arm_joint_names()
    left = list(range(*ControlGroup.LEFT_ARM.slice.indices(32)))
    right = list(range(*ControlGroup.RIGHT_ARM.slice.indices(32)))
    assert gm.GRX_ARM_INDICES == left + right


def test_arm_conversion_is_degrees_at_the_right_indices():
    q = np.linspace(-1.0, 1.0, 14)
    idx, deg = gm.arm_rad_to_grx_deg(q)
    assert idx[3] == 21 and deg[3] == pytest.approx(np.rad2deg(q[3]))  # left elbow pitch
    v32 = np.zeros(32)
    v32[idx] = deg
    np.testing.assert_allclose(gm.grx_deg_to_arm_rad(v32), q)
    with pytest.raises(ValueError, match="expected \\(14,\\)"):
        gm.arm_rad_to_grx_deg(q[:7])
    with pytest.raises(ValueError, match="expected \\(32,\\)"):
        gm.grx_deg_to_arm_rad(np.zeros(31))


def test_hand_open_is_zero_and_closed_is_full_stroke_in_sdk_slots():
    open_, closed = robot_spec.hand_open_closed("fourier")
    assert gm.hand_rad_to_dexhand(open_) == pytest.approx([0.0] * 6)
    assert gm.hand_rad_to_dexhand(closed) == pytest.approx([10.3] * 6)
    half = open_ + 0.5 * (closed - open_)
    q = half.copy()
    sfx = list(robot_spec.HAND_ACTUATED_SUFFIXES)
    q[sfx.index("thumb_proximal_yaw")] = closed[sfx.index("thumb_proximal_yaw")]
    out = gm.hand_rad_to_dexhand(q)
    # slot 5 (thumb-2) is the thumb yaw, slot 4 (thumb-1) the thumb pitch, 0..3 index..little
    assert out == pytest.approx([5.15, 5.15, 5.15, 5.15, 5.15, 10.3])


def test_hand_round_trip_and_coupled_joints():
    rng = np.random.default_rng(0)
    open_, closed = robot_spec.hand_open_closed("fourier")
    q = open_ + rng.random(6) * (closed - open_)
    np.testing.assert_allclose(gm.dexhand_to_hand_rad(gm.hand_rad_to_dexhand(q)), q, atol=1e-12)
    both = np.concatenate([q, q])
    coupled = gm.coupled_from_actuated(both)
    names = robot_spec.hand_coupled_joint_names("fourier")
    i = names.index("R_index_intermediate_joint")
    index_prox = q[list(robot_spec.HAND_ACTUATED_SUFFIXES).index("index_proximal")]
    assert coupled[i] == pytest.approx(0.975 * index_prox)
    with pytest.raises(ValueError):
        gm.dexhand_to_hand_rad([1.0, 2.0])
