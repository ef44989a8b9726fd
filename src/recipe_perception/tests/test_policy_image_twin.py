"""Item 5: the twin's 848x480 head frame through to_policy_image is the twin's own 84x84 render."""

import numpy as np
import pytest

from recipe_common.cameras import HEAD
from recipe_common.policy_image import PolicyImageSpec, to_policy_image
from recipe_perception.depth_noise import D435Noise

pytest.importorskip("recipe_sim.render")
import mujoco

from recipe_perception.sim_check import TwinScene, as_published
from recipe_sim.render import DepthRenderer


@pytest.fixture(scope="module")
def frames():
    """The same scene (robot reaching for a can) rendered at the D435's 848x480 and at the policy's 84x84."""
    with TwinScene("can_medium") as scene:
        scene.place_object(np.array([0.30, 0.04]), 0.3)
        rng = np.random.default_rng(0)
        for i, _ in enumerate(scene.grasp_lift(rng)):
            if i == 8:  # mid-reach: the hand is in front of the head camera's view of the can
                break
        big = DepthRenderer(scene.model, HEAD, 848, 480)
        small = DepthRenderer(scene.model, HEAD, 84, 84)
        try:
            mujoco.mj_forward(scene.model, scene.data)
            out = (
                as_published(big.render(scene.data)),
                big.intrinsics,
                small.render(scene.data),
                small.intrinsics,
            )
        finally:
            big.close()
            small.close()
    return out


def test_twin_frame_through_the_function_is_the_policy_render(frames):
    full, k_full, render, k_render = frames
    spec = PolicyImageSpec.for_camera()
    sim = to_policy_image(render, k_render, spec)  # what training sees
    real = to_policy_image(full, k_full, spec)  # what the real node computes from an 848x480 frame
    diff = np.abs(real - sim)
    print(
        f"848x480 -> 84x84 vs 84x84 render: median {1000 * np.median(diff):.2f} mm, "
        f"p95 {1000 * np.percentile(diff, 95):.2f} mm, > 1 cm: {100 * np.mean(diff > 0.01):.2f}%"
    )
    assert np.median(diff) < 0.001  # whole-millimetre quantisation of the 16UC1 topic
    assert np.percentile(diff, 95) < 0.003
    assert np.mean(diff > 0.01) < 0.01  # edge pixels whose footprint straddles two surfaces


def test_with_d435_like_noise(frames):
    full, k_full, render, k_render = frames
    spec = PolicyImageSpec.for_camera()
    sim = to_policy_image(render, k_render, spec)
    noisy = D435Noise().apply(full, np.random.default_rng(1))
    diff = np.abs(to_policy_image(noisy, k_full, spec) - sim)
    print(
        f"noisy: median {1000 * np.median(diff):.2f} mm, p95 {1000 * np.percentile(diff, 95):.2f} mm, "
        f"> 1 cm: {100 * np.mean(diff > 0.01):.2f}%"
    )
    assert np.median(diff) < 0.003 and np.mean(diff > 0.02) < 0.05
