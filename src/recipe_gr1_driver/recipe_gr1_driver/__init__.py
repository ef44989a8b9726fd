"""Safe GR1 joint-command driver: ROS node shell (node.py) over pure safety logic (safety.py,
controller.py) and interchangeable robot backends (backends/: MuJoCo twin, GR1 hardware)."""
