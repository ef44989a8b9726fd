"""Training speed of a diffusion-policy profile (optimizer steps/s at its batch size, augmentation included),
and the wall time its step budget takes, against the issue's 2-hour limit for the CPU profile.

    ./dev bench train_speed                      # cpu profile, 1 and 2 threads
    ./dev bench train_speed --profile paper --steps 3
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from recipe_common.policy_image import PolicyImageSpec
from recipe_policy.augment import augment_depth, augment_state
from recipe_policy.config import load_profile
from recipe_policy.diffusion_model import DiffusionPolicyModel
from recipe_policy.training_data import state_slices

LIMIT_H = 2.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    a = p.parse_args()
    prof = load_profile(a.profile)
    t = prof.training
    head = PolicyImageSpec.for_camera()
    model = DiffusionPolicyModel(prof, True, (head.near_m, head.far_m))
    rng = np.random.default_rng(0)
    model.state_norm.fit(rng.normal(size=(64, 32)))
    model.action_norm.fit(rng.uniform(size=(64, 26)))
    opt = torch.optim.AdamW(model.parameters(), lr=t.learning_rate)
    g = torch.Generator().manual_seed(0)
    b, n, h, w = t.batch_size, prof.n_obs_steps, prof.image.height, prof.image.width
    cols = state_slices(True)
    print(
        f"profile {a.profile}: batch {b}, "
        f"{sum(x.numel() for x in model.parameters()) / 1e6:.2f} M parameters, "
        f"depth {w}x{h}; budget {t.steps} steps; load average {os.getloadavg()[0]:.2f}"
    )
    for th in a.threads:
        torch.set_num_threads(th)
        times = []
        for k in range(a.steps + 2):
            s = torch.randn(b, n, 32)
            d = torch.rand(b, n, h, w) + 0.4
            act = torch.rand(b, prof.horizon, 26)
            t0 = time.perf_counter()
            s = augment_state(s, prof.augmentation.state, cols["object_pos"], cols["joint_pos"], g)
            d = augment_depth(d, prof.augmentation.depth, head.near_m, head.far_m, g)
            loss = model.loss(s, d, act, g)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if k >= 2:
                times.append(time.perf_counter() - t0)
        per = float(np.median(times))
        hours = per * t.steps / 3600
        verdict = "OK" if hours <= LIMIT_H else "OVER"
        print(
            f"threads {th}: {per * 1e3:.0f} ms/step (median of {a.steps}) -> {t.steps} steps in "
            f"{hours:.2f} h "
            f"(limit {LIMIT_H:.0f} h for the cpu profile: {verdict})"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
