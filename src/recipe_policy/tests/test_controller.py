"""PolicyController: when it commands, when it holds (and why), start/stop/reset; no ROS, a fake clock."""

import numpy as np
import pytest

from recipe_common import robot_spec
from recipe_policy.controller import HOLDING, IDLE, RUNNING, Limits, PolicyController, one_hand_side
from recipe_policy.interface import PolicySpec
from recipe_policy.runtime import RuntimeConfig

READY = np.zeros(robot_spec.ACTION_DIM)
READY[3], READY[10] = -1.5, -1.5
GOAL = np.array([0.3, 0.1, 1.0])
OBJ = np.array([0.3, 0.05, 0.96])


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakePolicy:
    """Returns a fixed action (or NaN, or takes simulated time) so each path can be forced."""

    def __init__(self, clock: Clock, *, kind="specialist", depth=False, horizon=1, period=0.1,
                 task="grasp_reach") -> None:
        from recipe_common.policy_image import PolicyImageSpec

        self.spec = PolicySpec(kind=kind, task=task, hand="fourier", objects=("can_medium",),
                               has_goal=True, uses_depth=depth, uses_object_pos=True, n_obs_steps=1,
                               action_horizon=horizon, action_dt=0.1, inference_period=period,
                               depth=PolicyImageSpec(8, 8, 58.0) if depth else None)
        self.clock = clock
        self.action = robot_spec.joint_targets_to_action(READY) + 0.05
        self.action[robot_spec.ACTION_DIM - 12:] = 0.5
        self.delay = 0.0
        self.nan = False
        self.calls = 0
        self.resets = 0
        self.last_states = None

    def predict(self, states, depths):
        self.calls += 1
        self.last_states = states
        self.clock.t += self.delay
        out = np.tile(self.action, (self.spec.action_horizon, 1))
        if self.nan:
            out[0, 2] = np.nan
        return out

    def reset(self):
        self.resets += 1


def make(depth=False, **kw):
    clock = Clock()
    policy = FakePolicy(clock, depth=depth, **kw)
    ctrl = PolicyController(policy, Limits(max_joint_state_age_s=0.2, max_object_age_s=0.5,
                                           max_depth_age_s=0.5, max_inference_s=0.25),
                            RuntimeConfig(), clock=clock)
    return ctrl, policy, clock


def feed(ctrl, clock, depth=False):
    ctrl.set_joint_state(clock.t, READY)
    ctrl.set_object(clock.t, OBJ)
    if depth:
        ctrl.set_depth(clock.t, np.ones((8, 8), np.float32))


def run(ctrl, clock, ticks=5, depth=False, dt=0.1):
    out = []
    for _ in range(ticks):
        clock.t += dt
        feed(ctrl, clock, depth)
        out.append(ctrl.tick())
    return out


def test_the_inference_runs_inside_the_realtime_section():
    """Only predict is raised (recipe_common.realtime): the rest of a tick runs at the thread's priority."""

    class Spy:
        inside = False
        entered = 0

        def __enter__(self):
            self.inside, self.entered = True, self.entered + 1
            return self

        def __exit__(self, *exc):
            self.inside = False

    ctrl, policy, clock = make()
    spy = Spy()
    ctrl.realtime = spy
    seen = []
    predict = policy.predict
    policy.predict = lambda s, d: (seen.append(spy.inside), predict(s, d))[1]
    feed(ctrl, clock)
    assert ctrl.start(GOAL)[0]
    run(ctrl, clock, ticks=3)
    assert seen == [True, True, True] and spy.entered == 3 and not spy.inside


def test_idle_until_started_then_commands_within_limits():
    ctrl, policy, clock = make()
    feed(ctrl, clock)
    assert ctrl.tick().targets is None and ctrl.state == IDLE
    ok, msg = ctrl.start(GOAL)
    assert ok, msg
    ticks = run(ctrl, clock)
    assert all(t.state == RUNNING and t.targets is not None for t in ticks)
    lo, hi = robot_spec.actuated_limits()
    for t in ticks:
        assert np.isfinite(t.targets).all()
        assert (t.targets >= lo - 1e-9).all() and (t.targets <= hi + 1e-9).all()
    assert policy.calls == 5  # a specialist infers on every 10 Hz tick
    np.testing.assert_allclose(policy.last_states[0, -3:], GOAL)
    assert ticks[0].latency_s is not None and ticks[0].latency_s >= 0


