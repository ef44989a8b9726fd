"""rclpy helpers shared by every node process (the only part of recipe_common that imports rclpy)."""
