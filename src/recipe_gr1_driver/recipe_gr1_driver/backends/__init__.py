"""Robot backends behind one interface; ``make_backend`` picks one from the driver config."""

from __future__ import annotations

from recipe_gr1_driver.backends.base import Backend, BackendStatus, DepthCameraSource
from recipe_gr1_driver.config import DriverConfig

__all__ = ["Backend", "BackendStatus", "DepthCameraSource", "make_backend"]


def make_backend(cfg: DriverConfig) -> Backend:
    """Construct (not start) the configured backend; imports are local so each is optional."""
    if cfg.backend == "sim":
        from recipe_gr1_driver.backends.sim import SimBackend

        return SimBackend(hand=cfg.hand, overlay=cfg.sim_overlay or None, object_name=cfg.sim_object or None,
                          seed=cfg.sim_seed, real_time_factor=cfg.sim_real_time_factor,
                          render=cfg.camera_rate_hz > 0 and bool(cfg.camera_names),
                          camera_size=(cfg.camera_width, cfg.camera_height))
    if cfg.backend == "gr1":
        from recipe_gr1_driver.backends.gr1 import GR1Backend

        return GR1Backend(namespace=cfg.gr1_namespace, server_ip=cfg.gr1_server_ip,
                          server_port=cfg.gr1_server_port, zenoh_listen=list(cfg.gr1_zenoh_listen),
                          hand_ips=(cfg.left_hand_ip, cfg.right_hand_ip),
                          hand_ports=(tuple(cfg.left_hand_ports), tuple(cfg.right_hand_ports)),
                          enable_on_start=cfg.gr1_enable_on_start, full_stroke=cfg.hand_full_stroke,
                          hand_poll_rate_hz=cfg.hand_poll_rate_hz)
    raise ValueError(f"backend: unknown backend {cfg.backend!r}")
