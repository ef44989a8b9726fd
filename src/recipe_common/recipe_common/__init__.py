"""recipe_common: the facts every package shares, without the simulator.

``robot_spec`` (joints, limits, action mapping), ``config`` (the YAML toolkit), ``paths`` (where config/
is), ``cameras`` (the camera table and intrinsics), ``tasks`` (the task registry), ``checkpoint_io``
(weights-only loading, hashes, records), ``node_process`` (a node in a subprocess, for tests and tools)
and, needing rclpy, ``recipe_common.ros``. Pure Python + numpy + PyYAML: importing it never imports
MuJoCo or torch.
"""
