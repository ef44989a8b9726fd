"""RealSense ingest without realsense-ros: pyrealsense2 frames published as realsense2_camera publishes them."""