def test_one_hand_task_holds_the_idle_side_at_the_start_pose():
    ctrl, _, clock = make()
    feed(ctrl, clock)
    ctrl.start(np.array([0.3, -0.1, 1.0]))  # goal on the right: the right hand acts, the left is idle
    t = run(ctrl, clock, 1)[0]
    left = robot_spec.side_action_mask("left")
    q_expected_left = robot_spec.action_to_joint_targets(robot_spec.joint_targets_to_action(READY))[left]
    np.testing.assert_allclose(t.targets[left], q_expected_left)
    assert not np.allclose(t.targets[~left], READY[~left])
    assert one_hand_side(OBJ, None) == 0 and one_hand_side(OBJ, np.array([0.3, -0.01, 1.0])) == 1


@pytest.mark.parametrize("what, expect", [
    ("joint", "joint state is"),
    ("object_lost", "object: perception reports LOST"),
    ("object_stale", "object position is"),
])
def test_stale_or_lost_inputs_hold_with_the_reason_and_recover(what, expect):
    ctrl, _, clock = make()
    feed(ctrl, clock)
    ctrl.start(GOAL)
    run(ctrl, clock, 2)
    clock.t += 0.1
    if what == "joint":
        clock.t += 0.5
        ctrl.set_object(clock.t, OBJ)
    elif what == "object_lost":
        ctrl.set_joint_state(clock.t, READY)
        ctrl.set_object(clock.t, None, "perception reports LOST")
    else:
        clock.t += 0.6
        ctrl.set_joint_state(clock.t, READY)
    t = ctrl.tick()
    assert t.targets is None and t.state == HOLDING and expect in t.reason
    assert ctrl.state == HOLDING and expect in ctrl.reason
    back = run(ctrl, clock, 2)  # fresh inputs again: it resumes by itself
    assert back[-1].state == RUNNING and back[-1].targets is not None


def test_stale_depth_holds_a_depth_policy():
    ctrl, _, clock = make(depth=True)
    feed(ctrl, clock, depth=True)
    ctrl.start(GOAL)
    assert run(ctrl, clock, 2, depth=True)[-1].state == RUNNING
    clock.t += 0.7
    ctrl.set_joint_state(clock.t, READY)
    ctrl.set_object(clock.t, OBJ)
    t = ctrl.tick()
    assert t.state == HOLDING and "head depth is" in t.reason


def test_nan_output_is_never_sent():
    ctrl, policy, clock = make()
    feed(ctrl, clock)
    ctrl.start(GOAL)
    policy.nan = True
    ticks = run(ctrl, clock, 3)
    assert all(t.targets is None and t.state == HOLDING for t in ticks)
    assert "NaN" in ticks[0].reason and ctrl.runtime.rejected == 3
    policy.nan = False
    assert run(ctrl, clock, 1)[0].state == RUNNING


def test_inference_overrun_drops_the_chunk_and_holds():
    ctrl, policy, clock = make()
    feed(ctrl, clock)
    ctrl.start(GOAL)
    policy.delay = 0.4
    t = run(ctrl, clock, 1)[0]
    assert t.state == HOLDING and "overrun" in t.reason and t.inference_s == pytest.approx(0.4)
    policy.delay = 0.0
    assert run(ctrl, clock, 1)[0].state == RUNNING


def test_model_exception_holds_instead_of_crashing():
    ctrl, policy, clock = make()
    feed(ctrl, clock)
    ctrl.start(GOAL)

    def boom(states, depths):
        raise RuntimeError("bad weights")

    policy.predict = boom
    t = run(ctrl, clock, 1)[0]
    assert t.state == HOLDING and "bad weights" in t.reason


def test_start_checks_task_goal_and_inputs_and_stop_resets():
    ctrl, policy, clock = make()
    ok, msg = ctrl.start(GOAL)
    assert not ok and "no joint state" in msg
    feed(ctrl, clock)
    assert ctrl.start(GOAL, task="box_lift") == (False, "this policy runs task 'grasp_reach', not 'box_lift'")
    ok, msg = ctrl.start(None)
    assert not ok and "needs a finite 3-d goal" in msg
    ok, msg = ctrl.start(np.array([0.3, np.nan, 1.0]))
    assert not ok
    ok, msg = ctrl.start(GOAL, side="right")  # GOAL is on the left
    assert not ok and "right hand cannot take a goal on the left side" in msg
    assert not ctrl.start(GOAL, side="middle")[0]
    assert ctrl.start(GOAL, side="left")[0] and policy.resets == 1
    run(ctrl, clock, 2)
    ctrl.stop()
    clock.t += 0.1
    feed(ctrl, clock)
    t = ctrl.tick()
    assert t.state == IDLE and t.targets is None


