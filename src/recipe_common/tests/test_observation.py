"""policy_state's layout: field_slice finds each field where policy_state puts it."""

import numpy as np
import pytest

from recipe_common import robot_spec
from recipe_common.observation import field_slice, policy_state


def test_field_slices_read_back_what_policy_state_wrote():
    q, obj, goal = np.arange(robot_spec.ACTION_DIM), np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    row = policy_state(q, obj, goal)
    np.testing.assert_array_equal(row[field_slice("joint_pos")], q)
    np.testing.assert_array_equal(row[field_slice("object_pos")], obj)
    np.testing.assert_array_equal(row[field_slice("goal")], goal)
    with pytest.raises(KeyError, match="no field 'goal'"):
        field_slice("goal", has_goal=False)
