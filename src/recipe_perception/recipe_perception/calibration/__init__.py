"""Extrinsic calibration of the third-view camera to the robot base (board at a known pose, or hand-eye)."""
