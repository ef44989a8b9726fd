"""recipe_autotune: real-to-sim autotune (paper Algorithm 1) with a least-squares/CMA-ES refinement.

Modules: config (config/autotune.yaml), space (tunable parameters), calibration + clearance (safe
calibration motion), recording (Recording, .npz and rosbag2 MCAP), live (record through the driver topics),
tracking (parallel rollouts, tracking MSE), search (random search, least squares, CMA-ES), report (fit
report and overlay plots), tuner (run_autotune), synthetic (the hidden-overlay "real robot"), job, server
(the /autotune action server) and cli (the ``autotune`` command).
"""
