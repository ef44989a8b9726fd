"""A minimal Autotune action server used by the two-process interface test.

It checks that the generated types round-trip through DDS between processes: it echoes goal fields
into feedback and result so the client can verify every field crossed the process boundary.
"""

import sys
import time

import rclpy
from rclpy.action import ActionServer, CancelResponse
from rclpy.node import Node

from recipe_common.ros.executor import MultiThreadedExecutor
from recipe_interfaces.action import Autotune


class EchoAutotuneServer(Node):
    def __init__(self) -> None:
        super().__init__("autotune_echo_server")
        self._server = ActionServer(
            self, Autotune, "autotune", self._execute, cancel_callback=lambda _req: CancelResponse.ACCEPT
        )

    def _execute(self, handle):
        goal = handle.request
        total = goal.population_size
        best = 1.0
        for i in range(total):
            if handle.is_cancel_requested:
                handle.canceled()
                return Autotune.Result(success=False, message="canceled", best_mse=best)
            best *= 0.5
            handle.publish_feedback(
                Autotune.Feedback(
                    stage=Autotune.Feedback.STAGE_RANDOM_SEARCH,
                    candidates_evaluated=i + 1,
                    candidates_total=total,
                    best_mse=best,
                )
            )
            time.sleep(0.05)
        handle.succeed()
        return Autotune.Result(
            success=True,
            message=",".join(goal.parameter_groups)
            + f"|{goal.num_sequences}|{goal.seed}|{goal.real_data_path}",
            best_mse=best,
            untuned_mse=1.0,
            random_search_mse=best,
            overlay_path="/tmp/overlay.yaml",
            report_path="/tmp/report.md",
        )


def main() -> int:
    rclpy.init()
    node = EchoAutotuneServer()
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    print("READY", flush=True)
    try:
        executor.spin()
    except KeyboardInterrupt:
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
