"""RealSense ingest without realsense-ros: pyrealsense2 frames on realsense2_camera's topics."""