def test_diffusion_chunks_are_inferred_at_5hz_and_commanded_at_10hz():
    ctrl, policy, clock = make(kind="diffusion", horizon=8, period=0.2)
    feed(ctrl, clock)
    ctrl.start(GOAL)
    ticks = run(ctrl, clock, 10)
    assert all(t.state == RUNNING for t in ticks)
    assert policy.calls == 5 and ctrl.chunk_index == 5


def test_a_chunked_policy_first_commands_the_start_pose_then_its_chunk():
    """As the sim's evaluation does at step 0: the driver's ramp then anchors at the pose it holds instead
    of fading a chunk's lead over the whole reach. A specialist (one-row chunks) commands at once, as in
    sim."""
    ctrl, policy, clock = make(kind="diffusion", horizon=8, period=0.2)
    feed(ctrl, clock)
    ctrl.start(GOAL)
    first, second = run(ctrl, clock, 2)
    start = robot_spec.action_to_joint_targets(robot_spec.joint_targets_to_action(READY))
    assert first.state == RUNNING and policy.calls == 1  # the first chunk is computed on that tick
    np.testing.assert_allclose(first.targets, start)
    assert "start pose" in first.reason and first.latency_s is None
    chunk = robot_spec.action_to_joint_targets(policy.action)
    acting = robot_spec.side_action_mask("left")  # the goal is on the left; the right side holds its start
    np.testing.assert_allclose(second.targets[acting], chunk[acting])
    ctrl.start(GOAL)  # every episode starts this way
    np.testing.assert_allclose(run(ctrl, clock, 1)[0].targets, start)

    ctrl, policy, clock = make()  # specialist
    feed(ctrl, clock)
    ctrl.start(GOAL)
    np.testing.assert_allclose(run(ctrl, clock, 1)[0].targets[acting],
                               robot_spec.action_to_joint_targets(policy.action)[acting])


def test_handover_swaps_the_goal_once_the_block_is_lifted_at_the_transfer_point():
    from recipe_common.handover_stages import TO_FINAL, TO_TRANSFER, TransferRule

    rule = TransferRule.load()
    ctrl, policy, clock = make(task="handover")
    feed(ctrl, clock)
    transfer, final = np.array([0.3, 0.0, 1.1]), np.array([0.3, -0.2, 1.1])
    assert not ctrl.start(transfer)[0]  # the final goal is required
    ok, msg = ctrl.start(transfer, final_goal_world=final)
    assert ok, msg
    run(ctrl, clock, ticks=2)
    np.testing.assert_allclose(policy.last_states[0, -3:], transfer)
    # carried near the transfer point but not yet lifted enough: still the transfer goal
    low = transfer.copy()
    low[2] = OBJ[2] + 0.5 * rule.lift_height
    ctrl.set_object(clock.t, low)
    clock.t += 0.1
    ctrl.set_joint_state(clock.t, READY)
    ctrl.tick()
    assert ctrl.stages.stage == TO_TRANSFER
    # at the transfer point, lifted: the policy sees the final goal from this tick on
    for k, pos in enumerate((transfer + np.array([0.0, 0.5 * rule.goal_tolerance, 0.0]), OBJ)):
        clock.t += 0.1
        ctrl.set_joint_state(clock.t, READY)
        ctrl.set_object(clock.t, pos)
        tick = ctrl.tick()
        assert tick.state == RUNNING and (("transfer point" in tick.reason) == (k == 0))  # said once
        assert ctrl.stages.stage == TO_FINAL
        np.testing.assert_allclose(policy.last_states[0, -3:], final)  # and never back (as in training)
    # a new episode starts at the transfer stage again
    feed(ctrl, clock)
    assert ctrl.start(transfer, final_goal_world=final)[0] and ctrl.stages.stage == TO_TRANSFER


def test_only_handover_takes_a_final_goal():
    ctrl, _, clock = make()
    feed(ctrl, clock)
    ok, msg = ctrl.start(GOAL, final_goal_world=GOAL)
    assert not ok and "final_goal" in msg
