"""The figures a trial reports from what it saw: policy (inference) rate and command rate."""

from recipe_bringup.trials import TrialResult, TrialsClient, _TrialLog
from recipe_interfaces.msg import PolicyStatus


def status(t: float, chunk_index: int) -> PolicyStatus:
    s = PolicyStatus()
    s.header.stamp.sec, s.header.stamp.nanosec = int(t), round((t % 1) * 1e9)
    s.state = PolicyStatus.STATE_RUNNING
    s.chunk_index = chunk_index
    s.inference_latency = float("nan")
    s.observation_to_command = float("nan")
    return s


def test_a_short_episode_at_5_hz_reads_5_hz():
    # 2 s of 10 Hz ticks with an inference on every other one (at 100.0, 100.2, ... 101.8 s): 10 chunks.
    log = _TrialLog()
    log.status = [status(100.0 + 0.1 * k, k // 2 + 1) for k in range(20)]
    log.commands = [100.0 + 0.1 * k for k in range(20)]
    result = TrialResult(trial=0, seed=0, outcome="success", time_to_success_s=2.0, duration_s=2.0)
    TrialsClient._fill_stats(result, log, 100.0)
    assert abs(result.policy_rate_hz - 5.0) < 1e-6  # counting chunks over the tick span gave 4.74 Hz
    assert abs(result.command_rate_hz - 10.0) < 1e-6
